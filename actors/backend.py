"""The backend: the page file's one writer, driven in order by the apply loop (etcd's apply + backend).

Committed entries go into one open page-file transaction (etcd's backend batching) that is committed every
`BATCH_INTERVAL` or `BATCH_LIMIT` entries in a worker thread; the WAL already holds them durably, and a
restart re-applies what the page file lacks. Reads go through the open batch, so they see every applied
entry; during a commit they wait only while the worker thread lays the new pages out in memory (the page
file is not thread-safe), not while it writes and fsyncs them: then they read the commit being written.

The writer lock orders the page file's writers: the apply loop holds it while a batch is open, the Compactor
takes it between batches for one step of physical compaction (trio's Lock is fair, so neither starves).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import trio

from trikv.actors.apply import Applier, ApplyOutcome
from trikv.actors.events import Pending, ToThread, Waiters, to_thread
from trikv.actors.logfields import SLOW_APPLY, go_duration, member_fields
from trikv.actors.metrics import MemberMetrics
from trikv.actors.snapstream import install_received, received_file
from trikv.api import rpc
from trikv.api.raftpb import Snapshot
from trikv.api.records import ConfChange, ConfState, Entry
from trikv.api.watch import Event
from trikv.storage import faults
from trikv.storage.mvcc import ApplyBatch, KVStore
from trikv.storage.pagefile import PageFile

log = logging.getLogger("trikv.backend")

BATCH_INTERVAL = 0.1  # seconds an applied entry may wait in the open batch
BATCH_LIMIT = 10000  # entries per batch


class Backend:
    """Owns the page file, the MVCC store, the Applier and the open batch; `applied` is its progress."""

    def __init__(
        self,
        pagefile: PageFile,
        kv: KVStore,
        applier: Applier,
        waiters: Waiters,
        *,
        applied: int,
        run_sync: ToThread[Any] = to_thread,
    ) -> None:
        self.pagefile = pagefile
        self.kv = kv
        self.applier = applier
        self.waiters = waiters
        self.applied = applied
        self._run_sync = run_sync
        self._batch: ApplyBatch | None = None
        self._batch_started = 0.0
        self._batch_entries = 0
        self._writer = trio.Lock()
        self._busy: trio.Event | None = None  # set while a worker thread writes the page file
        self._apply_waiters: list[tuple[int, Pending]] = []
        # Told after every durable commit / when a compaction was scheduled (the Snapshotter, the Compactor).
        self.on_commit: Callable[[int, ConfState | None], None] = lambda index, cs: None
        self.on_compaction_scheduled: Callable[[], None] = lambda: None
        self.metrics: MemberMetrics | None = None  # set by the Node
        # Sees each applied batch before its answers go out (the quota check at apply may change them).
        self.after_apply: Callable[[ApplyOutcome], None] = lambda outcome: None
        # Told after a snapshot install replaced the page file (the LeaseManager rebuilds its table from it).
        self.on_install: Callable[[KVStore], None] = lambda kv: None
        # The watch hub: each applied batch's events (never awaited), and "a snapshot replaced the store".
        self.on_events: Callable[[list[Event], int], None] = lambda events, revision: None
        self.on_installed: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ apply (the apply loop)

    async def apply(
        self, entries: Sequence[Entry], apply_conf_change: Callable[[ConfChange], ConfState]
    ) -> ApplyOutcome:
        batch = await self._open_batch()
        self._batch_entries += len(entries)
        compaction_before = self.kv.compact_revision
        t0 = time.perf_counter()
        if faults.ACTIVE is not None:
            faults.ACTIVE.point("apply.before")
        try:
            outcome = self.applier.apply(batch, entries, apply_conf_change)
        except BaseException:
            # A bug mid-entry: never let shutdown commit half an entry; the WAL replays the whole batch.
            self._batch = None
            batch.rollback()
            self._writer.release()
            raise
        if faults.ACTIVE is not None:
            faults.ACTIVE.point("apply.after")
        took = time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.apply_duration.observe(took)
        if took > SLOW_APPLY:
            self._slow_apply(took, len(entries))
        self.on_events(batch.take_events(), batch.revision)
        self.after_apply(outcome)
        if outcome.last_index:
            self.applied = outcome.last_index
        for cc_id in outcome.conf_change_ids:
            self.waiters.resolve_conf_change(cc_id)
        for a in outcome.applied:
            if a.request.member_id == self.applier.self_id:
                self.waiters.resolve(a.request.request_id, a.response)
        if self.kv.compact_revision != compaction_before:
            self.on_compaction_scheduled()
        self._release_reads()
        return outcome

    def _slow_apply(self, took: float, entries: int) -> None:
        """etcd's warning (and etcd_server_slow_apply_total) for an apply above 100 ms."""
        if self.metrics is not None:
            self.metrics.slow_apply.inc()
        fields = member_fields(
            self.applier.self_id, took=go_duration(took), expected_duration=go_duration(SLOW_APPLY), entries=entries
        )
        log.warning("apply request took too long", extra=fields)

    async def _open_batch(self) -> ApplyBatch:
        if self._batch is None:
            await self._writer.acquire()
            self._batch = self.kv.write()
            self._batch_started = trio.current_time()
            self._batch_entries = 0
        return self._batch

    def commit_deadline(self) -> float:
        """When the open batch must be committed (inf with none open)."""
        return self._batch_started + BATCH_INTERVAL if self._batch is not None else math.inf

    def commit_due(self) -> bool:
        # Compared with commit_deadline() itself: a loop sleeping until that deadline must find the batch due.
        return self._batch is not None and (
            self._batch_entries >= BATCH_LIMIT or trio.current_time() >= self.commit_deadline()
        )

    async def commit(self) -> None:
        """Commit the open batch in a worker thread, then tell the Snapshotter. Reads wait only while the new
        pages are laid out in memory (CPU, under the GIL anyway), never for the writes and fsyncs: from then on
        they read the committed state, which holds the whole batch (storage/pagefile.py, WriteTxn.prepare)."""
        batch = self._batch
        if batch is None:
            return
        t0 = time.perf_counter()
        try:
            try:
                finish = await self._in_thread(batch.prepare_commit)
            finally:
                self._batch = None  # reads: the store's state (the prepared commit), or it failed (raises)
            if faults.ACTIVE is not None:  # the commit failpoints run in the worker thread (a stall is a slow disk)
                finish = functools.partial(_finish_faulty, finish)
            await self._run_sync(finish)
            if self.metrics is not None:
                self.metrics.backend_commit.observe(time.perf_counter() - t0)
        finally:
            self._writer.release()
        if self.kv.compact_revision > self.kv.finished_compact_revision:
            self.on_compaction_scheduled()  # the store's compact revision moves at commit, not at apply
        self.on_commit(self.kv.consistent_index, self.applier.conf_state())

    def commit_now(self) -> None:
        """At shutdown: what was applied is in the WAL anyway; this only saves replay time."""
        if self._batch is not None:
            batch, self._batch = self._batch, None
            batch.commit()

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        self._busy = trio.Event()
        try:
            return await self._run_sync(fn)
        finally:
            self._busy.set()
            self._busy = None

    async def exclusive(self, fn: Callable[[], Any]) -> Any:
        """Run a page-file writer step (physical compaction) between batches, in a worker thread."""
        async with self._writer:
            return await self._in_thread(fn)

    # ------------------------------------------------------------------ snapshots

    async def install(self, snap: Snapshot, stamp: Callable[[KVStore], None]) -> None:
        """A follower received the leader's page file: install it in place of ours."""
        log.info("installing snapshot at index %d (%d bytes)", snap.meta.index, len(snap.data))
        await self.commit()
        if faults.ACTIVE is not None:
            faults.ACTIVE.point("snapshot.install.before")
        if snap.data:
            async with self._writer:
                self.kv.close()
                received = received_file(self.pagefile.path, snap.data)
                if received is None:
                    self.pagefile.replace_from(io.BytesIO(snap.data))  # verifies, installs and reloads in place
                    self.kv = KVStore(self.pagefile)
                else:  # streamed to disk (actors/snapstream.py): install it off the event loop, reads wait
                    self.kv = await self._in_thread(functools.partial(_install_file, self.pagefile, received))
                stamp(self.kv)
                lessor = self.applier.lessor
                self.applier = type(self.applier)(self.kv, self.applier.self_id)
                self.applier.lessor = lessor
                self.on_install(self.kv)
        if faults.ACTIVE is not None:
            faults.ACTIVE.point("snapshot.install.after")
        self.applied = max(self.applied, snap.meta.index)
        self._release_reads()
        self.on_installed()

    def snapshot_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.pagefile.write_snapshot(buf)
        return buf.getvalue()

    # ------------------------------------------------------------------ reads

    def wait_applied(self, index: int, pending: Pending) -> None:
        if index <= self.applied:
            pending.resolve(index)
        else:
            self._apply_waiters.append((index, pending))

    def _release_reads(self) -> None:
        if not self._apply_waiters:
            return
        keep = []
        for index, w in self._apply_waiters:
            if index <= self.applied:
                w.resolve(index)
            else:
                keep.append((index, w))
        self._apply_waiters = keep

    @contextlib.contextmanager
    def applied_view(self) -> Iterator[tuple[Any, int, int]]:
        """(reader, revision, compact revision) of everything applied: the open batch's transaction (it sees
        the batch's writes), else a read transaction of the last commit. Use it synchronously, after
        `settled()`: no worker thread may write the page file meanwhile."""
        if self._batch is not None:
            yield self._batch.reader(), self._batch.revision, self._batch.compact_revision
        else:
            with self.pagefile.read() as rx:
                yield rx, self.kv.current_revision, self.kv.compact_revision

    async def settled(self) -> None:
        """Returns when no worker thread writes the page file: a synchronous read of it may follow."""
        while self._busy is not None:
            await self._busy.wait()

    async def range(self, req: rpc.RangeRequest) -> rpc.RangeResponse:
        """Reads see every applied entry: through the open batch if there is one (etcd's read buffer)."""
        while self._busy is not None:
            await self._busy.wait()
        if self._batch is not None:
            return self._batch.range(req)
        return self.kv.range(req)

    async def history(
        self, lo: int, hi: int, key: bytes, range_end: bytes, limit: int, prev_kv: bool
    ) -> tuple[list[Event], int, int]:
        """(events, last revision read, compact revision) of history lo..hi, as `range` reads."""
        while self._busy is not None:
            await self._busy.wait()
        if self._batch is not None:
            events, last = self._batch.history(lo, hi, key, range_end, limit, prev_kv)
            return events, last, self._batch.compact_revision
        events, last = self.kv.history(lo, hi, key, range_end, limit, prev_kv)
        return events, last, self.kv.compact_revision

    @property
    def revision(self) -> int:
        return self._batch.revision if self._batch is not None else self.kv.current_revision

    # ------------------------------------------------------------------ maintenance (snapshot streams, defrag)

    @contextlib.asynccontextmanager
    async def writes_paused(self) -> AsyncIterator[None]:
        """No page-file writer runs inside (the open batch was committed first): the last commit is the
        whole applied state and stays the file's state; reads go on. Snapshot streams open here, online
        defrag copies here (the apply loop's next batch and compaction steps wait)."""
        async with self._writer:
            yield

    async def run_in_worker(self, fn: Callable[[], Any]) -> Any:
        """Blocking work that does not write the page file (reads go on meanwhile), off the event loop."""
        return await self._run_sync(fn)

    def close(self) -> None:
        try:
            self.commit_now()
        except Exception:
            log.exception("could not commit the last page-file batch (the WAL replays it)")
        for closer in (self.kv, self.pagefile):
            try:
                closer.close()
            except Exception:  # closing after a failure must not mask it
                log.exception("error while closing storage")


def _finish_faulty(finish: Callable[[], None]) -> None:
    if faults.ACTIVE is not None:
        faults.ACTIVE.point("backend.commit.before")
    finish()
    if faults.ACTIVE is not None:
        faults.ACTIVE.point("backend.commit.after")


def _install_file(pf: PageFile, path: str) -> KVStore:
    install_received(pf, path)
    return KVStore(pf)


__all__ = ["BATCH_INTERVAL", "BATCH_LIMIT", "Backend"]
