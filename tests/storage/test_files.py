"""The file layer: OsFileSystem basics and the power-loss semantics of CrashFileSystem."""

from __future__ import annotations

import random

import pytest

from trikv.api.errors import LockedError
from trikv.storage.files import CrashFileSystem, OsFileSystem, SimulatedCrash


def test_os_file_roundtrip(tmp_path):
    fs = OsFileSystem()
    p = str(tmp_path / "f")
    with pytest.raises(FileNotFoundError):
        fs.open(p)
    f = fs.open(p, create=True)
    f.pwrite(b"hello", 10)
    assert f.size() == 15
    assert f.pread(5, 10) == b"hello"
    assert f.pread(100, 12) == b"llo"  # short at EOF
    assert f.pread(3, 0) == b"\0\0\0"
    f.preallocate(4096)
    assert f.size() == 4096
    f.preallocate(100)  # never shrinks
    assert f.size() == 4096
    f.truncate(12)
    assert f.pread(100, 0) == b"\0" * 10 + b"he"
    f.sync()
    f.close()
    fs.sync_dir(str(tmp_path))
    fs.makedirs(str(tmp_path / "a" / "b"))
    fs.rename(p, str(tmp_path / "a" / "g"))
    assert fs.listdir(str(tmp_path / "a")) == ["b", "g"]
    fs.remove(str(tmp_path / "a" / "g"))
    fs.rmtree(str(tmp_path / "a"))
    assert not fs.exists(str(tmp_path / "a"))


def test_os_file_size_follows_its_own_writes_without_asking_the_kernel(tmp_path, monkeypatch):
    """size() answers from what this descriptor did (the quota asks on every write request), and that answer
    is what fstat says after every kind of change."""
    import os

    fs = OsFileSystem()
    p = str(tmp_path / "f")
    f = fs.open(p, create=True)
    real_fstat = os.fstat
    calls = []

    def counting_fstat(fd):
        calls.append(fd)
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", counting_fstat)
    assert f.size() == 0
    for step in (
        lambda: f.pwrite(b"x" * 100, 0),
        lambda: f.pwrite(b"y" * 10, 500),
        lambda: f.pwrite(b"z", 3),  # inside: no growth
        lambda: f.preallocate(8192),
        lambda: f.preallocate(10),
        lambda: f.truncate(40),
        lambda: f.pwrite(b"w" * 60, 20),
    ):
        step()
        assert f.size() == real_fstat(f._fd).st_size
    assert len(calls) == 1  # the first size() only
    f.close()


def test_os_lock_is_exclusive(tmp_path):
    fs = OsFileSystem()
    lock = fs.lock(str(tmp_path))
    with pytest.raises(LockedError):
        fs.lock(str(tmp_path))
    lock.release()
    fs.lock(str(tmp_path)).release()


def test_crash_lock_is_exclusive():
    fs = CrashFileSystem()
    fs.makedirs("/d")
    lock = fs.lock("/d")
    with pytest.raises(LockedError):
        fs.lock("/d")
    lock.release()
    fs.lock("/d").release()


def test_synced_content_survives_every_crash():
    for seed in range(50):
        fs = CrashFileSystem()
        fs.makedirs("/d")
        f = fs.open("/d/f", create=True)
        f.pwrite(b"a" * 3000, 0)
        f.sync()
        fs.sync_dir("/d")
        after = fs.crash(random.Random(seed))
        assert after.open("/d/f").pread(10_000, 0) == b"a" * 3000


def test_unsynced_writes_are_dropped_kept_or_torn():
    outcomes = set()
    for seed in range(200):
        fs = CrashFileSystem()
        fs.makedirs("/d")
        f = fs.open("/d/f", create=True)
        f.pwrite(b"a" * 2048, 0)
        f.sync()
        fs.sync_dir("/d")
        f.pwrite(b"b" * 2048, 1024)  # overwrites the second half and extends
        got = fs.crash(random.Random(seed)).open("/d/f").pread(10_000, 0)
        assert got[:1024] == b"a" * 1024  # synced and not overwritten: always there
        tail = got[1024:]
        if tail == b"a" * 1024:
            outcomes.add("dropped")
        elif tail == b"b" * 2048:
            outcomes.add("kept")
        else:
            outcomes.add("torn")
            assert set(tail) <= {ord("a"), ord("b"), 0}
    assert outcomes == {"dropped", "kept", "torn"}


