"""Unit tests of the MVCC key space: every error case and etcd's range/txn/compaction rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.storage.memory_pagefile import Backend, backend_kinds
from trikv.api.errors import (
    CompactedError,
    DuplicateKeyError,
    EmptyKeyError,
    FutureRevError,
    KeyNotFoundError,
    LeaseProvidedError,
    ValueProvidedError,
)
from trikv.api.rpc import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    KeyValue,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)
from trikv.storage.mvcc import KEY_BUCKET, KVStore

EQ, GT, LT, NE = CompareResult.EQUAL, CompareResult.GREATER, CompareResult.LESS, CompareResult.NOT_EQUAL


@pytest.fixture(params=backend_kinds())
def backend(request: Any) -> Backend:
    return Backend(request.param)


@pytest.fixture
def kv(backend: Backend) -> Iterator[KVStore]:
    store = backend.open()
    yield store
    store.close()


def apply(store: KVStore, *reqs: Any) -> list[Any]:
    """Apply requests in one batch; returns responses (or the raised exception) per request."""
    out: list[Any] = []
    with store.write() as b:
        for r in reqs:
            fn: Any = {
                PutRequest: b.put,
                DeleteRangeRequest: b.delete_range,
                TxnRequest: b.txn,
                RangeRequest: b.range,
                CompactionRequest: b.compact,
            }[type(r)]
            try:
                out.append(fn(r))
            except Exception as exc:
                out.append(exc)
        b.commit()
    return out


def put(store: KVStore, key: bytes, value: bytes = b"v", **kw: Any) -> Any:
    (resp,) = apply(store, PutRequest(key, value, **kw))
    if isinstance(resp, Exception):
        raise resp
    return resp


def get(store: KVStore, key: bytes, end: bytes = b"", **kw: Any) -> list[tuple[bytes, bytes]]:
    return [(x.key, x.value) for x in store.range(RangeRequest(key, end, **kw)).kvs]


# ------------------------------------------------------------------------------------------- basics


def test_put_assigns_revisions_versions_and_create_revision(kv: KVStore) -> None:
    # etcd: an empty store is at revision 1, the first put gets revision 2
    assert put(kv, b"a", b"1").header.revision == 2
    assert put(kv, b"b", b"2").header.revision == 3
    r = put(kv, b"a", b"3", prev_kv=True)
    assert r.header.revision == 4
    assert r.prev_kv == KeyValue(b"a", 2, 2, 1, b"1", 0)
    (a,) = kv.range(RangeRequest(b"a")).kvs
    assert a == KeyValue(b"a", 2, 4, 2, b"3", 0)
    assert kv.current_revision == 4


def test_delete_makes_tombstone_and_new_generation(kv: KVStore) -> None:
    put(kv, b"a", b"1")
    put(kv, b"a", b"2")
    (d,) = apply(kv, DeleteRangeRequest(b"a", prev_kv=True))
    assert d.deleted == 1 and d.header.revision == 4
    assert d.prev_kvs == (KeyValue(b"a", 2, 3, 2, b"2", 0),)
    assert get(kv, b"a") == []
    put(kv, b"a", b"new")
    (a,) = kv.range(RangeRequest(b"a")).kvs
    assert (a.create_revision, a.mod_revision, a.version) == (5, 5, 1)
    # history: every revision reads what was there
    assert get(kv, b"a", revision=3) == [(b"a", b"2")]
    assert get(kv, b"a", revision=4) == []
    (old,) = kv.range(RangeRequest(b"a", revision=2)).kvs
    assert old == KeyValue(b"a", 2, 2, 1, b"1", 0)
    assert get(kv, b"a", revision=1) == []  # revision 1: the empty store


def test_delete_matching_nothing_keeps_revision(kv: KVStore) -> None:
    put(kv, b"a")
    (d,) = apply(kv, DeleteRangeRequest(b"x", b"z"))
    assert d.deleted == 0 and d.header.revision == 2
    assert kv.current_revision == 2


def test_range_end_rules(kv: KVStore) -> None:
    for k in (b"a", b"ab", b"abc", b"b", b"\x00", b"\xff"):
        put(kv, k)
    keys = lambda k, e: [x for x, _ in get(kv, k, e)]  # noqa: E731
    assert keys(b"ab", b"") == [b"ab"]
    assert keys(b"ab", b"ac") == [b"ab", b"abc"]  # prefix: last byte incremented
    assert keys(b"ab", b"\0") == [b"ab", b"abc", b"b", b"\xff"]  # from key to the end
    assert keys(b"\0", b"\0") == [b"\x00", b"a", b"ab", b"abc", b"b", b"\xff"]  # all keys
    assert keys(b"b", b"a") == []  # end before start: nothing


def test_range_limit_count_more_sort(kv: KVStore) -> None:
    put(kv, b"c", b"1")
    put(kv, b"a", b"3")
    put(kv, b"b", b"2")
    put(kv, b"c", b"0")  # c: version 2, mod 5
    r = kv.range(RangeRequest(b"a", b"\0", limit=2))
    assert [x.key for x in r.kvs] == [b"a", b"b"] and r.more and r.count == 3
    r = kv.range(RangeRequest(b"a", b"\0", limit=3))
    assert not r.more and r.count == 3
    desc = kv.range(RangeRequest(b"a", b"\0", sort_order=SortOrder.DESCEND, limit=1))
    assert [x.key for x in desc.kvs] == [b"c"] and desc.more and desc.count == 3
    by_val = kv.range(RangeRequest(b"a", b"\0", sort_target=SortTarget.VALUE))  # NONE -> ASCEND
    assert [x.value for x in by_val.kvs] == [b"0", b"2", b"3"]
    by_ver = kv.range(RangeRequest(b"a", b"\0", sort_target=SortTarget.VERSION, sort_order=SortOrder.DESCEND))
    assert by_ver.kvs[0].key == b"c"
    by_create = kv.range(RangeRequest(b"a", b"\0", sort_target=SortTarget.CREATE, limit=2))
    assert [x.key for x in by_create.kvs] == [b"c", b"a"] and by_create.more
    by_mod = kv.range(RangeRequest(b"a", b"\0", sort_target=SortTarget.MOD, sort_order=SortOrder.DESCEND))
    assert [x.key for x in by_mod.kvs] == [b"c", b"b", b"a"]
    cnt = kv.range(RangeRequest(b"a", b"\0", count_only=True))
    assert cnt.count == 3 and cnt.kvs == ()
    ko = kv.range(RangeRequest(b"a", b"\0", keys_only=True))
    assert [x.value for x in ko.kvs] == [b"", b"", b""] and ko.kvs[2].version == 2
    assert ko.header.revision == 5


def test_range_min_max_filters(kv: KVStore) -> None:
    put(kv, b"a")  # create 2 mod 2
    put(kv, b"b")  # 3
    put(kv, b"a")  # a mod 4
    f = lambda **kw: [x.key for x in kv.range(RangeRequest(b"a", b"\0", **kw)).kvs]  # noqa: E731
    assert f(min_mod_revision=4) == [b"a"]
    assert f(max_mod_revision=3) == [b"b"]
    assert f(min_create_revision=3) == [b"b"]
    assert f(max_create_revision=2) == [b"a"]
    # count stays the number of keys in the range (etcd counts before these filters)
    assert kv.range(RangeRequest(b"a", b"\0", min_mod_revision=4)).count == 2


def test_range_revision_errors(kv: KVStore) -> None:
    for k in (b"a", b"b", b"c"):
        put(kv, k)
    with pytest.raises(FutureRevError):
        kv.range(RangeRequest(b"a", revision=5))
    (c,) = apply(kv, CompactionRequest(3))
    assert c.header.revision == 4
    with pytest.raises(CompactedError):
        kv.range(RangeRequest(b"a", revision=2))
    assert get(kv, b"a", b"\0", revision=3) == [(b"a", b"v"), (b"b", b"v")]  # exactly at compact rev works
    assert kv.range(RangeRequest(b"a", b"\0", revision=0)).count == 3
    assert kv.range(RangeRequest(b"a", b"\0", revision=-1)).count == 3  # etcd: any rev <= 0 is current


# ------------------------------------------------------------------------------------------- errors


def test_empty_key_errors(kv: KVStore) -> None:
    with pytest.raises(EmptyKeyError):
        kv.range(RangeRequest(b""))
    res = apply(
        kv,
        PutRequest(b""),
        DeleteRangeRequest(b""),
        TxnRequest(compare=[Compare(EQ, CompareTarget.VERSION, b"", 0)]),
        TxnRequest(success=[PutRequest(b"")]),
        TxnRequest(failure=[RangeRequest(b"")]),
        TxnRequest(success=[TxnRequest(failure=[DeleteRangeRequest(b"")])]),
    )
    assert all(isinstance(r, EmptyKeyError) for r in res), res
    assert kv.current_revision == 1


def test_ignore_value_and_lease(kv: KVStore) -> None:
    with pytest.raises(KeyNotFoundError):
        put(kv, b"a", b"", ignore_value=True)
    with pytest.raises(KeyNotFoundError):
        put(kv, b"a", b"x", ignore_lease=True)
    with pytest.raises(ValueProvidedError):
        put(kv, b"a", b"x", ignore_value=True)
    with pytest.raises(LeaseProvidedError):
        put(kv, b"a", b"x", lease=5, ignore_lease=True)
    assert kv.current_revision == 1
    put(kv, b"a", b"x", lease=7)
    put(kv, b"a", b"", ignore_value=True, lease=9)
    put(kv, b"a", b"y", ignore_lease=True)
    (a,) = kv.range(RangeRequest(b"a")).kvs
    assert (a.value, a.lease, a.version) == (b"y", 9, 3)
    with pytest.raises(KeyNotFoundError):  # a deleted key is missing too
        apply(kv, DeleteRangeRequest(b"a"))
        put(kv, b"a", b"", ignore_value=True)


def test_duplicate_keys_in_txn(kv: KVStore) -> None:
    put(kv, b"k")
    bad = [
        TxnRequest(success=[PutRequest(b"a"), PutRequest(b"a")]),
        TxnRequest(success=[PutRequest(b"b"), DeleteRangeRequest(b"a", b"c")]),
        TxnRequest(failure=[DeleteRangeRequest(b"\0", b"\0"), PutRequest(b"zz")]),
        TxnRequest(success=[PutRequest(b"a"), TxnRequest(success=[PutRequest(b"a")])]),
        TxnRequest(success=[PutRequest(b"a"), TxnRequest(failure=[PutRequest(b"a")])]),
        TxnRequest(success=[DeleteRangeRequest(b"a", b"b"), TxnRequest(success=[PutRequest(b"a")])]),
        TxnRequest(success=[TxnRequest(success=[DeleteRangeRequest(b"a")]), PutRequest(b"a")]),
        # checked on both branches, even the one not taken (etcd checks the request up front)
        TxnRequest(compare=[Compare(EQ, CompareTarget.VERSION, b"k", 1)], failure=[PutRequest(b"a")] * 2),
    ]
    for req in bad:
        (r,) = apply(kv, req)
        assert isinstance(r, DuplicateKeyError), req
    ok = [
        TxnRequest(
            success=[DeleteRangeRequest(b"a", b"c"), DeleteRangeRequest(b"b", b"d")]
        ),  # deletes overlap
        TxnRequest(success=[TxnRequest(success=[PutRequest(b"a")], failure=[PutRequest(b"a")])]),  # exclusive
        TxnRequest(success=[PutRequest(b"a"), PutRequest(b"b")]),
    ]
    for req in ok:
        (r,) = apply(kv, req)
        assert not isinstance(r, Exception), (req, r)
    assert kv.current_revision == 4  # the failing ones left no trace; first ok deletes nothing


def test_txn_compares(kv: KVStore) -> None:
    put(kv, b"a", b"10", lease=3)  # rev 2
    put(kv, b"b", b"20")  # rev 3
    put(kv, b"a", b"11", lease=3)  # rev 4, version 2

    def ok(*cmps: Compare) -> bool:
        (r,) = apply(kv, TxnRequest(compare=cmps))
        return bool(r.succeeded)

    V, C, M, VAL, L = (
        CompareTarget.VERSION,
        CompareTarget.CREATE,
        CompareTarget.MOD,
        CompareTarget.VALUE,
        CompareTarget.LEASE,
    )
    assert ok(Compare(EQ, V, b"a", 2)) and not ok(Compare(EQ, V, b"a", 1))
    assert ok(Compare(GT, V, b"a", 1)) and ok(Compare(LT, V, b"a", 3)) and ok(Compare(NE, V, b"a", 0))
    assert ok(Compare(EQ, C, b"a", 2)) and ok(Compare(EQ, M, b"a", 4))
    assert not ok(Compare(EQ, C, b"a", 1)) and not ok(Compare(EQ, M, b"a", 3))
    assert ok(Compare(EQ, VAL, b"a", b"11")) and ok(Compare(GT, VAL, b"a", b"10"))
    assert ok(Compare(EQ, L, b"a", 3)) and ok(Compare(EQ, L, b"b", 0))
    # a missing key compares as zeros, except its value, which never compares
    assert ok(Compare(EQ, V, b"zz", 0)) and ok(Compare(EQ, C, b"zz", 0))
    assert not ok(Compare(EQ, VAL, b"zz", b"")) and not ok(Compare(NE, VAL, b"zz", b"x"))
    # over a range: every key must satisfy it
    assert ok(Compare(GT, M, b"a", 0, b"c")) and not ok(Compare(GT, M, b"a", 3, b"c"))
    assert ok(Compare(GT, M, b"a", 2, b"c"))
    assert ok(Compare(LT, C, b"a", 4, b"\0")) and not ok(Compare(LT, C, b"a", 3, b"\0"))
    assert kv.current_revision == 4  # read-only txns do not bump the revision


def test_txn_branches_and_one_revision(kv: KVStore) -> None:
    put(kv, b"a", b"1")
    (r,) = apply(
        kv,
        TxnRequest(
            compare=[Compare(EQ, CompareTarget.VALUE, b"a", b"1")],
            success=[
                PutRequest(b"b", b"x"),
                RangeRequest(b"a", b"\0"),
                DeleteRangeRequest(b"a", prev_kv=True),
                TxnRequest(compare=[Compare(EQ, CompareTarget.VERSION, b"a", 0)], success=[PutRequest(b"c")]),
                RangeRequest(b"a", b"\0"),
            ],
            failure=[PutRequest(b"f")],
        ),
    )
    assert r.succeeded and r.header.revision == 3
    put_b, rng1, dele, nested, rng2 = r.responses
    assert put_b.header.revision == 3
    assert [x.key for x in rng1.kvs] == [b"a", b"b"]  # sees the txn's own put
    assert dele.deleted == 1 and dele.prev_kvs[0].value == b"1"
    # the nested compare saw the state before the txn (a existed): its failure branch (empty) ran
    assert nested.succeeded is False and nested.responses == ()
    assert [x.key for x in rng2.kvs] == [b"b"]
    assert kv.current_revision == 3
    assert [x.mod_revision for x in kv.range(RangeRequest(b"a", b"\0")).kvs] == [3]
    (f,) = apply(
        kv, TxnRequest(compare=[Compare(EQ, CompareTarget.VERSION, b"a", 9)], failure=[PutRequest(b"f")])
    )
    assert not f.succeeded and f.header.revision == 4


def test_txn_range_revision_checked_before_writes(kv: KVStore) -> None:
    put(kv, b"a")
    (r,) = apply(kv, TxnRequest(success=[PutRequest(b"b"), RangeRequest(b"a", revision=3)]))
    assert isinstance(r, FutureRevError)
    (r,) = apply(kv, TxnRequest(success=[PutRequest(b"b", ignore_value=True)]))
    assert isinstance(r, KeyNotFoundError)
    (r,) = apply(
        kv, TxnRequest(success=[PutRequest(b"c"), TxnRequest(success=[PutRequest(b"b", ignore_lease=True)])])
    )
    assert isinstance(r, KeyNotFoundError)
    assert kv.current_revision == 2 and get(kv, b"b") == []


# ------------------------------------------------------------------------------------------- batches


def test_failed_request_leaves_batch_usable(kv: KVStore) -> None:
    with kv.write() as b:
        b.put(PutRequest(b"a", b"1"))
        with pytest.raises(DuplicateKeyError):
            b.txn(TxnRequest(success=[PutRequest(b"x"), PutRequest(b"x")]))
        with pytest.raises(FutureRevError):
            b.range(RangeRequest(b"a", revision=9))
        b.put(PutRequest(b"b", b"2"))
        assert [x.key for x in b.range(RangeRequest(b"a", b"\0")).kvs] == [b"a", b"b"]
        assert kv.range(RangeRequest(b"a", b"\0")).count == 0  # committed view unchanged until commit
        b.commit()
    assert kv.current_revision == 3 and get(kv, b"x") == []


def test_uncommitted_batch_rolls_back(backend: Backend) -> None:
    kv = backend.open()
    put(kv, b"a", b"1")
    with kv.write() as b:
        b.put(PutRequest(b"a", b"2"))
        b.put(PutRequest(b"n", b"new"))
        b.delete_range(DeleteRangeRequest(b"a"))
        b.set_consistent_index(9, 9)
    assert kv.current_revision == 2 and kv.consistent_index == 0
    assert get(kv, b"a", b"\0") == [(b"a", b"1")]
    put(kv, b"z")  # the index was rolled back: revision 3 is free again
    assert kv.range(RangeRequest(b"z")).kvs[0].mod_revision == 3
    assert kv.range(RangeRequest(b"a")).kvs[0].version == 1
    kv = backend.reopen(kv)
    assert get(kv, b"a", b"\0") == [(b"a", b"1"), (b"z", b"v")]
    kv.close()


def test_consistent_index_meta_and_buckets_persist(backend: Backend) -> None:
    kv = backend.open()
    with kv.write() as b:
        b.put(PutRequest(b"a"))
        b.set_consistent_index(7, 2)
        b.meta_put(b"conf", b"state")
        b.bucket_put(b"members", b"1", b"m1")
        b.bucket_put(b"members", b"2", b"m2")
        assert b.bucket_delete(b"members", b"2")
        assert b.bucket_get(b"members", b"2") is None
        assert b.meta_get(b"conf") == b"state"
        with pytest.raises(ValueError):
            b.bucket_put(b"key", b"x", b"y")
        b.commit()
    assert (kv.consistent_index, kv.consistent_term) == (7, 2)
    kv = backend.reopen(kv)
    assert (kv.consistent_index, kv.consistent_term, kv.current_revision) == (7, 2, 2)
    assert kv.meta_get(b"conf") == b"state"
    with kv.write() as b:
        assert b.bucket_range(b"members") == [(b"1", b"m1")]
        assert b.bucket_range(b"nothing") == []
    kv.close()


# ------------------------------------------------------------------------------------------- compaction


def test_compaction_keeps_latest_live_version(backend: Backend) -> None:
    kv = backend.open()
    put(kv, b"a", b"1")  # 2
    put(kv, b"a", b"2")  # 3
    put(kv, b"b", b"1")  # 4
    apply(kv, DeleteRangeRequest(b"b"))  # 5
    put(kv, b"c", b"1")  # 6
    apply(kv, DeleteRangeRequest(b"c"))  # 7 (after the compact revision: c's history at 6 survives)
    (c,) = apply(kv, CompactionRequest(6))
    assert c.header.revision == 7 and kv.compact_revision == 6
    with pytest.raises(CompactedError):
        kv.range(RangeRequest(b"a", revision=5))
    before = get(kv, b"a", b"\0", revision=6)
    assert before == [(b"a", b"2"), (b"c", b"1")]
    while not kv.compact_step(limit=1):
        pass
    assert get(kv, b"a", b"\0", revision=6) == before
    kv = backend.reopen(kv)
    assert kv.current_revision == 7
    assert get(kv, b"a", b"\0", revision=6) == before
    assert get(kv, b"a", b"\0") == [(b"a", b"2")]
    (a,) = kv.range(RangeRequest(b"a")).kvs
    assert (a.create_revision, a.mod_revision, a.version) == (2, 3, 2)  # version survives dropped history
    put(kv, b"a", b"3")
    assert kv.range(RangeRequest(b"a")).kvs[0].version == 3
    kv.close()


def test_compaction_errors(kv: KVStore) -> None:
    put(kv, b"a")
    put(kv, b"a")
    (r,) = apply(kv, CompactionRequest(4))
    assert isinstance(r, FutureRevError)
    (r,) = apply(kv, CompactionRequest(3))
    assert not isinstance(r, Exception) and r.header.revision == 3
    for rev in (-1, 0, 1, 2, 3):
        (r,) = apply(kv, CompactionRequest(rev))
        assert isinstance(r, CompactedError), rev
    (r,) = apply(kv, CompactionRequest(4))
    assert isinstance(r, FutureRevError)  # still in the future after a compaction


def test_deleted_keys_leave_the_index_after_compaction(kv: KVStore) -> None:
    put(kv, b"a")
    apply(kv, DeleteRangeRequest(b"a"))
    apply(kv, CompactionRequest(3))
    assert kv.compact_step()
    assert kv.range(RangeRequest(b"\0", b"\0", revision=3)).count == 0
    put(kv, b"a", b"again")
    (a,) = kv.range(RangeRequest(b"a")).kvs
    assert (a.create_revision, a.version) == (4, 1)


def test_interrupted_compaction_finishes_at_open(backend: Backend) -> None:
    kv = backend.open()
    for i in range(30):
        put(kv, b"k%d" % (i % 3), b"%d" % i)  # value i at revision i + 2
    apply(kv, CompactionRequest(26))
    assert not kv.compact_step(limit=5)  # some deleted, not finished
    assert kv.finished_compact_revision == 0
    kv = backend.reopen(kv)
    assert kv.finished_compact_revision == 26 and kv.compact_revision == 26
    assert kv.current_revision == 31
    assert get(kv, b"k", b"l", revision=26) == [(b"k0", b"24"), (b"k1", b"22"), (b"k2", b"23")]
    assert get(kv, b"k", b"l") == [(b"k0", b"27"), (b"k1", b"28"), (b"k2", b"29")]
    kv.close()


# ------------------------------------------------------------------------------------------- etcd's revision 1


def test_empty_store_is_at_revision_one(backend: Backend) -> None:
    kv = backend.open()
    assert kv.current_revision == 1 and kv.compact_revision == 0
    r = kv.range(RangeRequest(b"\0", b"\0"))
    assert r.header.revision == 1 and r.count == 0 and r.kvs == ()
    r = kv.range(RangeRequest(b"a", revision=1))  # revision 1 exists: the empty store
    assert r.header.revision == 1 and r.kvs == ()
    with pytest.raises(FutureRevError):
        kv.range(RangeRequest(b"a", revision=2))
    (t,) = apply(kv, TxnRequest(success=[RangeRequest(b"a", revision=1)]))
    assert t.succeeded and t.header.revision == 1 and t.responses[0].header.revision == 1
    (t,) = apply(kv, TxnRequest(success=[RangeRequest(b"a", revision=2)]))
    assert isinstance(t, FutureRevError)
    (d,) = apply(kv, DeleteRangeRequest(b"\0", b"\0"))
    assert d.deleted == 0 and d.header.revision == 1
    kv = backend.reopen(kv)  # nothing written: still revision 1 after a restart
    assert kv.current_revision == 1 and kv.range(RangeRequest(b"a")).header.revision == 1
    assert put(kv, b"a").header.revision == 2
    kv.close()


def test_compact_at_revision_one_of_an_empty_store(backend: Backend) -> None:
    kv = backend.open()
    (r,) = apply(kv, CompactionRequest(2))
    assert isinstance(r, FutureRevError)
    (r,) = apply(kv, CompactionRequest(1))
    assert not isinstance(r, Exception) and r.header.revision == 1
    assert kv.compact_revision == 1
    for rev in (-1, 0, 1):  # at or below the compacted revision (etcd: 'has been compacted')
        (r,) = apply(kv, CompactionRequest(rev))
        assert isinstance(r, CompactedError), rev
    assert kv.compact_step()
    assert kv.finished_compact_revision == 1
    assert kv.range(RangeRequest(b"a", revision=1)).kvs == ()  # the compact revision itself stays readable
    kv = backend.reopen(kv)
    assert (kv.current_revision, kv.compact_revision, kv.finished_compact_revision) == (1, 1, 1)
    assert put(kv, b"a").header.revision == 2
    kv = backend.reopen(kv)
    assert kv.current_revision == 2
    kv.close()


def test_restart_after_everything_was_compacted(backend: Backend) -> None:
    kv = backend.open()
    put(kv, b"a")  # 2
    put(kv, b"b")  # 3
    apply(kv, DeleteRangeRequest(b"\0", b"\0"))  # 4: both tombstoned
    apply(kv, CompactionRequest(4))  # drops every revision, tombstones included: no page key is left
    while not kv.compact_step(limit=1):
        pass
    with backend.pf.read() as rx:
        assert list(rx.range(KEY_BUCKET)) == []
    kv = backend.reopen(kv)
    # the revision is not rebuilt from the (empty) key bucket: it does not go back to 1
    assert (kv.current_revision, kv.compact_revision) == (4, 4)
    assert kv.range(RangeRequest(b"\0", b"\0", revision=4)).count == 0
    with pytest.raises(CompactedError):
        kv.range(RangeRequest(b"a", revision=3))
    with pytest.raises(FutureRevError):
        kv.range(RangeRequest(b"a", revision=5))
    assert put(kv, b"a").header.revision == 5
    (a,) = kv.range(RangeRequest(b"a")).kvs
    assert (a.create_revision, a.mod_revision, a.version) == (5, 5, 1)
    kv.close()
