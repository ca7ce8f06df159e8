"""The apply loop runs beside the Raft loop: a member whose page-file writer is held (an online defrag, a
slow commit) keeps heartbeating, voting and appending; nobody elects, and once the writer is free every
committed entry is applied in order and the waiting writes are answered."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from tests.actors.harness import cluster, get, put, wait_until
from trikv.actors.node import Node


async def _hold_writer_through_writes(autojump_clock: MockClock, role: str) -> None:
    async with cluster() as c:
        lead = await c.settle()
        term = lead.status.term
        held: Node = lead if role == "leader" else c.followers(lead)[0]
        writer_node = c.followers(lead)[-1] if role == "leader" else lead
        election = held.cfg.election_timeout_ms / 1000.0
        answered: list[int] = []

        async def writes() -> None:
            for i in range(20):
                answered.append((await put(writer_node, b"k%d" % i, b"v%d" % i)).header.revision)

        async with trio.open_nursery() as nursery, held.backend.writes_paused():
            applied_before = held.backend.applied
            nursery.start_soon(writes)
            await trio.sleep(5 * election)  # the writer stays held through several election timeouts
            for n in c.running():
                assert (n.status.term, n.status.lead) == (term, lead.id), "an election happened"
            # The held member has the entries committed but not applied; the others answer as usual.
            assert held.backend.applied == applied_before
            assert held.status.committed > applied_before
            if role == "follower":
                assert len(answered) == 20  # a quorum applied them: the writer's answers came back
        await wait_until(lambda: held.backend.applied >= held.status.committed, "the held member catches up")
        await wait_until(lambda: len(answered) == 20, "every write answered")
        assert answered == sorted(answered)
        for i in range(20):
            assert (await get(held, b"k%d" % i)).kvs[0].value == b"v%d" % i


async def test_a_leader_with_its_writer_held_keeps_leading(autojump_clock: MockClock) -> None:
    await _hold_writer_through_writes(autojump_clock, "leader")


async def test_a_follower_with_its_writer_held_keeps_following(autojump_clock: MockClock) -> None:
    await _hold_writer_through_writes(autojump_clock, "follower")
