"""Membership rules on live members: a learner answers only Status and serializable Range, and
strict-reconfig-check refuses a change that would leave fewer started voters than a quorum."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import cluster, get, member_config, peer_url, put, wait_until
from trikv.actors import bootstrap
from trikv.api import protocol, rpc
from trikv.api.errors import EtcdError, GrpcCode
from trikv.api.watch import WatchCreateRequest, WatchRequest

LEARNER_REFUSED = "etcdserver: rpc not supported for learner"
NOT_ENOUGH_STARTED = "etcdserver: re-configuration failed due to not enough started members"


async def refused(node: Any, request: Any) -> EtcdError:
    with pytest.raises(EtcdError) as info:
        await node.handlers.handle(request)
    return info.value


async def test_learner_answers_only_status_and_serializable_range(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A joining member asks a running one for the membership over a socket; here MemNet answers.
    async with cluster() as c:
        monkeypatch.setattr(bootstrap, "fetch_cluster_info", c.net.cluster_info)
        lead = await c.settle()
        await put(lead, b"k", b"v")
        added = await lead.handlers.handle(
            protocol.MemberAddRequest(peer_urls=(peer_url(3),), is_learner=True)
        )
        assert added.member.is_learner
        cfg = member_config("n4", ["n1", "n2", "n3", "n4"], state="existing")
        learner = await c.start("n4", cfg)
        assert learner.id == added.member.id
        lead = await c.settle()  # the learner caught up and published itself
        assert lead.backend.applier.members[learner.id].is_learner

        before = {n.id: n.raft.storage.last_index() for n in c.running()}
        for request in (
            rpc.PutRequest(b"k", b"x"),
            rpc.TxnRequest(success=[rpc.PutRequest(b"k", b"x")]),
            rpc.DeleteRangeRequest(b"k"),
            rpc.RangeRequest(b"k"),  # linearizable
            rpc.CompactionRequest(1),
            protocol.MemberListRequest(),
            protocol.MemberListRequest(linearizable=True),
            protocol.MemberAddRequest(peer_urls=(peer_url(4),)),
            protocol.MemberPromoteRequest(learner.id),
        ):
            err = await refused(learner, request)
            assert (err.text, err.code) == (LEARNER_REFUSED, GrpcCode.UNAVAILABLE), request

        # Every stream too (etcd refuses them all on a learner): a watch gets the same line, nothing emitted.
        emitted: list[Any] = []
        client_side, inbound = trio.open_memory_channel[Any](1)
        client_side.close()  # were the watch served, it would answer "created" and end

        async def emit(item: Any) -> None:
            emitted.append(item)

        with pytest.raises(EtcdError) as info:
            await learner.handlers.stream(
                WatchRequest(create_request=WatchCreateRequest(b"k")), inbound, emit
            )
        assert (info.value.text, info.value.code, emitted) == (LEARNER_REFUSED, GrpcCode.UNAVAILABLE, [])

        status = await learner.handlers.handle(protocol.StatusRequest())
        assert status.is_learner and status.leader == lead.id
        resp = await get(learner, b"k")
        assert resp.kvs[0].value == b"v" and resp.header.member_id == learner.id
        await trio.sleep(3.0)
        assert {n.id: n.raft.storage.last_index() for n in c.running()} == before

        # The voters still answer everything: the refusal is the learner's alone.
        assert len((await lead.handlers.handle(protocol.MemberListRequest())).members) == 4
        assert (await put(c.followers(lead)[0], b"k", b"w")).header.revision == 3
        await c.settle()
        assert (await get(learner, b"k")).kvs[0].value == b"w"


@pytest.mark.parametrize("how", ["stopped", "cut off"])
async def test_strict_reconfig_check_refuses_unsafe_changes(autojump_clock: MockClock, how: str) -> None:
    """One member down (stopped, or running but cut off from both others: no active peer link)."""
    async with cluster() as c:
        lead = await c.settle()
        down, other = c.followers(lead)
        if how == "stopped":
            await c.stop(c.name_of(down))
        else:
            c.net.cut |= {frozenset((down.id, lead.id)), frozenset((down.id, other.id))}
        await wait_until(lambda: not lead.transport.is_active(down.id), "the leader sees the member down")
        before = {n.id: n.raft.storage.last_index() for n in c.running() if n is not down}
        members = dict(lead.backend.applier.members)

        # Removing a second started voter would leave 1 started voter of 2: no quorum.
        for node in (lead, other):
            err = await refused(node, protocol.MemberRemoveRequest(other.id))
            assert (err.text, err.code) == (NOT_ENOUGH_STARTED, GrpcCode.FAILED_PRECONDITION)
        # So would adding a voter that has not started yet (2 started of 4).
        err = await refused(lead, protocol.MemberAddRequest(peer_urls=(peer_url(3),)))
        assert (err.text, err.code) == (NOT_ENOUGH_STARTED, GrpcCode.FAILED_PRECONDITION)
        await trio.sleep(3.0)
        assert {n.id: n.raft.storage.last_index() for n in c.running() if n is not down} == before
        assert lead.backend.applier.members == members

        # Removing the stopped member leaves 2 started voters of 2: allowed.
        resp = await lead.handlers.handle(protocol.MemberRemoveRequest(down.id))
        assert down.id not in {m.id for m in resp.members}
        await wait_until(lambda: down.id not in other.backend.applier.members, "the removal applied")
        assert set(other.backend.applier.members) == {lead.id, other.id}
