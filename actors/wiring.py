"""Wiring: which actor of a member talks to which (the table in node.py's docstring), built in one place.

The Node calls `wire` once storage is open and `wire_metrics` before it starts the actors; features plug
in here (a handler in the Handlers tables, a hook on the Backend, a route on the client port) so the Node
stays a supervisor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import trio

from trikv import __version__
from trikv.actors import bootstrap
from trikv.actors.backend import Backend
from trikv.actors.cluster import ClusterApi
from trikv.actors.compactor import Compactor
from trikv.actors.dashboard import dashboard_routes
from trikv.actors.events import Inbox, RequestIds
from trikv.actors.gateway import gateway_routes
from trikv.actors.gateway_snapshot import SNAPSHOT_PATH, snapshot_route
from trikv.actors.gateway_watch import watch_routes
from trikv.actors.handlers import Handlers
from trikv.actors.httpmsg import Route
from trikv.actors.kv import Identity, KVApi, Proposer
from trikv.actors.lease import LeaseManager, lease_reader, min_lease_ttl
from trikv.actors.lease_api import FORWARDED, LeaseApi
from trikv.actors.lease_forward import LeaderLink
from trikv.actors.lessor import Lessor
from trikv.actors.maintenance import MaintenanceApi
from trikv.actors.metrics_http import metrics_routes
from trikv.actors.metrics_state import Sources, lease_series, watch_series
from trikv.actors.peer import ClusterView, Transport, forward_to_leader
from trikv.actors.peer_server import PeerServer
from trikv.actors.raftnode import RaftNode
from trikv.actors.snapshotter import Snapshotter
from trikv.actors.snapstream import SnapshotReceiver
from trikv.actors.upkeep import Upkeep
from trikv.actors.watch import WatchHub
from trikv.actors.watch_serve import watch_handler
from trikv.api.lease import LeaseKeepAliveRequest
from trikv.api.protocol import MemberListResponse, MemberPromoteRequest
from trikv.api.raftpb import Message
from trikv.api.snapshot import DefragmentRequest, SnapshotRequest
from trikv.api.watch import WatchRequest
from trikv.storage.mvcc import KVStore

if TYPE_CHECKING:
    from trikv.actors.node import Node


class PeerLinks(Protocol):
    """What the Raft loop and the cluster API need of the peer actors (Transport, or a test's twin)."""

    async def run(self) -> None: ...
    def send(self, msgs: list[Message]) -> bool: ...  # True: some wait for the peer tasks
    def sync_members(self) -> None: ...
    def is_active(self, peer_id: int) -> bool: ...


class Network(Protocol):
    """Links members without sockets (in-process tests): one PeerLinks per member."""

    def attach(self, view: ClusterView, inbox: Inbox, snapshot_source: Callable[[], bytes]) -> PeerLinks: ...




def wire(node: Node, opened: bootstrap.Opened) -> None:
    """Build every actor of a member over its opened storage and connect them (the Node starts them)."""
    cfg = node.cfg
    tick, election = cfg.tick_ms / 1000.0, cfg.election_timeout_ms / 1000.0
    node.ident = Identity(opened.member_id, opened.cluster_id)
    node.ids = RequestIds(opened.member_id)
    node.backend = Backend(
        opened.pagefile,
        opened.kv,
        opened.applier,
        node.waiters,
        applied=opened.applied,
        run_sync=node._run_sync,
    )
    node.snapshotter = Snapshotter(
        node.inbox, node.backend, snapshot_count=cfg.snapshot_count, snapshot_index=opened.snapshot_index
    )
    node.compactor = Compactor(node.backend)
    node.backend.on_commit = node.snapshotter.committed
    node.backend.on_compaction_scheduled = node.compactor.scheduled
    _wire_watch(node)
    node.raft = RaftNode(
        opened.raw,
        opened.storage,
        opened.wal,
        inbox=node.inbox,
        backend=node.backend,
        snapshotter=node.snapshotter,
        waiters=node.waiters,
        status=node.status,
        new_read_ctx=lambda: node.ids.next().to_bytes(8, "big"),
        stamp=functools.partial(_stamp, node),
        on_removed=node._removed.set,
        tick_seconds=tick,
        election_seconds=election,
        snapshot_count=cfg.snapshot_count,
        run_sync=node._run_sync,
    )
    node.status.applied = opened.applied
    view = ClusterView(
        opened.member_id,
        opened.cluster_id,
        members=lambda: node.backend.applier.members,
        removed=lambda: node.backend.applier.removed,
    )
    if node._network is None:
        node.transport = Transport(
            view,
            node.inbox,
            snapshot_source=node.snapshotter.snapshot_bytes,
            on_removed=node._removed.set,
            open_snapshot=node.snapshotter.open_snapshot,
            run_sync=node._run_sync,
        )
        receiver = SnapshotReceiver(node.fs, str(cfg.db_path), node.inbox, node._run_sync)
        node.peer_server = PeerServer(
            view, node.inbox, forwarded=functools.partial(_serve_forwarded, node), receiver=receiver
        )
    else:
        node.transport = node._network.attach(view, node.inbox, node.snapshotter.snapshot_bytes)
        node.peer_server = None
    node.raft.transport = node.transport
    node.proposer = Proposer(
        node.ident, node.inbox, node.waiters, node.status, node.ids, node.request_timeout()
    )
    node.kv = KVApi(node.ident, node.status, node.backend, node.proposer)
    cluster = ClusterApi(
        node.ident,
        node.status,
        node.backend,
        node.proposer,
        node.inbox,
        node.ids,
        opened.raw,
        node.transport.is_active,
        functools.partial(forward_to_leader, view),
        strict_reconfig_check=cfg.strict_reconfig_check,
        election_seconds=election,
        tick_seconds=tick,
    )
    node.cluster = cluster
    _wire_leases(node, opened, view)
    node.handlers = Handlers(
        node.kv, cluster, version=__version__, max_txn_ops=cfg.max_txn_ops, leases=node.lease_api
    )
    node.handlers.streams[LeaseKeepAliveRequest] = node.lease_api.keep_alive_stream
    node.maintenance = MaintenanceApi(node.ident, node.status, node.backend)
    node.handlers.table[DefragmentRequest] = node.maintenance.defragment
    node.handlers.streams[SnapshotRequest] = node.maintenance.snapshot
    node.upkeep = Upkeep(
        cfg,
        member_id=node.id,
        status=node.status,
        backend=node.backend,
        proposer=node.proposer,
        kv=node.kv,
        handlers=node.handlers,
        compactor=node.compactor,
        settings=node._upkeep_settings,
    )

def _wire_leases(node: Node, opened: bootstrap.Opened, view: ClusterView) -> None:
    """The LeaseManager owns the lease table; the apply path calls into it (grant/revoke/attach)."""
    cfg = node.cfg
    lessor = Lessor(min_lease_ttl(cfg.election_timeout_ms), trio.current_time)
    node.leases = LeaseManager(
        lessor,
        node.status,
        node.proposer,
        election_seconds=cfg.election_timeout_ms / 1000.0,
        tick_seconds=cfg.tick_ms / 1000.0,
        checkpoint_interval=cfg.lease_checkpoint_interval_ms / 1000.0,
        read_lease_of=lease_reader(node.backend.range),
    )
    node.leases.recover(opened.kv)
    node.backend.applier.lessor = lessor
    node.backend.on_install = node.leases.recover
    node.lease_link = LeaderLink(view, node.status)  # a follower's keep-alives go to the leader over it
    node.lease_api = LeaseApi(node.kv, node.leases, node.lease_link.forward, node.ids.next)

async def _serve_forwarded(node: Node, req: MemberPromoteRequest) -> MemberListResponse:
    if isinstance(req, FORWARDED):  # a follower's lease keep-alive / TimeToLive
        return await node.lease_api.serve_forwarded(req)
    return await node.cluster.promote_here(req)

def _wire_watch(node: Node) -> None:
    """The watch hub: fed by the apply path (never awaited), reads history through the Backend."""
    backend = node.backend

    def want_prev(on: bool) -> None:
        backend.kv.want_prev = on

    node.watch_hub = WatchHub(
        backend,
        lambda rev: node.kv.header(rev),
        max_response_bytes=node.cfg.max_request_bytes,
        set_want_prev=want_prev,
    )
    backend.on_events = node.watch_hub.notify
    backend.on_installed = node.watch_hub.installed

def _stamp(node: Node, kv: KVStore) -> None:
    bootstrap.stamp_identity(kv, node.ident.cluster_id, node.ident.member_id, str(node.cfg.db_path))



def wire_metrics(node: Node) -> None:
    """Hand the member's metrics to the actors that observe, and its state to the scrape-time collector."""
    m, b = node.metrics, node.backend
    node.raft.metrics = b.metrics = node.handlers.metrics = m
    for actor in (node.transport, node.peer_server):
        if isinstance(actor, (Transport, PeerServer)):
            actor.metrics = m
    quota = node.cfg.quota_bytes
    m.attach(
        Sources(
            member_id=node.id,
            status=node.status,
            inbox=node.inbox,
            waiters=node.waiters,
            quota_bytes=node.cfg.quota_backend_bytes if quota is None else quota,
            is_learner=node.handlers.is_learner,
            db_size=lambda: b.pagefile.size(),
            db_size_in_use=lambda: b.pagefile.size_in_use(),
            revision=lambda: b.revision,
            compact_revision=lambda: b.kv.compact_revision,
        )
    )
    m.state.extra[:] = [watch_series(node.watch_hub), lease_series(lambda: b.applier.lessor)]


def client_routes(node: Node) -> dict[str, Route]:
    """Every HTTP path of the client port: the JSON gateway (and etcd 3.4's /v3beta/ aliases), watch,
    snapshot, /metrics and /dashboard."""
    cfg = node.cfg
    routes = dict(gateway_routes(node.handlers, max_request_bytes=cfg.max_request_bytes))
    routes.update(watch_routes(node.handlers))
    routes.update({"/v3beta/" + p[4:]: r for p, r in routes.items() if p.startswith("/v3/")})  # etcd 3.4
    routes[SNAPSHOT_PATH] = snapshot_route(node.handlers)
    routes.update(metrics_routes(node.metrics))
    routes.update(dashboard_routes())
    return routes


def wire_streams(node: Node) -> None:
    """Stream handlers that need running actors (the watch hub)."""
    node.handlers.streams[WatchRequest] = watch_handler(
        node.watch_hub, node.status, node.cfg.election_timeout_ms / 1000.0
    )


__all__ = ["Network", "PeerLinks", "client_routes", "wire", "wire_metrics", "wire_streams"]
