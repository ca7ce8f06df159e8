"""trikv next to etcd, measured the same way: the reference's etcd_load.py through the v3 JSON gateway.

    python tools/side_by_side.py                      # both systems, 3 runs x 10 s of each workload
    python tools/side_by_side.py --systems trikv --runs 1 --duration 5

Each system runs as three members on free loopback ports in a temp dir: trikv from configs/node0..2.yaml,
etcd (the Debian `etcd-server` package, a yardstick only, never a dependency) from
../shared/reference/etcd-configs/etcdnode0..2.yml, both rewritten by tools/localcluster.py. Every
workload gets a fresh cluster (like the reference's numbers: 1,000 keys under /bench/, 256-byte values;
range workloads pre-write them). Prints a Markdown table: median ops/s and the median run's p50/p99.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trikv.tools.localcluster import CONFIGS, ROOT, Cluster

REFERENCE = ROOT.parent / "shared" / "reference"
WORKLOADS = [
    ("put, 1 client", ["--op", "put", "--procs", "1", "--clients", "1"]),
    ("put, 64 clients", ["--op", "put", "--procs", "4", "--clients", "64"]),
    ("linearizable range, 64 clients", ["--op", "range", "--procs", "4", "--clients", "64"]),
    ("serializable range, 64 clients", ["--op", "range-serializable", "--procs", "4", "--clients", "64"]),
]


def _cluster(system: str, workdir: Path) -> Cluster:
    if system == "etcd":
        files = [REFERENCE / "etcd-configs" / f"etcdnode{i}.yml" for i in range(3)]
        return Cluster(workdir, config_files=files, command=("etcd",), overrides={"log-level": "warn"})
    return Cluster(workdir, config_files=[CONFIGS / f"node{i}.yaml" for i in range(3)])


def _run_load(endpoints: list[str], args: list[str], duration: float) -> dict[str, Any]:
    res = subprocess.run(
        [
            sys.executable,
            str(REFERENCE / "etcd_load.py"),
            "--endpoints",
            ",".join(endpoints),
            *args,
            "--duration",
            str(duration),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 300,
    )
    if res.returncode != 0:
        raise RuntimeError(f"etcd_load.py failed: {res.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def measure(system: str, runs: int, duration: float) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, args in WORKLOADS:
        out[name] = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix=f"sbs-{system}-") as tmp:
                cluster = _cluster(system, Path(tmp))
                cluster.start()
                try:
                    time.sleep(3.0)  # first election and publish
                    out[name].append(_run_load(cluster.endpoints, args, duration))
                finally:
                    cluster.stop()
            print(f"{system:5s} {name}: {out[name][-1]}", file=sys.stderr, flush=True)
    return out


def _summary(rows: list[dict[str, Any]]) -> str:
    ops = [r["ops_per_s"] for r in rows]
    med = sorted(rows, key=lambda r: r["ops_per_s"])[len(rows) // 2]
    runs = ", ".join(f"{o:,.0f}" for o in ops)
    return f"{statistics.median(ops):,.0f} ({runs}) | {med['p50_ms']:.2f} / {med['p99_ms']:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="trikv,etcd")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    if not (REFERENCE / "etcd_load.py").exists():
        print(f"side_by_side: {REFERENCE / 'etcd_load.py'} not found", file=sys.stderr)
        return 1
    if "etcd" in systems and shutil.which("etcd") is None:
        print(
            "side_by_side: no etcd binary (apt-get install etcd-server); measuring trikv only",
            file=sys.stderr,
        )
        systems.remove("etcd")
    results = {s: measure(s, args.runs, args.duration) for s in systems}
    head = " | ".join(f"{s} ops/s median (runs) | {s} p50 / p99 ms" for s in systems)
    print(f"| workload | {head} |")
    print("|---" * (1 + 2 * len(systems)) + "|")
    for name, _ in WORKLOADS:
        print(f"| {name} | " + " | ".join(_summary(results[s][name]) for s in systems) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
