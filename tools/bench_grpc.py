"""put/range through gRPC vs the JSON gateway, on the same three-member cluster: ops/s and server CPU per request.

    python tools/bench_grpc.py                          # 3 runs x 5 s of each row, 16 clients
    python tools/bench_grpc.py --clients 1 --runs 1 --duration 3

Both surfaces are driven by the same Trio load loop so only the wire differs: each client owns one
persistent connection (gRPC: h2 with one unary call at a time; JSON: HTTP/1.1 keep-alive through h11),
clients spread round-robin over the members, random keys out of 1,000 under /bench/ with 256-byte values
(range rows pre-write them). Server CPU per request = the members' utime+stime from /proc/<pid>/stat over
the run, divided by completed requests. Prints a Markdown table (medians of the runs).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h11
import trio

from trikv.actors.grpcpb import rpc_pb2
from trikv.tools.localcluster import Cluster

KEYS = [f"/bench/{i:04d}".encode() for i in range(1000)]
VALUE = b"v" * 256
TICK = os.sysconf("SC_CLK_TCK")


class GrpcConn:
    """One h2 connection doing one unary call at a time (what a clientv3 connection does per request)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()

    async def call(self, path: bytes, body: bytes) -> bytes:
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"bench"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        ]  # fmt: skip
        self.conn.send_headers(sid, headers)
        self.conn.send_data(sid, b"\x00" + len(body).to_bytes(4, "big") + body, end_stream=True)
        await self.stream.send_all(self.conn.data_to_send())
        data, status = bytearray(), None
        while True:
            for ev in self.conn.receive_data(await self.stream.receive_some(65536)):
                if isinstance(ev, h2.events.DataReceived):
                    data += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived | h2.events.ResponseReceived):
                    status = dict(ev.headers).get(b"grpc-status", status)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    out = self.conn.data_to_send()
                    if out:
                        await self.stream.send_all(out)
                    if status != b"0":
                        raise RuntimeError(f"grpc-status {status!r}")
                    return bytes(data[5:])
            out = self.conn.data_to_send()
            if out:
                await self.stream.send_all(out)


class JsonConn:
    """One HTTP/1.1 keep-alive connection to etcd's JSON gateway."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def call(self, path: bytes, body: bytes) -> bytes:
        headers = [
            ("host", "bench"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        out = self.conn.send(h11.Request(method="POST", target=path, headers=headers))
        out += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(out)
        data, code = bytearray(), 0
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(ev, h11.Response):
                code = ev.status_code
            elif isinstance(ev, h11.Data):
                data += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                self.conn.start_next_cycle()
                if code != 200:
                    raise RuntimeError(f"HTTP {code}: {bytes(data)!r}")
                return bytes(data)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def request(surface: str, op: str) -> tuple[bytes, bytes]:
    key = random.choice(KEYS)
    if surface == "grpc":
        if op == "put":
            return b"/etcdserverpb.KV/Put", rpc_pb2.PutRequest(key=key, value=VALUE).SerializeToString()
        return b"/etcdserverpb.KV/Range", rpc_pb2.RangeRequest(key=key).SerializeToString()
    if op == "put":
        return b"/v3/kv/put", json.dumps({"key": _b64(key), "value": _b64(VALUE)}).encode()
    return b"/v3/kv/range", json.dumps({"key": _b64(key)}).encode()


async def _connect(surface: str, endpoint: str) -> GrpcConn | JsonConn:
    host, port = endpoint.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    return GrpcConn(stream) if surface == "grpc" else JsonConn(stream)


async def load(surface: str, op: str, endpoints: list[str], clients: int, duration: float) -> int:
    done = 0

    async def client(i: int) -> None:
        nonlocal done
        conn = await _connect(surface, endpoints[i % len(endpoints)])
        with trio.move_on_at(deadline):
            while True:
                await conn.call(*request(surface, op))
                done += 1
        await conn.stream.aclose()

    deadline = trio.current_time() + duration
    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(client, i)
    return done


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICK


def run(cluster: Cluster, surface: str, op: str, clients: int, duration: float) -> dict[str, Any]:
    pids = [m.proc.pid for m in cluster.members if m.proc is not None]
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    n = trio.run(load, surface, op, cluster.endpoints, clients, duration)
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(pids) - cpu0
    return {"ops": n / elapsed, "cpu_us": cpu / max(n, 1) * 1e6}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        cluster = Cluster(Path(tmp), overrides={"log-level": "warn"})
        cluster.start()
        try:
            time.sleep(2.0)  # an election
            trio.run(_prewrite, cluster.endpoints)
            for op in ("put", "range"):
                for surface in ("json", "grpc"):
                    runs = [run(cluster, surface, op, args.clients, args.duration) for _ in range(args.runs)]
                    results[f"{op} {surface}"] = {
                        "ops": statistics.median(r["ops"] for r in runs),
                        "cpu_us": statistics.median(r["cpu_us"] for r in runs),
                    }
        finally:
            cluster.stop()
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"| op, surface ({args.clients} clients) | ops/s | server CPU per request (µs) |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['ops']:.0f} | {r['cpu_us']:.0f} |")
    for op in ("put", "range"):
        ratio = results[f"{op} grpc"]["cpu_us"] / results[f"{op} json"]["cpu_us"]
        print(f"\n{op}: gRPC costs {ratio:.2f}x the JSON gateway's server CPU per request")
    return 0


async def _prewrite(endpoints: list[str]) -> None:
    conn = await _connect("grpc", endpoints[0])
    for key in KEYS:
        await conn.call(b"/etcdserverpb.KV/Put", rpc_pb2.PutRequest(key=key, value=VALUE).SerializeToString())
    await conn.stream.aclose()


if __name__ == "__main__":
    raise SystemExit(main())
