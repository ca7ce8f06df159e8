"""Server CPU per request of one member's client surfaces, in process and without Raft.

    python -m trikv.tools.bench_surface_cpu                  # JSON gateway ranges, 16 connections, 4 s
    python -m trikv.tools.bench_surface_cpu --op put --connections 1
    python -m trikv.tools.bench_surface_cpu --surface grpc      # or cbor: the CBOR WebSocket API

One member's request path as the member wires it (ClientServer + the gateway routes + Handlers + KVApi +
Backend over a page file of --keys keys in a temp dir, with the member's metrics), served on 127.0.0.1 by
this process; a load process keeps --connections connections busy with pre-built requests, one in flight
per connection: HTTP/1.1 keep-alive with etcd_load.py's requests (gateway), h2 unary calls (grpc) or
one-request frames (cbor). What is reported is this process's CPU
(user + system, so the socket work counts) per answered request: on a shared, noisy machine the stable
signal for an A/B of the request path, where ops/s is not. No Raft: a linearizable read's ReadIndex round
and a put's replication are stubbed (a put is applied and committed at once, as tests/memory_cluster.py
does), so the figure is the surface + handler + storage cost a member pays on top of consensus.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import random
import resource
import selectors
import socket
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import trio

from trikv.actors.apply import Applier
from trikv.actors.backend import Backend
from trikv.actors.cluster import ClusterApi
from trikv.actors.events import RaftStatus, RequestIds, Waiters
from trikv.actors.gateway import gateway_routes
from trikv.actors.handlers import Handlers
from trikv.actors.kv import Identity, KVApi
from trikv.actors.metrics import MemberMetrics
from trikv.actors.server import ClientServer
from trikv.api import codec, protocol, rpc
from trikv.api.internal import RaftRequest
from trikv.api.records import Entry, EntryType
from trikv.storage.files import OsFileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile

MEMBER_ID, CLUSTER_ID, TERM = 0x8E9E05C52164694D, 0xCDF818194E3A8C32, 2


async def _inline(fn: Any) -> Any:
    await trio.lowlevel.checkpoint()
    return fn()


class _Proposer:
    """Applies each proposal as the next entry and commits it (no Raft); read_index returns at once."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.index, self.ids = backend, 0, RequestIds(MEMBER_ID)
        self._order = trio.Lock()

    async def propose(self, payload: Any, op: str | None = None) -> Any:
        request = RaftRequest(MEMBER_ID, self.ids.next(), op or "put", payload)
        async with self._order:
            self.index += 1
            entry = Entry(TERM, self.index, EntryType.NORMAL, codec.encode(request))
            outcome = await self.backend.apply([entry], lambda cc: None)  # type: ignore[arg-type,return-value]
            await self.backend.commit()
        (applied,) = outcome.applied
        return applied.response

    async def read_index(self) -> None:
        await trio.lowlevel.checkpoint()


def _member(datadir: str) -> tuple[Handlers, Backend, _Proposer]:
    fs = OsFileSystem()
    pagefile = PageFile.open(fs, f"{datadir}/db")
    kv = KVStore(pagefile)
    backend = Backend(
        pagefile, kv, Applier(kv, MEMBER_ID), Waiters(), applied=0, run_sync=trio.to_thread.run_sync
    )
    status = RaftStatus(lead=MEMBER_ID, term=TERM, is_leader=True)
    proposer = _Proposer(backend)
    ident = Identity(MEMBER_ID, CLUSTER_ID)
    kvapi = KVApi(ident, status, backend, proposer)  # type: ignore[arg-type]
    cluster = ClusterApi(
        ident, status, backend, proposer, None, proposer.ids, SimpleNamespace(),  # type: ignore[arg-type]
        is_active=lambda _id: True, forward=None, strict_reconfig_check=False,  # type: ignore[arg-type]
        election_seconds=1.0, tick_seconds=0.1,
    )  # fmt: skip
    handlers = Handlers(kvapi, cluster, version="bench", max_txn_ops=128)
    metrics = MemberMetrics()
    handlers.metrics = metrics
    backend.metrics = metrics
    return handlers, backend, proposer


