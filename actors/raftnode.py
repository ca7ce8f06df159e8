"""The Raft loop actor: the only task that touches the RawNode, its MemoryStorage and the WAL.

Per Ready, in etcd's order: send the leader's messages (its appends leave before its own fsync), persist
entries + hard state with ONE fsync, send the messages that had to wait for it (votes, responses: first,
they are what a leader waits for), tell Raft and the MemoryStorage what is durable, hand committed entries
to the apply loop (applyloop.py, its own task), advance. The ticker is its own small task feeding owed
ticks into the inbox.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import trio

from trikv.actors import raft
from trikv.actors.applyloop import ApplyLoop
from trikv.actors.backend import Backend
from trikv.actors.commithold import CommitHold
from trikv.actors.events import (
    CompactLog,
    ControlEvent,
    Inbox,
    InboxEvent,
    Propose,
    ProposeConfChange,
    RaftStatus,
    ReadIndexWait,
    SnapshotStatus,
    ToThread,
    TransferLeader,
    Waiters,
    to_thread,
)
from trikv.actors.identity import format_id
from trikv.actors.logfields import SLOW_FDATASYNC, go_duration, member_fields
from trikv.actors.metrics import MemberMetrics
from trikv.actors.raft import ProgressState, ProposalDropped, RawNode, StateType
from trikv.actors.reads import ReadRounds
from trikv.actors.snapshotter import Snapshotter
from trikv.api import codec, errors
from trikv.api.internal import RaftRequest
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import ConfChange, Entry, EntryType, SnapshotMeta
from trikv.storage import faults
from trikv.storage.mvcc import KVStore
from trikv.storage.wal import WAL

log = logging.getLogger("trikv.raftnode")

# etcd keeps this many entries behind a snapshot for slow followers (at most half a snapshot interval here,
# so a small snapshot-count really compacts the log).
SNAPSHOT_CATCHUP_ENTRIES = 5000
INLINE_FSYNC_BELOW = 0.0005  # seconds: WAL fsyncs faster than this run on the event loop
INLINE_FSYNC_IDLE_BELOW = 0.005  # ... and up to this long while at most one local proposal waits
DRAIN_LIMIT = 10000  # inbox events handled per loop round before the Ready is processed


class PeerSender(Protocol):
    def send(self, msgs: list[Message]) -> bool: ...  # True: some wait for the peer tasks
    def sync_members(self) -> None: ...


def well_formed(e: Entry) -> bool:
    """A forwarded proposal must carry what our own members propose, or it never enters the log."""
    if not isinstance(e.data, bytes):
        return False
    try:
        value = codec.decode(e.data) if e.data else None
    except codec.CodecError:
        return False
    if e.type == EntryType.NORMAL:
        return isinstance(value, RaftRequest)
    if e.type == EntryType.CONF_CHANGE:
        return isinstance(value, ConfChange)
    return e.type == EntryType.NOOP


class RaftNode:
    def __init__(
        self,
        raw: RawNode,
        storage: raft.MemoryStorage,
        wal: WAL,
        *,
        inbox: Inbox,
        backend: Backend,
        snapshotter: Snapshotter,
        waiters: Waiters,
        status: RaftStatus,
        new_read_ctx: Callable[[], bytes],
        stamp: Callable[[KVStore], None],
        on_removed: Callable[[], None],
        tick_seconds: float,
        election_seconds: float,
        snapshot_count: int,
        run_sync: ToThread[Any] = to_thread,
    ) -> None:
        self.raw, self.storage, self.wal = raw, storage, wal
        self.inbox, self.backend, self.snapshotter = inbox, backend, snapshotter
        self.waiters, self.status = waiters, status
        self.reads = ReadRounds(new_read_ctx, retry_after=election_seconds)
        self._stamp = stamp
        self.tick_seconds, self.snapshot_count = tick_seconds, snapshot_count
        self._run_sync = run_sync
        self.transport: PeerSender | None = None  # set by the Node once the peer actors exist
        self.metrics: MemberMetrics | None = None  # set by the Node
        self.id = raw.status().id
        # Committed entries are applied in their own task, so apply never stalls heartbeats (applyloop.py).
        self.apply_loop = ApplyLoop(
            backend,
            status,
            apply_conf_change=raw.apply_conf_change,
            on_conf_changed=self._sync_members,
            on_removed=on_removed,
        )
        self._fsync_ewma = 0.0
        self._thread_syncs = 0
        self._early_upto = 0  # only a planted bug moves it (_planted_early_apply)
        self.commit_hold = CommitHold()  # the leader's commit-only appends, held for the next append
        hs = wal.hard_state
        self._synced_term, self._synced_vote = hs.term, hs.vote

    # ------------------------------------------------------------------ loops

    async def ticker(self) -> None:
        if faults.ACTIVE is not None:  # test plugin only: ticks follow its bent clock
            await self._bent_ticker()
        interval = self.tick_seconds
        next_at = trio.current_time()
        while True:
            next_at += interval
            await trio.sleep_until(next_at)
            now = trio.current_time()
            if now - next_at > interval * 5:
                next_at = now  # we fell far behind (blocked loop): do not burst ticks
            self.inbox.tick()

    async def _bent_ticker(self) -> None:
        """The ticker on faults.ACTIVE.clock("ticker", now): a tick per interval of that clock, read in short
        real steps so a rate or offset change takes effect within a quarter interval."""
        interval = self.tick_seconds
        hooks = faults.ACTIVE
        assert hooks is not None
        next_at = hooks.clock("ticker", trio.current_time())
        while True:
            next_at += interval
            while (now := hooks.clock("ticker", trio.current_time())) < next_at:
                await trio.sleep(max(0.001, min(next_at - now, interval / 4)))
            if now - next_at > interval * 5:
                next_at = now  # far behind (a blocked loop, a jump forward): do not burst ticks
            self.inbox.tick()

    async def run(self) -> None:
        inbox, hold = self.inbox, self.commit_hold
        while True:
            if hold.due == math.inf:
                self._handle(await inbox.receive())
            else:
                first: InboxEvent | None = None
                with trio.move_on_at(hold.due):
                    first = await inbox.receive()
                if first is not None:
                    self._handle(first)
            for _ in range(DRAIN_LIMIT):
                try:
                    ev = inbox.receive_nowait()
                except trio.WouldBlock:
                    break
                self._handle(ev)
            if hold.due <= trio.current_time():
                self._send_now(hold.take_due(trio.current_time()))
            self.reads.issue(trio.current_time(), self.status.lead, self.raw.read_index)
            while self.raw.has_ready():
                await self._handle_ready()

    # ------------------------------------------------------------------ events

    def _handle(self, ev: InboxEvent) -> None:
        raw = self.raw
        if isinstance(ev, Message):
            if ev.type == MessageType.PROP and not (ev.entries and all(well_formed(e) for e in ev.entries)):
                log.error("dropping a malformed proposal forwarded by %s", format_id(ev.frm))
                return
            try:
                raw.step(ev)
            except Exception:
                log.exception("raft refused message %s from %s", ev.type.name, format_id(ev.frm))
                return
            if ev.type == MessageType.PROP and self.status.is_leader:
                self.commit_hold.forwarded(ev.frm, raw.raft.log.last_index())
        elif isinstance(ev, Propose):
            if self.status.lead == 0:
                ev.pending.resolve(errors.NoLeaderError())
                return
            try:
                raw.propose(codec.encode(ev.request))
            except ProposalDropped:
                self.waiters.requests.pop(ev.request.request_id, None)
                ev.pending.resolve(errors.NoLeaderError())
        elif isinstance(ev, ProposeConfChange):
            try:
                raw.propose_conf_change(ev.change)
                self.waiters.conf_changes[ev.change.id] = ev.pending
            except ProposalDropped:
                ev.pending.resolve(
                    errors.NoLeaderError() if self.status.lead == 0 else errors.UnhealthyError()
                )
        elif isinstance(ev, ReadIndexWait):
            self.reads.add(ev.pending)
        else:  # Wake: side-band work
            ticks, unreachable, control = self.inbox.take_side()
            for _ in range(ticks):
                raw.tick()
            for peer in unreachable:
                raw.report_unreachable(peer)
            for c in control:
                self._control(c)

    def _control(self, ev: ControlEvent) -> None:
        if isinstance(ev, SnapshotStatus):
            self.raw.report_snapshot(ev.peer, ev.ok)
        elif isinstance(ev, TransferLeader):
            self.raw.transfer_leader(ev.target)
        elif isinstance(ev, CompactLog):
            self._compact_log(ev)

    # ------------------------------------------------------------------ Ready

    async def _handle_ready(self) -> None:
        raw, st = self.raw, self.storage
        rd = raw.ready()
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        if rd.hard_state is not None:
            self.status.term = rd.hard_state.term
        owed = False  # some of this Ready's messages wait for a peer task to write them
        if rd.messages:
            owed = self._send(rd.messages)  # a leader's appends and heartbeats go out before its own fsync
            hold = self.commit_hold
            if hold.due != math.inf and any(e.type == EntryType.CONF_CHANGE for e in rd.committed_entries):
                self._send_now(hold.take_due(math.inf))  # membership news is not held
        snap = rd.snapshot if rd.snapshot is not None and rd.snapshot.meta.index > 0 else None
        if snap is not None:
            await self._install(snap)
        if rd.entries or rd.hard_state is not None or rd.snapshot is not None:
            self.wal.append(rd.entries, rd.hard_state)
            if self._must_sync(rd):
                if owed:
                    await trio.lowlevel.checkpoint()  # let the peer tasks put the appends on the wire first
                await self._sync_wal()
        if rd.messages_after_persist:  # durable now: a follower's answer goes before the bookkeeping below
            self._send(rd.messages_after_persist)
        if snap is not None:
            st.apply_snapshot(snap)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
            self.status.committed = rd.hard_state.commit
        if rd.entries:
            st.append(rd.entries)
            last = rd.entries[-1]
            raw.ack_persisted(last.term, last.index)
        for index, pending in self.reads.answered(rd.read_states):
            self.backend.wait_applied(index, pending)
        if faults.ACTIVE is not None and (self._early_upto or faults.ACTIVE.plant("put_ack_before_quorum_fsync")):
            await self._planted_early_apply(rd)
        elif rd.committed_entries:
            await self.apply_loop.submit(rd.committed_entries)
        raw.advance(rd)

    async def _planted_early_apply(self, rd: raft.Ready) -> None:
        """PLANTED BUG (test plugin only, "put_ack_before_quorum_fsync"): a leader applies, and so answers,
        its own appends as soon as its own WAL holds them, before a quorum has them; once committed they
        are not applied again. A leader killed before its followers got them has acknowledged lost writes."""
        ents = rd.committed_entries
        if self._early_upto:
            ents = [e for e in ents if e.index > self._early_upto]
        if ents:
            await self.apply_loop.submit(ents)
        hooks = faults.ACTIVE
        if not (hooks is not None and hooks.plant("put_ack_before_quorum_fsync") and self.status.is_leader):
            return
        new = rd.entries
        handed = max(self._early_upto, self.raw.raft.log.applying)
        if new and new[0].index == handed + 1 and all(e.type != EntryType.CONF_CHANGE for e in new):
            await self.apply_loop.submit(new)
            self._early_upto = new[-1].index

    def _sync_members(self) -> None:
        if self.transport is not None:
            self.transport.sync_members()

    def _send(self, msgs: list[Message]) -> bool:
        if self.status.is_leader:
            msgs = self.commit_hold.filter(msgs, trio.current_time(), self._replicating)
        return self._send_now(msgs)

    def _send_now(self, msgs: list[Message]) -> bool:
        if msgs and self.transport is not None:
            return self.transport.send(msgs)
        return False

    def _replicating(self, to: int) -> bool:
        pr = self.raw.raft.prs.get(to)
        return pr is not None and pr.state == ProgressState.REPLICATE

    def _on_soft_state(self, ss: raft.SoftState) -> None:
        st = self.status
        if ss.lead != st.lead:
            # At warn, unlike etcd's info: an operator sees every leadership change with who won and when.
            term = self.raw.status().term
            if ss.lead == 0:
                log.warning("lost leader", extra=member_fields(self.id, lost_leader=format_id(st.lead), term=term))
            else:
                log.warning("elected leader", extra=member_fields(self.id, leader=format_id(ss.lead), term=term))
        if ss.lead not in (0, st.lead) and self.metrics is not None:
            self.metrics.leader_changes.inc()  # etcd counts changes to a new leader, never to "none"
        st.lead = ss.lead
        st.is_leader = ss.role == StateType.LEADER
        if not st.is_leader:
            self.commit_hold.clear()
        if ss.lead == 0:
            self.reads.leader_lost()

    def _must_sync(self, rd: raft.Ready) -> bool:
        """etcd's rule: entries, a snapshot, or a new term or vote must be durable before anything else
        happens; a hard state that only moved the commit index rides along with the next fsync (a lower
        commit after a crash is recovered from the leader)."""
        if rd.entries or rd.snapshot is not None:
            return True
        hs = rd.hard_state
        return hs is not None and (hs.term != self._synced_term or hs.vote != self._synced_vote)

    async def _sync_wal(self) -> None:
        """One fsync per Ready. While the disk syncs fast, inline is cheaper than a thread hand-off (the Raft
        loop waits for it either way); when fsyncs get slow, they leave the event loop so the client and
        peer tasks keep running."""
        t0 = time.perf_counter()
        ewma = self._fsync_ewma
        if ewma < INLINE_FSYNC_BELOW or (ewma < INLINE_FSYNC_IDLE_BELOW and len(self.waiters.requests) <= 1):
            # Fast, or not slow and nobody else to serve meanwhile (one proposal in flight, or none on a
            # follower, whose appends are what it waits for): a thread hand-off would only add latency.
            self.wal.sync()
        else:
            await self._run_sync(self.wal.sync)
            self._thread_syncs += 1
            if self._thread_syncs % 64 == 0:
                self._fsync_ewma = 0.0  # probe inline again now and then: the disk may be quiet again
        took = time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.wal_fsync.observe(took)
        if took > SLOW_FDATASYNC:
            fields = member_fields(self.id, took=go_duration(took), expected_duration=go_duration(SLOW_FDATASYNC))
            log.warning("slow fdatasync", extra=fields)
        self._fsync_ewma = 0.8 * self._fsync_ewma + 0.2 * took
        hs = self.wal.hard_state
        self._synced_term, self._synced_vote = hs.term, hs.vote

    # ------------------------------------------------------------------ snapshots

    async def _install(self, snap: Snapshot) -> None:
        """The leader's page file replaces ours; then the snapshot is recorded in the WAL."""
        await self.apply_loop.install(snap, self._stamp)
        self.wal.save_snapshot(SnapshotMeta(snap.meta.index, snap.meta.term, snap.meta.conf_state))
        self.snapshotter.installed(snap.meta.index)
        if self.transport is not None:
            self.transport.sync_members()

    def _compact_log(self, ev: CompactLog) -> None:
        """Snapshot the Raft log at a durable consistent index, release WAL segments, keep a catch-up tail."""
        st = self.storage
        if ev.index <= st.snapshot().meta.index or ev.index > st.last_index():
            return
        snap = st.create_snapshot(ev.index, ev.conf_state, b"")
        self.wal.save_snapshot(snap.meta)
        self.wal.sync()
        self.wal.release_to(ev.index)
        compact_to = ev.index - min(SNAPSHOT_CATCHUP_ENTRIES, max(1, self.snapshot_count // 2))
        if compact_to > st.first_index():
            st.compact(compact_to)
        log.info("saved snapshot at index %d; compacted raft log to %d", ev.index, max(compact_to, 0))

    def close(self) -> None:
        try:
            self.wal.close()
        except Exception:
            log.exception("error while closing the WAL")


__all__ = ["SNAPSHOT_CATCHUP_ENTRIES", "RaftNode", "well_formed"]
