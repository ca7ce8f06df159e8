"""The summary of many runs: runs, operations, faults by kind, violations, lost writes, watch and lease
violations, as a table (stdout) and as JSON (`--report FILE`)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from trikv.tools.robustness.runner import RunResult


def summarize(results: list[RunResult], command: str = "", commit: str = "") -> dict[str, Any]:
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
    failed = [r for r in results if not r.ok]
    return {
        "command": command,
        "commit": commit,
        "runs": len(results),
        "passed": len(results) - len(failed),
        "operations": sum(r.ops for r in results),
        "faults": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()),
        "violations": sum(len(r.violations) for r in results),
        "acknowledged_writes_lost": sum(r.lost for r in results),
        "watch_violations": sum(r.watch_violations for r in results),
        "lease_violations": sum(r.lease_violations for r in results),
        "hash_mismatches": sum(1 for r in results if r.hash_mismatch),
        "run_errors": sum(1 for r in results if r.error),
        "failed_seeds": [r.seed for r in failed],
        "seconds": round(sum(r.elapsed for r in results), 1),
    }


def table(summary: dict[str, Any]) -> str:
    """A two-column Markdown table (it goes straight into docs/ROBUSTNESS.md)."""
    rows = [
        ("runs", summary["runs"]),
        ("passed", summary["passed"]),
        ("operations", summary["operations"]),
        ("faults", ", ".join(f"{k} {v}" for k, v in summary["faults"].items()) or "0"),
        ("violations", summary["violations"]),
        ("acknowledged writes lost", summary["acknowledged_writes_lost"]),
        ("watch guarantee violations", summary["watch_violations"]),
        ("lease violations", summary["lease_violations"]),
        ("HashKV mismatches", summary["hash_mismatches"]),
        ("run errors", summary["run_errors"]),
        ("failed seeds", " ".join(map(str, summary["failed_seeds"])) or "none"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'what'.ljust(width)} | count |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def write(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")
