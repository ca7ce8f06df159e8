"""Auto-compaction and the corruption check in-process (virtual time): the leader compacts on schedule
through Raft, followers never propose; a value changed offline in one member's page file raises CORRUPT."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import wait_until
from tests.actors.upkeep_harness import upkeep_cluster
from trikv.actors.autocompact import Periodic
from trikv.actors.upkeep import UpkeepSettings
from trikv.api import codec, errors, rpc
from trikv.api.maintenance import AlarmMember, AlarmType, HashKVRequest
from trikv.storage.mvcc import KEY_BUCKET
from trikv.storage.pagefile import PageFile


async def test_periodic_auto_compaction(autojump_clock: MockClock) -> None:
    """Retention 10 s: every 10 s the leader compacts at the revision of about 10 s before (one 1 s sample
    of slack), on every member; followers propose nothing."""
    async with upkeep_cluster(auto_compaction_retention="10s") as c:
        lead = await c.settle()
        before = lead.backend.revision
        seen: list[tuple[float, int]] = []
        for _ in range(50):
            await lead.handlers.handle(rpc.PutRequest(b"k", b"v"))
            seen.append((trio.current_time(), lead.backend.revision))
            await trio.sleep(0.5)
        await c.settle()

        def revision_at(t: float) -> int:
            return max([before] + [r for s, r in seen if s <= t])

        auto = lead.compactor.auto
        assert isinstance(auto, Periodic)
        assert len(auto.compacted) >= 2
        for t, rev in zip(auto.compacted_at, auto.compacted, strict=True):
            assert revision_at(t - 11.01) <= rev <= revision_at(t - 9.0), (t, rev)
        assert auto.compacted_at[1] - auto.compacted_at[0] == pytest.approx(10.0, abs=0.01)
        for n in c.followers(lead):
            assert isinstance(n.compactor.auto, Periodic) and n.compactor.auto.compacted == []
        last = auto.compacted[-1]
        assert all(n.backend.kv.compact_revision == last for n in c.running())
        await wait_until(
            lambda: all(n.backend.kv.finished_compact_revision == last for n in c.running()),
            "physical compaction on every member",
        )


async def test_revision_auto_compaction(autojump_clock: MockClock) -> None:
    settings = UpkeepSettings(revision_interval=1.0)
    async with upkeep_cluster(
        settings=settings, auto_compaction_mode="revision", auto_compaction_retention="5"
    ) as c:
        lead = await c.settle()
        for i in range(20):
            await lead.handlers.handle(rpc.PutRequest(b"k%d" % i, b"v"))
        current = lead.backend.revision
        await trio.sleep(1.5)
        await c.settle()
        for n in c.running():
            assert n.backend.kv.compact_revision == current - 5
        kept = await lead.handlers.handle(rpc.RangeRequest(b"k19", revision=current - 5))
        assert kept.header.revision == current
        try:
            await lead.handlers.handle(rpc.RangeRequest(b"k0", revision=current - 6))
        except errors.CompactedError:
            pass
        else:
            raise AssertionError("revision below the kept window was not compacted")


def _change_value_offline(fs: object, db_path: str, key: bytes) -> None:
    """What a bit flip that passed every checksum would leave: one stored value differs."""
    pf = PageFile.open(fs, db_path)  # type: ignore[arg-type]
    try:
        with pf.write() as tx:
            for pk, raw in list(tx.range(KEY_BUCKET)):
                kv = codec.decode(raw)
                if kv.key == key:
                    tx.put(
                        KEY_BUCKET,
                        pk,
                        codec.encode(
                            rpc.KeyValue(
                                kv.key, kv.create_revision, kv.mod_revision, kv.version, b"evil", kv.lease
                            )
                        ),
                    )
            tx.commit()
    finally:
        pf.close()


async def test_corruption_check_raises_corrupt(autojump_clock: MockClock) -> None:
    async with upkeep_cluster(corrupt_check_time_ms=2000) as c:
        lead = await c.settle()
        for i in range(10):
            await lead.handlers.handle(rpc.PutRequest(b"k%d" % i, b"good"))
        await c.settle()
        await wait_until(lambda: lead.upkeep.corruption.checks >= 2, "two clean corruption checks")
        assert all(n.backend.applier.alarms.list() == [] for n in c.running())
        hashes = {(await n.handlers.handle(HashKVRequest(lead.backend.revision))).hash for n in c.running()}
        assert len(hashes) == 1  # same key space, same hash

        victim = c.followers(lead)[0]
        name = c.name_of(victim)
        await c.stop(name)
        await trio.sleep(0.5)  # let the leader's batch commit
        _change_value_offline(c.fss[name], str(c.cfgs[name].db_path), b"k3")
        victim = await c.start(name)
        await wait_until(
            lambda: any(n.backend.applier.alarms.has(AlarmType.CORRUPT) for n in c.running()), "CORRUPT"
        )
        await c.settle()
        lead = await c.leader()
        assert lead.backend.applier.alarms.list() == [AlarmMember(victim.id, AlarmType.CORRUPT)]
        try:
            await lead.handlers.handle(rpc.PutRequest(b"x", b"y"))
        except errors.CorruptError as exc:
            assert exc.text == "etcdserver: corrupt cluster"
        else:
            raise AssertionError("a write went through with CORRUPT active")


async def test_no_false_corrupt_under_steady_writes(autojump_clock: MockClock) -> None:
    """Members hash what they applied (the open batch included) and skip what compaction dropped whether or
    not it is physically gone, so checks racing writes, batch commits and a lagging physical compaction
    compare like with like: many checks, no alarm."""
    async with upkeep_cluster(corrupt_check_time_ms=500) as c:
        lead = await c.settle()
        follower = c.followers(lead)[0]
        slow = c.followers(lead)[1]  # its physical compaction lags: dropped revisions linger in its page file
        slow.compactor.batch_limit, slow.compactor.pause = 3, 1.0
        for i in range(300):
            await (lead if i % 2 else follower).handlers.handle(rpc.PutRequest(b"k%d" % (i % 50), b"v%d" % i))
            if i == 150:
                await lead.handlers.handle(rpc.CompactionRequest(lead.backend.revision - 20))
            await trio.sleep(0.037)
        assert lead.upkeep.corruption.checks >= 15
        assert slow.backend.kv.finished_compact_revision < slow.backend.kv.compact_revision
        assert all(n.backend.applier.alarms.list() == [] for n in c.running())
