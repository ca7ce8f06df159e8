"""Cluster benchmark through the public Trio client (trikv.connect), shaped like etcd's `benchmark` tool.

    python tools/bench.py put --clients 64                    # starts a 3-member cluster on loopback
    python tools/bench.py range --clients 64 --consistency s
    python tools/bench.py put --clients 1 --endpoints 127.0.0.1:2379,127.0.0.1:12379,127.0.0.1:22379

Without --endpoints it starts configs/node0..2.yaml rewritten to free loopback ports and a temp dir, and
stops them afterwards. Each client is a task with its own connection; clients are spread over the
endpoints round-robin and over --procs worker processes (the client is CPU-bound Python too). Keys are
random among --keyspace keys under /bench/, values --value-size bytes (etcd_load.py's workload).
Prints ops/s and latency percentiles; --json for one JSON object. Bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]


def _worker(args: dict[str, Any], endpoints: list[str], n_clients: int, first: int, out: Any) -> None:
    import trikv

    latencies: list[float] = []
    errors = 0

    async def client(i: int, stop_at: float) -> None:
        nonlocal errors
        rnd = random.Random(first + i)
        ep = endpoints[(first + i) % len(endpoints)]
        value = b"v" * args["value_size"]
        async with trikv.connect([ep], dial_timeout=5) as c:
            while time.monotonic() < stop_at:
                key = f"/bench/{rnd.randrange(args['keyspace']):08d}"
                t0 = time.perf_counter()
                try:
                    if args["op"] == "put":
                        await c.put(key, value)
                    else:
                        await c.get(key, serializable=args["consistency"] == "s")
                except trikv.errors.TrikvError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

    async def run() -> None:
        stop_at = time.monotonic() + args["duration"]
        async with trio.open_nursery() as nursery:
            for i in range(n_clients):
                nursery.start_soon(client, i, stop_at)

    trio.run(run)
    out.put((latencies, errors))


async def _populate(endpoints: list[str], keyspace: int, value_size: int) -> None:
    import trikv

    async with trikv.connect(endpoints) as c:

        async def fill(lo: int) -> None:
            for k in range(lo, keyspace, 32):
                await c.put(f"/bench/{k:08d}", b"v" * value_size)

        async with trio.open_nursery() as nursery:
            for lo in range(32):
                nursery.start_soon(fill, lo)


def _pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return 0.0
    return sorted_vals[min(len(sorted_vals) - 1, int(p / 100 * len(sorted_vals)))] * 1000


def run_bench(args: argparse.Namespace, endpoints: list[str]) -> dict[str, Any]:
    if args.op == "range":
        trio.run(_populate, endpoints, args.keyspace, args.value_size)
    params = {
        "op": args.op,
        "value_size": args.value_size,
        "keyspace": args.keyspace,
        "duration": args.duration,
        "consistency": args.consistency,
    }
    procs = max(1, min(args.procs, args.clients))
    q: Any = mp.Queue()
    workers = []
    per = [args.clients // procs + (1 if i < args.clients % procs else 0) for i in range(procs)]
    first = 0
    start = time.monotonic()
    for n in per:
        p = mp.Process(target=_worker, args=(params, endpoints, n, first, q))
        p.start()
        workers.append(p)
        first += n
    lat: list[float] = []
    errors = 0
    for _ in workers:
        got, err = q.get(timeout=args.duration + 120)
        lat.extend(got)
        errors += err
    for p in workers:
        p.join()
    elapsed = max(args.duration, time.monotonic() - start - 0.0)
    lat.sort()
    return {
        "op": args.op + ("" if args.op == "put" else f"-{args.consistency}"),
        "clients": args.clients,
        "procs": procs,
        "duration_s": args.duration,
        "ops": len(lat),
        "errors": errors,
        "ops_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(_pct(lat, 50), 3),
        "p90_ms": round(_pct(lat, 90), 3),
        "p99_ms": round(_pct(lat, 99), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("op", choices=["put", "range"])
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument(
        "--procs", type=int, default=0, help="worker processes (default: 1, or 4 for >= 16 clients)"
    )
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--consistency", choices=["l", "s"], default="l")
    ap.add_argument("--keyspace", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=256)
    ap.add_argument("--endpoints", default="")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.procs <= 0:
        args.procs = 4 if args.clients >= 16 else 1
    if args.endpoints:
        result = run_bench(args, args.endpoints.split(","))
    else:
        from trikv.tools.localcluster import Cluster

        with tempfile.TemporaryDirectory(prefix="trikv-bench-") as tmp:
            cluster = Cluster(Path(tmp))
            cluster.start()
            try:
                time.sleep(2.5)  # first election
                result = run_bench(args, cluster.endpoints)
            finally:
                cluster.stop()
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['op']}: {result['clients']} clients / {result['procs']} procs, {result['duration_s']:.0f} s: "
            f"{result['ops_per_s']:.0f} ops/s, p50 {result['p50_ms']:.2f} ms, p90 {result['p90_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms, {result['errors']} errors"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
