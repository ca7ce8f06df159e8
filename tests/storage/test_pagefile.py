"""The page file: behaviour, a dict model (hypothesis), reader isolation, snapshots, defrag, corruption."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trikv.api.errors import CorruptionError, StorageError
from trikv.storage.files import CrashFileSystem, OsFileSystem
from trikv.storage.pagefile import PageFile

B = b"kv"


def _fs() -> CrashFileSystem:
    fs = CrashFileSystem()
    fs.makedirs("/d")
    return fs


def _dump(pf: PageFile) -> dict[bytes, dict[bytes, bytes]]:
    with pf.read() as r:
        return {b: dict(r.range(b)) for b in r.buckets()}


def test_put_get_range_and_reopen_on_the_real_fs(tmp_path) -> None:
    fs = OsFileSystem()
    path = str(tmp_path / "db")
    pf = PageFile.open(fs, path)
    assert pf.txid == 0
    with pf.write() as w:
        w.create_bucket(B)
        w.create_bucket(B)  # idempotent
        w.create_bucket(b"other")
        for i in range(2000):
            w.put(B, b"k%05d" % i, b"v%d" % i)
        assert w.get(B, b"k00007") == b"v7"  # own writes
        w.commit()
    assert pf.txid == 1
    pf.close()
    pf = PageFile.open(fs, path)
    with pf.read() as r:
        assert r.buckets() == [b"kv", b"other"]
        assert r.get(B, b"k01999") == b"v1999"
        assert r.get(B, b"nope") is None
        assert r.get(b"missing", b"k") is None
        assert [k for k, _ in r.range(B, b"k00010", b"k00013")] == [b"k00010", b"k00011", b"k00012"]
        assert [k for k, _ in r.range(B, b"k00010", b"k00013", reverse=True)] == [
            b"k00012",
            b"k00011",
            b"k00010",
        ]
        assert len(list(r.range(B))) == 2000
        assert next(r.range(B, reverse=True))[0] == b"k01999"
        assert list(r.range(B, b"k1")) == []
        assert list(r.range(b"other")) == []
    assert PageFile.check(fs, path) == []
    pf.close()


def test_rollback_and_errors() -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db")
    with pf.write() as w:
        w.create_bucket(B)
        w.put(B, b"a", b"1")
        w.commit()
    with pf.write() as w:
        w.put(B, b"a", b"2")
        w.put(B, b"b", b"2")
        assert w.delete(B, b"a") is True
        assert w.delete(B, b"zz") is False
        with pytest.raises(StorageError):
            pf.write()  # one writer at a time
        with pytest.raises(StorageError):
            w.put(b"missing", b"k", b"v")
        with pytest.raises(StorageError):
            w.put(B, b"", b"v")
        # leaving without commit rolls back
    assert _dump(pf) == {B: {b"a": b"1"}}
    assert pf.txid == 1
    w = pf.write()
    w.rollback()
    with pytest.raises(StorageError):
        w.get(B, b"a")
    pf.close()


def test_large_values_use_blobs_and_free_them() -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db")
    big = random.Random(1).randbytes(3 << 20)
    with pf.write() as w:
        w.create_bucket(B)
        w.put(B, b"big", big)
        w.put(B, b"small", b"x")
        w.commit()
    with pf.read() as r:
        assert r.get(B, b"big") == big
        assert dict(r.range(B)) == {b"big": big, b"small": b"x"}
    assert PageFile.check(fs, "/d/db") == []
    in_use = pf.size_in_use()
    assert in_use > 3 << 20
    with pf.write() as w:
        w.put(B, b"big", b"now small")
        w.commit()
    with pf.write() as w:  # a second commit releases the pending blob pages
        w.put(B, b"small", b"y")
        w.commit()
    assert pf.size_in_use() < 64 << 10
    size = pf.size()
    with pf.write() as w:  # the freed blob span is reused: the file grows by a few pages at most
        w.put(B, b"big2", big)
        w.commit()
    assert pf.size() <= size + 4 * 4096
    pf.close()
    pf = PageFile.open(fs, "/d/db")
    assert _dump(pf) == {B: {b"big": b"now small", b"small": b"y", b"big2": big}}
    assert PageFile.check(fs, "/d/db") == []
    pf.close()


def test_huge_keys_and_boundary_values() -> None:
    """Keys larger than a page (multi-page leaves and branch separators) and values at the blob limit."""
    fs = _fs()
    pf = PageFile.open(fs, "/d/db", page_size=512)
    want: dict[bytes, bytes] = {}
    with pf.write() as w:
        w.create_bucket(B)
        for i in range(40):
            k = bytes([65 + i % 26]) * (1 + (i * 997) % 3000) + b"%d" % i
            v = b"x" * (126 + i % 4)  # 128 = the inline limit for 512-byte pages
            w.put(B, k, v)
            want[k] = v
        w.put(B, b"huge-value", b"h" * 70_000)
        want[b"huge-value"] = b"h" * 70_000
        w.commit()
    assert PageFile.check(fs, "/d/db", page_size=512) == []
    with pf.write() as w:
        for k in sorted(want)[::3]:
            assert w.delete(B, k)
            del want[k]
        w.commit()
    pf.close()
    pf = PageFile.open(fs, "/d/db", page_size=512)
    assert _dump(pf) == {B: want}
    with pf.read() as r:
        assert list(r.range(B, reverse=True)) == sorted(want.items(), reverse=True)
    assert PageFile.check(fs, "/d/db", page_size=512) == []
    pf.close()


def test_iterating_a_closed_reader_fails() -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db", page_size=512)
    with pf.write() as w:
        w.create_bucket(B)
        for i in range(500):
            w.put(B, b"%04d" % i, b"v")
        w.commit()
    r = pf.read()
    it = r.range(B)
    next(it)
    r.close()
    with pytest.raises(StorageError):
        list(it)
    pf.close()


def test_reader_keeps_its_view_and_its_pages() -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db", page_size=512)
    with pf.write() as w:
        w.create_bucket(B)
        for i in range(300):
            w.put(B, b"%04d" % i, b"old%d" % i)
        w.commit()
    reader = pf.read()
    before = dict(reader.range(B))
    size_with_reader = []
    for round_ in range(30):
        with pf.write() as w:
            for i in range(0, 300, 3):
                w.put(B, b"%04d" % i, b"new%d-%d" % (round_, i))
            for i in range(1, 300, 7):
                w.delete(B, b"%04d" % i)
            w.commit()
        size_with_reader.append(pf.size())
    # the old view is intact: its pages were neither reused nor overwritten
    assert dict(reader.range(B)) == before
    assert reader.get(B, b"0001") == b"old1"
    assert reader.txid == 1
    # while it lives the file must keep growing (nothing it can reach is reused)
    assert size_with_reader[-1] > size_with_reader[0]
    reader.close()
    with pf.write() as w:
        w.put(B, b"x", b"y")
        w.commit()
    steady = pf.size()
    for _ in range(30):
        with pf.write() as w:
            for i in range(0, 300, 3):
                w.put(B, b"%04d" % i, b"again")
            w.commit()
    assert pf.size() == steady  # with no old reader, freed pages are reused
    assert PageFile.check(fs, "/d/db") == []
    pf.close()


def test_snapshot_round_trip_and_bad_snapshot_rejected() -> None:
    fs = _fs()
    src = PageFile.open(fs, "/d/src")
    with src.write() as w:
        w.create_bucket(B)
        w.create_bucket(b"meta")
        for i in range(500):
            w.put(B, b"%d" % i, b"v" * (i % 50))
        w.put(b"meta", b"big", b"z" * 100_000)
        w.commit()
    buf = io.BytesIO()
    n = src.write_snapshot(buf)
    assert n == len(buf.getvalue())
    dst = PageFile.open(fs, "/d/dst")
    with dst.write() as w:
        w.create_bucket(b"stale")
        w.commit()
    dst.replace_from(io.BytesIO(buf.getvalue()))
    assert _dump(dst) == _dump(src)
    assert PageFile.check(fs, "/d/dst") == []
    # a damaged stream is refused and the installed state is untouched
    bad = bytearray(buf.getvalue())
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(CorruptionError):
        dst.replace_from(io.BytesIO(bytes(bad)))
    assert _dump(dst) == _dump(src)
    assert not fs.exists("/d/dst.recv")
    # replace needs no open transactions
    r = dst.read()
    with pytest.raises(StorageError):
        dst.replace_from(io.BytesIO(buf.getvalue()))
    r.close()
    src.close()
    dst.close()


def test_defrag_shrinks_and_keeps_contents() -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db")
    with pf.write() as w:
        w.create_bucket(B)
        for i in range(20000):
            w.put(B, b"%08d" % i, b"v" * 60)
        w.commit()
    with pf.write() as w:
        for i in range(20000):
            if i % 10:
                w.delete(B, b"%08d" % i)
        w.commit()
    with pf.write() as w:
        w.commit()
    want = _dump(pf)
    size = pf.size()
    assert pf.size_in_use() < size // 4
    pf.defrag()
    assert _dump(pf) == want
    assert pf.size() < size // 4
    assert pf.size() - pf.size_in_use() <= 8 * pf.page_size
    assert PageFile.check(fs, "/d/db") == []
    with pf.write() as w:  # still writable
        w.put(B, b"after", b"defrag")
        w.commit()
    pf.close()
    pf = PageFile.open(fs, "/d/db")
    assert _dump(pf)[B][b"after"] == b"defrag"
    pf.close()


# --------------------------------------------------------------------------- corruption


def _leaf_pgid(pf: PageFile, bucket: bytes) -> int:
    with pf.read() as r:
        root = r._bucket_root(bucket)
        assert isinstance(root, int) and root > 1
        node = pf._load(root)
        while not node.leaf:
            node = pf._load(node.kids[0])  # type: ignore[arg-type]
        return node.pgid


def test_flipped_byte_in_a_live_page_is_detected() -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db")
    with pf.write() as w:
        w.create_bucket(B)
        for i in range(1000):
            w.put(B, b"%05d" % i, b"value")
        w.commit()
    pgid = _leaf_pgid(pf, B)
    pf.close()
    f = fs.open("/d/db")
    off = pgid * 4096 + 100
    f.pwrite(bytes([f.pread(1, off)[0] ^ 0x40]), off)
    f.close()
    problems = PageFile.check(fs, "/d/db")
    assert len(problems) == 1
    assert f"page {pgid}" in problems[0] and "checksum" in problems[0]
    pf = PageFile.open(fs, "/d/db")
    with pytest.raises(CorruptionError) as ei, pf.read() as r:
        list(r.range(B))
    assert ei.value.path == "/d/db"
    assert ei.value.offset == pgid * 4096
    pf.close()


def test_meta_pages() -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db")
    for i in range(3):
        with pf.write() as w:
            w.create_bucket(B)
            w.put(B, b"k", b"%d" % i)
            w.commit()
    assert pf.txid == 3
    pf.close()
    f = fs.open("/d/db")
    f.pwrite(b"\xff" * 8, 4096 + 40)  # slot 1 holds txid 3: damage it
    f.close()
    pf = PageFile.open(fs, "/d/db")  # falls back to txid 2
    assert pf.txid == 2
    assert _dump(pf) == {B: {b"k": b"1"}}
    pf.close()
    f = fs.open("/d/db")
    f.pwrite(b"\xff" * 8, 40)
    f.close()
    with pytest.raises(CorruptionError, match="both meta pages"):
        PageFile.open(fs, "/d/db")
    assert "both meta pages" in PageFile.check(fs, "/d/db")[0]


# --------------------------------------------------------------------------- the dict model

KEYS = st.binary(min_size=1, max_size=6).map(lambda b: b[:1] + b)  # clustered, with shared prefixes
VALS = st.one_of(st.binary(max_size=40), st.integers(100, 3000).map(lambda n: b"L" * n))
BUCKETS = st.sampled_from([b"a", b"b", b"c"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), BUCKETS, KEYS, VALS),
        st.tuples(st.just("putmany"), BUCKETS, st.integers(0, 400), st.integers(1, 1200)),
        st.tuples(st.just("delmany"), BUCKETS, st.integers(0, 1600), st.integers(1, 800)),
        st.tuples(st.just("del"), BUCKETS, KEYS),
        st.tuples(st.just("delrange"), BUCKETS, KEYS, KEYS),
        st.tuples(st.just("create"), BUCKETS),
        st.tuples(st.just("drop"), BUCKETS),
        st.tuples(st.just("commit")),
        st.tuples(st.just("rollback")),
        st.tuples(st.just("reopen")),
        st.tuples(st.just("defrag")),
        st.tuples(st.just("range"), BUCKETS, KEYS, st.one_of(st.none(), KEYS), st.booleans()),
    ),
    max_size=60,
)


def _check_range(r, model, bucket, start, end, reverse) -> None:
    items = sorted(
        (k, v) for k, v in model.get(bucket, {}).items() if k >= start and (end is None or k < end)
    )
    if reverse:
        items.reverse()
    assert list(r.range(bucket, start, end, reverse=reverse)) == items


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
# scenarios random generation reaches rarely: emptied leaves and branches merging after a commit
@example(ops=[("putmany", b"a", 0, 1000), ("commit",), ("delmany", b"a", 0, 800), ("commit",), ("reopen",)])
@example(
    ops=[
        ("putmany", b"a", 0, 1200),
        ("commit",),
        ("delmany", b"a", 100, 1000),
        ("range", b"a", b"m", None, True),
    ]
)
@example(
    ops=[("putmany", b"b", 0, 900), ("commit",), ("drop", b"b"), ("create", b"b"), ("commit",), ("defrag",)]
)
@example(
    ops=[("putmany", b"a", 0, 1000), ("commit",), ("delmany", b"a", 300, 400), ("rollback",), ("commit",)]
)
def test_against_a_dict_model(ops) -> None:
    fs = _fs()
    pf = PageFile.open(fs, "/d/db", page_size=512)  # small pages: deep trees, splits and merges
    committed: dict[bytes, dict[bytes, bytes]] = {}
    work: dict[bytes, dict[bytes, bytes]] = {b"a": {}, b"b": {}}
    w = pf.write()
    w.create_bucket(b"a")
    w.create_bucket(b"b")
    for op in ops:
        name = op[0]
        if name == "put":
            _, b, k, v = op
            if b in work:
                w.put(b, k, v)
                work[b][k] = v
            else:
                with pytest.raises(StorageError):
                    w.put(b, k, v)
        elif name == "putmany" and op[1] in work:
            _, b, base, n = op
            for i in range(base, base + n):
                w.put(b, b"m%05d" % i, b"%d" % i)
                work[b][b"m%05d" % i] = b"%d" % i
        elif name == "delmany" and op[1] in work:
            _, b, base, n = op
            for i in range(base, base + n):
                assert w.delete(b, b"m%05d" % i) == (b"m%05d" % i in work[b])
                work[b].pop(b"m%05d" % i, None)
        elif name == "del" and op[1] in work:
            _, b, k = op
            assert w.delete(b, k) == (k in work[b])
            work[b].pop(k, None)
        elif name == "delrange" and op[1] in work:
            _, b, lo, hi = op
            for k, _v in list(w.range(b, lo, hi)):
                assert w.delete(b, k)
                del work[b][k]
        elif name == "create":
            w.create_bucket(op[1])
            work.setdefault(op[1], {})
        elif name == "drop" and op[1] in work:
            w.delete_bucket(op[1])
            del work[op[1]]
        elif name == "commit":
            w.commit()
            committed = {b: dict(d) for b, d in work.items()}
            w = pf.write()
        elif name == "rollback":
            w.rollback()
            work = {b: dict(d) for b, d in committed.items()}
            w = pf.write()
        elif name in ("reopen", "defrag"):
            w.rollback()
            work = {b: dict(d) for b, d in committed.items()}
            if name == "reopen":
                pf.close()
                pf = PageFile.open(fs, "/d/db", page_size=512)
            else:
                pf.defrag()
            assert _dump(pf) == committed
            w = pf.write()
        elif name == "range":
            _, b, start, end, rev = op
            _check_range(w, work, b, start, end, rev)
        assert sorted(w.buckets()) == sorted(work)
    for b, d in work.items():
        _check_range(w, work, b, b"", None, False)
        _check_range(w, work, b, b"", None, True)
        for k in list(d)[:20]:
            assert w.get(b, k) == d[k]
    w.commit()
    assert _dump(pf) == work
    assert PageFile.check(fs, "/d/db") == []
    pf.close()
    pf = PageFile.open(fs, "/d/db", page_size=512)
    assert _dump(pf) == work
    pf.close()


def test_long_random_workload_stays_healthy() -> None:
    """Thousands of mixed operations on small pages (many splits and merges); `check` after every
    few commits, the model compared throughout and after reopening."""
    rng = random.Random(7)
    fs = _fs()
    pf = PageFile.open(fs, "/d/db", page_size=512)
    model: dict[bytes, bytes] = {}
    with pf.write() as w:
        w.create_bucket(B)
        w.commit()
    for step in range(120):
        with pf.write() as w:
            for _ in range(rng.choice([1, 10, 200])):
                k = b"%04d" % rng.randrange(2000)
                r = rng.random()
                if r < 0.5 or not model:
                    v = rng.randbytes(rng.choice([1, 30, 200, 700]))
                    w.put(B, k, v)
                    model[k] = v
                elif r < 0.9:
                    assert w.delete(B, k) == (k in model)
                    model.pop(k, None)
                else:  # delete a whole stretch: leaves empty out and merge
                    for key, _v in list(w.range(B, k, k[:2] + b"\xff")):
                        w.delete(B, key)
                        del model[key]
            w.commit()
        if step % 10 == 0:
            assert PageFile.check(fs, "/d/db", page_size=512) == []
            with pf.read() as rt:
                assert list(rt.range(B)) == sorted(model.items())
                lo, hi = sorted([*rng.sample(sorted(model) or [b"0"], 1), b"%04d" % rng.randrange(2000)])
                want = [(k, model[k]) for k in sorted(model) if lo <= k < hi]
                assert list(rt.range(B, lo, hi)) == want
                assert list(rt.range(B, lo, hi, reverse=True)) == want[::-1]
    pf.close()
    pf = PageFile.open(fs, "/d/db", page_size=512)
    assert _dump(pf) == {B: model}
    assert PageFile.check(fs, "/d/db", page_size=512) == []
    pf.close()
