"""The checkers' shared ground: CheckResult, and the revisioned key store a history's writes imply.

etcd gives every successful write a unique cluster-wide revision, so the writes of a run, once each has its
revision, fix the state of every key at every revision. `Writes.build` collects them: acknowledged writes
from their response revision; unknown-outcome writes resolved from the watch history (a PUT event with the
put's unique value) or from a read that saw the value with its mod_revision; deletes no client asked for
(lease expiry) from DELETE events. What stays unresolved is kept apart for the search.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict

import attrs

from trikv.tools.robustness.history import History, Op

INF = math.inf
# A revision interval [lo, hi] (hi may be INF); a set of revisions is a sorted list of disjoint intervals.
Span = tuple[float, float]


@attrs.define
class CheckResult:
    """One checker's verdict. undecided (out of time budget) is a failure, never a pass. `keys` and
    `watchers` name what the violations involve (the minimizer shrinks around them)."""

    name: str
    ok: bool
    undecided: bool = False
    violations: list[str] = attrs.Factory(list)
    minimal: History | None = None
    keys: set[str] = attrs.Factory(set)
    watchers: set[int] = attrs.Factory(set)
    ops: set[int] = attrs.Factory(set)
    kinds: set[str] = attrs.Factory(set)  # short names of the violated rules (a shrunk history keeps one)

    def add(self, kind: str, msg: str, keys: tuple[str, ...] = (), op: int | None = None) -> None:
        self.ok = False
        self.kinds.add(kind)
        self.keys.update(keys)
        if op is not None:
            self.ops.add(op)
        if len(self.violations) < 20:
            self.violations.append(msg)
        elif len(self.violations) == 20:
            self.violations.append("... and more")


@attrs.frozen
class Write:
    """One key's change at one revision: value None = deleted. window is when it could have taken effect."""

    rev: int
    key: str
    value: str | None
    invoke: float
    complete: float
    op: int | None  # the client op, None for a delete no client asked for (lease expiry or revoke)
    lease: int | None = None


