"""The Compactor actor: physical compaction of the MVCC key space, in small steps between batches.

A compaction request is a Raft entry like any write: applying it (on every member) only records the target
revision, so the answer does not wait for the deletes. The Compactor then removes the dropped revisions
`BATCH_LIMIT` keys per page-file transaction, taking the backend's writer lock between the apply loop's
batches and pausing between steps so applies and reads interleave (etcd's scheduleCompaction with its
compaction-batch-limit and compaction-sleep-interval). A compaction cut short by a crash finishes at open.

Auto-compaction (periodic/revision retention) proposes `CompactionRequest`s through the same typed
handler a client uses, so it never bypasses Raft.
"""

from __future__ import annotations

import logging

import trio

from trikv.actors.autocompact import Periodic, Revision
from trikv.actors.backend import Backend
from trikv.storage import faults

log = logging.getLogger("trikv.compactor")

BATCH_LIMIT = 1000  # etcd's compaction-batch-limit: keys deleted per page-file transaction
SLEEP_INTERVAL = 0.01  # etcd's compaction-sleep-interval: pause between steps


class Compactor:
    """Receives 'a compaction was scheduled' pokes (coalesced: one flag) and works until it is finished."""

    def __init__(self, backend: Backend, *, batch_limit: int = BATCH_LIMIT, pause: float = SLEEP_INTERVAL):
        self.backend = backend
        self.batch_limit = batch_limit
        self.pause = pause
        self._wake = trio.Event()
        self.steps = 0
        # auto-compaction-mode/retention (actors/autocompact.py), set by the Node; None: off (etcd's default)
        self.auto: Periodic | Revision | None = None

    def scheduled(self) -> None:
        """Called by the backend when an applied entry moved the compact revision (never blocks)."""
        self._wake.set()

    def _pending(self) -> bool:
        kv = self.backend.kv
        return kv.compact_revision > kv.finished_compact_revision

    def _step(self) -> bool:
        if faults.ACTIVE is not None:
            faults.ACTIVE.point("compact.step")
        kv = self.backend.kv
        done = kv.compact_step(self.batch_limit)
        if done:
            log.info("finished scheduled compaction at revision %d", kv.finished_compact_revision)
        return done

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            if self.auto is not None:
                nursery.start_soon(self.auto.run)
            await self._physical()

    async def _physical(self) -> None:
        if self._pending():  # a compaction interrupted by a restart
            self._wake.set()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._pending():
                await self.backend.exclusive(self._step)
                self.steps += 1
                await trio.sleep(self.pause)


__all__ = ["BATCH_LIMIT", "Compactor"]
