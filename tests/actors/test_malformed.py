"""A committed entry that is not what its type says is a logged no-op on every member, live and on replay
(a poison pill must not stop the apply loop on every member and every restart)."""

from __future__ import annotations

import logging

import pytest
from trio.testing import MockClock

from tests.actors.harness import cluster, get, put, wait_until
from trikv.actors import backend
from trikv.actors.node import Node

GARBAGE = b"garbage: not a RaftRequest"


def garbage_index(node: Node) -> int | None:
    st = node.raft.storage
    for e in st.entries(st.first_index(), st.last_index() + 1):
        if e.data == GARBAGE:
            return e.index
    return None


def skipped(caplog: pytest.LogCaptureFixture, index: int) -> int:
    needle = f"skipping malformed NORMAL entry at index {index} "
    return sum(1 for r in caplog.records if r.name == "trikv.apply" and r.getMessage().startswith(needle))


async def test_malformed_committed_entry(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Page-file batches stay open until a member stops: after a power loss the WAL replays the garbage.
    monkeypatch.setattr(backend, "BATCH_INTERVAL", 1e9)
    caplog.set_level(logging.ERROR, logger="trikv.apply")
    async with cluster() as c:
        lead = await c.settle()
        await put(lead, b"k", b"before")
        # Straight into the leader's Raft log: RaftNode refuses such a proposal from the inbox.
        lead.raft.raw.propose(GARBAGE)
        await wait_until(lambda: garbage_index(lead) is not None, "the garbage entry in the leader's log")
        index = garbage_index(lead)
        assert index is not None
        await wait_until(lambda: all(n.backend.applied >= index for n in c.running()), "every member past it")
        assert skipped(caplog, index) == 3  # logged once by each member
        assert all(garbage_index(n) == index for n in c.running())

        # Everyone keeps serving.
        lead = await c.leader()
        assert (await put(lead, b"k", b"after")).header.revision == 3
        await c.settle()
        for n in c.running():
            assert (await get(n, b"k")).kvs[0].value == b"after"

        # Power loss on every member: the page files never saw the garbage, the WAL replays it.
        for seed, name in enumerate(list(c.nodes)):
            await c.power_loss(name, seed)
        await c.start_all()
        lead = await c.settle()
        assert skipped(caplog, index) == 6  # replayed and skipped again, on each member
        for n in c.running():
            resp = await get(n, b"k")
            assert (resp.header.revision, resp.kvs[0].version, resp.kvs[0].value) == (3, 2, b"after")
        assert (await put(lead, b"k", b"again")).header.revision == 4

        # A clean restart: the page file's consistent index is past the garbage, nothing to skip.
        await c.stop_all()
        await c.start_all()
        for n in c.running():
            assert n.backend.kv.consistent_index > index
        await c.settle()
        assert skipped(caplog, index) == 6
