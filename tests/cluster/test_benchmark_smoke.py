"""CI smoke run of the benchmark tool (issue 16): every workload through every surface against ONE real
three-member trikv cluster (shared by this module's tests: start-up is the expensive part), a few hundred
ops each, through the command line's main (`python -m trikv.tools.benchmark ... --json FILE`; the load comes from spawned
worker processes as in a real run).

Asserted: the run did exactly --total operations without an error, its percentiles are ordered and its
histogram accounts for every op. Never a timing assertion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trikv.tools.benchmark import cli, report
from trikv.tools.benchmark.clusters import wait_leader
from trikv.tools.localcluster import Cluster

SURFACES = ("cbor", "gateway", "grpc")
# workload -> its flags; watch workloads' --total counts delivered events (puts x watchers). Two worker
# processes where the merge across processes is the point, one elsewhere (each spawn costs CI seconds).
WORKLOADS: dict[str, list[str]] = {
    "put": [
        "put",
        "--clients",
        "4",
        "--conns",
        "2",
        "--total",
        "200",
        "--key-space-size",
        "100",
        "--procs",
        "2",
    ],
    "range-l": [
        "range",
        "--clients",
        "4",
        "--total",
        "200",
        "--key-space-size",
        "50",
        "--val-size",
        "64",
        "--procs",
        "1",
    ],
    "range-s-key": [
        "range",
        "smoke-key",
        "--consistency",
        "s",
        "--clients",
        "4",
        "--total",
        "200",
        "--procs",
        "1",
    ],
    "txn-put": [
        "txn-put",
        "--txn-ops",
        "2",
        "--clients",
        "4",
        "--total",
        "100",
        "--key-space-size",
        "20",
        "--procs",
        "1",
    ],
    "txn-mixed": ["txn-mixed", "--clients", "4", "--total", "100", "--key-space-size", "20", "--procs", "1"],
    "watch": ["watch", "--watchers", "4", "--rate", "200", "--total", "120", "--procs", "2"],
    "watch-latency": ["watch-latency", "--watchers", "4", "--rate", "200", "--total", "120", "--procs", "2"],
    "lease-keepalive": [
        "lease-keepalive",
        "--clients",
        "4",
        "--leases",
        "8",
        "--total",
        "200",
        "--procs",
        "1",
    ],
}


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("bench-smoke"), overrides={"log-level": "warn"})
    c.start()
    try:
        import trio

        trio.run(wait_leader, c.endpoints, 60.0)
        yield c
    finally:
        c.stop()


def _run(
    endpoints: list[str], flags: list[str], out: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """The command line in this process (its load still comes from spawned worker processes)."""
    code = cli.main([*flags, "--endpoints", ",".join(endpoints), "--json", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.out[-2000:] + printed.err[-3000:]
    assert "Traceback" not in printed.err
    assert "Response time histogram:" in printed.out
    (row,) = json.loads(out.read_text())
    assert isinstance(row, dict)
    return row


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workload_through_surface(
    shared_cluster: Cluster, tmp_path: Path, workload: str, surface: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [*WORKLOADS[workload], "--surface", surface]
    row = _run(shared_cluster.endpoints, flags, tmp_path / "row.json", capsys)
    total = int(flags[flags.index("--total") + 1])
    assert row["errors"] == 0, row["first_error"]
    assert row["count"] == total
    assert row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["p999_ms"] <= row["max_ms"]
    assert sum(c for _, c in row["histogram"]) == row["count"]
    assert len(row["histogram"]) == report.BUCKETS
    assert (
        row["server_cpu_us_per_op"] is not None and row["server_cpu_us_per_op"] > 0
    )  # members found by port
    assert 0 < row["generator_share"] < 1
    if workload.startswith("watch"):
        assert row["extra"]["events_delivered"] == row["extra"]["events_expected"] == total
        assert row["extra"]["puts_acked"] == total // 4


def test_histogram_accounts_for_every_latency() -> None:
    lat = sorted([0.001 * i for i in range(1, 1001)] + [0.5])
    buckets = report.histogram(lat)
    assert sum(c for _, c in buckets) == len(lat)
    assert buckets[-1][0] == lat[-1] and buckets[-1][1] >= 1 and buckets[0][0] > lat[0]
    assert report.percentile(lat, 50) <= report.percentile(lat, 99) <= lat[-1]
    assert report.histogram([0.002] * 5) == [(0.002, 5)] + [(0.002, 0)] * 9


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["put", "--target", "etcd", "--surface", "cbor"], "etcd has no CBOR surface"),
        (["watch", "--watchers", "3", "--total", "10"], "must be a multiple of --watchers"),
        (["txn-put", "--txn-ops", "3"], "--txn-ops must be"),
        (["put", "--clients", "0"], "--clients must be at least 1"),
    ],
)
def test_bad_flags_get_one_line(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(flags) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
