"""A full inbox (events.INBOX_LIMIT): peer messages are dropped and counted, proposals and read waits are
refused with etcd's "too many requests", the channel never holds more than limit + 1 items, and nobody
starts an election over it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import Cluster, cluster, get, put
from trikv.actors.events import INBOX_LIMIT
from trikv.actors.node import Node
from trikv.api import rpc
from trikv.api.errors import EtcdError, GrpcCode, TooManyRequestsError
from trikv.api.raftpb import Message, MessageType

TOO_MANY = "etcdserver: too many requests"
OVER = 500  # messages beyond the bound per burst
BURSTS = 4


def flood(node: Node, message: Callable[[], Message], count: int) -> tuple[int, int]:
    """Deliver `count` copies without yielding (the Raft loop cannot drain meanwhile). Returns (accepted,
    the most items the channel held); a Raft loop waiting in receive() takes the first one directly."""
    accepted = most = 0
    for _ in range(count):
        accepted += node.inbox.deliver(message())
        most = max(most, node.inbox.used())
    return accepted, most


async def assert_refused_while_full(node: Node) -> None:
    for request in (rpc.PutRequest(b"k", b"v"), rpc.RangeRequest(b"k")):  # a proposal, a read wait
        with pytest.raises(TooManyRequestsError) as info:
            await node.handlers.handle(request)
        assert (info.value.text, info.value.code) == (TOO_MANY, GrpcCode.RESOURCE_EXHAUSTED)


async def flood_bursts(c: Cluster, target: Node, message: Callable[[], Message]) -> None:
    """BURSTS floods of INBOX_LIMIT + 1 + OVER messages, one election timeout apart; the leader and the term
    must not change on any member, and the flooded member must serve afterwards."""
    lead = await c.settle()
    term = lead.status.term
    assert target.inbox.limit == INBOX_LIMIT
    election = target.cfg.election_timeout_ms / 1000.0
    for burst in range(1, BURSTS + 1):
        dropped_before = target.inbox.dropped
        accepted, most = flood(target, message, INBOX_LIMIT + 1 + OVER)
        assert most <= INBOX_LIMIT + 1  # bounded: limit data items plus the one wake-up slot
        assert accepted <= INBOX_LIMIT + 1  # + the one handed straight to a Raft loop waiting in receive()
        assert target.inbox.dropped - dropped_before == INBOX_LIMIT + 1 + OVER - accepted >= OVER
        await assert_refused_while_full(target)
        await trio.sleep(election)
        for n in c.running():
            assert (n.status.term, n.status.lead) == (term, lead.id), f"burst {burst}"
    assert (await put(target, b"after", b"flood")).header.revision >= 2
    await c.settle()
    for n in c.running():
        assert (await get(n, b"after")).kvs[0].value == b"flood"
    assert all(n.status.term == term for n in c.running())


async def test_flooded_follower(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        f = c.followers(lead)[0]

        def heartbeat() -> Message:  # the leader's traffic, duplicated
            return Message(MessageType.HEARTBEAT, to=f.id, frm=lead.id, term=lead.status.term, commit=0)

        await flood_bursts(c, f, heartbeat)


async def test_flooded_leader(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        f = c.followers(lead)[0]

        def heartbeat_response() -> Message:  # a follower's traffic, duplicated
            return Message(MessageType.HEARTBEAT_RESP, to=lead.id, frm=f.id, term=lead.status.term)

        await flood_bursts(c, lead, heartbeat_response)


async def test_proposals_beyond_the_bound(autojump_clock: MockClock) -> None:
    """INBOX_LIMIT + 1 + OVER puts arrive at the leader at once: at most INBOX_LIMIT are queued, plus one
    the Raft loop may be receiving (all of them are applied); the rest are refused with "too many requests" before anything is proposed."""
    async with cluster() as c:
        lead = await c.settle()
        term = lead.status.term
        outcomes: list[object] = []

        async def one(i: int) -> None:
            try:
                outcomes.append(await put(lead, b"p%d" % (i % 100), b"v"))
            except EtcdError as exc:
                outcomes.append(exc)

        most = 0

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, lead.inbox.used())
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as watcher:
            watcher.start_soon(watch)
            async with trio.open_nursery() as puts:
                for i in range(INBOX_LIMIT + 1 + OVER):
                    puts.start_soon(one, i)
            watcher.cancel_scope.cancel()
        refused = [o for o in outcomes if isinstance(o, EtcdError)]
        acked = [o for o in outcomes if isinstance(o, rpc.PutResponse)]
        assert len(refused) + len(acked) == INBOX_LIMIT + 1 + OVER
        assert len(refused) >= OVER
        assert all(isinstance(e, TooManyRequestsError) and e.text == TOO_MANY for e in refused)
        assert most <= INBOX_LIMIT + 1
        await c.settle()
        for n in c.running():
            assert n.backend.revision == 1 + len(acked)
            assert n.status.term == term
