"""Each planted bug's production hook changes behaviour only when the test plugin switches it on, and a
member started without the plugin has no hooks at all. In-process members (tests/actors/harness.py, virtual
time) or the lease table alone; the real-process hooks are in tests/cluster/test_fault_hooks.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import cluster, put, wait_until
from tests.actors.test_exactly_once import restart_scenario
from tests.actors.test_watch import Collector, create
from tests.test_layers import ALLOWED, layer_of
from trikv.actors.apply import Applier
from trikv.actors.lessor import Lease, Lessor
from trikv.storage import faults
from trikv.testing import plugin as fp


@pytest.fixture(autouse=True)
def _no_active_hooks() -> Iterator[None]:
    assert faults.ACTIVE is None
    yield
    faults.ACTIVE = None


def plant(*names: str) -> fp.Plugin:
    p = fp.Plugin(fp.Settings(plants=frozenset(names)))
    faults.ACTIVE = p
    return p


async def test_a_member_without_the_plugin_has_no_hooks(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        await put(lead, b"k", b"v")
        assert faults.ACTIVE is None


def test_production_never_imports_the_plugin() -> None:
    """Importing and building a member's modules loads no trikv.testing; only tools may import it."""
    code = (
        "import sys, trikv.actors.main, trikv.actors.node, trikv.actors.wiring, trikv.storage.wal; "
        "print(sorted(m for m in sys.modules if m.startswith('trikv.testing')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
    assert layer_of("trikv.testing.plugin") == "testing"
    assert all(
        "testing" not in ALLOWED[layer] for layer in ("api", "storage", "raft", "actors", "client", "root")
    )


async def test_reapply_after_restart_plant(autojump_clock: MockClock) -> None:
    assert await restart_scenario(Applier) == []
    plant("reapply_after_restart")
    found = await restart_scenario(Applier)
    assert any("after restarting every member" in v for v in found), found


async def watched_revisions(autojump_clock: MockClock) -> tuple[list[int], int]:
    """Revisions a synced watcher on a follower hears over 25 puts, and the last revision written."""
    async with cluster() as c, trio.open_nursery() as nursery:
        lead = await c.settle()
        node = c.followers(lead)[0]
        stream = node.watch_hub.open_stream()
        col = Collector(stream)
        nursery.start_soon(col.run)
        stream.request(create(b"w/", range_end=b"w0"))
        await wait_until(lambda: any(r.created for r in col.responses), "created")
        for i in range(25):
            await put(lead, b"w/%d" % (i % 3), b"v%d" % i)
        final = lead.backend.revision
        await wait_until(lambda: node.watch_hub.rev >= final, "the follower applied everything")
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
        return [ev.kv.mod_revision for r in col.events(0) for ev in r.events], final


async def test_watch_skip_revision_plant(autojump_clock: MockClock) -> None:
    got, final = await watched_revisions(autojump_clock)
    assert got == list(range(final - 24, final + 1))
    plant("watch_skip_revision")
    got, final = await watched_revisions(autojump_clock)
    want = list(range(final - 24, final + 1))
    assert got == [r for r in want if r % 10], (got, want)


def test_lease_early_expiry_plant() -> None:
    """A lease renewed just before the leader change: the new leader keeps it for TTL + extension, unless
    the plant makes it spend a whole TTL at promotion."""
    now = [100.0]

    def promoted_expired() -> list[int]:
        lessor = Lessor(min_ttl=1, clock=lambda: now[0])
        lessor.leases[7] = Lease(7, ttl=10)
        lessor.promote(extend=1.0)
        now[0] += 0.1
        return lessor.expired(10)

    assert promoted_expired() == []
    plant("lease_early_expiry_after_leader_change")
    assert promoted_expired() == [7]


def test_the_lessor_clock_hook() -> None:
    lessor = Lessor(min_ttl=1, clock=lambda: 50.0)
    assert lessor.now() == 50.0
    faults.ACTIVE = fp.Plugin(fp.parse({"clock": {"lessor": {"offset": 3.0}, "ticker": {"offset": 9.0}}}))
    assert lessor.now() == 53.0
