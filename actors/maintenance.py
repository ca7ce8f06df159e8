"""Maintenance handlers: Snapshot (a stream of the page file) and Defragment (online), etcd's Maintenance API.

Snapshot: between two batches (the Backend's writer lock, so everything applied is committed) a
`PageFileSnapshot` pins the last commit; its chunks are read in worker threads and sent as
`SnapshotResponse` items while the member keeps applying and committing (the pinned pages are never
reused: the page file's pending-reader rule). The last item carries etcd's SHA-256 trailer of everything
before it, so `trikvctl snapshot save` writes a file etcd's tools would recognise by size.

Defragment: a compact copy of the page file is made in steps in worker threads while reads go on from the
old file; writes (the apply loop's next batch, compaction steps) wait for the writer lock meanwhile, then
the copy is renamed over the file. A snapshot stream running across a defrag keeps reading the old file
through its own handle and finishes with the state it started with; physical compaction resumes after.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trikv.actors.backend import Backend
from trikv.actors.events import RaftStatus
from trikv.actors.kv import Identity
from trikv.api import errors, rpc
from trikv.api.snapshot import (
    CHUNK_SIZE,
    DefragmentRequest,
    DefragmentResponse,
    SnapshotRequest,
    SnapshotResponse,
)
from trikv.storage import faults
from trikv.storage.pagecopy import CompactCopy
from trikv.storage.pagestream import PageFileSnapshot

log = logging.getLogger("trikv.maintenance")

READS_PER_THREAD_CALL = 32  # chunks read per worker-thread call (1 MiB)


class MaintenanceApi:
    """Typed handlers for Snapshot and Defragment (registered in the Handlers tables by the Node)."""

    def __init__(self, ident: Identity, status: RaftStatus, backend: Backend) -> None:
        self.ident, self.raft_status, self.backend = ident, status, backend
        self.defragmenting = False
        # Test-only failpoint: awaited between copy steps of a defrag (production never sets it).
        self.defrag_step_hook: Callable[[], Awaitable[None]] | None = None

    def header(self) -> rpc.ResponseHeader:
        return rpc.ResponseHeader(
            self.ident.cluster_id, self.ident.member_id, self.backend.revision, self.raft_status.term
        )

    # ------------------------------------------------------------------ snapshot

    async def open_snapshot(self) -> PageFileSnapshot:
        """Pin the state with everything applied so far (between batches: the open one is committed)."""
        async with self.backend.writes_paused():
            return PageFileSnapshot(self.backend.pagefile)

    async def snapshot(
        self,
        first: SnapshotRequest,
        inbound: trio.MemoryReceiveChannel[Any],
        emit: Callable[[Any], Awaitable[None]],
    ) -> None:
        """etcd's Maintenance.Snapshot: page-file chunks, then the SHA-256 trailer in the last item."""
        snap = await self.open_snapshot()
        try:
            log.info("sending database snapshot to client (%d bytes, txid %d)", snap.size, snap.txid)
            digest = hashlib.sha256()
            total = snap.size + 32
            sent = 0
            while sent < snap.size:
                start = sent

                def read_some(start: int = start) -> list[bytes]:
                    out = []
                    off = start
                    for _ in range(READS_PER_THREAD_CALL):
                        if off >= snap.size:
                            break
                        chunk = snap.read(off, CHUNK_SIZE)
                        digest.update(chunk)
                        out.append(chunk)
                        off += len(chunk)
                    return out

                for chunk in await self.backend.run_in_worker(read_some):
                    sent += len(chunk)
                    await emit(SnapshotResponse(self.header(), total - sent, chunk))
            await emit(SnapshotResponse(self.header(), 0, digest.digest()))
            log.info("sent database snapshot to client (%d bytes)", total)
        finally:
            snap.close()

    # ------------------------------------------------------------------ defragment

    async def defragment(self, req: DefragmentRequest) -> DefragmentResponse:
        """Online defrag of this member's page file (one at a time; a second caller waits its turn)."""
        while self.defragmenting:
            await trio.sleep(0.05)
        self.defragmenting = True
        try:
            await self._defragment()
        finally:
            self.defragmenting = False
        return DefragmentResponse(self.header())

    async def _defragment(self) -> None:
        b = self.backend
        pf = b.pagefile
        async with b.writes_paused():
            before = pf.size()
            log.info("defragmenting %s (%d bytes)", pf.path, before)
            copy = await b.run_in_worker(lambda: CompactCopy(pf))
            try:
                while not await b.run_in_worker(copy.step):
                    if self.defrag_step_hook is not None:
                        await self.defrag_step_hook()
                if self.defrag_step_hook is not None:
                    await self.defrag_step_hook()
                if faults.ACTIVE is not None:  # the copy is made, not yet swapped in (in a worker: a stall)
                    await b.run_in_worker(functools.partial(faults.ACTIVE.point, "defrag.during"))
            except BaseException:
                with trio.CancelScope(shield=True):
                    await b.run_in_worker(copy.abort)
                raise
            # On the event loop: no read runs while the file is swapped.
            try:
                copy.install(pf)
            except OSError as exc:
                raise errors.InternalError() from exc
            log.info("finished defragmenting %s: %d -> %d bytes", pf.path, before, pf.size())


__all__ = ["MaintenanceApi"]
