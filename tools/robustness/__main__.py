"""`python -m trikv.tools.robustness --seeds 0-199 --duration 10 --members 3 [--nemesis kill,pause,...]
[--plant NAME] [--out DIR] [--jobs N] [--report FILE]`: seeded fault runs against real clusters, checked.

Each seed is one run (runner.run): a fresh cluster, the workload and that seed's fault schedule, then the
checkers. A failing run prints its seed and leaves its history (JSONL), the minimal violating
sub-histories and the members' logs under --out/seed-N. The summary (runs, operations, faults by kind,
violations, acknowledged writes lost, watch and lease violations) is printed as a table and, with
--report, written as JSON. Exit status 1 when any run failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shlex
import subprocess
import sys
from pathlib import Path

from trikv.storage.faults import PLANTS
from trikv.tools.localcluster import ROOT
from trikv.tools.robustness import report
from trikv.tools.robustness.nemesis import DEFAULT_NEMESES, NEMESES
from trikv.tools.robustness.runner import RunConfig, RunResult, run


def parse_seeds(text: str) -> list[int]:
    """ "0-199", "7", "1,5,9-12" -> the seeds, in order."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad seed range {part!r} (use N, N-M or a comma list)")
        seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return seeds


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip()
    except OSError:
        return ""


def line(r: RunResult) -> str:
    faults = ",".join(f"{k}:{v}" for k, v in sorted(r.faults.items())) or "-"
    head = f"seed {r.seed}: {'ok' if r.ok else 'FAILED'} ({r.ops} ops, faults {faults}, {r.elapsed:.1f}s)"
    if r.ok:
        return head + (f" [kept: {r.saved}]" if r.saved else "")
    detail = "\n".join(f"    {v}" for v in r.violations[:10])
    saved = f"\n    history and logs: {r.saved}" if r.saved else ""
    return f"{head}\n{detail}{saved}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m trikv.tools.robustness", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--seeds", default="0-19", help="seeds: N, N-M or a comma list (default 0-19)")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of workload and faults per run")
    ap.add_argument("--members", type=int, default=3, choices=(3, 5))
    ap.add_argument(
        "--nemesis", default=",".join(DEFAULT_NEMESES), help=f"comma list of {', '.join(NEMESES)}"
    )
    ap.add_argument("--plant", choices=PLANTS, help="switch a planted bug on (the checkers must catch it)")
    ap.add_argument("--out", type=Path, default=Path("robustness-out"), help="where failing runs are saved")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (each is a cluster of processes)")
    ap.add_argument("--report", type=Path, help="write the summary as JSON here")
    ap.add_argument(
        "--snapshot-count",
        type=int,
        default=RunConfig.__attrs_attrs__.snapshot_count.default,
        help="the members' snapshot-count (low: lagging followers install snapshots while faults run)",
    )
    ap.add_argument("--keep", action="store_true", help="keep every run's directory (history, logs, data)")
    ap.add_argument("--check-budget", type=float, default=60.0, help="seconds the checkers may take per run")
    args = ap.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        ap.error(str(exc))
    nemeses = tuple(n for n in args.nemesis.split(",") if n)
    unknown = sorted(set(nemeses) - set(NEMESES))
    if unknown:
        ap.error(f"unknown nemesis {', '.join(unknown)} (choose from {', '.join(NEMESES)})")
    if args.duration <= 0 or args.jobs < 1 or args.snapshot_count < 1:
        ap.error("--duration must be > 0, --jobs >= 1 and --snapshot-count >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    configs = [
        RunConfig(
            seed=s,
            duration=args.duration,
            members=args.members,
            nemeses=nemeses,
            plant=args.plant,
            out=args.out,
            check_budget=args.check_budget,
            snapshot_count=args.snapshot_count,
            keep=args.keep,
        )
        for s in seeds
    ]
    results: list[RunResult] = []
    if args.jobs == 1:
        for cfg in configs:
            results.append(run(cfg))
            print(line(results[-1]), flush=True)
    else:
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
            for r in pool.map(run, configs):
                results.append(r)
                print(line(r), flush=True)
    command = "python -m trikv.tools.robustness " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    summary = report.summarize(results, command=command, commit=commit())
    print()
    print(report.table(summary))
    if args.report is not None:
        report.write(summary, args.report)
    return 0 if summary["passed"] == summary["runs"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
