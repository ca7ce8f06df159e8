"""The global rules a per-key linearizability check misses (issue 15's "global rules").

- successful writes' revisions are unique and respect real time (A completed before B was invoked =>
  rev(A) < rev(B));
- a linearizable read's header revision >= the revision of every write acknowledged before it was invoked;
- every read, serializable ones included, returned what its key held at its header revision;
- a txn's outcome agrees with what its compared keys held at its revision;
- no acknowledged write lost: the runner's final reads (after faults healed) see, per key, the last
  acknowledged write or a later one.
"""

from __future__ import annotations

import bisect
import time

from trikv.tools.robustness.check_model import INF, CheckResult, Writes
from trikv.tools.robustness.history import History, Op
from trikv.tools.robustness.minimize import minimize_history

NAME = "rules"


def acked_writes(h: History) -> list[Op]:
    """Acknowledged ops that made a revision: puts, deletes that removed something, txns that wrote."""
    return [
        op
        for op in h.ops
        if op.ok
        and op.revision is not None
        and op.complete is not None
        and (
            op.kind == "put"
            or (op.kind == "delete" and op.deleted)
            or (op.kind == "txn" and op.succeeded and op.puts)
        )
    ]


def final_reads(h: History) -> list[Op]:
    """The runner's closing reads: marked `final`, else the trailing linearizable gets invoked after every
    other op ended (an unanswered op counts as ended at its invocation)."""
    marked = [op for op in h.ops if op.final]
    if marked:
        return marked
    ops = sorted(h.ops, key=lambda o: o.invoke)
    tail: list[Op] = []
    for op in reversed(ops):
        if op.kind != "get" or op.serializable:
            break
        tail.append(op)
    rest = ops[: len(ops) - len(tail)]
    end = max((op.complete if op.complete is not None else op.invoke for op in rest), default=0.0)
    return [op for op in tail if op.invoke > end]


def check_rules(h: History, budget_s: float = 10.0, *, minimize: bool = True) -> CheckResult:
    deadline = time.monotonic() + budget_s
    res = CheckResult(NAME, ok=True)
    ws = Writes.build(h)
    writes = acked_writes(h)

    # Unique revisions.
    owner: dict[int, Op] = {}
    for op in writes:
        assert op.revision is not None
        other = owner.setdefault(op.revision, op)
        if other is not op:
            res.add(
                "duplicate-revision",
                f"ops {other.id} and {op.id} both got revision {op.revision}",
                (*other.keys(), *op.keys()),
                op.id,
            )
            res.ops.add(other.id)

    # Real-time order: walking down the revisions, the earliest completion seen above must not precede an
    # invocation below.
    by_rev = sorted(writes, key=lambda o: o.revision or 0)
    best: Op | None = None
    for op in reversed(by_rev):
        if (
            best is not None
            and best.complete is not None
            and best.complete < op.invoke
            and best.revision != op.revision
        ):
            res.add(
                "realtime-order",
                f"op {best.id} (revision {best.revision}) completed before op {op.id} was "
                f"invoked, yet op {op.id} got the lower revision {op.revision}",
                (*best.keys(), *op.keys()),
                op.id,
            )
            res.ops.add(best.id)
        if best is None or (op.complete or 0) < (best.complete or 0):
            best = op

    # A linearizable read's header revision is at least every revision acknowledged before it started.
    by_done = sorted(writes, key=lambda o: o.complete or 0)
    done_at = [op.complete or 0 for op in by_done]
    top: list[Op] = []
    for op in by_done:
        top.append(op if not top or (op.revision or 0) > (top[-1].revision or 0) else top[-1])
    for n, op in enumerate(h.ops):
        if n % 1024 == 0 and time.monotonic() > deadline:
            res.ok, res.undecided = False, True
            res.violations.append(f"undecided: no verdict within the {budget_s:g} s budget")
            return res
        if not op.ok or op.revision is None or op.kind not in ("get", "txn", "delete"):
            continue
        i = bisect.bisect_left(done_at, op.invoke) - 1
        if not op.serializable and i >= 0 and op.revision < (top[i].revision or 0):
            w = top[i]
            res.add(
                "read-below-acked",
                f"op {op.id} ({op.kind} {op.key or list(op.keys())}) answered at revision "
                f"{op.revision}, below revision {w.revision} of op {w.id} acknowledged before it started",
                op.keys(),
                op.id,
            )
            res.ops.add(w.id)
        check_value_at_header(op, ws, res)

    # No acknowledged write lost.
    last: dict[str, Op] = {}
    for op in by_rev:
        for k in op.keys() if op.kind != "txn" else tuple(k for k, _ in op.puts):
            last[k] = op
    for op in final_reads(h):
        lw = last.get(op.key)
        if lw is None or not op.ok or ws.key_uncertain(op.key):
            continue
        if op.found and (op.got_mod_revision or 0) < (lw.revision or 0):
            res.add(
                "lost-write",
                f"final read op {op.id} saw {op.key!r} at mod_revision {op.got_mod_revision}; "
                f"op {lw.id} wrote it later, at revision {lw.revision}",
                (op.key,),
                op.id,
            )
        elif (
            not op.found
            and lw.kind != "delete"
            and held(ws, op.key, INF) is not None
            and op.key not in ws.leased
        ):
            res.add(
                "lost-write",
                f"final read op {op.id} found no {op.key!r}; op {lw.id} wrote it at revision "
                f"{lw.revision} and nothing deleted it",
                (op.key,),
                op.id,
            )
    if not res.ok and minimize:
        res.minimal = minimize_history(h, res, check_rules, max(0.0, deadline - time.monotonic()))
    return res


def held(ws: Writes, key: str, rev: float) -> str | None:
    """The value of `key` at revision `rev` (None = absent)."""
    w = ws.at(key, rev)
    return w.value if w is not None else None


def check_value_at_header(op: Op, ws: Writes, res: CheckResult) -> None:
    """A read answered at header revision H returned what its keys held at H; a txn's branch agrees with
    its compares at the revision before its own write (or at H when it wrote nothing)."""
    assert op.revision is not None
    if any(ws.key_uncertain(k) for k in op.keys()):
        return
    if op.kind == "get":
        w = ws.at(op.key, op.revision)
        had: tuple[str | None, int | None] = (
            (w.value, w.rev) if w is not None and w.value is not None else (None, None)
        )
        got = (op.got_value, op.got_mod_revision) if op.found else (None, None)
        if got[1] is None and got[0] is not None:
            had = (had[0], None)
        if had != got:
            what = "serializable get" if op.serializable else "get"
            res.add(
                "value-at-header",
                f"op {op.id} {what} {op.key!r} at revision {op.revision} returned "
                f"{got[0]!r}@{got[1]}, but the key held {had[0]!r}@{had[1]} then",
                (op.key,),
                op.id,
            )
    elif op.kind == "txn" and op.succeeded is not None:
        at = op.revision - 1 if op.succeeded and op.puts else op.revision
        state = {k: held(ws, k, at) for k, _ in op.compares}
        if all(state[k] == v for k, v in op.compares) != op.succeeded:
            res.add(
                "txn-compare",
                f"op {op.id} txn {'succeeded' if op.succeeded else 'failed'} comparing "
                f"{list(op.compares)}, but at revision {at} the keys held {state}",
                op.keys(),
                op.id,
            )
