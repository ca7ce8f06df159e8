"""Memory per member with N keys and restart time, trikv next to etcd (issue 16's memory target).

For each system: a fresh 3-member cluster on loopback (benchmark.clusters), N keys of --val-size loaded
with txns of --txn-ops puts from concurrent gRPC clients (benchmark.surfaces), then every member's VmRSS,
its page file / bbolt db and WAL on disk; then a follower is SIGKILLed and restarted with the same
config, and the time from the restart to its first answered linearizable range on its own client port
is taken (polled every 10 ms); the same again after a clean SIGTERM.

    python -m trikv.tools.bench_memory --keys 1000000 --systems trikv,etcd
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
import yaml

from trikv.actors.grpcpb import rpc_pb2
from trikv.tools.benchmark.clusters import ClusterError, cpu_seconds
from trikv.tools.benchmark.clusters import start as start_cluster
from trikv.tools.benchmark.grpcconn import GrpcConn, GrpcError
from trikv.tools.benchmark.surfaces import GrpcSession
from trikv.tools.localcluster import Cluster, Member

RESTART_TIMEOUT = 600.0
MB = 1 << 20
RETRY = (OSError, GrpcError, trio.TooSlowError)


def key(i: int) -> bytes:
    return b"key%09d" % i


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def pid(m: Member) -> int:
    assert m.proc is not None
    return m.proc.pid


async def load(endpoints: list[str], keys: int, val_size: int, txn_ops: int, clients: int) -> None:
    """Write keys 0..N-1 in txns of txn_ops puts: `clients` tasks over one gRPC connection per member."""
    value = (b"v" * val_size)[:val_size]
    batches = iter(range(0, keys, txn_ops))
    done = 0
    t0 = last = time.monotonic()
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
        sessions = []
        for ep in endpoints:
            conn = await GrpcConn.open(ep, nursery)
            stack.push_async_callback(conn.aclose)
            sessions.append(GrpcSession(conn))

        async def client(n: int) -> None:
            nonlocal done, last
            for start in batches:
                puts = [key(i) for i in range(start, min(keys, start + txn_ops))]
                await sessions[n % len(sessions)].txn(puts, value, None, False)
                done += len(puts)
                if time.monotonic() - last >= 10 or done == keys:
                    last = time.monotonic()
                    rate = done / max(1e-9, last - t0)
                    print(
                        f"  loaded {done:,}/{keys:,} keys ({rate:,.0f} keys/s)", file=sys.stderr, flush=True
                    )

        async with trio.open_nursery() as inner:
            for n in range(clients):
                inner.start_soon(client, n)
        nursery.cancel_scope.cancel()


async def _status(endpoint: str) -> tuple[int, int]:
    """(this member's id, the leader's id) from Maintenance.Status."""
    async with trio.open_nursery() as nursery:
        conn = await GrpcConn.open(endpoint, nursery)
        try:
            body = await conn.unary("/etcdserverpb.Maintenance/Status", b"")
        finally:
            await conn.aclose()
    resp = rpc_pb2.StatusResponse.FromString(body)
    return int(resp.header.member_id), int(resp.leader)


async def _read_once(endpoint: str, probe: bytes) -> None:
    async with trio.open_nursery() as nursery:
        conn = await GrpcConn.open(endpoint, nursery)
        try:
            with trio.fail_after(5):
                await GrpcSession(conn).range(probe, serializable=False)
        finally:
            await conn.aclose()
            nursery.cancel_scope.cancel()


async def first_read(endpoint: str, probe: bytes, poll: float = 0.01) -> None:
    """Return once a linearizable range on `endpoint` is answered (connection refused, errors: retry)."""
    with trio.fail_after(RESTART_TIMEOUT):
        while True:
            try:
                await _read_once(endpoint, probe)
                return
            except* RETRY:
                pass
            await trio.sleep(poll)


def restart(m: Member, how: str, probe: bytes) -> float:
    """Stop `m` (SIGKILL or SIGTERM), start it with the same config; seconds to its first linearizable read."""
    if how == "SIGKILL":
        m.kill()
    else:
        m.terminate(timeout=120)
    t0 = time.monotonic()
    m.start()
    trio.run(first_read, m.endpoint, probe)
    return time.monotonic() - t0


def measure(system: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    print(f"{system}: starting 3 members in {workdir}", file=sys.stderr, flush=True)
    cluster = start_cluster(system, workdir)
    try:
        return _measure(cluster, args)
    finally:
        cluster.stop()


def _measure(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    pids = [pid(m) for m in cluster]
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    trio.run(load, cluster.endpoints, args.keys, args.val_size, args.txn_ops, args.clients)
    load_s, load_cpu = time.monotonic() - t0, cpu_seconds(pids) - cpu0
    probe = key(args.keys - 1)
    for m in cluster:  # every member has applied the load (ReadIndex: applied >= the leader's commit)
        trio.run(first_read, m.endpoint, probe)
    time.sleep(args.settle)  # the last batch commit reaches the db file
    out: dict[str, Any] = {
        "load_s": load_s,
        "load_cpu_s": load_cpu,
        "rss_mb": [rss_bytes(p) / MB for p in pids],
        "db_mb": [],
        "wal_mb": [],
    }
    for m in cluster:
        cfg = yaml.safe_load(m.config_path.read_text())
        out["db_mb"].append(dir_bytes(Path(cfg["data-dir"]) / "member" / "snap") / MB)
        out["wal_mb"].append(dir_bytes(Path(cfg["wal-dir"])) / MB)
    ids = [trio.run(_status, m.endpoint) for m in cluster]
    follower = next(m for m, (own, leader) in zip(cluster, ids, strict=True) if own != leader)
    for how in ("SIGKILL", "SIGTERM"):
        print(f"  {how} + restart of follower {follower.name}", file=sys.stderr, flush=True)
        out[f"restart_{how.lower()}_s"] = restart(follower, how, probe)
        out[f"rss_restarted_{how.lower()}_mb"] = rss_bytes(pid(follower)) / MB
    return out


ROWS = [
    ("load time (s)", lambda r: r["load_s"]),
    ("server CPU to load, 3 members (s)", lambda r: r["load_cpu_s"]),
    ("RSS per member after load, max (MB)", lambda r: max(r["rss_mb"])),
    ("RSS per member after load, min (MB)", lambda r: min(r["rss_mb"])),
    ("db / page file on disk, max (MB)", lambda r: max(r["db_mb"])),
    ("WAL on disk, max (MB)", lambda r: max(r["wal_mb"])),
    ("SIGKILL restart to first linearizable read (s)", lambda r: r["restart_sigkill_s"]),
    ("RSS of the follower after that restart (MB)", lambda r: r["rss_restarted_sigkill_mb"]),
    ("SIGTERM restart to first linearizable read (s)", lambda r: r["restart_sigterm_s"]),
    ("RSS of the follower after that restart (MB)", lambda r: r["rss_restarted_sigterm_mb"]),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    systems = list(results)
    ratio = systems[:2] == ["trikv", "etcd"]
    head = ["measure", *systems, *(["ratio"] if ratio else [])]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label, get in ROWS:
        vals = [get(results[s]) for s in systems]
        cells = [label, *(f"{v:,.1f}" if v >= 10 else f"{v:.2f}" for v in vals)]
        if ratio:
            cells.append(f"{vals[0] / vals[1]:.2f}x" if vals[1] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="RSS per member with N keys and restart time, trikv next to etcd."
    )
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--txn-ops", type=int, default=128)
    ap.add_argument("--clients", type=int, default=8, help="concurrent loading clients (default 8)")
    ap.add_argument("--systems", default="trikv,etcd", help="comma-separated: trikv, etcd")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between loading and measuring")
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    args = ap.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in ("trikv", "etcd")]
    if bad or not systems:
        ap.error(f"--systems: unknown system {bad[0] if bad else '(none)'!r} (trikv, etcd)")
    if args.keys < 1 or args.val_size < 0 or args.txn_ops < 1 or args.clients < 1:
        ap.error("--keys, --txn-ops and --clients must be positive, --val-size not negative")
    results = {}
    for system in systems:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-memory-{system}-"))
        try:
            results[system] = measure(system, args, workdir)
        except Exception as exc:
            while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            if not isinstance(exc, (ClusterError, RuntimeError, *RETRY)):
                raise
            print(f"bench_memory: {system}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