def _requests(surface: str, op: str, keys: int, value_size: int, n: int) -> list[Any]:
    """etcd_load.py's requests on the gateway (as http.client writes them), the same ones on the others."""
    from trikv.actors.grpcpb import rpc_pb2

    rnd = random.Random(1)
    value = b"x" * value_size
    out: list[Any] = []
    for _ in range(n):
        key = f"/bench/{rnd.randrange(keys):08d}".encode()
        serializable = op == "range-s"
        if surface == "grpc":
            if op == "put":
                out.append(
                    (b"/etcdserverpb.KV/Put", rpc_pb2.PutRequest(key=key, value=value).SerializeToString())
                )
            else:
                msg = rpc_pb2.RangeRequest(key=key, serializable=serializable)
                out.append((b"/etcdserverpb.KV/Range", msg.SerializeToString()))
            continue
        if surface == "cbor":
            payload: Any = (
                rpc.PutRequest(key, value)
                if op == "put"
                else rpc.RangeRequest(key, serializable=serializable)
            )
            out.append(protocol.encode_frame([[1, "put" if op == "put" else "range", payload]]))
            continue
        body: dict[str, Any] = {"key": base64.b64encode(key).decode()}
        if op == "put":
            path, body["value"] = "/v3/kv/put", base64.b64encode(value).decode()
        else:
            path = "/v3/kv/range"
            if serializable:
                body["serializable"] = True
        data = json.dumps(body).encode()
        out.append(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\nContent-Length: {len(data)}"
            f"\r\nContent-Type: application/json\r\n\r\n".encode()
            + data
        )
    return out


def _load(port: int, surface: str, reqs: list[Any], connections: int, duration: float, out: Any) -> None:
    """One request in flight per connection, answered -> the next one; counts answers and failures."""
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _CLIENTS[surface](sock, reqs, i, connections)
        sel.register(sock, selectors.EVENT_READ, conn)
        conns.append(conn)
    for conn in conns:
        conn.send_next()
    stop = time.monotonic() + duration
    while time.monotonic() < stop:
        for key, _ in sel.select(0.5):
            key.data.receive(key.fileobj.recv(65536))  # type: ignore[union-attr]
    out.put((sum(c.done for c in conns), sum(c.bad for c in conns)))


class _Http:
    """HTTP/1.1 keep-alive; a response is complete when its Content-Length is in."""

    def __init__(self, sock: socket.socket, reqs: list[bytes], i: int, step: int) -> None:
        self.sock, self.reqs, self.i, self.step = sock, reqs, i, step
        self.buf = bytearray()
        self.done = self.bad = 0

    def send_next(self) -> None:
        self.sock.sendall(self.reqs[self.i % len(self.reqs)])
        self.i += self.step

    def receive(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        if len(self.buf) < end + 4 + length:
            return
        self.done += 1
        self.bad += not head.startswith(b"http/1.1 200")
        del self.buf[:]
        self.send_next()


class _Grpc:
    """One h2 connection, one unary call at a time (a clientv3 connection under one caller)."""

    def __init__(self, sock: socket.socket, reqs: list[tuple[bytes, bytes]], i: int, step: int) -> None:
        import h2.config
        import h2.connection

        self.sock, self.reqs, self.i, self.step = sock, reqs, i, step
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        self.done = self.bad = 0
        self.status: bytes | None = None

    def send_next(self) -> None:
        path, body = self.reqs[self.i % len(self.reqs)]
        self.i += self.step
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"bench"),
             (b"content-type", b"application/grpc"), (b"te", b"trailers")],
        )  # fmt: skip
        self.conn.send_data(sid, b"\x00" + len(body).to_bytes(4, "big") + body, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())

    def receive(self, data: bytes) -> None:
        import h2.events

        ended = False
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived | h2.events.ResponseReceived):
                self.status = dict(ev.headers).get(b"grpc-status", self.status)
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
        pending = self.conn.data_to_send()
        if pending:
            self.sock.sendall(pending)
        if ended:
            self.done += 1
            self.bad += self.status != b"0"
            self.status = None
            self.send_next()


