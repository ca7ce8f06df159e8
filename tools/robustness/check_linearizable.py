"""Linearizability of the KV history against etcd's model: one store, every write at its own revision.

Writes are linearized in revision order (that is what a response revision promises), so what is left is to
place every linearizable read (get, a delete that found nothing, a txn that wrote nothing) at a revision
"slot" s: after write s, before write s+1, where the keys held what the read saw. A read may sit at slot s
only if no write at or below s was invoked after the read completed and no write above s completed before
the read was invoked; and a read that completed before another was invoked must not sit at a later slot
(monotonic reads). Taking reads in invocation order and giving each the lowest slot it can have is exact
(the constraints only push slots up), so a history with every write's revision known checks in O(n log n),
the keys' txns coupled for free.

Unknown-outcome writes the watch history or a read did not settle are searched: each one either did not
happen or happened at a revision no known write holds, Wing-Gong style depth first over the ops touching the
offending keys, with the time budget; out of time = undecided (a failure). Serializable reads are not
linearizable by design and are left to check_rules.
"""

from __future__ import annotations

import bisect
import heapq
import time

import attrs

from trikv.tools.robustness.check_model import (
    INF,
    CheckResult,
    Span,
    Write,
    Writes,
    complement,
    intersect,
    union,
)
from trikv.tools.robustness.history import History, Op
from trikv.tools.robustness.minimize import minimize_history

NAME = "linearizable"


class OutOfTime(Exception):
    pass


@attrs.define
class Bounds:
    """The real-time limits the write order puts on a read: slot range from its invoke and complete."""

    revs: list[int]
    prefix_max_invoke: list[float]
    suffix_min_complete: list[float]

    @classmethod
    def of(cls, ws: Writes) -> Bounds:
        revs = sorted(ws.by_rev)
        inv = [max(w.invoke for w in ws.by_rev[r]) for r in revs]
        comp = [min(w.complete for w in ws.by_rev[r]) for r in revs]
        pm: list[float] = []
        for x in inv:
            pm.append(max(pm[-1], x) if pm else x)
        sm = comp[:]
        for i in range(len(sm) - 2, -1, -1):
            sm[i] = min(sm[i], sm[i + 1])
        return cls(revs, pm, sm)

    def slots(self, invoke: float, complete: float) -> Span:
        """No write at or below the slot invoked after `complete`; none above it completed before `invoke`."""
        i = bisect.bisect_right(self.prefix_max_invoke, complete)
        hi = self.revs[i] - 1 if i < len(self.revs) else INF
        j = bisect.bisect_left(self.suffix_min_complete, invoke) - 1
        lo = self.revs[j] if j >= 0 else 0
        return lo, hi


def read_spans(op: Op, ws: Writes, values: dict[str, Write]) -> tuple[list[Span], str, str]:
    """The slots at which the store looked the way this read saw it, or [] and why not."""
    if op.kind == "get" and op.found:
        w = values.get(op.got_value or "")
        if w is None or w.key != op.key:
            return [], "unwritten-value", f"{describe(op)}: no write to {op.key!r} wrote that value"
        if op.got_mod_revision is not None and op.got_mod_revision != w.rev:
            return [], "mod-revision", f"{describe(op)}: that value was written at revision {w.rev}"
        revs = ws.revs[op.key]
        i = bisect.bisect_right(revs, w.rev)
        return [(w.rev, revs[i] - 1 if i < len(revs) else INF)], "", ""
    if op.kind in ("get", "delete"):
        return ws.holds(op.key, None), "", ""
    for k, v in op.compares if op.succeeded else ():
        if v is not None and (v not in values or values[v].key != k):
            return [], "unwritten-value", f"{describe(op)}: no write to {k!r} wrote {v!r}"
    spans: list[Span] = [(0, INF)]
    if op.succeeded:
        for k, v in op.compares:
            spans = intersect(spans, ws.holds(k, v))
    else:
        spans = []
        for k, v in op.compares:
            spans = union(spans, complement(ws.holds(k, v)))
    return spans, "", ""


