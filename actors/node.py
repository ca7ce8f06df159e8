"""The Node actor: owns the Raft core and the storage objects, and runs the Ready loop.

One task (`_raft_loop`) is the only one that touches the RawNode, the WAL and the page file's writer. Every
other actor talks to it through the inbox channel: peers deliver Raft messages, client requests arrive as
proposals or read requests, the ticker sends ticks. Per Ready (etcd's order): send the leader's messages,
persist entries + hard state with ONE fsync (in a worker thread), tell Raft what is durable, send the
messages that had to wait for it, apply committed entries in ONE page-file transaction, answer the
proposers, advance.
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from trikv import __version__
from trikv.actors import raft
from trikv.actors.apply import MEMBERS_BUCKET, Applier, member_key
from trikv.actors.config import ServerConfig
from trikv.actors.gateway import gateway_routes
from trikv.actors.identity import cluster_id as compute_cluster_id
from trikv.actors.identity import format_id, valid_peer_url
from trikv.actors.identity import member_id as compute_member_id
from trikv.actors.peer import PeerServer, Transport, fetch_cluster_info
from trikv.actors.raft import ProposalDropped, RawNode, StateType
from trikv.actors.server import serve_clients
from trikv.api import codec, errors, protocol, rpc
from trikv.api.internal import MemberAttributes, PeerHelloReply, RaftRequest
from trikv.api.protocol import Member
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    SnapshotMeta,
    WalMetadata,
)
from trikv.storage.files import FileSystem, OsFileSystem
from trikv.storage.mvcc import ApplyBatch, KVStore
from trikv.storage.pagefile import PageFile
from trikv.storage.wal import WAL

log = logging.getLogger("trikv.node")

CLUSTER_VERSION = "3.4.0"
# etcd keeps this many entries behind a snapshot for slow followers (at most half a snapshot interval here,
# so a small snapshot-count really compacts the log).
SNAPSHOT_CATCHUP_ENTRIES = 5000
# etcd's backend batching: applied entries go into one open page-file transaction, committed (2 fsyncs)
# every interval or limit. The WAL holds them durably meanwhile; a restart re-applies what the page file lacks.
BACKEND_BATCH_INTERVAL = 0.1
BACKEND_BATCH_LIMIT = 10000
INLINE_FSYNC_BELOW = 0.0005  # seconds: WAL fsyncs faster than this run on the event loop
COMPACTION_BATCH_LIMIT = 1000  # etcd's compaction-batch-limit: keys deleted per page-file transaction


@attrs.define(eq=False)
class Pending:
    """A client request waiting for its entry to be applied (or its read index to be reached)."""

    done: trio.Event = attrs.Factory(trio.Event)
    result: Any = None
    error: BaseException | None = None

    def resolve(self, result: Any) -> None:
        if isinstance(result, BaseException):
            self.error = result
        else:
            self.result = result
        self.done.set()


@attrs.frozen
class Propose:
    request: RaftRequest
    pending: Pending


@attrs.frozen
class ProposeConfChange:
    change: ConfChange
    pending: Pending


@attrs.frozen
class ReadIndexWait:
    pending: Pending  # resolved with the read index once it is applied locally


@attrs.frozen
class Tick:
    pass


@attrs.frozen
class Unreachable:
    peer: int


@attrs.frozen
class SnapshotStatus:
    peer: int
    ok: bool


@attrs.frozen
class TransferLeader:
    target: int
    pending: Pending


TICK = Tick()
InboxEvent = (
    Message
    | Propose
    | ProposeConfChange
    | ReadIndexWait
    | Tick
    | Unreachable
    | SnapshotStatus
    | TransferLeader
)


def _well_formed(e: Entry) -> bool:
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


class RequestIds:
    """Unique across restarts of this member: a time prefix plus a counter (etcd's idutil)."""

    def __init__(self, member_id: int) -> None:
        prefix = ((member_id & 0xFFFF) << 48) | ((time.time_ns() // 1_000_000) & 0xFFFFFFFFFF) << 8
        self._counter = itertools.count(prefix)

    def next(self) -> int:
        return next(self._counter) & 0xFFFFFFFFFFFFFFFF


class Node:
    """A trikv member. `run()` opens storage, starts the actors in one nursery and serves until cancelled."""

    def __init__(self, cfg: ServerConfig, *, fs: FileSystem | None = None) -> None:
        self.cfg = cfg
        self.fs = fs or OsFileSystem()
        self.id = 0
        self.cluster_id = 0
        self.term = 0
        self.lead = 0
        self.role = StateType.FOLLOWER
        self.applied = 0
        self.committed = 0
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[InboxEvent](math.inf)
        self._pending: dict[int, Pending] = {}
        self._read_waiting: list[Pending] = []
        self._read_inflight: dict[bytes, list[Pending]] = {}
        self._read_issued_at = 0.0
        self._apply_waiters: list[tuple[int, Pending]] = []
        self._conf_pending: dict[int, Pending] = {}
        self._transfer_pending: list[Pending] = []
        self._snapshot_index = 0
        self._stopping = False
        self._removed = trio.Event()
        self._batch: ApplyBatch | None = None
        self._batch_started = 0.0
        self._batch_entries = 0
        self._committing: trio.Event | None = None
        self._join_info: PeerHelloReply | None = None
        self._fsync_ewma = 0.0
        self._thread_syncs = 0
        self._synced_term = -1  # term and vote of the last fsynced hard state (-1: sync the first one)
        self._synced_vote = -1

    # ================================================================== startup

    def _open_storage(self) -> tuple[RawNode, bool]:
        cfg, fs = self.cfg, self.fs
        member_dir, wal_dir, snap_dir = str(cfg.member_dir), str(cfg.wal_dir), str(cfg.snap_dir)
        self._wal_dir, self._db_path = wal_dir, str(cfg.db_path)
        for d in (member_dir, snap_dir):
            fs.makedirs(d)
        self._locks = [fs.lock(member_dir)]
        fs.makedirs(str(cfg.wal_dir.parent))
        self.pagefile = PageFile.open(fs, self._db_path)
        self.kv = KVStore(self.pagefile)
        storage = self.raw_storage = raft.MemoryStorage()
        bootstrap = False
        if WAL.exists(fs, wal_dir):
            self.wal, replay = WAL.open(fs, wal_dir, max_wals=cfg.max_wals)
            self.id = replay.metadata.member_id
            self.cluster_id = replay.metadata.cluster_id
            applied = 0
            if replay.snapshot is not None:
                storage.apply_snapshot(Snapshot(replay.snapshot, b""))
                applied = replay.snapshot.index
                self._snapshot_index = replay.snapshot.index
            storage.set_hard_state(replay.hard_state)
            storage.append(replay.entries)
            # Killed between creating the WAL and persisting the bootstrap entries: start over, the ids are
            # derived from the config and come out the same.
            bootstrap = (
                replay.snapshot is None
                and not replay.entries
                and replay.hard_state.is_empty()
                and cfg.initial_cluster_state == "new"
                and cfg.initial_member_ids.get(cfg.name) == self.id
            )
            log.info(
                "restarting member %s in cluster %s: term %d, commit %d, %d WAL entries, consistent index %d",
                format_id(self.id),
                format_id(self.cluster_id),
                replay.hard_state.term,
                replay.hard_state.commit,
                len(replay.entries),
                self.kv.consistent_index,
            )
        else:
            if cfg.initial_cluster_state == "existing":
                return self._join(storage), False
            ids = cfg.initial_member_ids
            self.id = ids[cfg.name]
            self.cluster_id = compute_cluster_id(list(ids.values()))
            self.wal = WAL.create(fs, wal_dir, WalMetadata(self.cluster_id, self.id), max_wals=cfg.max_wals)
            applied = 0
            bootstrap = True
            log.info(
                "starting member %s in new cluster %s (%d members)",
                format_id(self.id),
                format_id(self.cluster_id),
                len(ids),
            )
        self.applier = Applier(self.kv, self.id)
        rn = RawNode(self._raft_config(applied), storage)
        if bootstrap:
            contexts = {}
            for name, mid in cfg.initial_member_ids.items():
                contexts[mid] = codec.encode(Member(mid, name, tuple(cfg.initial_cluster[name]), ()))
            rn.bootstrap(sorted(contexts), contexts)
        self.applied = applied
        return rn, bootstrap

    def _join(self, storage: raft.MemoryStorage) -> RawNode:
        """No WAL and initial-cluster-state existing: take our id from the membership a peer told us,
        start with an empty log and let the leader send entries or a snapshot (etcd's join)."""
        info = self._join_info
        assert info is not None
        own = set(self.cfg.initial_advertise_peer_urls)
        mine = [m for m in info.members if set(m.peer_urls) & own]
        if not mine:
            raise errors.ConfigError(
                f"member with peer URLs {','.join(sorted(own))} is not in cluster "
                f"{format_id(info.cluster_id)}; add it first with `trikvctl member add`"
            )
        self.id, self.cluster_id = mine[0].id, info.cluster_id
        # The membership we were told goes into the page file BEFORE the WAL exists: a member killed before
        # the leader's first entries arrive restarts knowing whom to answer (the leader's records replace it).
        with self.kv.write() as batch:
            for m in info.members:
                batch.bucket_put(MEMBERS_BUCKET, member_key(m.id), codec.encode(m))
            batch.commit()
        self.wal = WAL.create(
            self.fs, self._wal_dir, WalMetadata(self.cluster_id, self.id), max_wals=self.cfg.max_wals
        )
        self.applier = Applier(self.kv, self.id)
        log.info(
            "joining cluster %s as member %s (%d members)",
            format_id(self.cluster_id),
            format_id(self.id),
            len(info.members),
        )
        config = self._raft_config(applied=0)
        self.applied = 0
        return RawNode(config, storage)

    def _stamp_identity(self) -> None:
        """The page file carries the ids too (etcd keeps them in its backend): a page file of another cluster
        next to this WAL is refused instead of silently mixed in. The member id is (re)written: a page file
        installed from the leader's snapshot arrives with the leader's."""
        cid = self.kv.meta_get(b"cluster_id")
        if cid is not None and int.from_bytes(cid, "big") != self.cluster_id:
            raise errors.CorruptionError(
                self._db_path,
                0,
                f"page file belongs to cluster {format_id(int.from_bytes(cid, 'big'))}, "
                f"the WAL to cluster {format_id(self.cluster_id)}",
            )
        mid = self.kv.meta_get(b"member_id")
        if cid is None or mid is None or int.from_bytes(mid, "big") != self.id:
            with self.kv.write() as batch:
                batch.meta_put(b"cluster_id", self.cluster_id.to_bytes(8, "big"))
                batch.meta_put(b"member_id", self.id.to_bytes(8, "big"))
                batch.commit()

    def _raft_config(self, applied: int) -> raft.Config:
        return raft.Config(
            id=self.id,
            election_tick=self.cfg.election_ticks,
            heartbeat_tick=self.cfg.heartbeat_ticks,
            rng=random.Random(),
            max_size_per_msg=1 << 20,
            max_inflight_msgs=256,
            check_quorum=True,
            pre_vote=True,
            applied=applied,
        )

    async def _discover(self) -> None:
        """A member joining an existing cluster asks the listed peers who is in it."""
        self._join_info = None
        if self.cfg.initial_cluster_state != "existing" or WAL.exists(self.fs, str(self.cfg.wal_dir)):
            return
        own = set(self.cfg.initial_advertise_peer_urls)
        urls = [u for urls in self.cfg.initial_cluster.values() for u in urls if u not in own]
        info = await fetch_cluster_info(urls)
        if info is None:
            raise errors.ConfigError(
                "could not reach any other member of initial-cluster to join (initial-cluster-state: existing)"
            )
        self._join_info = info

    # ================================================================== run

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._discover()
        self.raw, _ = self._open_storage()
        self._stamp_identity()
        self.transport = Transport(
            self.id,
            self.cluster_id,
            self._inbox_send,
            members=lambda: self.applier.members,
            snapshot_source=self._snapshot_bytes,
            on_removed=self._removed.set,
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                peer_host, peer_port = self.cfg.peer_listen[0]
                peer_server = PeerServer(
                    self.id,
                    self.cluster_id,
                    self._inbox_send,
                    members=lambda: self.applier.members,
                    removed=lambda: self.applier.removed,
                )
                self.peer_port = await nursery.start(peer_server.serve, peer_host, peer_port)
                nursery.start_soon(self.transport.run)
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._raft_loop)
                self.client_ports = []
                routes = gateway_routes(self, max_request_bytes=self.cfg.max_request_bytes)
                for host, port in self.cfg.client_listen:
                    p = await nursery.start(
                        functools.partial(
                            serve_clients,
                            self,
                            host,
                            port,
                            max_request_bytes=self.cfg.max_request_bytes,
                            routes=routes,
                        )
                    )
                    self.client_ports.append(p)
                nursery.start_soon(self._publish)
                log.info(
                    "member %s serving clients on %s, peers on %s",
                    format_id(self.id),
                    ",".join(self.cfg.listen_client_urls),
                    ",".join(self.cfg.listen_peer_urls),
                )
                task_status.started()
                await self._removed.wait()
                # etcd's stopWithDelay: let the commit of our own removal and its answer go out first.
                await trio.sleep(10 * self.cfg.tick_ms / 1000.0)
                log.warning("member %s was removed from the cluster; stopping", format_id(self.id))
                nursery.cancel_scope.cancel()
        finally:
            self._close_storage()

    def _close_storage(self) -> None:
        try:
            self._commit_batch_now()  # what was applied is in the WAL anyway; this only saves replay time
        except Exception:
            log.exception("could not commit the last page-file batch (the WAL replays it)")
        for closer in (
            getattr(self, "wal", None),
            getattr(self, "kv", None),
            getattr(self, "pagefile", None),
        ):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # closing after a failure must not mask it
                    log.exception("error while closing storage")
        for lock in getattr(self, "_locks", []):
            lock.release()

    async def _ticker(self) -> None:
        interval = self.cfg.tick_ms / 1000.0
        next_at = trio.current_time()
        while True:
            next_at += interval
            await trio.sleep_until(next_at)
            now = trio.current_time()
            if now - next_at > interval * 5:
                next_at = now  # we fell far behind (blocked loop): do not burst ticks
            self._inbox_send.send_nowait(TICK)

    async def shutdown(self) -> None:
        """Graceful stop: a leader first hands leadership to the most caught-up voter (etcd does the same)."""
        if self._stopping:
            return
        self._stopping = True
        if self.role != StateType.LEADER or len(self.applier.members) < 2:
            return
        status = self.raw.status()
        progress = getattr(status, "progress", {}) or {}
        candidates = [
            (getattr(pr, "match", 0), pid)
            for pid, pr in progress.items()
            if pid != self.id and pid in status.conf_state.voters
        ]
        if not candidates:
            return
        _, target = max(candidates)
        log.info("leadership transfer starting: %s -> %s", format_id(self.id), format_id(target))
        pending = Pending()
        self._inbox_send.send_nowait(TransferLeader(target, pending))
        with trio.move_on_after(self.cfg.election_timeout_ms / 1000.0 * 2):
            while self.role == StateType.LEADER:
                await trio.sleep(self.cfg.tick_ms / 1000.0)
        if self.role == StateType.LEADER:
            log.warning("leadership transfer failed: leader transfer took too long")
        else:
            log.info("leadership transfer finished: new leader %s", format_id(self.lead))

    async def _publish(self) -> None:
        """etcd's publish: announce name and client URLs through Raft until it sticks."""
        attrs_ = MemberAttributes(self.id, self.cfg.name, tuple(self.cfg.advertise_client_urls))
        while True:
            current = self.applier.members.get(self.id)
            if (
                current is not None
                and current.name == attrs_.name
                and current.client_urls == attrs_.client_urls
            ):
                log.info("published local member to cluster: name=%s", self.cfg.name)
                return
            try:
                with trio.fail_after(self.request_timeout()):
                    await self._propose("publish", attrs_)
            except (errors.EtcdError, trio.TooSlowError):
                await trio.sleep(self.cfg.tick_ms / 1000.0 * 5)

    def request_timeout(self) -> float:
        # etcd: 5 s + 2 x election timeout
        return 5.0 + 2 * self.cfg.election_timeout_ms / 1000.0

    # ================================================================== Raft loop

    async def _raft_loop(self) -> None:
        recv = self._inbox_recv
        while True:
            ev = await recv.receive()
            self._handle_event(ev)
            for _ in range(10000):
                try:
                    ev = recv.receive_nowait()
                except trio.WouldBlock:
                    break
                self._handle_event(ev)
            self._issue_reads()
            while self.raw.has_ready():
                await self._handle_ready()
            if self._batch is not None and (
                self._batch_entries >= BACKEND_BATCH_LIMIT
                or trio.current_time() - self._batch_started >= BACKEND_BATCH_INTERVAL
            ):
                await self._commit_batch()
                self._maybe_snapshot()
            if self._batch is None and self.kv.compact_revision > self.kv.finished_compact_revision:
                # Physical compaction in small steps between batches (etcd's scheduled compaction).
                await self._exclusive_in_thread(self._compact_step)

    def _handle_event(self, ev: InboxEvent) -> None:
        raw = self.raw
        if isinstance(ev, Tick):
            raw.tick()
        elif isinstance(ev, Message):
            if ev.type == MessageType.PROP and not all(_well_formed(e) for e in ev.entries):
                log.error("dropping a malformed proposal forwarded by %s", format_id(ev.frm))
                return
            try:
                raw.step(ev)
            except Exception:
                log.exception("raft refused message %s from %s", ev.type.name, format_id(ev.frm))
        elif isinstance(ev, Propose):
            if self.lead == 0:
                ev.pending.resolve(errors.NoLeaderError())
                return
            try:
                raw.propose(codec.encode(ev.request))
            except ProposalDropped:
                self._pending.pop(ev.request.request_id, None)
                ev.pending.resolve(errors.NoLeaderError())
        elif isinstance(ev, ReadIndexWait):
            self._read_waiting.append(ev.pending)
        elif isinstance(ev, ProposeConfChange):
            try:
                raw.propose_conf_change(ev.change)
                self._conf_pending[ev.change.id] = ev.pending
            except ProposalDropped:
                ev.pending.resolve(errors.NoLeaderError() if self.lead == 0 else errors.UnhealthyError())
        elif isinstance(ev, Unreachable):
            raw.report_unreachable(ev.peer)
        elif isinstance(ev, SnapshotStatus):
            raw.report_snapshot(ev.peer, ev.ok)
        elif isinstance(ev, TransferLeader):
            raw.transfer_leader(ev.target)
            ev.pending.resolve(None)

    def _issue_reads(self) -> None:
        """Many waiting linearizable reads share one ReadIndex round; re-issue if a round got lost."""
        now = trio.current_time()
        if self._read_inflight and now - self._read_issued_at > self.cfg.election_timeout_ms / 1000.0:
            for waiters in self._read_inflight.values():
                self._read_waiting.extend(w for w in waiters if not w.done.is_set())
            self._read_inflight.clear()
        if not self._read_waiting or self._read_inflight:
            return
        if self.lead == 0:
            for w in self._read_waiting:
                w.resolve(errors.NoLeaderError())
            self._read_waiting.clear()
            return
        ctx = self._ids.next().to_bytes(8, "big")  # unique across members and restarts
        self._read_inflight[ctx] = self._read_waiting
        self._read_waiting = []
        self._read_issued_at = now
        self.raw.read_index(ctx)

    async def _handle_ready(self) -> None:
        raw = self.raw
        rd = raw.ready()
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        if rd.hard_state is not None:
            self.term = rd.hard_state.term
        # A leader's appends and heartbeats go out before its own fsync (etcd's pipelining).
        if rd.messages:
            self.transport.send(rd.messages)
        if rd.snapshot is not None and rd.snapshot.meta.index > 0:
            await self._install_snapshot(rd.snapshot)
        if rd.entries or rd.hard_state is not None or rd.snapshot is not None:
            self.wal.append(rd.entries, rd.hard_state)
            if self._must_sync(rd):
                if rd.messages:
                    await trio.lowlevel.checkpoint()  # let the peer tasks put the appends on the wire first
                await self._sync_wal()
        if rd.snapshot is not None and rd.snapshot.meta.index > 0:
            self.raw_storage.apply_snapshot(rd.snapshot)
        if rd.hard_state is not None:
            self.raw_storage.set_hard_state(rd.hard_state)
            self.committed = rd.hard_state.commit
        if rd.entries:
            self.raw_storage.append(rd.entries)
            last = rd.entries[-1]
            raw.ack_persisted(last.term, last.index)
        if rd.messages_after_persist:
            self.transport.send(rd.messages_after_persist)
        for rs in rd.read_states:
            waiters = self._read_inflight.pop(rs.ctx, None)
            if waiters:
                for w in waiters:
                    self._apply_waiters.append((rs.index, w))
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        self._release_reads()
        raw.advance(rd)

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
        if self._fsync_ewma < INLINE_FSYNC_BELOW:
            t0 = time.perf_counter()
            self.wal.sync()
            took = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            await trio.to_thread.run_sync(self.wal.sync)
            took = time.perf_counter() - t0
            self._thread_syncs += 1
            if self._thread_syncs % 64 == 0:
                self._fsync_ewma = 0.0  # probe inline again now and then: the disk may be quiet again
        self._fsync_ewma = 0.8 * self._fsync_ewma + 0.2 * took
        hs = self.wal.hard_state
        self._synced_term, self._synced_vote = hs.term, hs.vote

    def _on_soft_state(self, ss: raft.SoftState) -> None:
        if ss.lead != self.lead:
            if ss.lead == 0:
                log.warning("member %s lost leader %s", format_id(self.id), format_id(self.lead))
            else:
                log.info(
                    "member %s elected leader %s at term %d",
                    format_id(self.id),
                    format_id(ss.lead),
                    self.raw.status().term,
                )
        self.lead = ss.lead
        self.role = ss.role
        if ss.lead == 0 and self._read_inflight:
            for waiters in self._read_inflight.values():
                for w in waiters:
                    w.resolve(errors.NoLeaderError())
            self._read_inflight.clear()

    def _open_batch(self) -> ApplyBatch:
        if self._batch is None:
            self._batch = self.kv.write()
            self._batch_started = trio.current_time()
            self._batch_entries = 0
        return self._batch

    async def _commit_batch(self) -> None:
        """Commit the open page-file transaction in a worker thread; reads wait meanwhile (the page file is
        not thread-safe), nothing else writes (only the Raft loop applies, and it is the one waiting here)."""
        batch = self._batch
        if batch is None:
            return
        try:
            await self._exclusive_in_thread(batch.commit)
        finally:
            self._batch = None

    async def _exclusive_in_thread(self, fn: Callable[[], Any]) -> Any:
        """Run a page-file writer step in a worker thread while reads wait (the store is not thread-safe)."""
        self._committing = trio.Event()
        try:
            return await trio.to_thread.run_sync(fn)
        finally:
            self._committing.set()
            self._committing = None

    def _compact_step(self) -> None:
        if self.kv.compact_step(COMPACTION_BATCH_LIMIT):
            log.info("finished scheduled compaction at revision %d", self.kv.finished_compact_revision)

    def _commit_batch_now(self) -> None:
        if self._batch is not None:
            batch, self._batch = self._batch, None
            batch.commit()

    def _apply(self, entries: Sequence[Any]) -> None:
        batch = self._open_batch()
        self._batch_entries += len(entries)
        try:
            outcome = self.applier.apply(batch, entries, self.raw.apply_conf_change)
        except BaseException:
            # A bug mid-entry: never let shutdown commit half an entry; the WAL replays the whole batch.
            self._batch = None
            batch.rollback()
            raise
        if outcome.last_index:
            self.applied = outcome.last_index
        if outcome.conf_changed:
            self.transport.sync_members()
            for cc_id in outcome.conf_change_ids:
                pending = self._conf_pending.pop(cc_id, None)
                if pending is not None:
                    pending.resolve(None)
        for a in outcome.applied:
            if a.request.member_id != self.id:
                continue
            pending = self._pending.pop(a.request.request_id, None)
            if pending is not None:
                pending.resolve(self._with_header(a.response))
        if outcome.removed_self:
            self._removed.set()

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

    # ================================================================== snapshots

    def _maybe_snapshot(self) -> None:
        """Every snapshot-count applied entries: snapshot the Raft log at the durable consistent index, compact
        the in-memory log (keeping a catch-up tail) and release old WAL segments."""
        if self.applied - self._snapshot_index < self.cfg.snapshot_count:
            return
        index = self.kv.consistent_index  # durable: the page file committed it
        if index <= self._snapshot_index or index != self.applied:
            return  # only right after a commit caught up with apply: Raft's conf state is the one at `index`
        st = self.raw_storage
        cs = self.raw.status().conf_state
        snap = st.create_snapshot(index, cs, b"")
        self.wal.save_snapshot(snap.meta)
        self.wal.sync()
        self.wal.release_to(index)
        compact_to = index - min(SNAPSHOT_CATCHUP_ENTRIES, max(1, self.cfg.snapshot_count // 2))
        if compact_to > st.first_index():
            st.compact(compact_to)
        self._snapshot_index = index
        log.info("saved snapshot at index %d; compacted raft log to %d", index, max(compact_to, 0))

    def _snapshot_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.pagefile.write_snapshot(buf)
        return buf.getvalue()

    async def _install_snapshot(self, snap: Snapshot) -> None:
        """A follower received the leader's page file: install it, then record the snapshot in the WAL."""
        log.info("installing snapshot at index %d (%d bytes)", snap.meta.index, len(snap.data))
        if self._batch is not None:
            await self._commit_batch()
        if snap.data:
            self.kv.close()
            self.pagefile.replace_from(io.BytesIO(snap.data))  # verifies, installs and reloads in place
            self.kv = KVStore(self.pagefile)
            self._stamp_identity()
            self.applier = Applier(self.kv, self.id)
        self.wal.save_snapshot(SnapshotMeta(snap.meta.index, snap.meta.term, snap.meta.conf_state))
        self.applied = max(self.applied, snap.meta.index)
        self._snapshot_index = snap.meta.index
        self.transport.sync_members()

    # ================================================================== client-facing backend

    def _header(self, revision: int | None = None) -> rpc.ResponseHeader:
        return rpc.ResponseHeader(
            self.cluster_id,
            self.id,
            (self._batch.revision if self._batch is not None else self.kv.current_revision)
            if revision is None
            else revision,
            self.term,
        )

    def _with_header(self, resp: Any) -> Any:
        if isinstance(resp, BaseException) or resp is None or not hasattr(resp, "header"):
            return resp
        return attrs.evolve(resp, header=self._header(resp.header.revision))

    async def _propose(self, op: str, payload: Any) -> Any:
        req_id = self._ids.next()
        pending = Pending()
        self._pending[req_id] = pending
        self._inbox_send.send_nowait(Propose(RaftRequest(self.id, req_id, op, payload), pending))
        try:
            with trio.fail_after(self.request_timeout()):
                await pending.done.wait()
        except trio.TooSlowError:
            raise errors.TimeoutError_() from None
        finally:
            self._pending.pop(req_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    async def _wait_read_index(self) -> None:
        if self.is_learner():
            raise errors.NotSupportedForLearnerError()
        pending = Pending()
        self._inbox_send.send_nowait(ReadIndexWait(pending))
        try:
            with trio.fail_after(self.request_timeout()):
                await pending.done.wait()
        except trio.TooSlowError:
            raise errors.TimeoutError_() from None
        if pending.error is not None:
            raise pending.error

    def is_learner(self) -> bool:
        m = self.applier.members.get(self.id)
        return bool(m and m.is_learner)

    @property
    def _ids(self) -> RequestIds:
        ids = self.__dict__.get("_ids_obj")
        if ids is None:
            ids = self.__dict__["_ids_obj"] = RequestIds(self.id)
        return ids

    async def handle(self, op: str, request: Any) -> Any:
        if op == "range":
            req: rpc.RangeRequest = request
            if not req.serializable:
                await self._wait_read_index()
            resp = await self._read(req)
            return attrs.evolve(resp, header=self._header(resp.header.revision))
        if op in ("put", "delete_range", "compact"):
            if op == "put" and not request.key:
                raise errors.EmptyKeyError()
            return await self._propose(op, request)
        if op == "txn":
            return await self._propose(op, request)
        if op == "status":
            return self._status()
        if op == "member_list":
            return self._member_list()
        if op in ("member_add", "member_remove", "member_update", "member_promote", "move_leader"):
            return await self._cluster_op(op, request)
        raise errors.InvalidRequestError(f"etcdserver: unknown op {op!r}")

    async def _read(self, req: rpc.RangeRequest) -> rpc.RangeResponse:
        """Reads see every applied entry: through the open batch if there is one (etcd's read buffer)."""
        while self._committing is not None:
            await self._committing.wait()
        if self._batch is not None:
            return self._batch.range(req)
        return self.kv.range(req)

    def _status(self) -> protocol.StatusResponse:
        errs: list[str] = []
        return protocol.StatusResponse(
            header=self._header(),
            version=__version__,
            db_size=self.pagefile.size(),
            leader=self.lead,
            raft_index=self.committed,
            raft_term=self.term,
            raft_applied_index=self.applied,
            errors=tuple(errs),
            db_size_in_use=self.pagefile.size_in_use(),
            is_learner=self.is_learner(),
        )

    async def health(self) -> tuple[bool, str]:
        if self.lead == 0:
            return False, "RAFT NO LEADER"
        try:
            await self.handle("range", rpc.RangeRequest(b"health"))
        except errors.EtcdError as exc:
            return False, str(exc)
        return True, ""

    def version(self) -> dict[str, str]:
        return {"etcdserver": __version__, "etcdcluster": CLUSTER_VERSION}

    async def _propose_conf_change(self, change: ConfChange) -> None:
        pending = Pending()
        self._inbox_send.send_nowait(ProposeConfChange(change, pending))
        try:
            with trio.fail_after(self.request_timeout()):
                await pending.done.wait()
        except trio.TooSlowError:
            raise errors.TimeoutError_() from None
        finally:
            self._conf_pending.pop(change.id, None)
        if pending.error is not None:
            raise pending.error

    # ================================================================== cluster API

    def _members_sorted(self) -> tuple[Member, ...]:
        return tuple(sorted(self.applier.members.values(), key=lambda m: m.id))

    def _member_list(self) -> protocol.MemberListResponse:
        return protocol.MemberListResponse(
            rpc.ResponseHeader(self.cluster_id, self.id, 0, self.term), self._members_sorted()
        )

    def _check_peer_urls(self, urls: tuple[str, ...], exclude: int = 0) -> None:
        if not urls or any(not valid_peer_url(u) for u in urls):
            raise errors.MemberBadURLsError()
        for m in self.applier.members.values():
            if m.id != exclude and set(m.peer_urls) & set(urls):
                raise errors.PeerURLExistError()

    async def _cluster_op(self, op: str, req: Any) -> Any:
        members = self.applier.members
        if op == "member_add":
            urls = tuple(req.peer_urls)
            self._check_peer_urls(urls)
            # etcd: the id hashes the peer URLs with the time; chosen here, it travels in the entry.
            mid = compute_member_id(urls, "", now=time.time())
            member = Member(mid, "", urls, (), req.is_learner)
            kind = ConfChangeType.ADD_LEARNER if req.is_learner else ConfChangeType.ADD_NODE
            await self._propose_conf_change(ConfChange(kind, mid, codec.encode(member), self._ids.next()))
            return protocol.MemberAddResponse(
                rpc.ResponseHeader(self.cluster_id, self.id, 0, self.term), member, self._members_sorted()
            )
        if op == "move_leader":
            return await self._move_leader(req.target_id)
        target = members.get(req.id)
        if target is None:
            raise errors.MemberNotFoundError()
        if op == "member_remove":
            await self._propose_conf_change(
                ConfChange(ConfChangeType.REMOVE_NODE, req.id, b"", self._ids.next())
            )
        elif op == "member_update":
            urls = tuple(req.peer_urls)
            self._check_peer_urls(urls, exclude=req.id)
            ctx = codec.encode(Member(req.id, target.name, urls, target.client_urls, target.is_learner))
            await self._propose_conf_change(
                ConfChange(ConfChangeType.UPDATE_NODE, req.id, ctx, self._ids.next())
            )
        elif op == "member_promote":
            if not target.is_learner:
                raise errors.MemberNotLearnerError()
            self._check_learner_ready(req.id)
            await self._propose_conf_change(
                ConfChange(ConfChangeType.PROMOTE_LEARNER, req.id, b"", self._ids.next())
            )
        return self._member_list()

    def _check_learner_ready(self, learner: int) -> None:
        """etcd: promote only a learner whose log is within 90% of the leader's (decided on the leader)."""
        if self.role != StateType.LEADER:
            raise errors.NotLeaderError()
        status = self.raw.status()
        pr = status.progress.get(learner)
        leader_pr = status.progress.get(self.id)
        if pr is None or leader_pr is None or pr.match < 0.9 * leader_pr.match:
            raise errors.LearnerNotReadyError()

    async def _move_leader(self, target: int) -> protocol.MoveLeaderResponse:
        if self.role != StateType.LEADER:
            raise errors.NotLeaderError()
        if target == self.id:
            return protocol.MoveLeaderResponse(self._header())  # etcd: already the leader, nothing to do
        if target not in self.raw.status().conf_state.voters:
            raise errors.BadLeaderTransfereeError()
        pending = Pending()
        self._inbox_send.send_nowait(TransferLeader(target, pending))
        with trio.move_on_after(self.cfg.election_timeout_ms / 1000.0 * 2):
            while self.lead != target:
                await trio.sleep(self.cfg.tick_ms / 1000.0 / 2)
        if self.lead != target:
            raise errors.LeaderTransferTimeoutError()
        return protocol.MoveLeaderResponse(self._header())


__all__ = ["Node"]
