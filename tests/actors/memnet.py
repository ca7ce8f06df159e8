"""A memory twin of the peer actors: members of one test linked in-process, no sockets.

`MemNet.attach` is the `Network` seam of `trikv.actors.node.Node`: each member gets a `MemLinks` (its
`PeerLinks`). `send` hands every Raft message straight to the addressee's inbox (`Inbox.deliver`, so a full
inbox drops it exactly as the PeerServer's path does). A message to a member that is not running, or across
a cut link, is dropped and the addressee reported unreachable to the sender, as a failed peer stream does.
Snapshot messages get the page file attached from the sender's `snapshot_source` in a task of their own and
end with a `SnapshotStatus` to the sender (actors/peer.py's `Peer._send_snapshot`).

`cluster_info` answers what `trikv.actors.peer.fetch_cluster_info` asks a running member over a socket (a
joining member's first step); tests route `bootstrap.fetch_cluster_info` to it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from trikv.actors.events import Inbox, SnapshotStatus
from trikv.actors.peer import ClusterView
from trikv.api.internal import PeerHelloReply
from trikv.api.raftpb import Message, MessageType, Snapshot


class MemNet:
    """The running members by id, and the links the test has cut."""

    def __init__(self) -> None:
        self.running: dict[int, MemLinks] = {}
        self.cut: set[frozenset[int]] = set()
        self.delivered = 0
        self.snapshots_sent = 0

    def attach(self, view: ClusterView, inbox: Inbox, snapshot_source: Callable[[], bytes]) -> MemLinks:
        return MemLinks(self, view, inbox, snapshot_source)

    def reachable(self, frm: int, to: int) -> MemLinks | None:
        if frozenset((frm, to)) in self.cut:
            return None
        return self.running.get(to)

    async def cluster_info(self, peer_urls: list[str], timeout: float = 2.0) -> PeerHelloReply | None:
        """fetch_cluster_info's twin: the first running member owning one of `peer_urls` answers."""
        await trio.lowlevel.checkpoint()
        for url in peer_urls:
            for links in self.running.values():
                members = links.view.members()
                me = members.get(links.id)
                if me is not None and url in me.peer_urls:
                    return PeerHelloReply(
                        True,
                        cluster_id=links.view.cluster_id,
                        member_id=links.id,
                        members=tuple(members.values()),
                    )
        return None


class MemLinks:
    """One member's PeerLinks over a MemNet."""

    def __init__(
        self, net: MemNet, view: ClusterView, inbox: Inbox, snapshot_source: Callable[[], bytes]
    ) -> None:
        self.net = net
        self.view = view
        self.id = view.member_id
        self.inbox = inbox
        self.snapshot_source = snapshot_source
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        """Reachable while this runs: a cancelled member drops off the network."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.net.running[self.id] = self
                await trio.sleep_forever()
        finally:
            self._nursery = None
            if self.net.running.get(self.id) is self:
                del self.net.running[self.id]

    def send(self, msgs: list[Message]) -> bool:
        """Delivered at once; True all the same, so the Raft loop yields before its fsync as it does when a
        real link buffered something (the in-process tests' scheduling stays what it was)."""
        for m in msgs:
            if m.type == MessageType.SNAP:
                if self._nursery is None:
                    self.inbox.control(SnapshotStatus(m.to, False))
                else:
                    self._nursery.start_soon(self._send_snapshot, m)
                continue
            peer = self.net.reachable(self.id, m.to)
            if peer is None:
                self.inbox.unreachable(m.to)
                continue
            self.net.delivered += 1
            peer.inbox.deliver(m)
        return True

    async def _send_snapshot(self, m: Message) -> None:
        await trio.lowlevel.checkpoint()  # as the real Peer: its own task, after the Ready that made it
        assert m.snapshot is not None
        data = self.snapshot_source()
        peer = self.net.reachable(self.id, m.to)
        ok = False
        if peer is not None:
            self.net.snapshots_sent += 1
            ok = peer.inbox.deliver(attrs.evolve(m, snapshot=Snapshot(m.snapshot.meta, data)))
        self.inbox.control(SnapshotStatus(m.to, ok))

    def sync_members(self) -> None:
        """Links are by id; nothing to (re)dial."""

    def is_active(self, peer_id: int) -> bool:
        return self.net.reachable(self.id, peer_id) is not None


__all__ = ["MemLinks", "MemNet"]