def is_read(op: Op) -> bool:
    if not op.ok or op.serializable or op.complete is None:
        return False
    return (
        op.kind == "get"
        or (op.kind == "delete" and op.deleted == 0)
        or (op.kind == "txn" and (not op.succeeded or not op.puts))
    )


def check_ops(ops: list[Op], ws: Writes, deadline: float) -> list[tuple[str, str, Op]]:
    """Violations of the history `ops` given its writes `ws` (tolerating nothing: the caller filters)."""
    out: list[tuple[str, str, Op]] = []  # (kind, message, op)
    values = {w.value: w for group in ws.by_key.values() for w in group if w.value is not None}
    # A write's own compares and delete count are reads at the slot just below it.
    for op in ops:
        if (
            op.ok
            and op.revision is not None
            and op.kind in ("txn", "delete")
            and (op.succeeded or op.deleted)
        ):
            before = op.revision - 1
            if op.kind == "delete":
                w = ws.at(op.key, before)
                if w is None or w.value is None:
                    msg = f"op {op.id} delete at revision {op.revision} removed {op.key!r}, absent before it"
                    out.append(("delete-absent", msg, op))
            elif op.puts:
                for k, v in op.compares:
                    w = ws.at(k, before)
                    if (w.value if w else None) != v:
                        got = w.value if w else None
                        msg = f"op {op.id} txn at revision {op.revision} succeeded but {k!r} was {got!r}, not {v!r}"
                        out.append(("txn-compare", msg, op))
    bounds = Bounds.of(ws)
    reads = sorted((op for op in ops if is_read(op)), key=lambda o: o.invoke)
    done: list[tuple[float, float]] = []  # (complete, slot) of placed reads
    floor: float = 0
    for n, op in enumerate(reads):
        if n % 512 == 0 and time.monotonic() > deadline:
            raise OutOfTime
        assert op.complete is not None
        while done and done[0][0] < op.invoke:
            floor = max(floor, heapq.heappop(done)[1])
        spans, kind, why = read_spans(op, ws, values)
        if why:
            out.append((kind, why, op))
            continue
        lo, hi = bounds.slots(op.invoke, op.complete)
        lo = max(lo, floor)
        slot = next((max(a, lo) for a, b in spans if b >= lo and max(a, lo) <= hi), None)
        if slot is None:
            msg = f"{describe(op)}: fits no revision in [{lo}, {hi}] (the store looked so at {spans[:4]})"
            out.append(("stale-read", msg, op))
            continue
        heapq.heappush(done, (op.complete, slot))
    return out


def describe(op: Op) -> str:
    if op.kind == "get":
        seen = f"{op.got_value!r}@{op.got_mod_revision}" if op.found else "nothing"
        return f"op {op.id} (client {op.client}) get {op.key!r} saw {seen}"
    if op.kind == "delete":
        return f"op {op.id} (client {op.client}) delete {op.key!r} found nothing"
    return (
        f"op {op.id} (client {op.client}) txn {list(op.compares)} {'succeeded' if op.succeeded else 'failed'}"
    )


