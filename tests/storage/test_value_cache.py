"""KVStore's decoded-value cache never answers with a value the page file does not hold."""

from __future__ import annotations

from trikv.api import rpc
from trikv.storage import mvcc
from trikv.storage.files import CrashFileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile


def _store() -> KVStore:
    fs = CrashFileSystem()
    fs.makedirs("/d")
    return KVStore(PageFile.open(fs, "/d/db"))


def _get(kv: KVStore, key: bytes, rev: int = 0) -> bytes | None:
    r = kv.range(rpc.RangeRequest(key, revision=rev))
    return r.kvs[0].value if r.kvs else None


def test_a_rolled_back_revision_reused_with_another_value_reads_the_new_one() -> None:
    kv = _store()
    with kv.write() as b:
        b.put(rpc.PutRequest(b"x", b"1"))
        b.commit()
    assert _get(kv, b"x") == b"1"
    b = kv.write()
    b.put(rpc.PutRequest(b"x", b"2"))
    assert b.put(rpc.PutRequest(b"x", b"2b", prev_kv=True)).prev_kv == rpc.KeyValue(b"x", 2, 3, 2, b"2")
    b.rollback()
    with kv.write() as b:
        b.put(rpc.PutRequest(b"x", b"3"))  # revision 3 again, version 2 again: the same page key
        b.commit()
    assert _get(kv, b"x") == b"3" and _get(kv, b"x", 2) == b"1"


def test_the_cache_is_bounded_and_large_values_skip_it() -> None:
    kv = _store()
    n = mvcc.VALUE_CACHE_ENTRIES + 100
    with kv.write() as b:
        for i in range(n):
            b.put(rpc.PutRequest(b"k%06d" % i, b"v%d" % i))
        b.put(rpc.PutRequest(b"big", b"x" * (mvcc.VALUE_CACHE_MAX_BYTES + 1)))
        b.commit()
    r = kv.range(rpc.RangeRequest(b"k", b"l"))
    assert [x.value for x in r.kvs] == [b"v%d" % i for i in range(n)]
    assert len(kv._values) <= mvcc.VALUE_CACHE_ENTRIES
    assert _get(kv, b"big") == b"x" * (mvcc.VALUE_CACHE_MAX_BYTES + 1)
    assert not any(pk.endswith(b"big") for pk in kv._values)
