"""The typed cluster handlers (etcd's v3 Cluster service and MoveLeader): membership changes through Raft.

etcd's rules before a change is proposed: peer URLs valid and unused, strict-reconfig-check (a change
that would leave fewer started voters than a quorum is refused), a learner is promoted only once its log
is within 90% of the leader's (decided on the leader).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trikv.actors.backend import Backend
from trikv.actors.events import Inbox, RaftStatus, RequestIds, TransferLeader
from trikv.actors.identity import member_id as compute_member_id
from trikv.actors.identity import valid_peer_url
from trikv.actors.kv import Identity, Proposer
from trikv.actors.raft import RawNode
from trikv.api import codec, errors, protocol, rpc
from trikv.api.protocol import Member
from trikv.api.records import ConfChange, ConfChangeType


class ClusterApi:
    def __init__(
        self,
        ident: Identity,
        status: RaftStatus,
        backend: Backend,
        proposer: Proposer,
        inbox: Inbox,
        ids: RequestIds,
        raw: RawNode,
        is_active: Callable[[int], bool],
        forward: Callable[[int, Any], Awaitable[Any]],
        *,
        strict_reconfig_check: bool,
        election_seconds: float,
        tick_seconds: float,
    ) -> None:
        self.ident, self.status, self.backend, self.proposer = ident, status, backend, proposer
        self.inbox, self.ids, self.raw = inbox, ids, raw  # raw: read-only status (progress, conf state)
        self.is_active = is_active  # a peer link to this member is up (etcd: transport ActiveSince)
        self.forward = forward  # (leader id, request) -> the leader's answer, over a peer link
        self.strict = strict_reconfig_check
        self.election_seconds, self.tick_seconds = election_seconds, tick_seconds

    @property
    def members(self) -> dict[int, Member]:
        return self.backend.applier.members

    def _header(self) -> rpc.ResponseHeader:
        return rpc.ResponseHeader(self.ident.cluster_id, self.ident.member_id, 0, self.status.term)

    def _sorted(self) -> tuple[Member, ...]:
        return tuple(sorted(self.members.values(), key=lambda m: m.id))

    async def member_list(self, req: protocol.MemberListRequest) -> protocol.MemberListResponse:
        if req.linearizable:
            await self.proposer.read_index()
        return protocol.MemberListResponse(self._header(), self._sorted())

    def _check_peer_urls(self, urls: tuple[str, ...], exclude: int = 0) -> None:
        if not urls or any(not valid_peer_url(u) for u in urls):
            raise errors.MemberBadURLsError()
        for m in self.members.values():
            if m.id != exclude and set(m.peer_urls) & set(urls):
                raise errors.PeerURLExistError()

    def _check_quorum_after(self, voters_after: set[int]) -> None:
        """etcd's strict-reconfig-check: refuse a change after which the started voters are no quorum."""
        if not self.strict or not voters_after:
            return
        started = {v for v in voters_after if v == self.ident.member_id or (v and self.is_active(v))}
        if len(started) < len(voters_after) // 2 + 1:
            raise errors.MemberNotEnoughStartedError()

    async def member_add(self, req: protocol.MemberAddRequest) -> protocol.MemberAddResponse:
        urls = tuple(req.peer_urls)
        self._check_peer_urls(urls)
        voters = set(self.raw.status().conf_state.voters)
        # The new voter has not started yet. etcd's exception: a one-member cluster may always add one.
        if not req.is_learner and len(voters) > 1:
            self._check_quorum_after(voters | {0})
        # etcd: the id hashes the peer URLs with the time; chosen here, it travels in the entry.
        mid = compute_member_id(urls, "", now=time.time())
        member = Member(mid, "", urls, (), req.is_learner)
        kind = ConfChangeType.ADD_LEARNER if req.is_learner else ConfChangeType.ADD_NODE
        await self.proposer.propose_conf_change(ConfChange(kind, mid, codec.encode(member), self.ids.next()))
        return protocol.MemberAddResponse(self._header(), member, self._sorted())

    def _target(self, member_id: int) -> Member:
        target = self.members.get(member_id)
        if target is None:
            raise errors.MemberNotFoundError()
        return target

    async def member_remove(self, req: protocol.MemberRemoveRequest) -> protocol.MemberListResponse:
        self._target(req.id)
        voters = set(self.raw.status().conf_state.voters)
        if req.id in voters:
            self._check_quorum_after(voters - {req.id})
        await self.proposer.propose_conf_change(
            ConfChange(ConfChangeType.REMOVE_NODE, req.id, b"", self.ids.next())
        )
        return protocol.MemberListResponse(self._header(), self._sorted())

    async def member_update(self, req: protocol.MemberUpdateRequest) -> protocol.MemberListResponse:
        target = self._target(req.id)
        urls = tuple(req.peer_urls)
        self._check_peer_urls(urls, exclude=req.id)
        ctx = codec.encode(Member(req.id, target.name, urls, target.client_urls, target.is_learner))
        await self.proposer.propose_conf_change(
            ConfChange(ConfChangeType.UPDATE_NODE, req.id, ctx, self.ids.next())
        )
        return protocol.MemberListResponse(self._header(), self._sorted())

    async def member_promote(self, req: protocol.MemberPromoteRequest) -> protocol.MemberListResponse:
        if not self.status.is_leader:
            # etcd: only the leader knows whether the learner is in sync; a follower forwards the request.
            if self.status.lead == 0:
                raise errors.NoLeaderError()
            resp = await self.forward(self.status.lead, req)
            return protocol.MemberListResponse(self._header(), tuple(resp.members))
        return await self.promote_here(req)

    async def promote_here(self, req: protocol.MemberPromoteRequest) -> protocol.MemberListResponse:
        """On the leader: the learner's readiness is decided here (also for a follower's forwarded promote)."""
        if not self._target(req.id).is_learner:
            raise errors.MemberNotLearnerError()
        self._check_learner_ready(req.id)
        voters = set(self.raw.status().conf_state.voters)
        self._check_quorum_after(voters | {req.id})
        await self.proposer.propose_conf_change(
            ConfChange(ConfChangeType.PROMOTE_LEARNER, req.id, b"", self.ids.next())
        )
        return protocol.MemberListResponse(self._header(), self._sorted())

    def _check_learner_ready(self, learner: int) -> None:
        """etcd: promote only a learner whose log is within 90% of the leader's (decided on the leader)."""
        if not self.status.is_leader:
            raise errors.NotLeaderError()
        status = self.raw.status()
        pr = status.progress.get(learner)
        leader_pr = status.progress.get(self.ident.member_id)
        if pr is None or leader_pr is None or pr.match < 0.9 * leader_pr.match:
            raise errors.LearnerNotReadyError()

    async def move_leader(self, req: protocol.MoveLeaderRequest) -> protocol.MoveLeaderResponse:
        if not self.status.is_leader:
            raise errors.NotLeaderError()
        header = rpc.ResponseHeader(
            self.ident.cluster_id, self.ident.member_id, self.backend.revision, self.status.term
        )
        target = req.target_id
        if target == self.ident.member_id:
            return protocol.MoveLeaderResponse(header)  # etcd: already the leader, nothing to do
        if target not in self.raw.status().conf_state.voters:
            raise errors.BadLeaderTransfereeError()
        self.inbox.control(TransferLeader(target))
        with trio.move_on_after(self.election_seconds * 2):
            while self.status.lead != target:
                await trio.sleep(self.tick_seconds / 2)
        if self.status.lead != target:
            raise errors.LeaderTransferTimeoutError()
        return protocol.MoveLeaderResponse(header)


__all__ = ["ClusterApi"]