def test_create_without_dir_sync_may_vanish_and_with_it_survives():
    fs = CrashFileSystem()
    fs.makedirs("/d")
    f = fs.open("/d/new", create=True)
    f.pwrite(b"x", 0)
    f.sync()
    assert not fs.crash(random.Random(1)).exists("/d/new")

    fs = CrashFileSystem()
    fs.makedirs("/d")
    f = fs.open("/d/new", create=True)
    f.pwrite(b"x", 0)
    f.sync()
    fs.sync_dir("/d")
    assert fs.crash(random.Random(1)).open("/d/new").pread(1, 0) == b"x"


def test_rename_is_durable_only_after_sync_dir():
    fs = CrashFileSystem()
    fs.makedirs("/d")
    for name, body in (("a", b"old"), ("a.tmp", b"new")):
        f = fs.open(f"/d/{name}", create=True)
        f.pwrite(body, 0)
        f.sync()
    fs.sync_dir("/d")
    fs.rename("/d/a.tmp", "/d/a")
    assert fs.open("/d/a").pread(3, 0) == b"new"
    lost = fs.crash(random.Random(0))
    assert lost.listdir("/d") == ["a", "a.tmp"]
    assert lost.open("/d/a").pread(3, 0) == b"old"

    lost.rename("/d/a.tmp", "/d/a")
    lost.sync_dir("/d")
    kept = lost.crash(random.Random(0))
    assert kept.listdir("/d") == ["a"]
    assert kept.open("/d/a").pread(3, 0) == b"new"


def test_remove_and_rmtree_need_dir_sync():
    fs = CrashFileSystem()
    fs.makedirs("/d/sub")
    fs.open("/d/f", create=True).sync()
    fs.sync_dir("/d")
    fs.remove("/d/f")
    fs.rmtree("/d/sub")
    assert fs.listdir("/d") == []
    assert fs.crash(random.Random(0)).listdir("/d") == ["f", "sub"]
    fs2 = CrashFileSystem()
    fs2.makedirs("/d/sub")
    fs2.rmtree("/d/sub")
    fs2.sync_dir("/d")
    assert fs2.crash(random.Random(0)).listdir("/d") == []


def test_truncate_and_preallocate_since_sync_may_be_lost():
    sizes = set()
    for seed in range(40):
        fs = CrashFileSystem()
        fs.makedirs("/d")
        f = fs.open("/d/f", create=True)
        f.pwrite(b"z" * 100, 0)
        f.sync()
        fs.sync_dir("/d")
        f.preallocate(4096)
        sizes.add(fs.crash(random.Random(seed)).open("/d/f").size())
    assert sizes == {100, 4096}


def test_arm_raises_at_the_nth_mutation_and_the_machine_stays_off():
    fs = CrashFileSystem()
    fs.makedirs("/d")
    f = fs.open("/d/f", create=True)
    fs.arm(3)
    f.pwrite(b"1", 0)
    f.pwrite(b"2", 1)
    with pytest.raises(SimulatedCrash):
        f.sync()
    assert fs.crashed
    with pytest.raises(SimulatedCrash):
        f.pwrite(b"3", 2)
    assert f.pread(10, 0) == b"12"  # reads still work (cleanup code may read)
    # The sync never happened: after the crash, the file may be empty (create not synced either).
    after = fs.crash(random.Random(0))
    assert not after.exists("/d/f")


def test_errors_match_the_os():
    fs = CrashFileSystem()
    with pytest.raises(FileNotFoundError):
        fs.open("/nope/f", create=True)
    fs.makedirs("/d")
    with pytest.raises(IsADirectoryError):
        fs.open("/d")
    with pytest.raises(FileNotFoundError):
        fs.remove("/d/x")
    with pytest.raises(FileNotFoundError):
        fs.listdir("/e")
