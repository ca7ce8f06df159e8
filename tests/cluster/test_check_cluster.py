"""Acceptance: `trikvctl check perf --load s` and `check datascale --load s` against three real members:
they complete, print etcdctl 3.4's lines, exit with the code those lines call for, and leave no keys.
Whether the load PASSes is a timing on a shared machine: recorded in docs/PERFORMANCE.md, never asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import trikv
from tests.cluster.test_cluster import find_leader
from trikv.tools.ctl_check import TEST_KEYS_ENV, TEST_SECONDS_ENV
from trikv.tools.localcluster import ROOT, Cluster

pytestmark = pytest.mark.slow

PERF_LINES = [
    r"(PASS: Throughput is \d+ writes/s|FAIL: Throughput too low: \d+ writes/s)",
    r"(PASS: Slowest request took \d+\.\d{6}s|Slowest request took too long: \d+\.\d{6}s)",
    r"(PASS: Stddev is \d+\.\d{6}s|Stddev too high: \d+\.\d{6}s)",
    r"(PASS|FAIL)",
]


def trikvctl(cluster: Cluster, *args: str, seconds: str = "4") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trikv.tools.trikvctl", "--endpoints", ",".join(cluster.endpoints), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        # test-only overrides: 4 s instead of 60 s, 1,000 keys instead of 10,000 (CI time)
        env={**os.environ, "PYTHONPATH": str(ROOT), TEST_SECONDS_ENV: seconds, TEST_KEYS_ENV: "1000"},
    )


async def test_check_perf_and_datascale(cluster: Cluster) -> None:
    await find_leader(cluster)
    perf = trikvctl(cluster, "check", "perf", "--load", "s", "--auto-compact")
    lines = perf.stdout.splitlines()
    assert lines[0].startswith("Compacting with revision ") and lines[1].startswith(
        "Compacted with revision "
    )
    verdict = lines[2:]
    failures = [x for x in verdict if x.startswith("FAIL: ERROR")]
    if failures:  # etcdctl lists the errors first
        assert verdict[0] == "FAIL: too many errors"
        verdict = verdict[1 + len(failures) :]
    assert len(verdict) == len(PERF_LINES), perf.stdout
    for line, pattern in zip(verdict, PERF_LINES, strict=True):
        assert re.fullmatch(pattern, line), line
    passed = all(x.startswith("PASS") for x in verdict) and not failures
    assert verdict[-1] == ("PASS" if passed else "FAIL")
    assert perf.returncode == (0 if passed else 1), perf.stderr
    print(perf.stdout)  # the figures, for docs/PERFORMANCE.md

    scale = trikvctl(cluster, "check", "datascale", "--load", "s")
    out = scale.stdout.splitlines()
    assert out[0] == (
        "Start data scale check for work load [1000 key-value pairs, 1024 bytes per key-value, "
        "50 concurrent clients]."
    )
    assert re.fullmatch(r"PASS: Approximate system memory used : -?\d+\.\d\d MB\.", out[-1]), scale.stdout
    assert scale.returncode == 0, scale.stderr
    print(scale.stdout)

    async with trikv.connect(cluster.endpoints) as c:  # both cleaned up after themselves
        for prefix in ("/etcdctl-check-perf/", "/etcdctl-check-datascale/"):
            assert (await c.get(prefix, prefix=True, count_only=True)).count == 0
        await c.put("/etcdctl-check-perf/left", "x")
    again = trikvctl(cluster, "check", "perf")  # a prefix with keys is refused, as etcdctl does
    assert again.returncode == 3
    assert again.stderr.strip().endswith(
        'Error: prefix "/etcdctl-check-perf/" has keys. Delete with etcdctl del --prefix /etcdctl-check-perf/ first'
    )
    bad = trikvctl(cluster, "check", "perf", "--load", "xyz")
    assert (bad.returncode, bad.stderr.strip()) == (4, "Error: unknown load option xyz")
