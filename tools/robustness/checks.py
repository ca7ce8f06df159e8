"""Every checker over one history: what the runner calls at the end of a run."""

from __future__ import annotations

import time

from trikv.tools.robustness.check_lease import check_lease
from trikv.tools.robustness.check_linearizable import check_linearizable
from trikv.tools.robustness.check_model import CheckResult
from trikv.tools.robustness.check_rules import check_rules
from trikv.tools.robustness.check_watch import check_watch
from trikv.tools.robustness.history import History

CHECKERS = (check_linearizable, check_rules, check_watch, check_lease)


def check_all(history: History, budget_s: float = 60.0) -> list[CheckResult]:
    """Run each checker with what is left of the budget split evenly among those still to run (a checker
    out of time reports undecided, which is a failure)."""
    deadline = time.monotonic() + budget_s
    out = []
    for n, checker in enumerate(CHECKERS):
        share = max(0.0, deadline - time.monotonic()) / (len(CHECKERS) - n)
        out.append(checker(history, share))
    return out


def summary(results: list[CheckResult]) -> str:
    """One line per checker, then its violations indented: what a failing run prints."""
    lines = []
    for r in results:
        verdict = "ok" if r.ok else "UNDECIDED" if r.undecided else f"FAILED ({len(r.violations)})"
        lines.append(f"{r.name}: {verdict}")
        lines.extend(f"  {v}" for v in r.violations)
    return "\n".join(lines)
