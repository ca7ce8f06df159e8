"""trikv next to etcd, measured the same way: the reference's etcd_load.py through the v3 JSON gateway.

    python tools/side_by_side.py                      # both systems, 3 runs x 10 s of each workload
    python tools/side_by_side.py --systems trikv --runs 1 --duration 5
    python -m trikv.tools.side_by_side --runs 3 --duration 6 --workloads put1,put64

Each system runs as three members on free loopback ports in a temp dir: trikv from configs/node0..2.yaml,
etcd (the Debian `etcd-server` package, a yardstick only, never a dependency) from
../shared/reference/etcd-configs/etcdnode0..2.yml, both rewritten by tools/localcluster.py. Every
run gets a fresh cluster (like the reference's numbers: 1,000 keys under /bench/, 256-byte values; range
workloads pre-write them), and the systems' runs of a workload alternate (this VM's speed drifts by 20-40 %
over minutes: both systems get the same minutes). Prints a Markdown table: median ops/s, the median run's p50/p99 and its
CPU per op (utime + stime from /proc, summed over the three members / of the load generator's processes;
on 2 shared cores a hungrier server starves its generator), and trikv / etcd when both ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from trikv.tools.localcluster import CONFIGS, ROOT, Cluster

REFERENCE = ROOT.parent / "shared" / "reference"
WORKLOADS = [
    ("put, 1 client", ["--op", "put", "--procs", "1", "--clients", "1"]),
    ("put, 1 client on the leader", ["--op", "put", "--procs", "1", "--clients", "1"]),
    ("put, 1 client on a follower", ["--op", "put", "--procs", "1", "--clients", "1"]),
    ("put, 64 clients", ["--op", "put", "--procs", "4", "--clients", "64"]),
    ("linearizable range, 64 clients", ["--op", "range", "--procs", "4", "--clients", "64"]),
    ("serializable range, 64 clients", ["--op", "range-serializable", "--procs", "4", "--clients", "64"]),
]
SHORT = dict(
    zip(
        ("put1", "put1-leader", "put1-follower", "put64", "range-l64", "range-s64"),
        (name for name, _ in WORKLOADS),
        strict=True,
    )
)
# A single client talks to the first endpoint: the leader (4 message hops per put) or a follower, which
# forwards the proposal and answers after its own apply (6 hops), in etcd as in trikv. "put1" keeps the
# configured order (whoever won the first election); the pinned rows take that chance out of the ratio.
PIN = {"put, 1 client on the leader": "leader", "put, 1 client on a follower": "follower"}
DEFAULT_WORKLOADS = "put1,put64,range-l64,range-s64"
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _cluster(system: str, workdir: Path) -> Cluster:
    if system == "etcd":
        files = [REFERENCE / "etcd-configs" / f"etcdnode{i}.yml" for i in range(3)]
        return Cluster(workdir, config_files=files, command=("etcd",), overrides={"log-level": "warn"})
    return Cluster(workdir, config_files=[CONFIGS / f"node{i}.yaml" for i in range(3)])


def _leaders(endpoints: list[str]) -> list[bool]:
    """Which endpoints are the leader, asked through the v3 gateway's Status (both systems serve it)."""
    out = []
    for ep in endpoints:
        req = urllib.request.Request(f"http://{ep}/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            status = json.loads(resp.read())
        out.append(str(status["header"]["member_id"]) == str(status.get("leader")))
    return out


def _pinned(endpoints: list[str], leaders: list[bool], pin: str | None) -> list[str]:
    """The endpoints reordered so the first is the leader (pin "leader") or a follower (pin "follower")."""
    if pin is None:
        return endpoints
    chosen = [ep for ep, lead in zip(endpoints, leaders, strict=True) if lead == (pin == "leader")]
    if not chosen:
        raise RuntimeError(f"no {pin} among {endpoints}")
    return [chosen[0]] + [ep for ep in endpoints if ep != chosen[0]]


def _run_load(cluster: Cluster, args: list[str], duration: float, pin: str | None = None) -> dict[str, Any]:
    """One load run; adds each member's CPU ms per op and the generator's (its processes') CPU ms per op."""
    leaders = _leaders(cluster.endpoints)
    endpoints = _pinned(cluster.endpoints, leaders, pin)
    pids = [m.proc.pid for m in cluster if m.proc is not None]
    before, gen_before = [_cpu_seconds(p) for p in pids], os.times()
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
    after, gen_after = [_cpu_seconds(p) for p in pids], os.times()
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    ops = max(1, int(result["ops"]))
    result["member_cpu_ms_per_op"] = [round((b - a) * 1000 / ops, 3) for a, b in zip(before, after, strict=True)]
    gen = (gen_after.children_user + gen_after.children_system) - (gen_before.children_user + gen_before.children_system)
    result["generator_cpu_ms_per_op"] = round(gen * 1000 / ops, 3)
    result["first_endpoint_is_leader"] = leaders[cluster.endpoints.index(endpoints[0])]
    return result


def measure(
    systems: list[str], runs: int, duration: float, workloads: list[tuple[str, list[str]]]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every run of a workload on each system back to back (trikv, etcd, trikv, etcd, ...): this VM's speed
    drifts by 20-40 % over minutes, so both systems' runs of a workload share the same minutes."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in systems}
    for name, args in workloads:
        for system in systems:
            out[system][name] = []
        for _ in range(runs):
            for system in systems:
                with tempfile.TemporaryDirectory(prefix=f"sbs-{system}-") as tmp:
                    cluster = _cluster(system, Path(tmp))
                    cluster.start()
                    try:
                        time.sleep(3.0)  # first election and publish
                        out[system][name].append(_run_load(cluster, args, duration, PIN.get(name)))
                    finally:
                        cluster.stop()
                print(f"{system:5s} {name}: {out[system][name][-1]}", file=sys.stderr, flush=True)
    return out


def _summary(rows: list[dict[str, Any]]) -> str:
    ops = [r["ops_per_s"] for r in rows]
    med = sorted(rows, key=lambda r: r["ops_per_s"])[len(rows) // 2]
    # "L": that run's client talked to the leader
    runs = ", ".join(f"{r['ops_per_s']:,.0f}{' L' if r.get('first_endpoint_is_leader') else ''}" for r in rows)
    cpu = sum(med["member_cpu_ms_per_op"])
    return (
        f"{statistics.median(ops):,.0f} ({runs}) | {med['p50_ms']:.2f} / {med['p99_ms']:.2f} | "
        f"{cpu:.2f} / {med['generator_cpu_ms_per_op']:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="trikv,etcd")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS, help=f"comma-separated, of {', '.join(SHORT)}")
    args = ap.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [w for w in args.workloads.split(",") if w not in SHORT]
    if unknown:
        print(f"side_by_side: unknown workload {unknown[0]!r} (choose from {', '.join(SHORT)})", file=sys.stderr)
        return 2
    wanted = {SHORT[w] for w in args.workloads.split(",")}
    workloads = [(name, wl_args) for name, wl_args in WORKLOADS if name in wanted]
    if not (REFERENCE / "etcd_load.py").exists():
        print(f"side_by_side: {REFERENCE / 'etcd_load.py'} not found", file=sys.stderr)
        return 1
    if "etcd" in systems and shutil.which("etcd") is None:
        print(
            "side_by_side: no etcd binary (apt-get install etcd-server); measuring trikv only",
            file=sys.stderr,
        )
        systems.remove("etcd")
    results = measure(systems, args.runs, args.duration, workloads)
    head = " | ".join(
        f"{s} ops/s median (runs) | {s} p50 / p99 ms | {s} CPU ms/op: members / generator" for s in systems
    )
    ratio = " | trikv / etcd" if {"trikv", "etcd"} <= set(systems) else ""
    print(f"| workload | {head}{ratio} |")
    print("|---" * (1 + 3 * len(systems) + (1 if ratio else 0)) + "|")
    for name, _ in workloads:
        row = " | ".join(_summary(results[s][name]) for s in systems)
        if ratio:
            t, e = (statistics.median(r["ops_per_s"] for r in results[s][name]) for s in ("trikv", "etcd"))
            row += f" | {t / e:.0%}" if e else " | -"
        print(f"| {name} | {row} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
