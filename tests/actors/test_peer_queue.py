"""A Peer's outbound queue is bounded (peer.QUEUE_LIMIT): a message beyond it is dropped and the peer
reported unreachable to Raft (which retransmits and probes), so the Raft loop never waits on a slow link."""

from __future__ import annotations

from trio.testing import MockClock

from trikv.actors.events import Inbox
from trikv.actors.peer import QUEUE_LIMIT, ClusterView, Peer, Transport
from trikv.api.raftpb import Message, MessageType


async def test_full_peer_queue_drops_and_reports_unreachable(autojump_clock: MockClock) -> None:
    inbox = Inbox()
    view = ClusterView(0x1, 0xC1, members=dict, removed=set)
    transport = Transport(view, inbox, snapshot_source=bytes)
    peer = Peer(transport, 0x2, ("http://127.0.0.1:1",))  # never run: nothing drains its queue
    message = Message(MessageType.APP, to=0x2, frm=0x1, term=1)
    for _ in range(QUEUE_LIMIT):
        peer.enqueue(message)
    assert inbox.take_side()[1] == set()  # up to the bound: queued, nobody told
    peer.enqueue(message)  # one beyond: returns at once (enqueue is synchronous), dropped
    assert peer.queued() == QUEUE_LIMIT
    assert inbox.take_side()[1] == {0x2}
