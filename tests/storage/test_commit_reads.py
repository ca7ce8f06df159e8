"""Reads while a commit writes: between `WriteTxn.prepare()` and the step it returns, read transactions see the
whole new state (never a half-written batch), also while that step runs in another thread; pages are on disk
and the file checks clean afterwards, and a crash before the step leaves the previous commit."""

from __future__ import annotations

import random
import threading

import pytest

from trikv.api import rpc
from trikv.api.errors import StorageError
from trikv.storage.files import CrashFileSystem, OsFileSystem, SimulatedCrash
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile, WriteTxn

B = b"kv"


def _fill(pf: PageFile, n: int, tag: bytes) -> WriteTxn:
    """n keys (every 50th value large enough to be a blob) in one transaction, not committed."""
    w = pf.write()
    w.create_bucket(B)
    for i in range(n):
        w.put(B, b"k%05d" % i, (tag * 3000) if i % 50 == 0 else tag + b"%d" % i)
    return w


def _expect(tag: bytes, n: int) -> dict[bytes, bytes]:
    return {b"k%05d" % i: (tag * 3000) if i % 50 == 0 else tag + b"%d" % i for i in range(n)}


def test_reads_between_prepare_and_finish_see_the_whole_new_state(tmp_path) -> None:
    fs = OsFileSystem()
    pf = PageFile.open(fs, str(tmp_path / "db"), cache_nodes=8)  # a tiny cache: pages come from memory
    _fill(pf, 3000, b"a").commit()
    old_reader = pf.read()
    w = _fill(pf, 3000, b"b")
    finish = w.prepare()
    assert pf.txid == 2
    with pytest.raises(StorageError):
        pf.write()  # no writer while the pages are written
    with pf.read() as r:
        assert dict(r.range(B)) == _expect(b"b", 3000)
    assert dict(old_reader.range(B)) == _expect(b"a", 3000)  # a reader of the old commit keeps it
    stop = threading.Event()
    seen: list[int] = []

    def read_while_writing() -> None:
        while not stop.is_set():
            with pf.read() as r:
                got = dict(r.range(B))
            assert got == _expect(b"b", 3000)
            seen.append(len(got))

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    try:
        finish()
    finally:
        stop.set()
        reader.join()
    assert seen, "no read ran"
    old_reader.close()
    pf.close()
    assert PageFile.check(fs, str(tmp_path / "db")) == []
    pf = PageFile.open(fs, str(tmp_path / "db"))
    with pf.read() as r:
        assert dict(r.range(B)) == _expect(b"b", 3000)
    pf.close()


def test_a_crash_in_the_write_step_leaves_the_previous_commit() -> None:
    fs = CrashFileSystem()
    fs.makedirs("/d")
    pf = PageFile.open(fs, "/d/db")
    _fill(pf, 500, b"a").commit()
    finish = _fill(pf, 500, b"b").prepare()
    fs.arm(1)  # the power goes out at the first write of the step
    with pytest.raises(SimulatedCrash):
        finish()
    with pytest.raises(StorageError):
        pf.read()  # poisoned: nothing is served from a file whose commit failed
    disk = fs.crash(random.Random(1))
    pf = PageFile.open(disk, "/d/db")
    with pf.read() as r:
        assert dict(r.range(B)) == _expect(b"a", 500)
    pf.close()
    assert PageFile.check(disk, "/d/db") == []


def test_the_store_reads_a_prepared_batch_at_its_revision(tmp_path) -> None:
    pf = PageFile.open(OsFileSystem(), str(tmp_path / "db"))
    kv = KVStore(pf)
    with kv.write() as batch:
        batch.put(rpc.PutRequest(b"x", b"1"))
        batch.commit()
    batch = kv.write()
    batch.put(rpc.PutRequest(b"x", b"2"))
    batch.put(rpc.PutRequest(b"y", b"3"))
    finish = batch.prepare_commit()
    r = kv.range(rpc.RangeRequest(b"\0", b"\xff"))
    assert r.header.revision == 4 and [(x.key, x.value) for x in r.kvs] == [(b"x", b"2"), (b"y", b"3")]
    assert kv.range(rpc.RangeRequest(b"x", revision=2)).kvs[0].value == b"1"  # history is there too
    finish()
    kv.close()
    pf.close()
