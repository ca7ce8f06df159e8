"""The command line: etcd benchmark's workloads and flags, the surface and target, side-by-side.

    python -m trikv.tools.benchmark put --clients 64 --conns 4 --total 20000 --surface grpc
    python -m trikv.tools.benchmark range --consistency s --clients 64 --key-space-size 1000 --val-size 256
    python -m trikv.tools.benchmark range mykey --target etcd --surface gateway
    python -m trikv.tools.benchmark watch --watchers 100 --rate 100 --total 10000
    python -m trikv.tools.benchmark lease-keepalive --clients 64 --leases 10000 --duration 10
    python -m trikv.tools.benchmark side-by-side --runs 3 --duration 6

Without --endpoints a fresh three-member cluster of --target is started on loopback ports in a temp
directory and stopped afterwards. Watch workloads: --total counts delivered events (puts = total /
watchers, written at --rate puts/s through a member other than the watchers').
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trikv.tools.benchmark import clusters, report, runner, sidebyside
from trikv.tools.benchmark.runner import run_spec
from trikv.tools.benchmark.spec import SURFACES, TARGETS, WATCH_WORKLOADS, WORKLOADS, Spec, UsageError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=1, help="concurrent clients (default 1)")
    p.add_argument("--conns", type=int, default=1, help="connections of a multiplexing surface (cbor, grpc)")
    p.add_argument("--total", type=int, default=10000, help="operations (watch: delivered events)")
    p.add_argument("--duration", type=float, default=0.0, help="run this many seconds instead of --total")
    p.add_argument("--key-size", type=int, default=8)
    p.add_argument("--val-size", type=int, default=8)
    p.add_argument("--sequential-keys", action="store_true")
    p.add_argument("--key-space-size", type=int, default=1)
    p.add_argument(
        "--rate", type=float, default=0.0, help="ops/s over all clients (watch: puts/s); 0: no limit"
    )
    p.add_argument("--surface", choices=SURFACES, default="grpc")
    p.add_argument("--target", choices=TARGETS, default="trikv")
    p.add_argument("--endpoints", default="", help="an existing cluster (host:port,...); default: start one")
    p.add_argument("--procs", type=int, default=0, help="load-generating processes (default min(4, clients))")
    p.add_argument("--json", type=Path, help="also write the result row(s) to this file")
    p.add_argument("--no-progress", action="store_true")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m trikv.tools.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for name in WORKLOADS:
        p = sub.add_parser(name)
        _common(p)
        if name == "range":
            p.add_argument("key", nargs="?", help="the key to read (default: random keys of the key space)")
        if name in ("range", "txn-mixed"):
            p.add_argument("--consistency", choices=("l", "s"), default="l")
        if name in ("txn-put", "txn-mixed"):
            p.add_argument("--txn-ops", type=int, default=1)
        if name == "txn-mixed":
            p.add_argument("--rw-ratio", type=float, default=1.0, help="reads per write")
        if name in WATCH_WORKLOADS:
            p.add_argument("--watchers", type=int, default=10)
        if name == "lease-keepalive":
            p.add_argument(
                "--leases", type=int, default=0, help="leases kept alive (default: one per client)"
            )
    sidebyside.add_parser(sub)
    return ap


def spec_from(args: argparse.Namespace) -> Spec:
    w = args.command
    if args.target == "etcd" and args.surface == "cbor":
        raise UsageError("etcd has no CBOR surface: use --surface gateway or grpc")
    for flag in ("clients", "conns", "total", "key_size", "key_space_size"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.val_size < 0 or args.rate < 0 or args.duration < 0:
        raise UsageError("--val-size, --rate and --duration must not be negative")
    watchers = getattr(args, "watchers", 10)
    rate = args.rate
    if w in WATCH_WORKLOADS:
        if watchers < 1:
            raise UsageError("--watchers must be at least 1")
        rate = rate or 100.0
        if args.duration <= 0 and args.total % watchers:
            raise UsageError(
                f"{w}: --total counts delivered events and must be a multiple of --watchers ({watchers})"
            )
    txn_ops = getattr(args, "txn_ops", 1)
    if txn_ops < 1 or (w == "txn-put" and txn_ops > args.key_space_size):
        raise UsageError(
            "--txn-ops must be at least 1 and at most --key-space-size (keys in a txn are distinct)"
        )
    key = getattr(args, "key", None)
    return Spec(
        workload=w,
        surface=args.surface,
        target=args.target,
        clients=args.clients,
        conns=args.conns,
        procs=args.procs if args.procs > 0 else min(4, watchers if w in WATCH_WORKLOADS else args.clients),
        total=args.total,
        duration=args.duration,
        key_size=args.key_size,
        val_size=args.val_size,
        sequential_keys=args.sequential_keys,
        key_space_size=args.key_space_size,
        rate=rate,
        range_key=key.encode() if key is not None else None,
        consistency=getattr(args, "consistency", "l"),
        txn_ops=txn_ops,
        rw_ratio=getattr(args, "rw_ratio", 1.0),
        watchers=watchers,
        leases=getattr(args, "leases", 0),
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "side-by-side":
            return sidebyside.main(args)
        spec = spec_from(args)
        row = run_spec(spec, args.endpoints, not args.no_progress)
        print(report.text(row))
        if args.json:
            report.write_json(args.json, [row])
        return 1 if row.errors else 0
    except (UsageError, runner.BenchError, clusters.ClusterError, OSError) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("benchmark: interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "parser", "run_spec", "spec_from"]
