"""Pending ReadIndex requests on a leader, waiting for a heartbeat round to confirm leadership.

Each request is keyed by its caller-chosen context; heartbeats carry the newest pending context, and a
quorum of acks for a context also confirms every request queued before it.
"""

from __future__ import annotations

from trikv.api.raftpb import Message


class ReadIndexStatus:
    __slots__ = ("acks", "index", "req")

    def __init__(self, req: Message, index: int) -> None:
        self.req = req
        self.index = index
        self.acks: set[int] = set()


class ReadOnly:
    __slots__ = ("pending", "queue")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        ctx = m.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(m, index)
        self.queue.append(ctx)

    def recv_ack(self, frm: int, ctx: bytes) -> set[int] | None:
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(frm)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Dequeue every request up to and including ctx (all confirmed by the same heartbeat round)."""
        if ctx not in self.pending:
            return []
        n = self.queue.index(ctx) + 1
        out = [self.pending.pop(c) for c in self.queue[:n]]
        del self.queue[:n]
        return out

    def last_pending_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
