"""The apply loop actor: applies committed entries through the Backend in its own task (etcd's apply goroutine).

The Raft loop hands each Ready's committed entries over and goes on: a slow apply, a page-file commit in a
worker thread, a physical-compaction step or an online defrag holding the Backend's writer lock never stalls
heartbeats, votes or appends. Order is the queue's: entries and snapshot installs are applied exactly in
the order the Raft loop submitted them. Two things the Raft loop waits for, as etcd's raftNode does:
a batch holding a conf change (Raft's conf state must move before the next Ready) and a snapshot install
(the WAL records the snapshot only once the page file holds it).

The queue holds at most `QUEUE_LIMIT` submissions; beyond that the Raft loop waits (backpressure). The
backlog in entries is bounded anyway by the proposers' rule (kv.MAX_APPLY_BACKLOG: no new proposal while
committed - applied > 5,000 on the member that proposes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import attrs
import trio

from trikv.actors.backend import Backend
from trikv.actors.events import RaftStatus
from trikv.api.raftpb import Snapshot
from trikv.api.records import ConfChange, ConfState, Entry, EntryType
from trikv.storage.mvcc import KVStore

log = logging.getLogger("trikv.applyloop")

QUEUE_LIMIT = 1024  # submissions (one per Ready) waiting to be applied


@attrs.frozen
class _Apply:
    entries: Sequence[Entry]
    done: trio.Event | None  # set once applied, when the Raft loop waits for it


class _CommitDue:
    """The commit timer's marker: the open batch may be due."""


_COMMIT = _CommitDue()


@attrs.frozen
class _Install:
    snap: Snapshot
    stamp: Callable[[KVStore], None]
    done: trio.Event


class ApplyLoop:
    def __init__(
        self,
        backend: Backend,
        status: RaftStatus,
        *,
        apply_conf_change: Callable[[ConfChange], ConfState],
        on_conf_changed: Callable[[], None],
        on_removed: Callable[[], None],
    ) -> None:
        self.backend, self.status = backend, status
        self._apply_conf_change = apply_conf_change
        self._on_conf_changed, self._on_removed = on_conf_changed, on_removed
        self._send, self._recv = trio.open_memory_channel[_Apply | _Install | _CommitDue](QUEUE_LIMIT)
        self._batch_open = trio.Event()  # the loop saw a batch open: the commit timer arms

    # -- the Raft loop's side
    async def submit(self, entries: Sequence[Entry]) -> None:
        """Queue committed entries; returns at once unless they hold a conf change (then once applied)."""
        done = trio.Event() if any(e.type == EntryType.CONF_CHANGE for e in entries) else None
        try:
            self._send.send_nowait(_Apply(entries, done))  # no scheduler pass while the queue has room
        except trio.WouldBlock:
            await self._send.send(_Apply(entries, done))
        if done is not None:
            await done.wait()

    async def install(self, snap: Snapshot, stamp: Callable[[KVStore], None]) -> None:
        """Install a snapshot after everything submitted before it; returns once the page file holds it."""
        done = trio.Event()
        await self._send.send(_Install(snap, stamp, done))
        await done.wait()

    def backlog(self) -> int:
        return self._send.statistics().current_buffer_used

    # -- the loop
    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._commit_timer)
            await self._apply_items()

    async def _apply_items(self) -> None:
        backend = self.backend
        while True:
            # The wait has no deadline: the commit timer puts a marker in the queue when the open batch is due
            # (a deadline scope per wait cost more than the rest of the wait). An item, once taken, is handled
            # to the end (a cancelled snapshot install left the Raft loop waiting for it forever).
            item = await self._recv.receive()
            if not isinstance(item, _CommitDue):
                await self._handle(item)
            if backend.commit_due():
                await backend.commit()
            elif backend.commit_deadline() != math.inf:
                self._batch_open.set()

    async def _commit_timer(self) -> None:
        """One sleep per batch (etcd's backend commits on its own 100 ms timer too)."""
        backend = self.backend
        while True:
            await self._batch_open.wait()
            self._batch_open = trio.Event()
            deadline = backend.commit_deadline()
            if deadline == math.inf:
                continue  # committed meanwhile (BATCH_LIMIT)
            await trio.sleep_until(deadline)
            try:
                self._send.send_nowait(_COMMIT)
            except trio.WouldBlock:
                pass  # a full queue: the loop checks commit_due() after every item it takes anyway

    async def _handle(self, item: _Apply | _Install) -> None:
        backend = self.backend
        if isinstance(item, _Install):
            await backend.install(item.snap, item.stamp)
            self.status.applied = backend.applied
            item.done.set()
            return
        outcome = await backend.apply(item.entries, self._apply_conf_change)
        self.status.applied = backend.applied
        if outcome.conf_changed:
            self._on_conf_changed()
        if outcome.removed_self:
            self._on_removed()
        if item.done is not None:
            item.done.set()


__all__ = ["QUEUE_LIMIT", "ApplyLoop"]
