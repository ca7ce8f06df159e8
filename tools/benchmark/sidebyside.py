"""`side-by-side`: every workload on fresh trikv and etcd clusters, interleaved, as one Markdown table.

Each run of each workload starts a fresh three-member cluster of each target (the order of the two
alternates per run, so drift on a shared machine falls on both), runs --duration seconds, stops it. The
table shows the median run by ops/s for each target, the ratio trikv / etcd of the medians, that run's
latencies, server CPU per op and generator CPU share.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import attrs

from trikv.tools.benchmark import report
from trikv.tools.benchmark.runner import run_spec
from trikv.tools.benchmark.spec import Spec, UsageError

KV = {"key_space_size": 1000, "val_size": 256}
WORKLOADS: dict[str, dict[str, Any]] = {
    "put-1": {"workload": "put", "clients": 1, **KV},
    "put-64": {"workload": "put", "clients": 64, "conns": 4, **KV},
    "range-l-64": {"workload": "range", "clients": 64, "conns": 4, "consistency": "l", **KV},
    "range-s-64": {"workload": "range", "clients": 64, "conns": 4, "consistency": "s", **KV},
    "txn-put-16": {"workload": "txn-put", "clients": 16, "conns": 4, **KV},
    "txn-mixed-16": {"workload": "txn-mixed", "clients": 16, "conns": 4, **KV},
    "watch-100x100": {"workload": "watch", "watchers": 100, "rate": 100.0, "conns": 4, "val_size": 64},
    "watch-latency-10": {
        "workload": "watch-latency",
        "watchers": 10,
        "rate": 100.0,
        "conns": 2,
        "val_size": 64,
    },
    "lease-keepalive-64": {"workload": "lease-keepalive", "clients": 64, "conns": 4, "leases": 1000},
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("side-by-side", help="trikv next to etcd for every workload (Markdown table)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0, help="seconds per workload run")
    p.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma separated, of: {', '.join(WORKLOADS)}"
    )
    p.add_argument("--surface", choices=("gateway", "grpc"), default="gateway")
    p.add_argument("--targets", default="trikv,etcd")
    p.add_argument("--procs", type=int, default=0, help="load processes (default min(4, clients))")
    p.add_argument("--json", type=argparse.FileType("w"), help="also write every row (every run) as JSON")
    p.add_argument("--no-progress", action="store_true")


def specs(args: argparse.Namespace) -> dict[str, dict[str, Spec]]:
    names = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        raise UsageError(f"unknown workload {unknown[0]!r}; known: {', '.join(WORKLOADS)}")
    targets = [t for t in args.targets.split(",") if t]
    if not targets or any(t not in ("trikv", "etcd") for t in targets):
        raise UsageError("--targets takes trikv and/or etcd")
    if args.runs < 1 or args.duration <= 0:
        raise UsageError("--runs must be at least 1 and --duration positive")
    out: dict[str, dict[str, Spec]] = {}
    for name in names:
        kw = WORKLOADS[name]
        base = Spec(surface=args.surface, duration=args.duration, **kw)
        procs = args.procs or min(4, base.watchers if base.workload.startswith("watch") else base.clients)
        out[name] = {t: attrs.evolve(base, target=t, procs=procs) for t in targets}
    return out


def main(args: argparse.Namespace) -> int:
    table = specs(args)
    targets = list(next(iter(table.values())))
    rows: dict[str, dict[str, list[report.Row]]] = {n: {t: [] for t in targets} for n in table}
    for run in range(args.runs):
        for name, by_target in table.items():
            order = targets if run % 2 == 0 else targets[::-1]
            for target in order:
                row = run_spec(by_target[target], progress=not args.no_progress)
                rows[name][target].append(row)
                print(
                    f"run {run + 1}/{args.runs} {name} {target}: {row.ops_per_s:,.0f} ops/s, p99 {row.p99_ms:.1f} ms, "
                    f"{row.errors} errors",
                    file=sys.stderr,
                    flush=True,
                )
    print(markdown(rows, targets, args))
    if args.json:
        import json

        json.dump(
            {n: {t: [r.as_dict() for r in rs] for t, rs in bt.items()} for n, bt in rows.items()},
            args.json,
            indent=1,
        )
    return 0


def _median(rows: list[report.Row]) -> report.Row:
    return sorted(rows, key=lambda r: r.ops_per_s)[len(rows) // 2]


def _cpu(r: report.Row) -> str:
    return "-" if r.server_cpu_us_per_op is None else f"{r.server_cpu_us_per_op:,.0f}"


def _share(r: report.Row) -> str:
    return "-" if r.generator_share is None else f"{r.generator_share:.0%}"


def markdown(
    rows: dict[str, dict[str, list[report.Row]]], targets: list[str], args: argparse.Namespace
) -> str:
    head = ["workload"]
    head += [f"{t} ops/s" for t in targets]
    if targets == ["trikv", "etcd"]:
        head.append("ratio")
    head += [f"{t} p50 / p99 ms" for t in targets]
    head += [f"{t} server CPU µs/op" for t in targets]
    head += [f"{t} gen. share" for t in targets]
    head += [f"{t} errors" for t in targets]
    lines = [
        f"Surface {args.surface}, {args.runs} run(s) x {args.duration:g} s per workload and target, "
        "median run by ops/s:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, by_target in rows.items():
        med = {t: _median(by_target[t]) for t in targets}
        ops = {t: statistics.median(r.ops_per_s for r in by_target[t]) for t in targets}
        cells = [name]
        cells += [f"{ops[t]:,.0f}" for t in targets]
        if targets == ["trikv", "etcd"]:
            cells.append(f"{ops['trikv'] / ops['etcd']:.2f}" if ops["etcd"] else "-")
        cells += [f"{med[t].p50_ms:.2f} / {med[t].p99_ms:.2f}" for t in targets]
        cells += [_cpu(med[t]) for t in targets]
        cells += [_share(med[t]) for t in targets]
        cells += [str(sum(r.errors for r in by_target[t])) for t in targets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
