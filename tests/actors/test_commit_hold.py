"""In a whole in-memory cluster with the leader's commit hold (actors/commithold.py): followers still learn
every commit within HOLD of the last write, not a heartbeat interval later, and a write through a follower
is answered once that follower applied it, without waiting for the hold."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from tests.actors.harness import cluster, get, put, wait_until
from trikv.actors.commithold import HOLD


async def test_followers_learn_every_commit_and_forwarded_writes_are_answered(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        f1, f2 = c.followers(lead)
        for i in range(5):
            await put(lead, b"k%d" % i, b"v")
        t0 = trio.current_time()
        await wait_until(
            lambda: all(f.backend.applied == lead.backend.applied for f in (f1, f2)), "followers applied"
        )
        assert trio.current_time() - t0 <= 2 * HOLD + 0.05  # the hold, not a heartbeat interval
        t0 = trio.current_time()
        answered = await put(f1, b"through-a-follower", b"v")
        assert trio.current_time() - t0 < HOLD  # the follower got its commit at once
        got = await get(f1, b"through-a-follower")  # and had applied it when it answered
        assert got.kvs and got.kvs[0].mod_revision == answered.header.revision
