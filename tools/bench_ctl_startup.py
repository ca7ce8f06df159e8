"""How long one `trikvctl get foo` takes from start to exit, against a real single member.

A CLI used in shell loops pays its start-up on every call, so this measures the whole process: spawn,
interpreter start, imports, one request on loopback, exit. For scale it also times a bare interpreter
(`python -c pass`), the floor no Python CLI can go below, and one that imports the wire shapes and codec
(`import trikv.api`), which every client needs.

    python -m trikv.tools.bench_ctl_startup [--runs 30]

The member runs from configs/node0.yaml rewritten to free 127.0.0.1 ports and a temp directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trikv.tools.localcluster import CONFIGS, ROOT, Cluster

MAX_RUNS = 500


def trikvctl_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m trikv.tools.trikvctl`."""
    script = Path(sys.executable).with_name("trikvctl")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "trikv.tools.trikvctl"]


def time_once(argv: list[str], env: dict[str, str]) -> float:
    """Wall-clock milliseconds of one run, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    took = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return took


def time_interleaved(
    commands: dict[str, list[str]], runs: int, env: dict[str, str]
) -> dict[str, list[float]]:
    """Each round runs every command once, so a load spike on a shared machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(time_once(argv, env))
    return times


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"{name:<30} runs {len(times):>3}  median {statistics.median(times):6.1f} ms  "
        f"p90 {p90:6.1f} ms  min {ordered[0]:6.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30, help=f"runs per measurement (at most {MAX_RUNS})")
    args = parser.parse_args(argv)
    runs = max(1, min(args.runs, MAX_RUNS))
    workdir = Path(tempfile.mkdtemp(prefix="bench-ctl-"))
    cluster = Cluster(workdir, [CONFIGS / "node0.yaml"])
    # As on a user's machine, compiled bytecode is cached between runs (some environments, CI shells
    # among them, set PYTHONDONTWRITEBYTECODE, which would recompile every module on every call); the
    # cache lives in the temp directory so the source tree stays clean.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        cluster.start()
        ctl = [*trikvctl_command(), f"--endpoints={cluster.endpoints[0]}"]
        deadline = time.monotonic() + 20
        while subprocess.run([*ctl, "put", "foo", "bar"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"the member never accepted a put:\n{cluster.logs()}")
            time.sleep(0.2)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import trikv.api'": [sys.executable, "-c", "import trikv.api"],
            "trikvctl get foo": [*ctl, "get", "foo"],
            "trikvctl put foo bar": [*ctl, "put", "foo", "bar"],
        }
        time_interleaved(commands, 3, env)  # warm the page cache and the bytecode cache
        times = time_interleaved(commands, runs, env)
        for name, samples in times.items():
            print(summary(name, samples))
        overhead = [g - p for g, p in zip(times["trikvctl get foo"], times["python -c pass"], strict=True)]
        print(f"{'get minus bare interpreter':<30} median {statistics.median(overhead):6.1f} ms (same round)")
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
