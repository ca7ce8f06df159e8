"""etcd 3.4's auto-compaction timing rules (v3compactor/periodic.go, revision.go) against a fake clock.

The fake clock's `sleep` advances time at once; the store's revision is the clock's whole seconds, so each
compacted revision says exactly when it was sampled.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trikv.actors.autocompact import Periodic, Revision, policy
from trikv.api import errors

MIN = 60.0
HOUR = 3600.0


class Done(Exception):
    """The fake clock ran past the end of the scenario."""


class FakeClock:
    def __init__(self, end: float) -> None:
        self.t = 0.0
        self.end = end

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        if self.t > self.end + 1e-6:
            raise Done


class Store:
    """Revision = whole seconds of the clock; records (time, revision) of every compaction."""

    def __init__(self, clock: FakeClock, fail: Callable[[float], bool] = lambda t: False) -> None:
        self.clock = clock
        self.fail = fail
        self.calls: list[tuple[float, int]] = []
        self.done: list[tuple[float, int]] = []

    def revision(self) -> int:
        return int(self.clock.now())

    async def compact(self, rev: int) -> None:
        t = round(self.clock.now(), 3)
        self.calls.append((t, rev))
        if self.fail(t):
            raise errors.TimeoutError_()
        self.done.append((t, rev))


async def run(p: Periodic | Revision) -> None:
    with pytest.raises(Done):
        await p.run()


async def test_periodic_one_hour() -> None:
    """1h: a sample every 6 minutes; the first compaction after one hour at the revision of start, then
    hourly at the oldest of the 11 samples kept."""
    clock = FakeClock(3 * HOUR)
    s = Store(clock)
    await run(Periodic(HOUR, s.revision, s.compact, lambda: True, clock))
    assert s.done == [(3600.0, 0), (7200.0, 3240), (10800.0, 6840)]


async def test_periodic_short_retention() -> None:
    """30 s: samples every 3 s, compaction every 30 s, each at the revision of about 30 s before."""
    clock = FakeClock(95.0)
    s = Store(clock)
    p = Periodic(30.0, s.revision, s.compact, lambda: True, clock)
    assert (p.retry_interval, p.retentions) == (3.0, 11)
    await run(p)
    assert s.done == [(30.0, 0), (60.0, 27), (90.0, 57)]


async def test_periodic_longer_than_an_hour() -> None:
    """2h: the first compaction waits the whole 2h, later ones come every hour (compact interval capped at
    1h, samples every 6 minutes, 21 kept: the oldest is about 2 hours old)."""
    clock = FakeClock(4 * HOUR)
    s = Store(clock)
    p = Periodic(2 * HOUR, s.revision, s.compact, lambda: True, clock)
    assert (p.retry_interval, p.retentions) == (360.0, 21)
    await run(p)
    assert s.done == [(7200.0, 0), (10800.0, 3240), (14400.0, 6840)]


async def test_periodic_pauses_on_followers() -> None:
    """Only the leader compacts; samples go on meanwhile, so a new leader compacts at once with an old one."""
    clock = FakeClock(105.0)
    s = Store(clock)
    await run(Periodic(30.0, s.revision, s.compact, lambda: clock.now() >= 70.0, clock))
    assert s.done == [(72.0, 39), (102.0, 69)]  # the first sample tick after 70 s


async def test_periodic_failure_is_retried_at_the_next_sample() -> None:
    clock = FakeClock(70.0)
    s = Store(clock, fail=lambda t: t in (30.0, 33.0))
    await run(Periodic(30.0, s.revision, s.compact, lambda: True, clock))
    assert s.calls[:3] == [(30.0, 0), (33.0, 0), (36.0, 3)]  # the window slides on while retrying
    assert s.done == [(36.0, 3), (66.0, 33)]


async def test_periodic_compacted_counts_as_success() -> None:
    clock = FakeClock(65.0)
    s = Store(clock)

    async def compacted(rev: int) -> None:
        await s.compact(rev)
        raise errors.CompactedError()

    p = Periodic(30.0, s.revision, compacted, lambda: True, clock)
    await run(p)
    assert p.compacted == [0, 27]  # a success each time: the next waits a whole interval


async def test_revision_mode() -> None:
    """Every 5 minutes: current revision - retention; not when <= 0 or the same as the last one."""
    clock = FakeClock(1500.0)
    s = Store(clock)
    revs = iter([5, 1500, 1500, 2000, 2500])
    r = Revision(1000, lambda: next(revs), s.compact, lambda: True, clock)
    await run(r)
    assert s.done == [(600.0, 500), (1200.0, 1000), (1500.0, 1500)]


async def test_revision_mode_only_on_the_leader_and_retries() -> None:
    clock = FakeClock(40.0)
    s = Store(clock, fail=lambda t: t == 20.0)
    r = Revision(10, s.revision, s.compact, lambda: clock.now() >= 20.0, clock, interval=10.0)
    await run(r)
    assert s.calls == [(20.0, 10), (30.0, 20), (40.0, 30)]
    assert r.compacted == [20, 30]


def test_policy_from_configuration() -> None:
    async def compact(rev: int) -> None: ...

    def rev() -> int:
        return 1

    assert policy(None, rev, compact, lambda: True) is None
    p = policy(("periodic", 1800.0), rev, compact, lambda: True)
    assert isinstance(p, Periodic) and p.period == 1800.0
    r = policy(("revision", 1000.0), rev, compact, lambda: True, revision_interval=2.0)
    assert isinstance(r, Revision) and (r.retention, r.interval) == (1000, 2.0)


def test_revision_interval_knob_is_test_only() -> None:
    """Production reads nothing unless a test exported the variable; a bad value is one clear error."""
    from trikv.actors.upkeep import REVISION_INTERVAL_ENV, UpkeepSettings
    from trikv.api.errors import ConfigError

    assert UpkeepSettings.from_environ({}).revision_interval == 300.0  # etcd's revInterval
    assert UpkeepSettings.from_environ({REVISION_INTERVAL_ENV: "0.5"}).revision_interval == 0.5
    for bad in ("abc", "0", "-1"):
        with pytest.raises(ConfigError, match=REVISION_INTERVAL_ENV):
            UpkeepSettings.from_environ({REVISION_INTERVAL_ENV: bad})
