"""Watch guarantees as issue 11 defines them, per watcher.

ordered (revisions strictly increase across responses, events of a txn in its put order), unique (no event
twice), atomic (one revision's events in one response), reliable (between its start and the last revision it
saw, every event under its prefix that an acknowledged write or another watcher shows is there), resumable (a
resume from r delivers nothing below r and skips nothing), bookmarkable (a progress response at R comes after
every event <= R), compacted responses only for a start below the compaction, and every acknowledged put's
revision equals its event's mod_revision.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable

from trikv.tools.robustness.check_model import CheckResult
from trikv.tools.robustness.history import Event, History, WatchResponse
from trikv.tools.robustness.minimize import minimize_history

NAME = "watch"
Key = tuple[int, str, str]  # (revision, type, key): one event's identity


def expected_events(h: History) -> dict[int, dict[str, str]]:
    """revision -> key -> event type, from acknowledged writes and from every watcher's events."""
    out: dict[int, dict[str, str]] = defaultdict(dict)
    for op in h.ops:
        if not op.ok or op.revision is None:
            continue
        if op.kind == "put":
            out[op.revision][op.key] = "PUT"
        elif op.kind == "delete" and op.deleted:
            out[op.revision][op.key] = "DELETE"
        elif op.kind == "txn" and op.succeeded:
            for k, _ in op.puts:
                out[op.revision][k] = "PUT"
    for r in h.responses:
        for e in r.events:
            out[e.mod_revision].setdefault(e.key, e.type)
    return out


