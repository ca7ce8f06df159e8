"""A result row: throughput, latency percentiles, an etcd-benchmark-style histogram, CPU accounting.

Percentiles are read off the sorted raw latencies (nearest rank, as etcd's report does). The histogram has
ten equal-width buckets from the fastest to the slowest op; every op falls in exactly one, so the bucket
counts sum to the row's count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

BUCKETS = 10
BAR = 40


def percentile(sorted_lat: Sequence[float], p: float) -> float:
    if not sorted_lat:
        return 0.0
    return sorted_lat[min(len(sorted_lat) - 1, int(len(sorted_lat) * p / 100))]


def histogram(sorted_lat: Sequence[float], buckets: int = BUCKETS) -> list[tuple[float, int]]:
    """(upper bound in seconds, count) for `buckets` equal-width buckets over [min, max]."""
    if not sorted_lat:
        return []
    lo, hi = sorted_lat[0], sorted_lat[-1]
    width = (hi - lo) / buckets
    counts = [0] * buckets
    for v in sorted_lat:
        counts[min(buckets - 1, int((v - lo) / width)) if width > 0 else 0] += 1
    return [(lo + width * (i + 1) if i < buckets - 1 else hi, c) for i, c in enumerate(counts)]


@attrs.define
class Row:
    workload: str
    surface: str
    target: str
    clients: int
    conns: int
    procs: int
    count: int
    errors: int
    elapsed_s: float
    ops_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    min_ms: float
    avg_ms: float
    server_cpu_us_per_op: float | None  # None: the members' processes are not known (--endpoints elsewhere)
    generator_share: float | None
    histogram: list[tuple[float, int]]
    first_error: str = ""
    extra: dict[str, Any] = attrs.Factory(dict)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def make_row(
    *,
    workload: str,
    surface: str,
    target: str,
    clients: int,
    conns: int,
    procs: int,
    latencies: list[float],
    errors: int,
    elapsed: float,
    server_cpu: float | None,
    generator_cpu: float,
    first_error: str = "",
    extra: dict[str, Any] | None = None,
) -> Row:
    lat = sorted(latencies)
    n = len(lat)
    ms = 1000.0
    share = None if server_cpu is None else generator_cpu / max(1e-9, generator_cpu + server_cpu)
    return Row(
        workload=workload,
        surface=surface,
        target=target,
        clients=clients,
        conns=conns,
        procs=procs,
        count=n,
        errors=errors,
        elapsed_s=round(elapsed, 3),
        ops_per_s=round(n / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=round(percentile(lat, 50) * ms, 3),
        p90_ms=round(percentile(lat, 90) * ms, 3),
        p99_ms=round(percentile(lat, 99) * ms, 3),
        p999_ms=round(percentile(lat, 99.9) * ms, 3),
        max_ms=round(lat[-1] * ms, 3) if lat else 0.0,
        min_ms=round(lat[0] * ms, 3) if lat else 0.0,
        avg_ms=round(sum(lat) / n * ms, 3) if lat else 0.0,
        server_cpu_us_per_op=None if server_cpu is None else round(server_cpu / max(1, n) * 1e6, 1),
        generator_share=None if share is None else round(share, 3),
        histogram=[(round(b * ms, 3), c) for b, c in histogram(lat)],
        first_error=first_error,
        extra=dict(extra or {}),
    )


def text(row: Row) -> str:
    """etcd benchmark's summary and histogram, plus the CPU accounting."""
    cpu = "-" if row.server_cpu_us_per_op is None else f"{row.server_cpu_us_per_op:,.0f} µs"
    share = "-" if row.generator_share is None else f"{row.generator_share:.0%}"
    lines = [
        f"{row.workload} on {row.target} via {row.surface}: {row.clients} clients, {row.conns} conns, {row.procs} procs",
        "Summary:",
        f"  Total:\t{row.elapsed_s:.4f} secs.",
        f"  Slowest:\t{row.max_ms / 1000:.4f} secs.",
        f"  Fastest:\t{row.min_ms / 1000:.4f} secs.",
        f"  Average:\t{row.avg_ms / 1000:.4f} secs.",
        f"  Requests/sec:\t{row.ops_per_s:.4f}",
        f"  Count:\t{row.count} ok, {row.errors} errors",
        f"  Server CPU per op:\t{cpu}",
        f"  Generator CPU share:\t{share}",
    ]
    for k, v in row.extra.items():
        lines.append(f"  {k}:\t{v}")
    if row.first_error:
        lines.append(f"  First error:\t{row.first_error}")
    lines.append("\nResponse time histogram:")
    top = max((c for _, c in row.histogram), default=0)
    for upper, c in row.histogram:
        bar = "∎" * (c * BAR // top if top else 0)
        lines.append(f"  {upper / 1000:.4f} [{c}]\t|{bar}")
    lines.append("\nLatency distribution:")
    for name, v in (("50", row.p50_ms), ("90", row.p90_ms), ("99", row.p99_ms), ("99.9", row.p999_ms)):
        lines.append(f"  {name}% in {v / 1000:.4f} secs.")
    return "\n".join(lines)


def write_json(path: Path, rows: list[Row]) -> None:
    path.write_text(json.dumps([r.as_dict() for r in rows], indent=1) + "\n")
