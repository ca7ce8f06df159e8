"""Exactly-once apply across restarts and snapshot installs (etcd's consistent index).

Each scenario returns its violations: the real Applier must give none, the planted ReapplyAfterRestart
(tests/actors/broken.py) some, so the check itself is shown to catch a re-apply.
"""

from __future__ import annotations

from collections import Counter

import pytest
import trio
from trio.testing import MockClock

from tests.actors.broken import ReapplyAfterRestart
from tests.actors.harness import Cluster, cluster, put, wait_until
from trikv.actors.apply import Applier
from trikv.api import rpc

# Keys put several times, interleaved: 20 acknowledged puts.
SCHEDULE = [b"k%d" % k for k in (0, 1, 2, 3, 4, 1, 2, 3, 4, 2, 3, 4, 3, 4, 4, 4, 4, 4, 0, 2)]
SNAPSHOT_COUNT = 10


async def put_all(c: Cluster, keys: list[bytes], counts: Counter[bytes]) -> None:
    lead = await c.leader()
    for key in keys:
        await put(lead, key, b"value-%d" % counts[key])  # acknowledged: it returned
        counts[key] += 1


async def violations(c: Cluster, counts: Counter[bytes], when: str) -> list[str]:
    """What each running member holds vs. the acknowledged puts: revision N+1, version = put count."""
    out = []
    want_rev = sum(counts.values()) + 1
    for name, node in sorted(c.nodes.items()):
        resp = await node.handlers.handle(rpc.RangeRequest(b"k", range_end=b"l", serializable=True))
        if resp.header.revision != want_rev:
            out.append(f"{when}: {name} at revision {resp.header.revision}, expected {want_rev}")
        versions = {kv.key: kv.version for kv in resp.kvs}
        if versions != dict(counts):
            out.append(f"{when}: {name} has versions {versions}, expected {dict(counts)}")
    return out


async def restart_scenario(applier_cls: type[Applier]) -> list[str]:
    """N acknowledged puts, every member stopped, every member restarted over its own disk."""
    counts: Counter[bytes] = Counter()
    async with cluster(applier_cls=applier_cls) as c:
        await c.settle()
        await put_all(c, SCHEDULE, counts)
        await c.settle()
        found = await violations(c, counts, "before the restart")
        await c.stop_all()
        await c.start_all()
        await c.settle()
        return found + await violations(c, counts, "after restarting every member")


async def snapshot_scenario(applier_cls: type[Applier]) -> list[str]:
    """A member down while the others snapshot and compact their logs catches up by snapshot; then a few
    more puts and a restart of every member."""
    counts: Counter[bytes] = Counter()
    async with cluster(snapshot_count=SNAPSHOT_COUNT, applier_cls=applier_cls) as c:
        lead = await c.settle()
        await put_all(c, SCHEDULE[:5], counts)
        lead = await c.settle()
        victim = c.name_of(c.followers(lead)[0])
        behind = c.nodes[victim].raft.storage.last_index()
        await c.stop(victim)
        await put_all(c, SCHEDULE[5:] * 2, counts)  # 4 snapshot intervals
        await wait_until(
            lambda: all(n.raft.storage.first_index() > behind + 1 for n in c.running()),
            "the others compacted their logs past the stopped member",
        )
        # The page files move past the snapshot index: the install then holds entries the leader sends again.
        await put_all(c, SCHEDULE[:4], counts)
        await trio.sleep(1.0)
        node = await c.start(victim)
        await c.settle()
        installed = node.raft.storage.snapshot().meta.index
        assert installed > behind, "the member did not catch up by snapshot"
        assert c.net.snapshots_sent >= 1
        found = await violations(c, counts, "after the snapshot install")
        await put_all(c, SCHEDULE[:6], counts)  # fewer than SNAPSHOT_COUNT: the restart replays them
        await c.settle()
        await c.stop_all()
        await c.start_all()
        await c.settle()
        return found + await violations(c, counts, "after restarting every member")


async def power_loss_scenario(applier_cls: type[Applier]) -> list[str]:
    """N acknowledged puts, then every member loses power (only synced bytes survive, the rest is dropped
    or torn) and restarts: the WAL replays onto page files at whatever consistent index they reached."""
    counts: Counter[bytes] = Counter()
    async with cluster(applier_cls=applier_cls) as c:
        await c.settle()
        await put_all(c, SCHEDULE, counts)
        await trio.sleep(1.0)  # the page-file batches commit (BATCH_INTERVAL)
        await put_all(c, SCHEDULE[:3], counts)  # and these are only in the WALs
        for seed, name in enumerate(sorted(c.nodes)):
            await c.power_loss(name, seed)
        await c.start_all()
        await c.settle()
        return await violations(c, counts, "after restarting every member")


SCENARIOS = [restart_scenario, snapshot_scenario, power_loss_scenario]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_exactly_once(scenario: object, autojump_clock: MockClock) -> None:
    assert callable(scenario)
    assert await scenario(Applier) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_reapply_after_restart_is_caught(scenario: object, autojump_clock: MockClock) -> None:
    assert callable(scenario)
    found = await scenario(ReapplyAfterRestart)
    assert any("after restarting every member" in v for v in found), found