def check_watch(h: History, budget_s: float = 10.0, *, minimize: bool = True) -> CheckResult:
    deadline = time.monotonic() + budget_s
    res = CheckResult(NAME, ok=True)
    expected = expected_events(h)
    revs = sorted(expected)
    put_rev = {op.value: op.revision for op in h.ops if op.kind == "put" and op.ok and op.value is not None}
    txn_order = {
        op.revision: [k for k, _ in op.puts]
        for op in h.ops
        if op.kind == "txn" and op.ok and op.succeeded and op.puts
    }
    compacted = max(
        (int(f.detail) for f in h.faults if f.kind == "compact" and f.detail.isdigit()), default=None
    )
    streams: dict[int, list[WatchResponse]] = defaultdict(list)
    for r in h.responses:
        streams[r.watcher].append(r)
    resumes = defaultdict(list)
    for rs in h.resumes:
        resumes[rs.watcher].append(rs)
    for spec in h.watches:
        if time.monotonic() > deadline:
            res.ok, res.undecided = False, True
            res.violations.append(f"undecided: no verdict within the {budget_s:g} s budget")
            return res
        w = spec.watcher
        stream = streams.get(w, [])  # in the order received (the runner appends as they arrive)
        pending = sorted(resumes.get(w, []), key=lambda r: r.at)

        def bad(kind: str, msg: str, e: Event | None = None, w: int = w, prefix: str = spec.prefix) -> None:
            res.add(kind, f"watcher {w} ({prefix!r}): {msg}", (e.key,) if e else ())
            res.watchers.add(w)

        start = spec.start_revision
        last = 0  # last revision delivered
        delivered: set[Key] = set()
        seen_revs: dict[int, int] = {}  # revision -> index of the response that carried it
        ranges: list[tuple[int, int]] = []  # [from, to] revisions this watcher is accountable for
        since = start if start > 0 else None
        done = False
        for n, r in enumerate(stream):
            while pending and pending[0].at <= r.received:
                rs = pending.pop(0)
                if since is not None:
                    ranges.append((since, last))
                nxt = last + 1 if last > 0 else since
                if rs.start_revision <= 0:
                    bad("resume", f"resumed at {rs.at:.3f} from revision {rs.start_revision}, not a revision")
                elif nxt is not None and rs.start_revision > nxt:
                    bad("resume", f"resumed from {rs.start_revision}, but the next revision due was {nxt}")
                since = rs.start_revision if rs.start_revision > 0 else None
                done = False
            if r.created and since is None:
                since = r.header_revision + 1
            if r.compact_revision:
                want = max(last + 1, since or 0)
                if want >= r.compact_revision or (compacted is not None and r.compact_revision > compacted):
                    bad(
                        "compacted",
                        f"compacted response at {r.compact_revision} for a watch needing revision {want}",
                    )
                done = True
                continue
            if r.canceled:
                done = True
            prev_rev = 0
            order: list[str] = []
            for e in r.events:
                if done:
                    bad("after-cancel", f"event at {e.mod_revision} after its watch was cancelled", e)
                k = (e.mod_revision, e.type, e.key)
                if k in delivered:
                    bad("duplicate", f"{e.type} {e.key!r}@{e.mod_revision} delivered twice", e)
                delivered.add(k)
                if e.mod_revision < prev_rev or (e.mod_revision != prev_rev and e.mod_revision <= last):
                    bad("order", f"event at {e.mod_revision} after revision {max(prev_rev, last)}", e)
                if e.mod_revision != prev_rev:
                    if seen_revs.get(e.mod_revision, n) != n:
                        bad("atomic", f"revision {e.mod_revision} split across responses", e)
                    seen_revs[e.mod_revision] = n
                    check_txn_order(order, txn_order.get(prev_rev), prev_rev, bad)
                    order = []
                order.append(e.key)
                if since is not None and e.mod_revision < since:
                    bad(
                        "resume",
                        f"event at {e.mod_revision} below the revision {since} it (re)started from",
                        e,
                    )
                if e.type == "PUT" and e.value in put_rev and put_rev[e.value] != e.mod_revision:
                    bad(
                        "put-revision",
                        f"put of {e.value!r} acknowledged at {put_rev[e.value]}, event says {e.mod_revision}",
                        e,
                    )
                if not e.key.startswith(spec.prefix):
                    bad("prefix", f"event for {e.key!r} outside its prefix", e)
                prev_rev = e.mod_revision
                last = max(last, e.mod_revision)
            check_txn_order(order, txn_order.get(prev_rev), prev_rev, bad)
            if r.progress and since is not None:
                missing = missing_events(expected, revs, spec.prefix, since, r.header_revision, delivered)
                if missing:
                    rev, key = missing[0]
                    bad(
                        "bookmark",
                        f"progress at {r.header_revision} before the event {key!r}@{rev} "
                        f"({len(missing)} missing)",
                    )
                last = max(last, r.header_revision)
        if since is not None:
            ranges.append((since, last))
        for lo, hi in ranges:
            missing = missing_events(expected, revs, spec.prefix, lo, hi, delivered)
            for rev, key in missing[:3]:
                bad("gap", f"never delivered {expected[rev][key]} {key!r}@{rev} (between {lo} and {hi})")
            if missing:
                res.keys.update(k for _, k in missing)
    if not res.ok and minimize:
        res.minimal = minimize_history(h, res, check_watch, max(0.0, deadline - time.monotonic()))
    return res


def check_txn_order(
    got: list[str], puts: list[str] | None, rev: int, bad: Callable[[str, str], None]
) -> None:
    """A txn's events come in its puts' order (keys outside the watcher's prefix left out)."""
    if puts is None or len(got) < 2:
        return
    want = [k for k in puts if k in set(got)]
    if got != want:
        bad("order", f"events of revision {rev} came as {got}, the txn put {want}")


def missing_events(
    expected: dict[int, dict[str, str]],
    revs: list[int],
    prefix: str,
    lo: int,
    hi: int,
    delivered: set[Key],
) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for rev in revs[bisect.bisect_left(revs, lo) : bisect.bisect_right(revs, hi)]:
        for key, typ in expected[rev].items():
            if key.startswith(prefix) and (rev, typ, key) not in delivered:
                out.append((rev, key))
    return out
