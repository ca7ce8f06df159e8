"""Auto-compaction policies (etcd 3.4's v3compactor), run by the Compactor on every member, acting on the leader.

`auto-compaction-mode: periodic` with a retention period P (`1h`, `30m`, or hours as a bare number):
every P/10 (at most 6 minutes) the current revision is recorded; the window keeps the last P/10-interval
samples (int(P / (P/10)) + 1 of them), so its oldest is the revision of about P ago. The first compaction
comes P after start, later ones every min(P, 1h) after the last success, each at the window's oldest
revision; a failure is retried at the next sample (etcd's periodic.go).

`auto-compaction-mode: revision` with a retention N: every 5 minutes (etcd's fixed revInterval; a test-only
setting shortens it) compact at current revision - N, unless that is <= 0 or the revision compacted last.

Only the leader proposes (etcd pauses the compactor on followers); samples are still taken meanwhile.
A compaction is proposed through the handlers table like a client's `CompactionRequest`, so it is a Raft
entry like any other; "required revision has been compacted" counts as success. The clock is injectable
(`Clock`) so the timing rules are unit-tested against a fake one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from trikv.api import errors

log = logging.getLogger("trikv.autocompact")

HOUR = 3600.0
RETRY_DIVISOR = 10  # etcd's retryDivisor
REVISION_INTERVAL = 300.0  # etcd's revInterval (5 minutes)


class Clock(Protocol):
    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class TrioClock:
    """The event loop's clock (trio's MockClock in in-process tests)."""

    def now(self) -> float:
        return trio.current_time()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


Compact = Callable[[int], Awaitable[object]]


async def _compact(compact: Compact, rev: int, what: str) -> bool:
    """True when the compaction at `rev` is done (also when it was compacted already)."""
    log.info("starting auto %s compaction at revision %d", what, rev)
    try:
        await compact(rev)
    except errors.CompactedError:
        pass
    except errors.EtcdError as exc:
        log.warning("failed auto %s compaction at revision %d (retrying): %s", what, rev, exc)
        return False
    log.info("completed auto %s compaction at revision %d", what, rev)
    return True


class Periodic:
    """etcd's Periodic compactor; see the module docstring."""

    def __init__(
        self,
        period: float,
        revision: Callable[[], int],
        compact: Compact,
        is_leader: Callable[[], bool],
        clock: Clock | None = None,
    ) -> None:
        self.period = period
        self.revision = revision
        self.compact = compact
        self.is_leader = is_leader
        self.clock = clock or TrioClock()
        self.compacted: list[int] = []  # revisions compacted, in order (tests, logs)
        self.compacted_at: list[float] = []  # and when (the clock's time)

    @property
    def compact_interval(self) -> float:
        return min(self.period, HOUR)

    @property
    def retry_interval(self) -> float:
        return self.compact_interval / RETRY_DIVISOR

    @property
    def retentions(self) -> int:
        return round(self.period / self.retry_interval) + 1

    async def run(self) -> None:
        clock = self.clock
        revs: list[int] = []
        last_success = clock.now()
        base = self.period  # the first compaction waits a whole period, later ones compact_interval
        while True:
            revs.append(self.revision())
            if len(revs) > self.retentions:
                del revs[0]  # revs[0] is the revision of one period ago
            await clock.sleep(self.retry_interval)
            if not self.is_leader():
                continue
            if clock.now() - last_success < base - 1e-9:
                continue
            base = self.compact_interval
            rev = revs[0]
            if await _compact(self.compact, rev, "periodic"):
                self.compacted.append(rev)
                last_success = clock.now()
                self.compacted_at.append(last_success)


class Revision:
    """etcd's Revision compactor; see the module docstring."""

    def __init__(
        self,
        retention: int,
        revision: Callable[[], int],
        compact: Compact,
        is_leader: Callable[[], bool],
        clock: Clock | None = None,
        interval: float = REVISION_INTERVAL,
    ) -> None:
        self.retention = retention
        self.revision = revision
        self.compact = compact
        self.is_leader = is_leader
        self.clock = clock or TrioClock()
        self.interval = interval
        self.compacted: list[int] = []

    async def run(self) -> None:
        prev = 0
        while True:
            await self.clock.sleep(self.interval)
            if not self.is_leader():
                continue
            rev = self.revision() - self.retention
            if rev <= 0 or rev == prev:
                continue
            if await _compact(self.compact, rev, "revision"):
                self.compacted.append(rev)
                prev = rev


def policy(
    retention: tuple[str, float] | None,
    revision: Callable[[], int],
    compact: Compact,
    is_leader: Callable[[], bool],
    *,
    clock: Clock | None = None,
    revision_interval: float = REVISION_INTERVAL,
) -> Periodic | Revision | None:
    """The policy a ServerConfig's `compaction_retention` asks for (None: auto-compaction is off)."""
    if retention is None:
        return None
    mode, amount = retention
    if mode == "revision":
        return Revision(int(amount), revision, compact, is_leader, clock, revision_interval)
    return Periodic(amount, revision, compact, is_leader, clock)


__all__ = ["REVISION_INTERVAL", "Clock", "Periodic", "Revision", "TrioClock", "policy"]