class _Cbor:
    """The CBOR WebSocket API: one request per frame, the next when its answer is in."""

    def __init__(self, sock: socket.socket, reqs: list[bytes], i: int, step: int) -> None:
        import wsproto
        import wsproto.events

        self.sock, self.reqs, self.i, self.step = sock, reqs, i, step
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.events = wsproto.events
        self.open = False
        self.done = self.bad = 0
        self.parts: list[bytes] = []
        sock.sendall(self.ws.send(wsproto.events.Request(host="127.0.0.1", target=protocol.WS_PATH)))

    def send_next(self) -> None:
        if self.open:
            self.sock.sendall(self.ws.send(self.events.BytesMessage(data=self.reqs[self.i % len(self.reqs)])))
            self.i += self.step

    def receive(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for ev in self.ws.events():
            if isinstance(ev, self.events.AcceptConnection):
                self.open = True
                self.send_next()
            elif isinstance(ev, self.events.BytesMessage):
                self.parts.append(bytes(ev.data))
                if ev.message_finished:
                    [[_id, status, _result]] = protocol.decode_frame(b"".join(self.parts))
                    self.parts = []
                    self.done += 1
                    self.bad += status != protocol.OK
                    self.send_next()


_CLIENTS: dict[str, Any] = {"gateway": _Http, "grpc": _Grpc, "cbor": _Cbor}


def _cpu() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trikv-surface-") as tmp:
        handlers, backend, proposer = _member(tmp)
        value = b"x" * args.value_size
        for lo in range(0, args.keys, 500):  # the keyspace, 500 puts per committed batch
            entries = []
            for k in range(lo, min(args.keys, lo + 500)):
                proposer.index += 1
                req = RaftRequest(
                    MEMBER_ID, proposer.ids.next(), "put", rpc.PutRequest(f"/bench/{k:08d}".encode(), value)
                )
                entries.append(Entry(TERM, proposer.index, EntryType.NORMAL, codec.encode(req)))
            await backend.apply(entries, lambda cc: None)  # type: ignore[arg-type,return-value]
            await backend.commit()
        server = ClientServer(handlers)
        server.metrics = handlers.metrics
        for path, route in gateway_routes(handlers).items():
            server.add_route(path, route)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            q: Any = mp.get_context("spawn").Queue()
            reqs = _requests(args.surface, args.op, args.keys, args.value_size, 4096)
            proc = mp.get_context("spawn").Process(
                target=_load, args=(port, args.surface, reqs, args.connections, args.duration, q)
            )
            proc.start()
            await trio.sleep(0.5)  # the load process starts; its first requests warm the path up
            c0, t0 = _cpu(), time.monotonic()
            got = await trio.to_thread.run_sync(q.get)
            c1, t1 = _cpu(), time.monotonic()
            await trio.to_thread.run_sync(proc.join)
            nursery.cancel_scope.cancel()
        done, bad = got
        measured = done * (t1 - t0) / (args.duration - 0.0)  # requests answered while CPU was measured
        backend.close()
    return {
        "surface": args.surface,
        "op": args.op,
        "connections": args.connections,
        "requests": done,
        "non_200": bad,
        "ops_per_s": round(done / args.duration),
        "cpu_us_per_op": round((c1[0] + c1[1] - c0[0] - c0[1]) / max(1.0, measured) * 1e6, 1),
        "system_us_per_op": round((c1[1] - c0[1]) / max(1.0, measured) * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--surface", choices=sorted(_CLIENTS), default="gateway")
    ap.add_argument("--op", choices=["range", "range-s", "put"], default="range-s")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = trio.run(_run, args)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['surface']} {result['op']}, {result['connections']} connections: {result['ops_per_s']} ops/s, "
            f"{result['cpu_us_per_op']} us server CPU per request ({result['system_us_per_op']} us system; "
            f"{result['requests']} requests, "
            f"{result['non_200']} not 200)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
