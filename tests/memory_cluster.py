"""Members of a test cluster without Raft, built from the server's real parts: FOR UNIT TESTS.

Why: client and trikvctl tests should run against the server's own code, not a second implementation of
it. Real: the Handlers table (etcd's static checks, the learner rule), KVApi and ClusterApi, the Backend
and Applier (the one apply path) and the MVCC KVStore over a PageFile on the CrashFileSystem twin. Not
real: Raft. A proposal is applied at once as the next entry of the one store the members of a test share,
and what a Raft loop would decide is the test's to set: the leader (`leader`), the Raft figures of Status
(`STATUS`), member ids (a hash of the peer URLs, so tests can expect them). tests/member_server.py serves
these members with the real client server and injects faults.
"""

from __future__ import annotations

import hashlib
import time
from types import SimpleNamespace
from typing import Any

import attrs
import trio

from trikv.actors.apply import Applier, ApplyOutcome
from trikv.actors.backend import Backend
from trikv.actors.cluster import ClusterApi
from trikv.actors.events import RaftStatus, RequestIds, TransferLeader, Waiters
from trikv.actors.handlers import Handlers
from trikv.actors.kv import Identity, KVApi
from trikv.api import codec, errors, protocol
from trikv.api.internal import RaftRequest
from trikv.api.protocol import Member
from trikv.api.records import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from trikv.storage.files import CrashFileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile

CLUSTER_ID = 0xC1
TERM = 2
VERSION = "3.4.23"
# What a Raft loop and a real page file would report in Status (etcdctl's transcripts use these).
STATUS = {"db_size": 20480, "db_size_in_use": 16384, "raft_index": 8, "raft_applied_index": 8}


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


async def seed_members(store: Store, members: list[Member]) -> None:
    """The founding members, as the log's first conf changes."""
    for m in members:
        cc = ConfChange(ConfChangeType.ADD_NODE, m.id, codec.encode(m), int(time.time_ns()))
        await store.append(EntryType.CONF_CHANGE, codec.encode(cc))
