"""The Node: a member's supervisor. It opens storage, has wiring.py build and connect the actors, runs them
in one nursery and stops them together.

The actors and what each owns, receives and sends: the actor table in docs/ARCHITECTURE.md (RaftNode,
ApplyLoop, Backend, Snapshotter, Compactor, LeaseManager, WatchHub, Upkeep, peers, client surfaces).
A failure in any actor cancels the member as a whole; SIGTERM first hands leadership over (etcd).
"""

from __future__ import annotations

import functools
import logging

import trio

from trikv.actors import bootstrap, wiring
from trikv.actors.apply import Applier
from trikv.actors.backend import Backend
from trikv.actors.cluster import ClusterApi
from trikv.actors.compactor import Compactor
from trikv.actors.config import ServerConfig
from trikv.actors.events import Inbox, RaftStatus, RequestIds, ToThread, TransferLeader, Waiters, to_thread
from trikv.actors.handlers import Handlers
from trikv.actors.identity import format_id
from trikv.actors.kv import Identity, KVApi, Proposer
from trikv.actors.lease import LeaseManager
from trikv.actors.lease_api import LeaseApi
from trikv.actors.lease_forward import LeaderLink
from trikv.actors.maintenance import MaintenanceApi
from trikv.actors.metrics import MemberMetrics
from trikv.actors.metrics_http import serve_metrics
from trikv.actors.peer_server import PeerServer
from trikv.actors.raftnode import RaftNode
from trikv.actors.server import serve_clients
from trikv.actors.snapshotter import Snapshotter
from trikv.actors.upkeep import Upkeep, UpkeepSettings
from trikv.actors.watch import WatchHub
from trikv.actors.wiring import Network, PeerLinks
from trikv.api import errors
from trikv.api.internal import MemberAttributes
from trikv.storage.files import FileSystem, OsFileSystem

log = logging.getLogger("trikv.node")


class Node:
    """A trikv member. `run()` opens storage, starts the actors in one nursery and serves until cancelled."""

    # The actors it supervises, built by wiring.wire() once storage is open.
    ident: Identity
    ids: RequestIds
    raft: RaftNode
    backend: Backend
    snapshotter: Snapshotter
    compactor: Compactor
    transport: PeerLinks
    peer_server: PeerServer | None
    proposer: Proposer
    kv: KVApi
    cluster: ClusterApi
    handlers: Handlers
    maintenance: MaintenanceApi
    upkeep: Upkeep
    leases: LeaseManager
    lease_link: LeaderLink
    lease_api: LeaseApi
    watch_hub: WatchHub

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

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        join_info = await bootstrap.discover(self.cfg, self.fs)
        opened = bootstrap.open_storage(self.cfg, self.fs, join_info, self._applier_cls)
        try:
            wiring.wire(self, opened)
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

    async def _start(self, nursery: trio.Nursery) -> None:
        cfg = self.cfg
        wiring.wire_metrics(self)
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
        nursery.start_soon(self.proposer.expire)
        nursery.start_soon(self.snapshotter.run)
        nursery.start_soon(self.watch_hub.run)
        wiring.wire_streams(self)
        nursery.start_soon(self.compactor.run)
        nursery.start_soon(self.upkeep.run)
        nursery.start_soon(self.leases.run)
        nursery.start_soon(self.lease_link.run)
        routes = wiring.client_routes(self)
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
