"""Shrink a violating history to a small one that still violates: what a human reads first.

First cut to what the violation names (its keys, watchers, leases); then delta debugging (Zeller's ddmin)
over the remaining ops and watch responses, keeping a candidate only when the checker still fails on it
the same way (not undecided; every rule broken before still broken, by one of the same ops). Bounded by a
time budget: out of time, the smallest failing history so far is returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import attrs

from trikv.tools.robustness.check_model import CheckResult
from trikv.tools.robustness.history import History, Op, WatchResponse

T = TypeVar("T")


class Checker(Protocol):
    def __call__(self, h: History, budget_s: float = ..., *, minimize: bool = ...) -> CheckResult: ...


def focus(h: History, res: CheckResult) -> History:
    """Only what the violation involves: ops on its keys, its watchers' streams, the leases of its keys."""
    ops, responses = h.ops, h.responses
    keys = set(res.keys)
    if keys:
        leases = {op.lease for op in ops if op.kind == "put" and op.key in keys and op.lease}
        ops = [
            op
            for op in ops
            if keys.intersection(op.keys()) or op.id in res.ops or (op.lease in leases and op.kind != "put")
        ]
        responses = [
            attrs.evolve(r, events=tuple(e for e in r.events if e.key in keys))
            for r in responses
            if any(e.key in keys for e in r.events) or not r.events
        ]
    watches, resumes = h.watches, h.resumes
    if res.watchers:
        responses = [r for r in responses if r.watcher in res.watchers]
        watches = [w for w in watches if w.watcher in res.watchers]
        resumes = [r for r in resumes if r.watcher in res.watchers]
    return h.replace(ops=ops, responses=responses, watches=watches, resumes=resumes)


def minimize_history(h: History, res: CheckResult, checker: Checker, budget_s: float) -> History:
    deadline = time.monotonic() + min(budget_s, 30.0)

    def fails(c: History) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r = checker(c, left, minimize=False)
        return (
            not r.ok and not r.undecided and r.kinds >= res.kinds and (not res.ops or bool(r.ops & res.ops))
        )

    best = focus(h, res)
    if not fails(best):
        best = h
    items: list[Op | WatchResponse] = [*best.ops, *best.responses]

    def build(keep: list[Op | WatchResponse]) -> History:
        return best.replace(
            ops=[x for x in keep if isinstance(x, Op)],
            responses=[x for x in keep if isinstance(x, WatchResponse)],
        )

    items = ddmin(items, lambda keep: fails(build(keep)), deadline)
    return build(items)


def ddmin(items: list[T], fails: Callable[[list[T]], bool], deadline: float) -> list[T]:
    """Zeller's ddmin: drop chunks (then complements) while the rest still fails; halve chunks otherwise."""
    n = 2
    while len(items) >= 2 and time.monotonic() < deadline:
        size = max(1, len(items) // n)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        reduced = False
        for i in range(len(chunks)):
            rest = [x for j, c in enumerate(chunks) if j != i for x in c]
            if fails(rest):
                items, n, reduced = rest, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), 2 * n)
    return items
