"""A follower's link to the leader for lease keep-alives and TimeToLive (etcd forwards them to the leader).

Opening a peer connection per keep-alive costs a TCP connect, a WebSocket upgrade and the hello check on
both members; a client that renews many leases through a follower would pay that for each. This actor keeps
one `forward` peer connection to the current leader and sends the requests over it one after another
(the leader answers in order, actors/peer.py); a broken link or a new leader means a new connection.
Requests wait in a bounded channel; a request that cannot be sent gets etcd's timeout error.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio_websocket
from trio_websocket import ConnectionClosed, HandshakeError

from trikv.actors.events import RaftStatus
from trikv.actors.peerwire import (
    FORWARD_TIMEOUT,
    MAX_PEER_MESSAGE,
    ClusterView,
    as_bytes,
    exchange_hello,
    ws_url,
)
from trikv.api import codec, errors
from trikv.api.internal import PeerHello

log = logging.getLogger("trikv.lease_forward")

QUEUE = 1024  # forwarded requests waiting for the link (beyond: "etcdserver: too many requests")


@attrs.define(eq=False)
class _Job:
    leader: int
    request: Any
    done: trio.Event = attrs.Factory(trio.Event)
    answer: Any = None
    error: BaseException | None = None


class LeaderLink:
    def __init__(self, view: ClusterView, status: RaftStatus) -> None:
        self.view, self.status = view, status
        self._send, self._recv = trio.open_memory_channel[_Job](QUEUE)
        self._next: _Job | None = None  # taken for a leader other than the link's: the next link's first
        self.connections = 0  # peer connections opened (a metric; tests read it)

    async def forward(self, leader: int, request: Any) -> Any:
        """The leader's answer to `request` (or its error raised); etcd's timeout if it cannot be had."""
        job = _Job(leader, request)
        try:
            self._send.send_nowait(job)
        except trio.WouldBlock:
            raise errors.TooManyRequestsError() from None
        with trio.move_on_after(FORWARD_TIMEOUT + 1):
            await job.done.wait()
        if not job.done.is_set():
            raise errors.TimeoutError_()
        if job.error is not None:
            raise job.error
        return job.answer

    async def run(self) -> None:
        while True:
            first, self._next = self._next or await self._recv.receive(), None
            in_flight: collections.deque[_Job] = collections.deque()
            # except*: the link's tasks raise inside nurseries (exception groups); cancellation passes through
            try:
                async with self._open(first.leader) as ws:
                    await self._pipeline(ws, first, in_flight)
            except* (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError, codec.CodecError) as group:
                log.info("forward link to the leader %016x failed: %r", first.leader, group.exceptions[0])
                self._fail(in_flight or collections.deque([first]), errors.TimeoutError_())
            except* errors.EtcdError as group:  # no such member, or the hello was refused
                self._fail(in_flight or collections.deque([first]), group.exceptions[0])

    async def _pipeline(
        self, ws: trio_websocket.WebSocketConnection, first: _Job, in_flight: collections.deque[_Job]
    ) -> None:
        """Send requests for this leader as they come and match the answers in order (the leader answers
        a link's requests one after another); a request for another leader ends the link once every
        answer arrived (it is kept in `_next`)."""
        sent_send, sent_recv = trio.open_memory_channel[_Job](QUEUE)

        async def reader() -> None:
            async for job in sent_recv:
                with trio.fail_after(FORWARD_TIMEOUT):
                    answer = codec.decode(as_bytes(await ws.get_message()))
                in_flight.popleft()
                _resolve(job, answer)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            async with sent_send:
                job = first
                while job.leader == first.leader:
                    in_flight.append(job)
                    await ws.send_message(codec.encode(job.request))
                    sent_send.send_nowait(job)  # never full: at most QUEUE jobs exist
                    job = await self._recv.receive()
                self._next = job

    @staticmethod
    def _fail(jobs: collections.deque[_Job], exc: BaseException) -> None:
        while jobs:
            job = jobs.popleft()
            if not job.done.is_set():
                job.error = exc
                job.done.set()

    @asynccontextmanager
    async def _open(self, leader: int) -> AsyncIterator[trio_websocket.WebSocketConnection]:
        """A hello-checked `forward` connection to the leader."""
        member = self.view.members().get(leader)
        if member is None or not member.peer_urls:
            raise errors.NoLeaderError()
        self.connections += 1
        async with trio_websocket.open_websocket_url(
            ws_url(member.peer_urls[0]),
            max_message_size=MAX_PEER_MESSAGE,
            connect_timeout=2,
            disconnect_timeout=1,
        ) as ws:
            reply = await exchange_hello(ws, PeerHello("forward", self.view.cluster_id, self.view.member_id, leader))
            if not reply.ok:
                raise errors.NoLeaderError()
            yield ws


def _resolve(job: _Job, answer: Any) -> None:
    if not isinstance(answer, (list, tuple)) or len(answer) != 1:
        job.error = errors.InternalError()
    elif isinstance(answer[0], dict):
        job.error = errors.from_wire(answer[0])
    else:
        job.answer = answer[0]
    job.done.set()


__all__ = ["LeaderLink"]
