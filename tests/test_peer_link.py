"""The peer link over real loopback sockets: messages to one member arrive in the order they were sent,
whichever way each left (queued before the link was up, written straight from the caller, or buffered
behind a socket that was full and flushed by the link's writer task)."""

from __future__ import annotations

import trio

from trikv.actors.events import Inbox
from trikv.actors.peer import BUFFER_LIMIT, Transport
from trikv.actors.peer_server import PeerServer
from trikv.actors.peerwire import ClusterView
from trikv.api.protocol import Member
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import Entry

A, B, CLUSTER = 0xA1, 0xB2, 0xC1


def app(i: int, size: int) -> Message:
    return Message(MessageType.APP, to=B, frm=A, term=1, index=i, entries=(Entry(1, i + 1, data=b"x" * size),))


async def test_messages_to_one_member_arrive_in_send_order() -> None:
    members: dict[int, Member] = {}
    inbox_a, inbox_b = Inbox(), Inbox(limit=100_000)
    view_a = ClusterView(A, CLUSTER, members=lambda: members, removed=set)
    view_b = ClusterView(B, CLUSTER, members=lambda: members, removed=set)
    received: list[int] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(PeerServer(view_b, inbox_b).serve, "127.0.0.1", 0)
            members[A] = Member(A, "a", ("http://127.0.0.1:1",))
            members[B] = Member(B, "b", (f"http://127.0.0.1:{port}",))
            transport = Transport(view_a, inbox_a, snapshot_source=bytes)
            nursery.start_soon(transport.run)
            while B not in transport.peers:  # the transport's run task creates its peers (a loaded box: later)
                await trio.sleep(0)
            peer = transport.peers[B]
            n = 0
            for _ in range(50):  # before the link is up: queued
                transport.send([app(n, 10)])
                n += 1
            assert peer.link is None and peer.queued() == 50
            while peer.link is None:
                await trio.sleep(0.01)
            # Large frames back to back without yielding: the socket fills, the rest is buffered in order.
            for _ in range(40):
                transport.send([app(n, 256 << 10), app(n + 1, 10)])
                n += 2
            assert peer.link.buffered() > 0 and peer.link.buffered() < BUFFER_LIMIT
            for _ in range(200):  # small ones, mostly straight to the socket once the backlog is flushed
                transport.send([app(n, 100)])
                n += 1
                if n % 7 == 0:
                    await trio.sleep(0)
            while len(received) < n:
                m = await inbox_b.receive()
                if isinstance(m, Message):
                    received.append(m.index)
            nursery.cancel_scope.cancel()
    assert received == list(range(n))
