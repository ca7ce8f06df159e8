"""Power loss during MVCC writes and compaction, on the real PageFile over the CrashFileSystem twin.

A batch is all or nothing: after a crash at any mutating call of its commit, the reopened store holds
either the state before the batch or after it, and its consistent index says which. A crash during
physical compaction loses nothing readable at or above the compact revision, and the compaction finishes
when the store reopens.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from trikv.api.rpc import CompactionRequest, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest
from trikv.storage import files, pagefile
from trikv.storage.mvcc import KVStore

PATH = "/data/db"


def snapshot(kv: KVStore) -> dict[int, tuple[KeyValue, ...]]:
    """Every readable revision's full contents."""
    out = {}
    for rev in range(max(kv.compact_revision, 1), kv.current_revision + 1):
        out[rev] = kv.range(RangeRequest(b"\0", b"\0", revision=rev)).kvs
    return out


def batch(kv: KVStore, rnd: random.Random, ci: int) -> None:
    with kv.write() as b:
        for _ in range(rnd.randrange(1, 20)):
            key = b"k%02d" % rnd.randrange(30)
            if rnd.random() < 0.2:
                b.delete_range(DeleteRangeRequest(key, b"k%02d" % (int(key[1:]) + 3)))
            else:
                b.put(PutRequest(key, rnd.randbytes(rnd.choice([3, 300, 5000]))))
        b.set_consistent_index(ci, 1)
        b.commit()


def open_store(fs: Any) -> tuple[Any, KVStore]:
    pf = pagefile.PageFile.open(fs, PATH)
    return pf, KVStore(pf)


@pytest.mark.parametrize("seed", range(12))
def test_crash_during_batch_commit_is_all_or_nothing(seed: int) -> None:
    rnd = random.Random(seed)
    fs = files.CrashFileSystem()
    fs.makedirs("/data")
    pf, kv = open_store(fs)
    for ci in range(1, 6):
        batch(kv, rnd, ci)
    before = (kv.consistent_index, snapshot(kv))
    fs.arm(rnd.randrange(1, 12))
    try:
        batch(kv, rnd, 6)
        fs.disarm()
        after: tuple[int, Any] | None = (kv.consistent_index, snapshot(kv))
        crashed = False
    except files.SimulatedCrash:
        after, crashed = None, True
    fs = fs.crash(rnd)
    pf, kv = open_store(fs)
    got = (kv.consistent_index, snapshot(kv))
    if crashed:
        # never half a batch: either it reached the disk whole (ci 6) or not at all (ci 5)
        assert got[0] in (5, 6)
        if got[0] == 5:
            assert got == before
        else:
            assert all(got[1][r] == before[1][r] for r in before[1])
    else:
        assert got == after  # a commit that returned is durable
    kv.close()
    pf.close()


@pytest.mark.parametrize("seed", range(8))
def test_crash_during_compaction_finishes_at_open(seed: int) -> None:
    rnd = random.Random(100 + seed)
    fs = files.CrashFileSystem()
    fs.makedirs("/data")
    pf, kv = open_store(fs)
    for ci in range(1, 10):
        batch(kv, rnd, ci)
    at = rnd.randrange(1, kv.current_revision + 1)
    with kv.write() as b:
        b.compact(CompactionRequest(at))
        b.set_consistent_index(10, 1)
        b.commit()
    expect = snapshot(kv)
    fs.arm(rnd.randrange(1, 30))
    try:
        while not kv.compact_step(limit=rnd.choice([1, 5, 50])):
            pass
        fs.disarm()
    except files.SimulatedCrash:
        pass
    fs = fs.crash(rnd)
    pf, kv = open_store(fs)
    assert kv.compact_revision == at and kv.finished_compact_revision == at
    assert snapshot(kv) == expect
    assert not pagefile.PageFile.check(fs, PATH)
    kv.close()
    pf.close()