@attrs.define
class Writes:
    """Every write with a revision, per key in revision order, plus the unknown-outcome writes left open."""

    by_key: dict[str, list[Write]] = attrs.Factory(dict)
    revs: dict[str, list[int]] = attrs.Factory(dict)
    by_rev: dict[int, list[Write]] = attrs.Factory(dict)
    unresolved: list[Op] = attrs.Factory(list)
    watch_complete: bool = False
    open_keys: set[str] = attrs.Factory(set)  # keys an unresolved write touches
    leased: set[str] = attrs.Factory(set)  # keys ever put with a lease (expiry deletes them unasked)
    problems: list[str] = attrs.Factory(list)

    def add(self, w: Write) -> None:
        self.by_rev.setdefault(w.rev, []).append(w)
        self.by_key.setdefault(w.key, []).append(w)

    def finish(self) -> None:
        self.open_keys = {k for op in self.unresolved for k in op.keys()}
        for key, ws in self.by_key.items():
            ws.sort(key=lambda w: w.rev)
            self.revs[key] = [w.rev for w in ws]

    def at(self, key: str, rev: float) -> Write | None:
        """The write that set `key` as of revision `rev` (None = never written, so absent)."""
        revs = self.revs.get(key)
        if not revs:
            return None
        i = bisect.bisect_right(revs, rev) - 1
        return self.by_key[key][i] if i >= 0 else None

    def holds(self, key: str, expected: str | None) -> list[Span]:
        """The revisions at which `key` has value `expected` (None = absent)."""
        ws = self.by_key.get(key, [])
        spans: list[Span] = []
        start: float = 0
        cur: str | None = None
        for w in ws:
            if cur == expected and w.rev - 1 >= start:
                spans.append((start, w.rev - 1))
            start, cur = w.rev, w.value
        if cur == expected:
            spans.append((start, INF))
        return spans

    def key_uncertain(self, key: str) -> bool:
        """An unresolved unknown-outcome write, or an expiry no watcher saw, may have changed this key."""
        return (key in self.leased and not self.watch_complete) or key in self.open_keys

    @classmethod
    def build(cls, h: History, assume: dict[int, int | None] | None = None) -> Writes:
        """The writes of `h`. `assume` settles unknown-outcome ops by id: applied at a revision, or not (None)."""
        assume = assume or {}
        ws = cls()
        ws.watch_complete = watch_complete(h)
        events: dict[str, tuple[int, str]] = {}  # put value -> (revision, key) from any watcher
        deletes: dict[tuple[str, int], float] = {}  # (key, revision) of DELETE events -> first received
        for r in h.responses:
            for e in r.events:
                if e.type == "PUT" and e.value is not None:
                    events.setdefault(e.value, (e.mod_revision, e.key))
                elif e.type == "DELETE":
                    at = (e.key, e.mod_revision)
                    deletes[at] = min(deletes.get(at, INF), r.received)
        seen: dict[str, int] = {}  # value -> mod_revision, from reads
        for op in h.ops:
            if op.kind == "get" and op.ok and op.found and op.got_value is not None and op.got_mod_revision:
                seen.setdefault(op.got_value, op.got_mod_revision)
        claimed: set[tuple[str, int]] = set()
        ws.leased = {op.key for op in h.ops if op.kind == "put" and op.lease}
        for op in h.ops:
            if not op.is_write() or op.ok is False:
                continue
            comp = op.complete if op.complete is not None and op.ok else INF
            if op.ok and op.revision is not None:
                if op.kind == "put":
                    ws.add(Write(op.revision, op.key, op.value, op.invoke, comp, op.id, op.lease))
                elif op.kind == "delete" and op.deleted:
                    ws.add(Write(op.revision, op.key, None, op.invoke, comp, op.id))
                    claimed.add((op.key, op.revision))
                elif op.kind == "txn" and op.succeeded:
                    for k, v in op.puts:
                        ws.add(Write(op.revision, k, v, op.invoke, comp, op.id))
                continue
            if op.ok:
                continue  # a success without a revision tells nothing about when
            if op.id in assume:
                rev = assume[op.id]
                if rev is not None:
                    sets: list[tuple[str, str | None]] = (
                        [(op.key, op.value)] if op.kind != "txn" else list(op.puts)
                    )
                    for k2, v2 in sets:
                        ws.add(
                            Write(
                                rev, k2, None if op.kind == "delete" else v2, op.invoke, INF, op.id, op.lease
                            )
                        )
                continue
            # Unknown outcome: found in the watch history or by a read with its mod_revision?
            vals = [op.value] if op.kind == "put" else [v for _, v in op.puts] if op.kind == "txn" else []
            found = None
            for val in vals:
                if val is not None and val in events:
                    found = events[val][0]
                elif val is not None and val in seen:
                    found = seen[val]
                if found is not None:
                    break
            if found is not None:
                if op.kind == "put":
                    ws.add(Write(found, op.key, op.value, op.invoke, INF, op.id, op.lease))
                else:
                    for k, v in op.puts:
                        ws.add(Write(found, k, v, op.invoke, INF, op.id))
            elif op.kind == "delete" and ws.watch_complete:
                continue  # its DELETE event, if any, is picked up below as an unclaimed delete
            elif not ws.watch_complete and (op.kind != "txn" or op.puts):
                ws.unresolved.append(op)
        # DELETE events no acknowledged delete accounts for: unknown deletes, lease expiry or revoke.
        for (dkey, drev), received in deletes.items():
            if (dkey, drev) not in claimed:
                ws.add(Write(drev, dkey, None, -INF, received, None))
        ws.finish()
        for rev, group in ws.by_rev.items():
            ops = {w.op for w in group}
            if len(ops) > 1 and None not in ops:
                ws.problems.append(f"revision {rev} given to more than one write: ops {sorted(ops)}")  # type: ignore[type-var]
        return ws


def watch_complete(h: History) -> bool:
    """Did one watcher see every key from revision 1 on, never compacted, up to the last op's revision?"""
    keys = {k for op in h.ops for k in op.keys()}
    top = max((op.revision or 0 for op in h.ops if op.ok), default=0)
    for spec in h.watches:
        if spec.start_revision > 1 or not all(k.startswith(spec.prefix) for k in keys):
            continue
        rs = [r for r in h.responses if r.watcher == spec.watcher]
        if any(r.compact_revision for r in rs):
            continue
        seen = max((r.header_revision if r.progress else 0 for r in rs), default=0)
        seen = max([seen] + [e.mod_revision for r in rs for e in r.events])
        if spec.start_revision == 1 and seen >= top:
            return True
    return False


def union(a: list[Span], b: list[Span]) -> list[Span]:
    out: list[Span] = []
    for lo, hi in sorted(a + b):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def intersect(a: list[Span], b: list[Span]) -> list[Span]:
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def complement(a: list[Span]) -> list[Span]:
    out: list[Span] = []
    start: float = 0
    for lo, hi in a:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start != INF:
        out.append((start, INF))
    return out


def group_by(items: list[Op], key: str) -> dict[object, list[Op]]:
    out: dict[object, list[Op]] = defaultdict(list)
    for it in items:
        out[getattr(it, key)].append(it)
    return out
