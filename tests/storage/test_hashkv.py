"""HashKV's bytes (trikv.storage.hashkv): members that hold the same key space agree whether or not their
physical compaction has finished; any changed value, key or revision changes the hash."""

from __future__ import annotations

from trikv.api import codec, rpc
from trikv.storage.files import CrashFileSystem
from trikv.storage.hashkv import KVHasher, hash_all, hash_kv
from trikv.storage.mvcc import KEY_BUCKET, KVStore
from trikv.storage.pagefile import PageFile


def build(path: str = "/db") -> tuple[PageFile, KVStore]:
    pf = PageFile.open(CrashFileSystem(), path)
    kv = KVStore(pf)
    with kv.write() as b:
        for i in range(20):
            b.put(rpc.PutRequest(b"k%d" % (i % 7), b"v%d" % i))
            if i % 5 == 4:
                b.delete_range(rpc.DeleteRangeRequest(b"k%d" % (i % 7)))
        b.commit()
    return pf, kv


def test_same_history_same_hash_and_revision_bounds() -> None:
    pf1, kv1 = build()
    pf2, _ = build()
    rev = kv1.current_revision
    assert hash_kv(pf1, rev, 0) == hash_kv(pf2, rev, 0)
    assert hash_kv(pf1, rev - 3, 0) == hash_kv(pf2, rev - 3, 0) != hash_kv(pf1, rev, 0)
    assert hash_all(pf1) == hash_all(pf2)


def test_hash_ignores_whether_physical_compaction_finished() -> None:
    pf1, kv1 = build()
    pf2, kv2 = build()
    at = kv1.current_revision - 6
    for kv in (kv1, kv2):
        with kv.write() as b:
            b.compact(rpc.CompactionRequest(at))
            b.commit()
    while not kv2.compact_step(3):  # one member finished deleting the dropped revisions
        pass
    assert kv1.finished_compact_revision < at == kv2.finished_compact_revision
    rev = kv1.current_revision
    assert hash_kv(pf1, rev, at) == hash_kv(pf2, rev, at)
    assert hash_kv(pf1, rev, at) != hash_kv(pf1, rev, 0)  # the dropped revisions are not hashed


def test_a_changed_value_changes_the_hash() -> None:
    pf1, kv1 = build()
    pf2, _ = build()
    rev = kv1.current_revision
    with pf2.write() as tx:
        pk, raw = next(iter(tx.range(KEY_BUCKET)))
        old = codec.decode(raw)
        tx.put(
            KEY_BUCKET,
            pk,
            codec.encode(rpc.KeyValue(old.key, old.create_revision, old.mod_revision, old.version, b"x")),
        )
        tx.commit()
    assert hash_kv(pf1, rev, 0) != hash_kv(pf2, rev, 0)
    assert hash_all(pf1) != hash_all(pf2)


def test_steps_with_writes_and_compaction_steps_in_between() -> None:
    """KVHasher in 3-key steps, each in its own read transaction, while later revisions are written and
    physical compaction deletes dropped revisions between steps: the same hash as in one go."""
    pf, kv = build()
    at = kv.current_revision - 8
    with kv.write() as b:
        b.compact(rpc.CompactionRequest(at))
        b.commit()
    rev = kv.current_revision
    want = hash_kv(pf, rev, at)
    hasher = KVHasher(rev, at)
    steps = 0
    while True:
        with pf.read() as rx:
            if hasher.step(rx, 3):
                break
        steps += 1
        with kv.write() as b:
            b.put(rpc.PutRequest(b"later%d" % steps, b"x"))
            b.commit()
        kv.compact_step(2)
    assert steps > 5
    assert hasher.hash == want
    while not kv.compact_step(2):
        pass
    assert hash_kv(pf, rev, at) == want  # later writes are above the hashed revision; compaction is done
