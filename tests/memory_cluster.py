"""Members of a test cluster without Raft, served by the REAL client server, with faults: FOR UNIT TESTS.

Why: the client's multiplexing, coalescing, failover and retry rules, and trikvctl's outputs, are tested
over real loopback WebSockets without starting processes, and against the server's own code rather than
a second implementation of it. Real: the ClientServer and its WebSocket sessions (framing, coalescing,
shape and size checks), the Handlers table (etcd's static checks, the learner rule), KVApi and
ClusterApi, the Backend and Applier (the one apply path) and the MVCC KVStore over a PageFile on the
CrashFileSystem twin. Not real: Raft. A proposal is applied at once as the next entry of the one store the
members of a test share, and what a Raft loop would decide is the test's to set: the leader (`leader`),
the Raft figures of Status (`STATUS`), member ids (a hash of the peer URLs, so tests can expect them).

Faults, per op (`inject`): an EtcdError to answer, DROP (the connection closes on receipt, no answer),
HANG (never answered), a number (answered after that many seconds). `reverse_replies` answers the requests
of each received frame last first. The ops of every received frame are recorded (`frames`, `requests`).
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import attrs
import trio
import wsproto
import wsproto.events

from trikv.actors.apply import Applier, ApplyOutcome
from trikv.actors.backend import Backend
from trikv.actors.cluster import ClusterApi
from trikv.actors.events import RaftStatus, RequestIds, TransferLeader, Waiters
from trikv.actors.handlers import Handlers
from trikv.actors.kv import Identity, KVApi
from trikv.actors.server import ClientServer
from trikv.api import codec, errors, protocol
from trikv.api.internal import RaftRequest
from trikv.api.protocol import Member
from trikv.api.records import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from trikv.storage.files import CrashFileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile

DROP = "drop"  # fault: close the connection on receipt, without answering
HANG = "hang"  # fault: never answer this request
CLUSTER_ID = 0xC1
TERM = 2
VERSION = "3.4.23"
# What a Raft loop and a real page file would report in Status (etcdctl's transcripts use these).
STATUS = {"db_size": 20480, "db_size_in_use": 16384, "raft_index": 8, "raft_applied_index": 8}
REVERSE_WAIT = 0.5  # seconds a request waits for the rest of its frame before answering in reverse

_CONNECTION: contextvars.ContextVar[Tap] = contextvars.ContextVar("memory_cluster_connection")


async def _inline(fn: Any) -> Any:
    await trio.lowlevel.checkpoint()
    return fn()


def member_id_of(urls: tuple[str, ...]) -> int:
    """The id a member added with these peer URLs gets: the first 8 bytes of sha1 over them."""
    return int.from_bytes(hashlib.sha1(",".join(urls).encode()).digest()[:8], "big")


class Store:
    """The one log and key space of a test cluster: entries are applied and committed as proposed."""

    def __init__(self) -> None:
        fs = CrashFileSystem()
        fs.makedirs("/member")
        pagefile = PageFile.open(fs, "/member/db")
        kv = KVStore(pagefile)
        self.backend = Backend(pagefile, kv, Applier(kv, 0), Waiters(), applied=0, run_sync=_inline)
        self.conf = ConfState()
        self.index = 0
        self.members: list[MemoryMember] = []
        self._order = trio.Lock()  # the log's order

    async def append(self, entry_type: EntryType, data: bytes) -> ApplyOutcome:
        async with self._order:
            self.index += 1
            outcome = await self.backend.apply([Entry(TERM, self.index, entry_type, data)], self._conf_change)
            await self.backend.commit()
            return outcome

    def _conf_change(self, cc: ConfChange) -> ConfState:
        voters, learners = set(self.conf.voters), set(self.conf.learners)
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.PROMOTE_LEARNER):
            voters.add(cc.node_id)
            learners.discard(cc.node_id)
        elif cc.type == ConfChangeType.ADD_LEARNER:
            learners.add(cc.node_id)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            voters.discard(cc.node_id)
            learners.discard(cc.node_id)
        self.conf = ConfState(sorted(voters), sorted(learners))
        return self.conf

    def raft_status(self) -> Any:
        """The little of RawNode.status() ClusterApi reads: the conf state and every member in sync."""
        ids = (*self.conf.voters, *self.conf.learners)
        return SimpleNamespace(conf_state=self.conf, progress={i: SimpleNamespace(match=8) for i in ids})

    def transfer_leader(self, target: int) -> None:
        for m in self.members:
            m.leader = target


class DirectProposer:
    """kv.Proposer's interface without Raft: each proposal is the store's next entry, applied at once."""

    def __init__(self, store: Store, member_id: int) -> None:
        self.store, self.member_id, self.ids = store, member_id, RequestIds(member_id)

    async def propose(self, payload: Any, op: str | None = None) -> Any:
        request = RaftRequest(self.member_id, self.ids.next(), op or protocol.op_of(payload), payload)
        outcome = await self.store.append(EntryType.NORMAL, codec.encode(request))
        (applied,) = outcome.applied
        return applied.response

    async def propose_conf_change(self, change: ConfChange) -> None:
        await self.store.append(EntryType.CONF_CHANGE, codec.encode(change))

    async def read_index(self) -> None:
        await trio.lowlevel.checkpoint()  # one store: everything committed is applied


class _Inbox:
    """The one control event ClusterApi sends (move-leader): the test cluster elects the target at once."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def control(self, event: Any) -> None:
        assert isinstance(event, TransferLeader)
        self.store.transfer_leader(event.target)


