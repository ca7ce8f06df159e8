"""Lease safety and liveness, judged from the client's clock with every doubt resolved toward "correct".

Safety: a key attached to lease L is not deleted by expiry while the last acknowledged keep-alive (or the
grant) for L was sent less than its TTL ago. The deletion happened no later than the first watcher received
its DELETE event, so "received < sent + TTL" proves the lease died early however busy the machine was.
Liveness: once keep-alives stop and nobody revokes L, its keys are deleted within TTL + 2 election timeouts
+ the revoke queueing allowance (+ the watch delivery allowance), counted from the last keep-alive's answer;
a fault during that window restarts the count at the fault's end. Under a clock fault (a member's lessor
clock skewed on purpose) a TTL may legitimately end early by the client's clock: safety is not judged there.

History params (History.params): election_timeout_s (1.0), revoke_allowance_s (1.0), watch_latency_s (1.0),
lease_slack_s (0.0: subtracted from every TTL, for clock-rate faults that are meant to shorten leases).
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

from trikv.tools.robustness.check_model import INF, CheckResult, Write, Writes
from trikv.tools.robustness.history import History, Op
from trikv.tools.robustness.minimize import minimize_history

NAME = "lease"


def check_lease(h: History, budget_s: float = 10.0, *, minimize: bool = True) -> CheckResult:
    deadline = time.monotonic() + budget_s
    res = CheckResult(NAME, ok=True)
    p = h.params
    et = float(p.get("election_timeout_s", 1.0))
    allowance = float(p.get("revoke_allowance_s", 1.0)) + float(p.get("watch_latency_s", 1.0))
    slack = float(p.get("lease_slack_s", 0.0))
    ws = Writes.build(h)
    grants = {op.lease: op for op in h.ops if op.kind == "lease_grant" and op.ok and op.lease is not None}
    by_lease: dict[int, list[Op]] = defaultdict(list)
    for op in h.ops:
        if op.lease is not None and op.kind != "lease_grant":
            by_lease[op.lease].append(op)
    deleted_at: dict[tuple[str, int], float] = {}  # (key, revision) -> first DELETE event received
    for r in h.responses:
        for e in r.events:
            if e.type == "DELETE":
                at = (e.key, e.mod_revision)
                deleted_at[at] = min(deleted_at.get(at, INF), r.received)
    end = max([r.received for r in h.responses] + [op.complete or op.invoke for op in h.ops], default=0.0)
    client_deletes = [op for op in h.ops if op.kind == "delete" and op.ok is not False]

    for lease, grant in grants.items():
        if time.monotonic() > deadline:
            res.ok, res.undecided = False, True
            res.violations.append(f"undecided: no verdict within the {budget_s:g} s budget")
            return res
        ops = by_lease.get(lease, [])
        ttl = float(grant.ttl or 0)
        alive: list[tuple[float, float, Op]] = [(grant.invoke, ttl, grant)]  # (sent, ttl) proven refreshes
        for op in ops:
            if op.kind == "lease_keepalive" and op.ok and (op.ttl is None or op.ttl > 0):
                alive.append((op.invoke, float(op.ttl if op.ttl is not None else ttl), op))
        revokes = [op for op in ops if op.kind == "lease_revoke" and op.ok is not False]
        attached = [op for op in ops if op.kind == "put" and op.ok and op.revision is not None]
        for put in attached:
            assert put.revision is not None
            nxt = next_write(ws, put.key, put.revision)
            expiry = None  # (revision, received) of the delete that ended this attachment, if no client did
            if nxt is not None and nxt.value is None and nxt.op is None:
                got = deleted_at.get((put.key, nxt.rev), INF)
                by_client = any(
                    d.key == put.key and d.invoke < got and (d.ok is None or d.revision == nxt.rev)
                    for d in client_deletes
                )
                by_revoke = any(rv.invoke < got for rv in revokes)
                if not by_client and not by_revoke:
                    expiry = (nxt.rev, got)
            # Safety: deleted (by time `got`) while a refresh sent at `sent` still covered it.
            if expiry is not None:
                rev, got = expiry
                for sent, t, why in alive:
                    if got < sent + t - slack and not skewed(h, sent, got):
                        res.add(
                            "lease-early",
                            f"lease {lease}: {put.key!r} deleted at revision {rev}, seen at {got:.3f}, but op "
                            f"{why.id} ({why.kind}) sent at {sent:.3f} kept it alive until {sent + t:.3f}",
                            (put.key,),
                            why.id,
                        )
                        res.ops.add(put.id)
                        break
            # Liveness: no revoke, keep-alives ended, the key still attached: deleted by the deadline.
            if revokes or (nxt is not None and expiry is None):
                continue
            last = max(
                [grant.complete or grant.invoke]
                + [
                    (op.complete if op.complete is not None else op.invoke + ttl)
                    for op in ops
                    if op.kind == "lease_keepalive"
                ]
            )
            due = last + ttl + 2 * et + allowance
            for f in sorted(h.faults, key=lambda f: f.at):
                if last - ttl <= f.at <= due:
                    due = max(due, (f.healed if f.healed is not None else f.at) + ttl + 2 * et + allowance)
            seen = expiry[1] if expiry is not None else INF
            if seen > due and end > due and watched(h, put.key, due):
                res.add(
                    "lease-late",
                    f"lease {lease} (ttl {ttl:g} s): last keep-alive answered at {last:.3f}, but {put.key!r} "
                    f"was {'not deleted' if seen == INF else f'deleted only at {seen:.3f}'} by {due:.3f}",
                    (put.key,),
                    put.id,
                )
    if not res.ok and minimize:
        res.minimal = minimize_history(h, res, check_lease, max(0.0, deadline - time.monotonic()))
    return res


def next_write(ws: Writes, key: str, rev: int) -> Write | None:
    """The first write to `key` after revision `rev`."""
    revs = ws.revs.get(key, [])
    i = bisect.bisect_right(revs, rev)
    return ws.by_key[key][i] if i < len(revs) else None


def skewed(h: History, start: float, end: float) -> bool:
    """A clock fault (a member's lessor or ticker offset or rate) overlapped [start, end]: the leader's
    clock was not the client's, so a TTL measured on it may end early; safety is not judged there."""
    return any(
        f.kind == "clock" and f.at <= end and (f.healed is None or f.healed >= start) for f in h.faults
    )


def watched(h: History, key: str, until: float) -> bool:
    """Some watcher covering `key` was streaming and not cancelled by `until` (a gap is check_watch's)."""
    live = {w.watcher for w in h.watches if key.startswith(w.prefix)}
    cancelled = {r.watcher for r in h.responses if (r.canceled or r.compact_revision) and r.received <= until}
    return bool(live - cancelled)
