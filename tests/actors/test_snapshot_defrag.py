"""Maintenance on live in-process members: the Snapshot stream and online Defragment.

- a snapshot stream pins the state it opened with: commits that free and reuse pages while it runs never
  reach its image (the page file's pending-reader rule), and the SHA-256 trailer covers what was sent;
- a snapshot stream running across an online defrag finishes with the state it started with;
- an online defrag held mid-copy by the test-only step hook: a linearizable and a serializable read are
  answered meanwhile; the file shrinks after most keys are deleted and compacted away.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import MemoryDisk, cluster, put, wait_until
from trikv.actors import maintenance
from trikv.actors.node import Node
from trikv.api import rpc
from trikv.api.snapshot import DefragmentRequest, DefragmentResponse, SnapshotRequest, SnapshotResponse
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile
from trikv.storage.wal import WAL, parse_segment_name

KEYS = 300
VALUE = b"v" * 200


async def fill(node: Node, n: int = KEYS, tag: bytes = b"a") -> None:
    for i in range(n):
        await put(node, b"key%04d" % i, tag + VALUE)


async def stream_snapshot(node: Node, during: Any = None) -> bytes:
    """The whole Snapshot stream as bytes (image + trailer); `during(i)` runs before chunk i is taken."""
    items: list[SnapshotResponse] = []

    async def emit(r: Any) -> None:
        assert isinstance(r, SnapshotResponse)
        if during is not None:
            await during(len(items))
        items.append(r)

    _send, recv = trio.open_memory_channel[Any](1)
    await node.handlers.stream(SnapshotRequest(), recv, emit)
    data = b"".join(r.blob for r in items)
    assert [r.remaining_bytes for r in items][-1] == 0
    assert all(a.remaining_bytes - len(b.blob) == b.remaining_bytes for a, b in itertools.pairwise(items))
    return data


def image_state(data: bytes) -> dict[bytes, tuple[bytes, int]]:
    """Verify the image's trailer and pages, then read its key space: key -> (value, mod revision)."""
    image, trailer = data[:-32], data[-32:]
    assert hashlib.sha256(image).digest() == trailer
    disk = MemoryDisk()
    disk.makedirs("/img")
    f = disk.open("/img/db", create=True)
    f.pwrite(image, 0)
    f.sync()
    f.close()
    assert PageFile.check(disk, "/img/db") == []
    pf = PageFile.open(disk, "/img/db")
    try:
        kv = KVStore(pf)
        resp = kv.range(rpc.RangeRequest(b"key", range_end=b"kez"))
        return {x.key: (x.value, x.mod_revision) for x in resp.kvs}
    finally:
        pf.close()


@pytest.fixture
def small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """One 4 KiB chunk per worker-thread read: commits interleave with the stream's reads."""
    monkeypatch.setattr(maintenance, "CHUNK_SIZE", 4096)
    monkeypatch.setattr(maintenance, "READS_PER_THREAD_CALL", 1)


async def test_snapshot_stream_keeps_its_state_while_commits_reuse_pages(
    autojump_clock: MockClock, small_reads: None
) -> None:
    async with cluster() as c:
        lead = await c.settle()
        await fill(lead)
        await trio.sleep(0.5)  # batches committed
        want = await lead.handlers.handle(rpc.RangeRequest(b"key", range_end=b"kez", serializable=True))
        follower = c.followers(lead)[0]
        await wait_until(lambda: follower.backend.applied >= lead.backend.applied, "follower caught up")

        async def overwrite(i: int) -> None:
            # Every chunk: rewrite many keys and let the batch commit; the pages this frees would be
            # reused at once if the stream's read transaction did not pin them.
            for k in range(i * 20 % KEYS, i * 20 % KEYS + 20):
                await put(lead, b"key%04d" % (k % KEYS), b"b" + VALUE)
            await trio.sleep(0.25)

        data = await stream_snapshot(follower, overwrite)
        got = image_state(data)
        assert got == {x.key: (x.value, x.mod_revision) for x in want.kvs}
        now = await lead.handlers.handle(rpc.RangeRequest(b"key", range_end=b"kez", serializable=True))
        assert now.header.revision > want.header.revision + 20  # the writes really happened meanwhile


