"""The Node: a member's supervisor. It opens storage, wires the actors together and runs them in one nursery.

| actor | owns | receives | sends |
|---|---|---|---|
| RaftNode (raftnode.py) | RawNode, MemoryStorage, WAL | the inbox | peer messages (Transport), applies (Backend) |
| ticker (RaftNode.ticker) | a trio clock | - | owed ticks (inbox side band) |
| Backend (backend.py, called by RaftNode) | page file, MVCC, Applier, open batch | committed entries | commits (Snapshotter), compactions (Compactor) |
| Snapshotter | snapshot policy, snapshot index | durable commits | CompactLog (inbox control) |
| Compactor | physical compaction progress | compaction scheduled | page-file steps (Backend writer lock) |
| Transport + Peer per member | outbound peer streams | Raft messages | unreachable / snapshot status (inbox) |
| PeerServer | inbound peer streams | peer frames | Raft messages (inbox) |
| client surfaces (server.py, gateway.py) | client connections | requests | Handlers.handle(request) -> proposals and read waits (inbox) |
| publisher | - | - | MemberAttributes proposal (etcd's publish) |

A failure in any actor cancels the member as a whole; SIGTERM first hands leadership over (etcd).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Protocol

import trio

from trikv import __version__
from trikv.actors import bootstrap
from trikv.actors.apply import Applier
from trikv.actors.backend import Backend
from trikv.actors.cluster import ClusterApi
from trikv.actors.compactor import Compactor
from trikv.actors.config import ServerConfig
from trikv.actors.dashboard import dashboard_routes
from trikv.actors.events import Inbox, RaftStatus, RequestIds, ToThread, TransferLeader, Waiters, to_thread
from trikv.actors.gateway import gateway_routes
from trikv.actors.gateway_snapshot import SNAPSHOT_PATH, snapshot_route
from trikv.actors.gateway_watch import watch_routes
from trikv.actors.handlers import Handlers
from trikv.actors.identity import format_id
from trikv.actors.kv import Identity, KVApi, Proposer
from trikv.actors.lease import LeaseManager, lease_reader, min_lease_ttl
from trikv.actors.lease_api import FORWARDED, LeaseApi
from trikv.actors.lease_forward import LeaderLink
from trikv.actors.lessor import Lessor
from trikv.actors.maintenance import MaintenanceApi
from trikv.actors.metrics import MemberMetrics, Sources, lease_series, watch_series
from trikv.actors.metrics_http import metrics_routes, serve_metrics
from trikv.actors.peer import ClusterView, PeerServer, Transport, forward_to_leader
from trikv.actors.raftnode import RaftNode
from trikv.actors.server import serve_clients
from trikv.actors.snapshotter import Snapshotter
from trikv.actors.snapstream import SnapshotReceiver
from trikv.actors.upkeep import Upkeep, UpkeepSettings
from trikv.actors.watch import WatchHub
from trikv.actors.watch_serve import watch_handler
from trikv.api import errors
from trikv.api.internal import MemberAttributes
from trikv.api.lease import LeaseKeepAliveRequest
from trikv.api.protocol import MemberListResponse, MemberPromoteRequest
from trikv.api.raftpb import Message
from trikv.api.snapshot import DefragmentRequest, SnapshotRequest
from trikv.api.watch import WatchRequest
from trikv.storage.files import FileSystem, OsFileSystem
from trikv.storage.mvcc import KVStore

log = logging.getLogger("trikv.node")


class PeerLinks(Protocol):
    """What the Raft loop and the cluster API need of the peer actors (Transport, or a test's twin)."""

    async def run(self) -> None: ...
    def send(self, msgs: list[Message]) -> None: ...
    def sync_members(self) -> None: ...
    def is_active(self, peer_id: int) -> bool: ...


class Network(Protocol):
    """Links members without sockets (in-process tests): one PeerLinks per member."""

    def attach(self, view: ClusterView, inbox: Inbox, snapshot_source: Callable[[], bytes]) -> PeerLinks: ...


class Node:
    """A trikv member. `run()` opens storage, starts the actors in one nursery and serves until cancelled."""

    def __init__(
        self,
        cfg: ServerConfig,
        *,
        fs: FileSystem | None = None,
        run_sync: ToThread | None = None,
        network: Network | None = None,
        applier_cls: type[Applier] = Applier,
        upkeep: UpkeepSettings | None = None,
    ) -> None:
        """`fs`, `run_sync`, `network` and `applier_cls` let in-process tests run members over in-memory
        twins (CrashFileSystem, an inline executor under MockClock, memory-channel links); a member
        given a `network` serves no sockets: tests call `node.handlers.handle(request)`."""
        self.cfg = cfg
        self.fs = fs or OsFileSystem()
        self._run_sync = run_sync or to_thread
        self._network = network
        self._applier_cls = applier_cls
        self._upkeep_settings = upkeep  # test-only knobs of quota/alarms/auto-compaction (actors/upkeep.py)
        self.inbox = Inbox()
        self.status = RaftStatus()
        self.waiters = Waiters()
        self.client_ports: list[int] = []
        self.metrics_ports: list[int] = []
        self.metrics = MemberMetrics(extensive=cfg.metrics != "basic")  # one registry per member
        self.peer_port = 0
        self._removed = trio.Event()
        self._stopping = False

    @property
    def id(self) -> int:
        return self.ident.member_id

    def request_timeout(self) -> float:
        return 5.0 + 2 * self.cfg.election_timeout_ms / 1000.0  # etcd: 5 s + 2 x election timeout

    def _wire(self, opened: bootstrap.Opened) -> None:
        cfg = self.cfg
        tick, election = cfg.tick_ms / 1000.0, cfg.election_timeout_ms / 1000.0
        self.ident = Identity(opened.member_id, opened.cluster_id)
        self.ids = RequestIds(opened.member_id)
        self.backend = Backend(
            opened.pagefile,
            opened.kv,
            opened.applier,
            self.waiters,
            applied=opened.applied,
            run_sync=self._run_sync,
        )
        self.snapshotter = Snapshotter(
            self.inbox, self.backend, snapshot_count=cfg.snapshot_count, snapshot_index=opened.snapshot_index
        )
        self.compactor = Compactor(self.backend)
        self.backend.on_commit = self.snapshotter.committed
        self.backend.on_compaction_scheduled = self.compactor.scheduled
        self._wire_watch()
        self.raft = RaftNode(
            opened.raw,
            opened.storage,
            opened.wal,
            inbox=self.inbox,
            backend=self.backend,
            snapshotter=self.snapshotter,
            waiters=self.waiters,
            status=self.status,
            new_read_ctx=lambda: self.ids.next().to_bytes(8, "big"),
            stamp=self._stamp,
            on_removed=self._removed.set,
            tick_seconds=tick,
            election_seconds=election,
            snapshot_count=cfg.snapshot_count,
            run_sync=self._run_sync,
        )
        self.status.applied = opened.applied
        view = ClusterView(
            opened.member_id,
            opened.cluster_id,
            members=lambda: self.backend.applier.members,
            removed=lambda: self.backend.applier.removed,
        )
        if self._network is None:
            self.transport: PeerLinks = Transport(
                view,
                self.inbox,
                snapshot_source=self.snapshotter.snapshot_bytes,
                on_removed=self._removed.set,
                open_snapshot=self.snapshotter.open_snapshot,
                run_sync=self._run_sync,
            )
            receiver = SnapshotReceiver(self.fs, str(cfg.db_path), self.inbox, self._run_sync)
            self.peer_server: PeerServer | None = PeerServer(
                view, self.inbox, forwarded=self._promote_forwarded, receiver=receiver
            )
        else:
            self.transport = self._network.attach(view, self.inbox, self.snapshotter.snapshot_bytes)
            self.peer_server = None
        self.raft.transport = self.transport
        self.proposer = Proposer(
            self.ident, self.inbox, self.waiters, self.status, self.ids, self.request_timeout()
        )
        self.kv = KVApi(self.ident, self.status, self.backend, self.proposer)
        cluster = ClusterApi(
            self.ident,
            self.status,
            self.backend,
            self.proposer,
            self.inbox,
            self.ids,
            opened.raw,
            self.transport.is_active,
            functools.partial(forward_to_leader, view),
            strict_reconfig_check=cfg.strict_reconfig_check,
            election_seconds=election,
            tick_seconds=tick,
        )
        self.cluster = cluster
        self._wire_leases(opened, view)
        self.handlers = Handlers(
            self.kv, cluster, version=__version__, max_txn_ops=cfg.max_txn_ops, leases=self.lease_api
        )
        self.handlers.streams[LeaseKeepAliveRequest] = self.lease_api.keep_alive_stream
        self.maintenance = MaintenanceApi(self.ident, self.status, self.backend)
        self.handlers.table[DefragmentRequest] = self.maintenance.defragment
        self.handlers.streams[SnapshotRequest] = self.maintenance.snapshot
        self.upkeep = Upkeep(
            cfg,
            member_id=self.id,
            status=self.status,
            backend=self.backend,
            proposer=self.proposer,
            kv=self.kv,
            handlers=self.handlers,
            compactor=self.compactor,
            settings=self._upkeep_settings,
        )

    def _wire_leases(self, opened: bootstrap.Opened, view: ClusterView) -> None:
        """The LeaseManager owns the lease table; the apply path calls into it (grant/revoke/attach)."""
        cfg = self.cfg
        lessor = Lessor(min_lease_ttl(cfg.election_timeout_ms), trio.current_time)
        self.leases = LeaseManager(
            lessor,
            self.status,
            self.proposer,
            election_seconds=cfg.election_timeout_ms / 1000.0,
            tick_seconds=cfg.tick_ms / 1000.0,
            checkpoint_interval=cfg.lease_checkpoint_interval_ms / 1000.0,
            read_lease_of=lease_reader(self.backend.range),
        )
        self.leases.recover(opened.kv)
        self.backend.applier.lessor = lessor
        self.backend.on_install = self.leases.recover
        self.lease_link = LeaderLink(view, self.status)  # a follower's keep-alives go to the leader over it
        self.lease_api = LeaseApi(self.kv, self.leases, self.lease_link.forward, self.ids.next)

    async def _promote_forwarded(self, req: MemberPromoteRequest) -> MemberListResponse:
        if isinstance(req, FORWARDED):  # a follower's lease keep-alive / TimeToLive
            return await self.lease_api.serve_forwarded(req)
        return await self.cluster.promote_here(req)

    def _wire_watch(self) -> None:
        """The watch hub: fed by the apply path (never awaited), reads history through the Backend."""
        backend = self.backend

        def want_prev(on: bool) -> None:
            backend.kv.want_prev = on

        self.watch_hub = WatchHub(
            backend,
            lambda rev: self.kv.header(rev),
            max_response_bytes=self.cfg.max_request_bytes,
            set_want_prev=want_prev,
        )
        backend.on_events = self.watch_hub.notify
        backend.on_installed = self.watch_hub.installed

    def _stamp(self, kv: KVStore) -> None:
        bootstrap.stamp_identity(kv, self.ident.cluster_id, self.ident.member_id, str(self.cfg.db_path))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        join_info = await bootstrap.discover(self.cfg, self.fs)
        opened = bootstrap.open_storage(self.cfg, self.fs, join_info, self._applier_cls)
        try:
            self._wire(opened)
            async with trio.open_nursery() as nursery:
                await self._start(nursery)
                task_status.started()
                await self._removed.wait()
                # etcd's stopWithDelay: let the commit of our own removal and its answer go out first.
                await trio.sleep(10 * self.cfg.tick_ms / 1000.0)
                log.warning("member %s was removed from the cluster; stopping", format_id(self.id))
                nursery.cancel_scope.cancel()
        finally:
            if hasattr(self, "backend"):
                self.backend.close()
                self.raft.close()
            else:
                for closer in (opened.kv, opened.pagefile, opened.wal):
                    closer.close()
            for lock in opened.locks:
                lock.release()

    def _wire_metrics(self) -> None:
        """Hand the member's metrics to the actors that observe, and its state to the scrape-time collector."""
        m, b = self.metrics, self.backend
        self.raft.metrics = b.metrics = self.handlers.metrics = m
        for actor in (self.transport, self.peer_server):
            if isinstance(actor, (Transport, PeerServer)):
                actor.metrics = m
        quota = self.cfg.quota_bytes
        m.attach(
            Sources(
                member_id=self.id,
                status=self.status,
                inbox=self.inbox,
                waiters=self.waiters,
                quota_bytes=self.cfg.quota_backend_bytes if quota is None else quota,
                is_learner=self.handlers.is_learner,
                db_size=lambda: b.pagefile.size(),
                db_size_in_use=lambda: b.pagefile.size_in_use(),
                revision=lambda: b.revision,
                compact_revision=lambda: b.kv.compact_revision,
            )
        )
        m.state.extra[:] = [watch_series(self.watch_hub), lease_series(lambda: b.applier.lessor)]

    async def _start(self, nursery: trio.Nursery) -> None:
        cfg = self.cfg
        self._wire_metrics()
        for host, port in cfg.metrics_listen if self._network is None else ():
            serve_m = functools.partial(serve_metrics, self.metrics, self.handlers.health, host, port)
            self.metrics_ports.append(await nursery.start(serve_m))
        if self.peer_server is not None:
            peer_host, peer_port = cfg.peer_listen[0]
            self.peer_port = await nursery.start(self.peer_server.serve, peer_host, peer_port)
        nursery.start_soon(self.transport.run)
        nursery.start_soon(self.raft.ticker)
        nursery.start_soon(self.raft.run)
        nursery.start_soon(self.raft.apply_loop.run)
        nursery.start_soon(self.snapshotter.run)
        nursery.start_soon(self.watch_hub.run)
        self.handlers.streams[WatchRequest] = watch_handler(
            self.watch_hub, self.status, cfg.election_timeout_ms / 1000.0
        )
        nursery.start_soon(self.compactor.run)
        nursery.start_soon(self.upkeep.run)
        nursery.start_soon(self.leases.run)
        nursery.start_soon(self.lease_link.run)
        routes = gateway_routes(self.handlers, max_request_bytes=cfg.max_request_bytes)
        routes = {**routes, **watch_routes(self.handlers)}
        routes.update({"/v3beta/" + p[4:]: r for p, r in routes.items() if p.startswith("/v3/")})  # etcd 3.4
        routes = {**routes, SNAPSHOT_PATH: snapshot_route(self.handlers)}
        routes = {**routes, **metrics_routes(self.metrics), **dashboard_routes()}
        for host, port in cfg.client_listen if self._network is None else ():
            serve = functools.partial(
                serve_clients,
                self.handlers,
                host,
                port,
                max_request_bytes=cfg.max_request_bytes,
                routes=routes,
                metrics=self.metrics,
            )
            self.client_ports.append(await nursery.start(serve))
        nursery.start_soon(self._publish)
        log.info(
            "member %s serving clients on %s, peers on %s",
            format_id(self.id),
            ",".join(cfg.listen_client_urls),
            ",".join(cfg.listen_peer_urls),
        )

    async def shutdown(self) -> None:
        """Graceful stop: a leader first hands leadership to the most caught-up voter (etcd does the same)."""
        if self._stopping or not hasattr(self, "raft"):
            return
        self._stopping = True
        if not self.status.is_leader or len(self.backend.applier.members) < 2:
            return
        status = self.raft.raw.status()
        candidates = [
            (pr.match, pid)
            for pid, pr in status.progress.items()
            if pid != self.id and pid in status.conf_state.voters
        ]
        if not candidates:
            return
        _, target = max(candidates)
        log.info("leadership transfer starting: %s -> %s", format_id(self.id), format_id(target))
        self.inbox.control(TransferLeader(target))
        with trio.move_on_after(self.cfg.election_timeout_ms / 1000.0 * 2):
            while self.status.is_leader:
                await trio.sleep(self.cfg.tick_ms / 1000.0)
        if self.status.is_leader:
            log.warning("leadership transfer failed: leader transfer took too long")
        else:
            log.info("leadership transfer finished: new leader %s", format_id(self.status.lead))

    async def _publish(self) -> None:
        """etcd's publish: announce name and client URLs through Raft until it sticks."""
        attrs_ = MemberAttributes(self.id, self.cfg.name, tuple(self.cfg.advertise_client_urls))
        while True:
            current = self.backend.applier.members.get(self.id)
            if current is not None and (current.name, current.client_urls) == (
                attrs_.name,
                attrs_.client_urls,
            ):
                log.info("published local member to cluster: name=%s", self.cfg.name)
                return
            try:
                await self.proposer.propose(attrs_, op="publish")
            except errors.EtcdError:
                await trio.sleep(self.cfg.tick_ms / 1000.0 * 5)


__all__ = ["Node"]
