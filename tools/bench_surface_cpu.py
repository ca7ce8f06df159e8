"""Server CPU per request of one member's client surfaces, in process and without Raft.

    python -m trikv.tools.bench_surface_cpu                  # JSON gateway ranges, 16 connections, 4 s
    python -m trikv.tools.bench_surface_cpu --op put --connections 1

One member's request path as the member wires it (ClientServer + the gateway routes + Handlers + KVApi +
Backend over a page file of --keys keys in a temp dir, with the member's metrics), served on 127.0.0.1 by
this process; a load process keeps --connections HTTP/1.1 keep-alive connections busy with pre-built
etcd_load.py-shaped requests (one in flight per connection). What is reported is this process's CPU
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
from trikv.api import codec
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


def _requests(op: str, keys: int, value_size: int, n: int) -> list[bytes]:
    """etcd_load.py's requests, as http.client writes them."""
    rnd = random.Random(1)
    value = base64.b64encode(b"x" * value_size).decode()
    out = []
    for _ in range(n):
        key = base64.b64encode(f"/bench/{rnd.randrange(keys):08d}".encode()).decode()
        body: dict[str, Any] = {"key": key}
        if op == "put":
            path, body["value"] = "/v3/kv/put", value
        else:
            path = "/v3/kv/range"
            if op == "range-s":
                body["serializable"] = True
        data = json.dumps(body).encode()
        out.append(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\nContent-Length: {len(data)}"
            f"\r\nContent-Type: application/json\r\n\r\n".encode()
            + data
        )
    return out


def _load(port: int, reqs: list[bytes], connections: int, duration: float, out: Any) -> None:
    """One request in flight per connection; a response is complete when its Content-Length is in."""
    sel = selectors.DefaultSelector()
    state: dict[Any, list[Any]] = {}
    for i in range(connections):
        c = socket.create_connection(("127.0.0.1", port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state[c] = [bytearray(), i]
        sel.register(c, selectors.EVENT_READ)
        c.sendall(reqs[i % len(reqs)])
    done, bad, stop = 0, 0, time.monotonic() + duration
    while time.monotonic() < stop:
        for key, _ in sel.select(0.5):
            s: Any = key.fileobj
            buf, i = state[s]
            buf += s.recv(65536)
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = bytes(buf[:head_end]).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(buf) < head_end + 4 + length:
                continue
            done += 1
            bad += not head.startswith(b"http/1.1 200")
            del buf[:]
            state[s][1] = i = i + connections
            s.sendall(reqs[i % len(reqs)])
    out.put((done, bad))


def _cpu() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trikv-surface-") as tmp:
        handlers, backend, proposer = _member(tmp)
        value = b"x" * args.value_size
        from trikv.api import rpc

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
            reqs = _requests(args.op, args.keys, args.value_size, 4096)
            proc = mp.get_context("spawn").Process(
                target=_load, args=(port, reqs, args.connections, args.duration, q)
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
        "surface": "gateway",
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