class MemoryCluster(ClusterApi):
    """The real ClusterApi; only a new member's id differs (etcd hashes the time in, tests need to know it)."""

    async def member_add(self, req: protocol.MemberAddRequest) -> protocol.MemberAddResponse:
        urls = tuple(req.peer_urls)
        self._check_peer_urls(urls)
        member = Member(member_id_of(urls), "", urls, (), req.is_learner)
        kind = ConfChangeType.ADD_LEARNER if req.is_learner else ConfChangeType.ADD_NODE
        await self.proposer.propose_conf_change(
            ConfChange(kind, member.id, codec.encode(member), self.ids.next())
        )
        return protocol.MemberAddResponse(self._header(), member, self._sorted())

    async def move_leader(self, req: protocol.MoveLeaderRequest) -> protocol.MoveLeaderResponse:
        resp = await super().move_leader(req)
        # The tests' transcript has no revision here (the real handler stamps the current one).
        return protocol.MoveLeaderResponse(attrs.evolve(resp.header, revision=0))


class MemoryMember:
    """One member: the real Handlers over the shared store, with this member's identity."""

    def __init__(self, store: Store, member_id: int, name: str) -> None:
        self.store, self.member_id, self.name = store, member_id, name
        self.status = RaftStatus(term=TERM)
        ident = Identity(member_id, CLUSTER_ID)
        proposer: Any = DirectProposer(store, member_id)
        self.kv = KVApi(ident, self.status, store.backend, proposer)
        raw: Any = SimpleNamespace(status=store.raft_status)
        inbox: Any = _Inbox(store)
        cluster = MemoryCluster(
            ident,
            self.status,
            store.backend,
            proposer,
            inbox,
            proposer.ids,
            raw,
            is_active=lambda _id: True,
            forward=self._forward,
            strict_reconfig_check=False,
            election_seconds=0.1,
            tick_seconds=0.01,
        )
        self.handlers = Handlers(self.kv, cluster, version=VERSION, max_txn_ops=128)
        self.handlers.table[protocol.StatusRequest] = self._status
        store.members.append(self)

    @property
    def leader(self) -> int:
        return self.status.lead

    @leader.setter
    def leader(self, member_id: int) -> None:
        self.status.lead, self.status.is_leader = member_id, member_id == self.member_id

    async def _forward(self, leader: int, request: Any) -> Any:
        for m in self.store.members:
            if m.member_id == leader:
                return await m.handlers.cluster.promote_here(request)
        raise errors.NoLeaderError()

    async def _status(self, req: protocol.StatusRequest) -> protocol.StatusResponse:
        return protocol.StatusResponse(
            self.kv.header(),
            version=VERSION,
            db_size=STATUS["db_size"],
            leader=self.leader,
            raft_index=STATUS["raft_index"],
            raft_term=TERM,
            raft_applied_index=STATUS["raft_applied_index"],
            db_size_in_use=STATUS["db_size_in_use"],
            is_learner=self.handlers.is_learner(),
        )


# --------------------------------------------------------------------------- serving, with faults


@attrs.define
class _Frame:
    """One received frame, while its requests wait to be answered last first (`reverse_replies`)."""

    payloads: list[Any]
    claimed: dict[int, trio.Event] = attrs.Factory(dict)  # position -> set once its answer went out
    full: trio.Event = attrs.Factory(trio.Event)


class Tap(trio.abc.Stream):
    """A client connection's socket, read through a passive WebSocket parser that records each frame."""

    def __init__(self, inner: trio.SocketStream, server: MemberServer) -> None:
        self.inner, self.server = inner, server
        self.socket = inner.socket  # for the server's log lines
        self._ws: wsproto.WSConnection | None = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._parts: list[bytes] = []
        self.waiting: list[_Frame] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self._observe(bytes(data))
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def abort(self) -> None:
        """Close the socket under the session: the client sees the connection die, nothing answered."""
        await trio.aclose_forcefully(self.inner)

    def _observe(self, data: bytes) -> None:
        if self._ws is None:  # plain HTTP, or a stream this parser gave up on
            return
        try:
            self._ws.receive_data(data or None)
            for event in self._ws.events():
                if isinstance(event, wsproto.events.Request):
                    self._ws.send(wsproto.events.AcceptConnection())  # what the real server answers
                elif isinstance(event, wsproto.events.BytesMessage):
                    self._parts.append(bytes(event.data))
                    if event.message_finished:
                        self._record(b"".join(self._parts))
                        self._parts = []
        except Exception:  # a passive observer: whatever it cannot parse, it stops watching
            self._ws = None

    def _record(self, message: bytes) -> None:
        try:
            items = protocol.decode_frame(message)
        except codec.CodecError:
            return
        self.server.frames.append([str(item[1]) for item in items])
        if self.server.reverse_replies:
            self.waiting.append(_Frame([item[2] for item in items]))

    async def in_reverse(self, request: Any) -> None:
        """Returns when every request after this one in its frame has been answered."""
        for frame in self.waiting:
            position = next(
                (i for i, p in enumerate(frame.payloads) if i not in frame.claimed and p == request), None
            )
            if position is not None:
                break
        else:
            return
        mine = frame.claimed[position] = trio.Event()
        if len(frame.claimed) == len(frame.payloads):
            frame.full.set()
            self.waiting.remove(frame)
        with trio.move_on_after(REVERSE_WAIT):  # a request the session refused never comes
            await frame.full.wait()
        later = [i for i in frame.claimed if i > position]
        if later:
            await frame.claimed[min(later)].wait()
        mine.set()  # the next one wakes after this answer was queued (the session queues it on return)