async def test_snapshot_stream_across_an_online_defrag(autojump_clock: MockClock, small_reads: None) -> None:
    async with cluster(("n1",)) as c:
        lead = await c.settle()
        await fill(lead)
        await trio.sleep(0.5)
        want = await lead.handlers.handle(rpc.RangeRequest(b"key", range_end=b"kez", serializable=True))
        defragged = []

        async def defrag_once(i: int) -> None:
            if i == 1:
                for k in range(KEYS // 2):
                    await put(lead, b"key%04d" % k, b"c" + VALUE)
                defragged.append(await lead.handlers.handle(DefragmentRequest()))

        data = await stream_snapshot(lead, defrag_once)
        assert isinstance(defragged[0], DefragmentResponse)
        assert image_state(data) == {x.key: (x.value, x.mod_revision) for x in want.kvs}
        # and the defragmented member serves the writes made before it
        got = await lead.handlers.handle(rpc.RangeRequest(b"key0000", serializable=True))
        assert got.kvs[0].value == b"c" + VALUE


async def test_online_defrag_serves_reads_mid_copy_and_shrinks_the_file(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        await fill(lead)
        resp = await lead.handlers.handle(rpc.DeleteRangeRequest(b"key0030", range_end=b"kez"))
        await lead.handlers.handle(rpc.CompactionRequest(resp.header.revision, physical=True))
        kv = lead.backend.kv
        await wait_until(lambda: kv.finished_compact_revision >= resp.header.revision, "physical compaction")
        await trio.sleep(0.5)
        before = lead.backend.pagefile.size()

        held, release = trio.Event(), trio.Event()
        holds = 0

        async def hold() -> None:
            nonlocal holds
            holds += 1
            held.set()
            await release.wait()

        lead.maintenance.defrag_step_hook = hold
        answers: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def defrag() -> None:
                answers.append(await lead.handlers.handle(DefragmentRequest()))

            nursery.start_soon(defrag)
            await held.wait()
            with trio.fail_after(5):
                lin = await lead.handlers.handle(rpc.RangeRequest(b"key0005"))
                ser = await lead.handlers.handle(rpc.RangeRequest(b"key0006", serializable=True))
            assert not answers  # still held mid-copy
            release.set()
        assert [x.value for x in lin.kvs] == [b"a" + VALUE] and [x.value for x in ser.kvs] == [b"a" + VALUE]
        assert isinstance(answers[0], DefragmentResponse) and holds >= 1
        after = lead.backend.pagefile.size()
        assert after < before / 2, (before, after)
        # writes go on after the defrag, and the file passes the page-file check
        await put(lead, b"after", b"defrag")
        got = await lead.handlers.handle(rpc.RangeRequest(b"after"))
        assert got.kvs[0].value == b"defrag"


async def test_max_wals_keeps_only_that_many_segments_a_snapshot_released(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test-only small WAL segments (the defaults of WAL.create/open, patched here): with a small
    snapshot-count, segments wholly below a snapshot are released and only max-wals (5) of them kept."""
    small = 16 * 1024
    monkeypatch.setitem(WAL.create.__func__.__kwdefaults__, "segment_size", small)  # type: ignore[attr-defined]
    monkeypatch.setitem(WAL.open.__func__.__kwdefaults__, "segment_size", small)  # type: ignore[attr-defined]
    async with cluster(("n1",), snapshot_count=50) as c:
        lead = await c.settle()
        for i in range(400):
            await put(lead, b"k%d" % (i % 10), b"x" * 400)
        await trio.sleep(1.0)
        wal_dir = str(lead.cfg.wal_dir)
        seqs = sorted(parse_segment_name(n)[0] for n in c.fss["n1"].listdir(wal_dir) if parse_segment_name(n))  # type: ignore[index]
        assert seqs[-1] >= 9, seqs  # the log really spanned many segments
        assert seqs[0] > 0, seqs  # the oldest ones were deleted
        unreleased = 3  # the segments still holding entries behind the last snapshot (at most)
        assert len(seqs) <= lead.cfg.max_wals + unreleased, seqs
