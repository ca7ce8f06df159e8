"""What the actors send each other: the Raft loop's inbox and its events, pending answers, request ids.

The inbox is the Raft loop's only input. It is bounded, and each kind of sender has a policy for a full
inbox (etcd's raftNode drops too: Raft tolerates loss, a client can retry, a clock tick can be owed):

| sender | when the inbox is full |
|---|---|
| PeerServer (Raft messages) | dropped; the sender is reported unreachable (never blocks the peer link) |
| client proposals, read waits | refused with etcd's "etcdserver: too many requests" |
| ticker | ticks are counted, never queued twice: the Raft loop runs every owed tick (capped) |
| peers' unreachable / snapshot status, Snapshotter, leader transfer | a side list, never lost |

Ticks and control events travel on the side and wake the loop with one `Wake` item, which always has
room: the channel holds `limit` data items plus that one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio

from trikv.api import errors
from trikv.api.internal import RaftRequest
from trikv.api.raftpb import Message
from trikv.api.records import ConfChange, ConfState

INBOX_LIMIT = 4096  # peer messages + proposals + read waits queued for the Raft loop
MAX_OWED_TICKS = 5  # a stalled loop catches up a few ticks, never a burst that fires an election

T = TypeVar("T")
# Runs blocking work (fsync, page-file commit, snapshot install) off the event loop. Tests inject one that
# runs inline so that MockClock alone drives time.
ToThread = Callable[[Callable[[], T]], Awaitable[T]]


async def to_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


@attrs.define(eq=False)
class Pending:
    """A client request waiting for its entry to be applied (or its read index to be reached)."""

    done: trio.Event = attrs.Factory(trio.Event)
    result: Any = None
    error: BaseException | None = None

    def resolve(self, result: Any) -> None:
        if self.done.is_set():
            return
        if isinstance(result, BaseException):
            self.error = result
        else:
            self.result = result
        self.done.set()

    async def wait(self) -> Any:
        """The result, or the error raised. No deadline here: the Proposer's sweep resolves a request past its
        timeout with etcd's "request timed out" (kv.py, Proposer.expire)."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


@attrs.frozen
class Propose:
    request: RaftRequest
    pending: Pending


@attrs.frozen
class ProposeConfChange:
    change: ConfChange
    pending: Pending


@attrs.frozen
class ReadIndexWait:
    pending: Pending  # resolved with the read index once it is applied locally


@attrs.frozen
class Wake:
    """Side-band work (ticks, control events) is waiting."""


@attrs.frozen
class SnapshotStatus:
    peer: int
    ok: bool


@attrs.frozen
class TransferLeader:
    target: int


@attrs.frozen
class CompactLog:
    """From the Snapshotter: the page file durably holds everything up to `index` (with `conf_state`):
    snapshot the Raft log there, release WAL segments and compact the in-memory log."""

    index: int
    conf_state: ConfState


WAKE = Wake()
InboxEvent = Message | Propose | ProposeConfChange | ReadIndexWait | Wake
ControlEvent = SnapshotStatus | TransferLeader | CompactLog


class Inbox:
    """The Raft loop's bounded input (policies in the module docstring)."""

    def __init__(self, limit: int = INBOX_LIMIT) -> None:
        self.limit = limit
        self._send, self._recv = trio.open_memory_channel[InboxEvent](limit + 1)
        self._queued = 0  # data items in the channel (kept here: statistics() builds an object per call)
        self._wake_queued = False
        self._ticks = 0
        self._unreachable: set[int] = set()
        self._control: list[ControlEvent] = []
        self.dropped = 0  # peer messages dropped on a full inbox (a metric)

    def _full(self) -> bool:
        return self._queued >= self.limit

    # -- senders
    def deliver(self, m: Message) -> bool:
        """A Raft message from a peer link; never blocks. False: dropped, the sender is reported unreachable."""
        if self._full():
            self.dropped += 1
            self.unreachable(m.frm)
            return False
        self._send.send_nowait(m)
        self._queued += 1
        return True

    def request(self, ev: Propose | ProposeConfChange | ReadIndexWait) -> None:
        if self._full():
            raise errors.TooManyRequestsError()
        self._send.send_nowait(ev)
        self._queued += 1

    def tick(self) -> None:
        self._ticks += 1
        self._wake()

    def unreachable(self, peer: int) -> None:
        self._unreachable.add(peer)
        self._wake()

    def control(self, ev: ControlEvent) -> None:
        self._control.append(ev)
        self._wake()

    def _wake(self) -> None:
        if not self._wake_queued:
            self._wake_queued = True
            self._send.send_nowait(WAKE)  # the one slot above `limit` is reserved for it

    # -- the Raft loop's side
    async def receive(self) -> InboxEvent:
        ev = await self._recv.receive()
        if ev is not WAKE:
            self._queued -= 1
        return ev

    def receive_nowait(self) -> InboxEvent:
        ev = self._recv.receive_nowait()
        if ev is not WAKE:
            self._queued -= 1
        return ev

    def take_side(self) -> tuple[int, set[int], list[ControlEvent]]:
        """(owed ticks, unreachable peers, control events) since the last call; re-arms the wake."""
        self._wake_queued = False
        ticks, unreachable, control = min(self._ticks, MAX_OWED_TICKS), self._unreachable, self._control
        self._ticks, self._unreachable, self._control = 0, set(), []
        return ticks, unreachable, control

    def used(self) -> int:
        return self._send.statistics().current_buffer_used


class RequestIds:
    """Unique across restarts of this member: a time prefix plus a counter (etcd's idutil)."""

    def __init__(self, member_id: int) -> None:
        prefix = ((member_id & 0xFFFF) << 48) | ((time.time_ns() // 1_000_000) & 0xFFFFFFFFFF) << 8
        self._counter = itertools.count(prefix)

    def next(self) -> int:
        return next(self._counter) & 0xFFFFFFFFFFFFFFFF


class Waiters:
    """Proposals of this member waiting for their entries to apply, by request id / conf change id."""

    def __init__(self) -> None:
        self.requests: dict[int, Pending] = {}
        self.conf_changes: dict[int, Pending] = {}

    def resolve(self, request_id: int, result: Any) -> None:
        pending = self.requests.pop(request_id, None)
        if pending is not None:
            pending.resolve(result)

    def resolve_conf_change(self, cc_id: int) -> None:
        pending = self.conf_changes.pop(cc_id, None)
        if pending is not None:
            pending.resolve(None)


@attrs.define
class RaftStatus:
    """What the Raft loop publishes for the other actors to read (written only by the Raft loop)."""

    lead: int = 0
    term: int = 0
    is_leader: bool = False
    committed: int = 0
    applied: int = 0


__all__ = [
    "INBOX_LIMIT",
    "WAKE",
    "CompactLog",
    "ControlEvent",
    "Inbox",
    "InboxEvent",
    "Pending",
    "Propose",
    "ProposeConfChange",
    "RaftStatus",
    "ReadIndexWait",
    "RequestIds",
    "SnapshotStatus",
    "ToThread",
    "TransferLeader",
    "Waiters",
    "Wake",
    "to_thread",
]
