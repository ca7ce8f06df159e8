"""Request timeouts (actors/kv.py Proposer.expire): one task ends the requests whose timeout passed with
etcd's "request timed out", within EXPIRY_STEP of the deadline; a request answered in time is not touched,
and each waiting request expires at its own deadline."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from trikv.actors.events import Inbox, Propose, RaftStatus, RequestIds, Waiters
from trikv.actors.kv import EXPIRY_STEP, Identity, Proposer
from trikv.api import errors, rpc

TIMEOUT = 1.0


def _proposer() -> tuple[Proposer, Inbox, Waiters]:
    inbox, waiters = Inbox(), Waiters()
    status = RaftStatus(lead=1, is_leader=True)
    return Proposer(Identity(1, 7), inbox, waiters, status, RequestIds(1), TIMEOUT), inbox, waiters


async def test_an_unanswered_request_times_out_and_an_answered_one_does_not(autojump_clock: MockClock) -> None:
    proposer, inbox, waiters = _proposer()
    ended: dict[str, float] = {}
    outcome: dict[str, object] = {}

    async def put(name: str) -> None:
        try:
            outcome[name] = await proposer.propose(rpc.PutRequest(name.encode(), b"v"))
        except errors.TimeoutError_ as exc:
            outcome[name] = exc
        ended[name] = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(proposer.expire)
        t0 = trio.current_time()
        nursery.start_soon(put, "lost")
        await trio.sleep(0.3)
        nursery.start_soon(put, "answered")
        await trio.sleep(0.3)
        nursery.start_soon(put, "late")
        await trio.sleep(0.1)
        events = [inbox.receive_nowait() for _ in range(3)]
        assert all(isinstance(ev, Propose) for ev in events)
        answered = events[1]
        assert isinstance(answered, Propose)
        waiters.resolve(answered.request.request_id, "applied")  # as the apply loop does
        await trio.sleep(TIMEOUT * 2)
        nursery.cancel_scope.cancel()
    assert outcome["answered"] == "applied" and ended["answered"] == pytest.approx(t0 + 0.7)
    for name, started in (("lost", 0.0), ("late", 0.6)):
        assert isinstance(outcome[name], errors.TimeoutError_), outcome[name]
        assert t0 + started + TIMEOUT <= ended[name] <= t0 + started + TIMEOUT + EXPIRY_STEP + 1e-9
    assert not waiters.requests and not proposer._deadlines


async def test_a_read_index_wait_times_out_too(autojump_clock: MockClock) -> None:
    proposer, _inbox, _waiters = _proposer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(proposer.expire)
        t0 = trio.current_time()
        with pytest.raises(errors.TimeoutError_):
            await proposer.read_index()
        assert trio.current_time() - t0 == pytest.approx(TIMEOUT, abs=EXPIRY_STEP)
        nursery.cancel_scope.cancel()
