"""The apply loop finishes every item it takes, even when the open batch's commit deadline passes meanwhile.

Found by the robustness harness (seed 50 of the 200-seed run): a restarted follower had a batch open (the
WAL's tail re-applied), a snapshot install arrived and took longer than the batch's 100 ms deadline; the
deadline's cancel scope also covered the install, cancelled it halfway, and the Raft loop waited for it
forever (alive, answering Status, applied index frozen).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import trio
from trio.testing import MockClock

from trikv.actors.apply import ApplyOutcome
from trikv.actors.applyloop import ApplyLoop
from trikv.actors.events import RaftStatus
from trikv.api.raftpb import Snapshot
from trikv.api.records import ConfState, Entry, SnapshotMeta
from trikv.storage.mvcc import KVStore

BATCH = 0.1


class SlowBackend:
    """The Backend's apply-loop surface: a batch opens on apply and is due BATCH later; an install or a
    commit takes `work` seconds of (mock) time across several checkpoints, as the real one's threads do."""

    def __init__(self, work: float) -> None:
        self.work = work
        self.applied = 0
        self.batch_since: float | None = None
        self.commits = 0
        self.installed: list[int] = []

    def commit_deadline(self) -> float:
        return math.inf if self.batch_since is None else self.batch_since + BATCH

    def commit_due(self) -> bool:
        return self.batch_since is not None and trio.current_time() >= self.commit_deadline()

    async def commit(self) -> None:
        for _ in range(4):
            await trio.sleep(self.work / 4)
        self.batch_since = None
        self.commits += 1

    async def apply(self, entries: Sequence[Entry], apply_conf_change: Any) -> ApplyOutcome:
        if self.batch_since is None:
            self.batch_since = trio.current_time()
        self.applied = entries[-1].index
        return ApplyOutcome(last_index=self.applied)

    async def install(self, snap: Snapshot, stamp: Any) -> None:
        await self.commit()  # the real install commits the open batch first
        for _ in range(4):
            await trio.sleep(self.work / 4)
        self.installed.append(snap.meta.index)
        self.applied = max(self.applied, snap.meta.index)


def _loop(backend: SlowBackend) -> ApplyLoop:
    return ApplyLoop(
        cast(Any, backend),
        RaftStatus(),
        apply_conf_change=lambda cc: ConfState(),
        on_conf_changed=lambda: None,
        on_removed=lambda: None,
    )


def _snap(index: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index=index, term=2, conf_state=ConfState()), b"")


async def test_an_install_outlasting_the_batch_deadline_completes(autojump_clock: MockClock) -> None:
    backend = SlowBackend(work=1.0)  # ten batch deadlines
    loop = _loop(backend)
    status_seen: list[int] = []

    def stamp(kv: KVStore) -> None:
        pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop.run)
        await loop.submit([Entry(term=2, index=i) for i in range(216, 220)])  # the batch opens
        await trio.sleep(BATCH / 2)
        with trio.fail_after(30):
            await loop.install(_snap(418), stamp)  # hung forever before the fix
        status_seen.append(loop.status.applied)
        await loop.submit([Entry(term=2, index=419)])  # and the loop goes on applying after it
        with trio.fail_after(30):
            while backend.applied < 419:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert backend.installed == [418]
    assert status_seen == [418]
    assert backend.commits >= 1


async def test_an_open_batch_commits_one_interval_after_it_opened_and_an_idle_loop_stays_idle(
    autojump_clock: MockClock,
) -> None:
    """The commit timer: a batch is committed once it is due even when no further entry arrives, entries that
    arrive meanwhile join it, and with nothing applied no commit is attempted."""
    backend = SlowBackend(work=0.0)
    loop = _loop(backend)
    commits_at: list[float] = []
    real_commit = backend.commit

    async def timed_commit() -> None:
        await real_commit()
        commits_at.append(trio.current_time())

    backend.commit = timed_commit  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop.run)
        t0 = trio.current_time()
        await loop.submit([Entry(term=2, index=1)])
        await trio.sleep(BATCH / 4)
        await loop.submit([Entry(term=2, index=2)])  # joins the open batch
        await trio.sleep(BATCH * 2)
        assert commits_at == [t0 + BATCH]
        await trio.sleep(BATCH * 20)  # idle: nothing to commit
        assert backend.commits == 1
        t1 = trio.current_time()
        await loop.submit([Entry(term=2, index=3)])  # a new batch, a new deadline
        await trio.sleep(BATCH * 3)
        nursery.cancel_scope.cancel()
    assert commits_at == [t0 + BATCH, t1 + BATCH]
    assert backend.applied == 3