class _TappedServer(ClientServer):
    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        owner: MemberServer = self.backend  # type: ignore[assignment]
        tap = Tap(stream, owner)
        owner.connections.add(tap)
        _CONNECTION.set(tap)  # this task's context: the session's tasks inherit it
        try:
            await super()._handle_connection(tap)  # type: ignore[arg-type]
        finally:
            owner.connections.discard(tap)


class MemberServer:
    """One member on a free loopback port: the real ClientServer over `member.handlers`, plus faults."""

    def __init__(self, member: MemoryMember, *, reverse_replies: bool = False) -> None:
        self.member = member
        self.reverse_replies = reverse_replies
        self.port = 0
        self.frames: list[list[str]] = []  # ops per received frame
        self.faults: dict[str, list[Any]] = {}
        self.connections: set[Tap] = set()
        self._scope: trio.CancelScope | None = None

    member_id = property(lambda self: self.member.member_id)
    name = property(lambda self: self.member.name)

    @property
    def leader(self) -> int:
        return self.member.leader

    @leader.setter
    def leader(self, member_id: int) -> None:
        self.member.leader = member_id

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, op: str, *faults: Any) -> None:
        """Queue faults for the next requests of `op`: an EtcdError to answer, DROP, HANG or a delay."""
        self.faults.setdefault(op, []).extend(faults)

    def requests(self, op: str) -> int:
        return sum(ops.count(op) for ops in self.frames)

    async def stop(self) -> None:
        """Close every connection and stop listening (a crashed member)."""
        await self.kick()
        if self._scope is not None:
            self._scope.cancel()

    async def kick(self) -> None:
        """Close every open connection but keep listening (a network blip)."""
        for tap in list(self.connections):
            await tap.abort()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                server = _TappedServer(self)
                self.port = await nursery.start(server.serve, "127.0.0.1", self.port)
                task_status.started()

    # ---- the Backend protocol of actors/wsession.py, with the faults in front of the real handlers

    async def handle(self, request: Any) -> Any:
        queue = self.faults.get(protocol.op_of(request))
        fault = queue.pop(0) if queue else None
        if fault == DROP:
            await _CONNECTION.get().abort()
            await trio.sleep_forever()
        if fault == HANG:
            await trio.sleep_forever()
        if isinstance(fault, errors.EtcdError):
            raise fault
        if isinstance(fault, int | float):
            await trio.sleep(fault)
        answer = await self.member.handlers.handle(request)
        if self.reverse_replies:
            await _CONNECTION.get().in_reverse(request)
        return answer

    async def stream(self, first: Any, inbound: Any, emit: Any) -> None:
        await self.member.handlers.stream(first, inbound, emit)

    async def health(self) -> tuple[bool, str]:
        return await self.member.handlers.health()

    def version(self) -> dict[str, str]:
        return self.member.handlers.version()


async def seed_members(store: Store, members: list[Member]) -> None:
    """The founding members, as the log's first conf changes."""
    for m in members:
        cc = ConfChange(ConfChangeType.ADD_NODE, m.id, codec.encode(m), int(time.time_ns()))
        await store.append(EntryType.CONF_CHANGE, codec.encode(cc))


@asynccontextmanager
async def running(nursery: trio.Nursery, count: int = 1, **kwargs: Any) -> AsyncIterator[list[MemberServer]]:
    """Start `count` members of one cluster (one store) on free loopback ports; the first one leads.

    Member i is `fake{i}` with id 0x1111 * (i + 1); its peer URL is its client port + 1 (never bound).
    """
    store = Store()
    servers = [
        MemberServer(MemoryMember(store, 0x1111 * (i + 1), f"fake{i}"), **kwargs) for i in range(count)
    ]
    for server in servers:
        await nursery.start(server.serve)
    await seed_members(
        store,
        [Member(s.member_id, s.name, (f"http://127.0.0.1:{s.port + 1}",), (s.url,)) for s in servers],
    )
    store.transfer_leader(servers[0].member_id)
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()
