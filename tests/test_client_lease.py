"""`async with client.lease(ttl)` (trikv/leases.py) against a scripted stand-in for the client, under
MockClock: keep-alives every TTL/3, a lost stream reopened without losing the lease, and `lost` set no later
than the send time of the last acknowledged keep-alive + TTL even when no error ever arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio.testing import MockClock

from trikv.api.lease import (
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseRevokeResponse,
)
from trikv.api.rpc import ResponseHeader
from trikv.client import StreamLost
from trikv.leases import hold_lease

TTL = 6
ANSWER_DELAY = 0.5
H = ResponseHeader()


class FakeStream:
    def __init__(self, owner: FakeClient) -> None:
        self.owner = owner
        self.answers: trio.MemorySendChannel[Any]
        self.answers, self._recv = trio.open_memory_channel[Any](100)

    async def send(self, payload: LeaseKeepAliveRequest) -> None:
        await self.owner.on_keepalive(self, payload)

    async def receive(self) -> Any:
        item = await self._recv.receive()
        if isinstance(item, BaseException):
            raise item
        return item


class FakeClient:
    """Answers keep-alives while `answering`; `break_stream()` kills the current stream (StreamLost)."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.answering = True
        self.sent: list[float] = []
        self.streams = 0
        self.revoked: list[int] = []
        self.current: FakeStream | None = None

    async def grant(self, ttl: int, lease_id: int = 0) -> LeaseGrantResponse:
        return LeaseGrantResponse(H, 42, ttl)

    async def revoke(self, lease_id: int) -> LeaseRevokeResponse:
        self.revoked.append(lease_id)
        return LeaseRevokeResponse(H)

    async def on_keepalive(self, st: FakeStream, req: LeaseKeepAliveRequest) -> None:
        self.sent.append(trio.current_time())
        if self.answering:
            self.nursery.start_soon(self._answer, st, req)

    async def _answer(self, st: FakeStream, req: LeaseKeepAliveRequest) -> None:
        await trio.sleep(ANSWER_DELAY)  # the answer arrives later than the keep-alive left
        await st.answers.send(LeaseKeepAliveResponse(H, req.id, TTL))

    def break_stream(self) -> None:
        assert self.current is not None
        self.current.answers.send_nowait(StreamLost("connection lost"))

    @asynccontextmanager
    async def stream(self, op: str, payload: Any, endpoint: str | None = None) -> AsyncIterator[FakeStream]:
        assert op == "lease_keepalive"
        self.streams += 1
        st = self.current = FakeStream(self)
        await self.on_keepalive(st, payload)
        yield st


async def test_keepalives_every_third_of_the_ttl_and_revoke_on_exit(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery, hold_lease(fake := FakeClient(nursery), TTL) as lease:
        await trio.sleep(19)  # the last keep-alive left at 18 s and was answered at 18.5 s
        assert not lease.lost.is_set()
        gaps = [b - a for a, b in zip(fake.sent, fake.sent[1:], strict=False)]
        assert gaps and all(abs(g - TTL / 3) < 0.01 for g in gaps)
        assert lease.keepalives == len(fake.sent)
    assert fake.revoked == [42]


async def test_a_lost_stream_is_reopened_and_the_lease_kept(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery, hold_lease(fake := FakeClient(nursery), TTL) as lease:
        await trio.sleep(3)
        fake.break_stream()
        await trio.sleep(10)
        assert fake.streams == 2 and not lease.lost.is_set()


async def test_lost_by_last_acknowledged_send_plus_ttl_without_any_error(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery, hold_lease(fake := FakeClient(nursery), TTL) as lease:
        await trio.sleep(5)
        fake.answering = False  # the server goes silent: no answer, no error
        last_acked = fake.sent[-1]
        await lease.lost.wait()
        assert trio.current_time() <= last_acked + TTL + 1e-6
        assert trio.current_time() >= last_acked + TTL - 1e-6  # not before it either
    assert fake.revoked == []  # a lost lease is not revoked on exit
