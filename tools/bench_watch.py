"""Watch benchmark: trikv next to etcd, both measured the same way through the v3 JSON gateway.

    python tools/bench_watch.py                                  # both workloads and the idle memory, both systems
    python tools/bench_watch.py --systems trikv --duration 5 --idle 20000

Each system runs as three members on free loopback ports (tools/side_by_side.py's clusters). Receivers run
in separate processes, each holding its share of the watchers as `POST /v3/watch` streams on one member
(one HTTP connection per watcher, one prefix); one writer process puts to that prefix at a fixed rate through
the gateway of another member and records when each put was acknowledged. Reported: whether every
watcher got every acknowledged put, and the p50/p99 of acknowledged-to-event latency (receiver clock minus
writer clock, one machine). Idle memory: N watchers created over a few streams (many create requests per
body) on one member, its RSS before and after divided by N.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h11
import trio

PREFIX = b"/watchbench/"


# --------------------------------------------------------------------------- a tiny HTTP/1.1 client


async def _post_stream(
    host: str, port: int, path: str, body: bytes
) -> tuple[trio.SocketStream, h11.Connection]:
    stream = await trio.open_tcp_stream(host, port)
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("host", f"{host}:{port}"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    data = conn.send(h11.Request(method="POST", target=path, headers=headers)) or b""
    data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
    return stream, conn


async def _lines(stream: trio.SocketStream, conn: h11.Connection) -> Any:
    buf = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                return
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Data):
            buf += event.data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield line
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


CREATE = json.dumps(
    {"create_request": {"key": _b64(PREFIX), "range_end": _b64(_prefix_end(PREFIX))}}
).encode()


# --------------------------------------------------------------------------- receivers (separate processes)


def _receiver(endpoint: str, n: int, stop: Any, out_path: str, ready: Any) -> None:
    host, port = endpoint.rsplit(":", 1)
    counts = [0] * n
    revs: list[int] = []
    times: list[float] = []

    async def one(i: int, started: trio.Event) -> None:
        stream, conn = await _post_stream(host, int(port), "/v3/watch", CREATE)
        async for line in _lines(stream, conn):
            result = json.loads(line).get("result", {})
            if result.get("created"):
                started.set()
                continue
            now = time.time()
            for ev in result.get("events", ()):
                counts[i] += 1
                revs.append(int(ev["kv"]["mod_revision"]))
                times.append(now)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(n):
                started = trio.Event()
                nursery.start_soon(one, i, started)
                await started.wait()
            ready.set()
            await trio.to_thread.run_sync(stop.wait)
            nursery.cancel_scope.cancel()

    trio.run(main)
    Path(out_path).write_text(json.dumps({"counts": counts, "revs": revs, "times": times}))


# --------------------------------------------------------------------------- the writer


def _writer(endpoint: str, rate: float, seconds: float, out_path: str) -> None:
    host, port = endpoint.rsplit(":", 1)
    acks: dict[int, float] = {}
    errors_seen: list[str] = []

    async def client(k: int, n_clients: int, start: float) -> None:
        stream = await trio.open_tcp_stream(host, int(port))
        conn = h11.Connection(h11.CLIENT)
        i = k
        while True:
            at = start + i / rate
            if at - start >= seconds:
                return
            await trio.sleep_until(at)
            body = json.dumps({"key": _b64(PREFIX + b"k%d" % (i % 100)), "value": _b64(b"v" * 64)}).encode()
            headers = [
                ("host", endpoint),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ]
            data = conn.send(h11.Request(method="POST", target="/v3/kv/put", headers=headers)) or b""
            data += (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            await stream.send_all(data)
            resp = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Data):
                    resp += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            answer = json.loads(resp)
            if "header" in answer:  # an error answer (e.g. too many requests) acknowledges nothing
                acks[int(answer["header"]["revision"])] = time.time()
            else:
                errors_seen.append(answer.get("message", ""))
            conn.start_next_cycle()
            i += n_clients

    async def main() -> None:
        start = trio.current_time() + 0.1
        n_clients = max(1, int(rate // 100))
        async with trio.open_nursery() as nursery:
            for k in range(n_clients):
                nursery.start_soon(client, k, n_clients, start)

    trio.run(main)
    if errors_seen:
        print(f"writer: {len(errors_seen)} puts refused, e.g. {errors_seen[0]!r}", file=sys.stderr)
    Path(out_path).write_text(json.dumps({str(k): v for k, v in acks.items()}))


# --------------------------------------------------------------------------- one measurement


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def run_delivery(eps: list[str], watchers: int, rate: float, seconds: float, procs: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="bench_watch_"))
    per = [watchers // procs + (1 if i < watchers % procs else 0) for i in range(procs)]
    readies = [ctx.Event() for _ in per]
    stop = ctx.Event()
    rx = [
        ctx.Process(target=_receiver, args=(eps[0], n, stop, str(tmp / f"r{i}.json"), readies[i]))
        for i, n in enumerate(per)
    ]
    for p in rx:
        p.start()
    for ev in readies:
        if not ev.wait(120):
            raise RuntimeError("receivers did not start")
    w = ctx.Process(target=_writer, args=(eps[1], rate, seconds, str(tmp / "w.json")))
    w.start()
    w.join()
    acks = {int(k): v for k, v in json.loads((tmp / "w.json").read_text()).items()}
    time.sleep(3.0)  # the last events reach every receiver
    stop.set()
    for p in rx:
        p.join(120)
    lat: list[float] = []
    delivered = 0
    for i in range(procs):
        path = tmp / f"r{i}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        delivered += sum(1 for c in data["counts"] if c >= len(acks))
        lat += [t - acks[r] for r, t in zip(data["revs"], data["times"], strict=True) if r in acks]
    lat.sort()
    return {
        "watchers": watchers,
        "puts": len(acks),
        "watchers_with_every_event": delivered,
        "p50_ms": round(_pct(lat, 0.5) * 1000, 2),
        "p99_ms": round(_pct(lat, 0.99) * 1000, 2),
    }


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_idle(eps: list[str], pid: int, watchers: int, conns: int = 10) -> dict[str, Any]:
    host, port = eps[0].rsplit(":", 1)
    per = watchers // conns
    body = b"".join([CREATE] * per)
    before = _rss(pid)
    created = 0

    async def one(done: trio.Event, held: list[Any]) -> None:
        nonlocal created
        stream, conn = await _post_stream(host, int(port), "/v3/watch", body)
        held.append(stream)
        n = 0
        async for line in _lines(stream, conn):
            if b'"created":true' in line:
                n += 1
                created += 1
                if n == per:
                    done.set()

    async def main() -> int:
        held: list[Any] = []
        async with trio.open_nursery() as nursery:
            for _ in range(conns):
                done = trio.Event()
                nursery.start_soon(one, done, held)
                with trio.move_on_after(30):
                    await done.wait()
            await trio.sleep(2.0)
            after = _rss(pid)
            nursery.cancel_scope.cancel()
        return after

    after = trio.run(main)
    return {
        "watchers": created,
        "rss_before_mb": round(before / 2**20, 1),
        "bytes_per_watcher": round((after - before) / max(created, 1)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="trikv,etcd")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--idle", type=int, default=100_000)
    ap.add_argument("--workloads", default="1000x100,100x1000", help="WATCHERSxPUTS_PER_S, comma separated")
    args = ap.parse_args(argv)
    from trikv.tools.side_by_side import _cluster

    rows = []
    for system in args.systems.split(","):
        for spec in [w for w in args.workloads.split(",") if w] + ["idle"]:
            with tempfile.TemporaryDirectory(prefix=f"bench_watch_{system}_") as d:
                c = _cluster(system, Path(d))
                c.start()
                try:
                    time.sleep(2.0)
                    if spec == "idle":
                        proc = c.members[0].proc
                        assert proc is not None
                        res = run_idle(c.endpoints, proc.pid, args.idle)
                    else:
                        watchers, rate = (int(x) for x in spec.split("x"))
                        res = run_delivery(c.endpoints, watchers, rate, args.duration, args.procs)
                finally:
                    c.stop()
            res = {"system": system, "workload": spec, **res}
            rows.append(res)
            print(json.dumps(res), flush=True)
    print(json.dumps(rows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