def check_linearizable(h: History, budget_s: float = 10.0, *, minimize: bool = True) -> CheckResult:
    deadline = time.monotonic() + budget_s
    res = CheckResult(NAME, ok=True)
    try:
        ws = Writes.build(h)
        for msg in ws.problems:
            res.add("duplicate-revision", msg)
        found = check_ops(h.ops, ws, deadline)
        # Without a complete watch history a lease expiry is invisible: not-found reads there are not judged.
        blind = {k for k in ws.leased if not ws.watch_complete}
        found = [f for f in found if not blind.intersection(f[2].keys())]
        # Reads whose key an unsettled write may have changed get a search before they count.
        doubtful = [f for f in found if any(ws.key_uncertain(k) for k in f[2].keys())]
        sure = [f for f in found if not any(ws.key_uncertain(k) for k in f[2].keys())]
        if doubtful:
            index = Index.of(h, ws)
            sure.extend(f for f in doubtful if not search(h, ws, f[2], deadline, index))
    except OutOfTime:
        res.ok, res.undecided = False, True
        res.kinds.add("undecided")
        res.violations.append(f"undecided: no verdict within the {budget_s:g} s budget")
        return res
    for kind, msg, op in sure:
        res.add(kind, msg, op.keys(), op.id)
    if not res.ok and minimize:
        res.minimal = minimize_history(h, res, check_linearizable, max(0.0, deadline - time.monotonic()))
    return res


@attrs.define
class Index:
    """Built once for all searches of one history: the write bounds and each key's ops."""

    bounds: Bounds
    ops_of: dict[str, list[Op]]

    @classmethod
    def of(cls, h: History, ws: Writes) -> Index:
        ops_of: dict[str, list[Op]] = {}
        for op in h.ops:
            for k in op.keys():
                ops_of.setdefault(k, []).append(op)
        return cls(Bounds.of(ws), ops_of)


def search(h: History, ws: Writes, target: Op, deadline: float, index: Index) -> bool:
    """Can settling the unknown writes on the target's keys (each not applied, or applied at a revision no
    known write holds) make the target op fit? Tries one applied write, then two, ... (iterative deepening,
    each level depth first); raises OutOfTime past the deadline, so an adversarial history ends undecided."""
    focus = set(target.keys())
    sub_ops = sorted(
        {op.id: op for k in focus for op in index.ops_of.get(k, [])}.values(), key=lambda o: o.id
    )
    sub = h.replace(
        ops=sub_ops,
        responses=[attrs.evolve(r, events=tuple(e for e in r.events if e.key in focus)) for r in h.responses],
    )
    bounds = index.bounds
    if not is_read(target) and target.revision is not None:
        floor: float = target.revision - 1
        limit: float = floor
    else:
        floor, limit = bounds.slots(target.invoke, target.complete if target.complete is not None else INF)
    used = set(ws.by_rev)
    top = max(used, default=0)
    open_ops = [
        op
        for op in ws.unresolved
        if focus.intersection(op.keys()) and (target.complete is None or op.invoke < target.complete)
    ]
    # Likeliest first: a write whose value the target saw, at the free revision closest below the target.
    wanted = {v for _, v in target.compares} | {target.got_value}
    open_ops.sort(key=lambda op: not wanted.intersection([op.value, *(v for _, v in op.puts)]))
    gaps = [g for g in range(top + 1, 0, -1) if g not in used and g <= limit]
    options = {op.id: [g for g in gaps if g >= bounds.slots(op.invoke, INF)[0]] for op in open_ops}
    for op in open_ops:
        # A value the target saw was current there: after the last known write to its key that surely
        # precedes the target.
        for k, v in [(op.key, op.value), *op.puts]:
            if v in wanted:
                w = ws.at(k, floor)
                options[op.id] = [g for g in options[op.id] if w is None or g > w.rev]

    def fits(assume: dict[int, int | None]) -> bool:
        sub_ws = Writes.build(sub, assume)
        return not any(op.id == target.id for _, _, op in check_ops(sub_ops, sub_ws, deadline))

    def dfs(start: int, left: int, assume: dict[int, int | None], taken: frozenset[int]) -> bool:
        if time.monotonic() > deadline:
            raise OutOfTime
        if left == 0:
            return fits(assume)
        for i in range(start, len(open_ops)):
            op = open_ops[i]
            for g in options[op.id]:
                if g not in taken and dfs(i + 1, left - 1, {**assume, op.id: g}, taken | {g}):
                    return True
        return False

    return any(dfs(0, depth, {}, frozenset()) for depth in range(1, len(open_ops) + 1))
