"""The Snapshotter actor: decides when the Raft log is snapshotted and serves snapshot data to peers.

After every durable page-file commit the backend tells it the consistent index (and the conf state stored
with it). Every `snapshot_count` entries it asks the Raft loop (a `CompactLog` control event) to record a
snapshot there in the WAL, release old WAL segments (keeping `max-wals` released files) and compact the
in-memory log: the page file already holds that state durably, so a snapshot's data is the page file
itself, streamed from a pinned commit when a peer needs it (`open_snapshot`, actors/snapstream.py).
(hashicorp/raft's runSnapshots: decide, take, persist, compact; etcd's triggerSnapshot.)
"""

from __future__ import annotations

import logging

import trio

from trikv.actors.backend import Backend
from trikv.actors.events import CompactLog, Inbox
from trikv.api.records import ConfState
from trikv.storage.pagestream import PageFileSnapshot

log = logging.getLogger("trikv.snapshotter")


class Snapshotter:
    def __init__(self, inbox: Inbox, backend: Backend, *, snapshot_count: int, snapshot_index: int) -> None:
        self.inbox = inbox
        self.backend = backend
        self.snapshot_count = snapshot_count
        self.snapshot_index = snapshot_index  # the last snapshot asked for (or found at startup)
        self._latest: tuple[int, ConfState] | None = None
        self._wake = trio.Event()

    def committed(self, index: int, conf_state: ConfState | None) -> None:
        """The page file durably holds everything up to `index` (never blocks: only the latest counts)."""
        if conf_state is not None:
            self._latest = (index, conf_state)
            self._wake.set()

    def installed(self, index: int) -> None:
        """A snapshot from the leader replaced our page file: the log behind it is gone already."""
        self.snapshot_index = max(self.snapshot_index, index)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self._latest is None:
                continue
            index, cs = self._latest
            if index - self.snapshot_index >= self.snapshot_count:
                self.snapshot_index = index
                self.inbox.control(CompactLog(index, cs))

    def snapshot_bytes(self) -> bytes:
        """The page file as one message (in-process test links; real peers stream `open_snapshot`)."""
        return self.backend.snapshot_bytes()

    async def open_snapshot(self) -> PageFileSnapshot:
        """The last commit, pinned, for a peer that fell behind the log: read it in bounded chunks while
        commits go on (actors/snapstream.py); taken between batches, so it holds everything applied."""
        async with self.backend.writes_paused():
            return PageFileSnapshot(self.backend.pagefile)


__all__ = ["Snapshotter"]
