"""Power loss at random points of a long workload: recovery sees exactly a committed state, and is healthy."""

from __future__ import annotations

import io
import random

import pytest

from trikv.storage.files import CrashFileSystem, SimulatedCrash
from trikv.storage.pagefile import PageFile

State = dict[bytes, dict[bytes, bytes]]
PS = 512  # small pages: deep trees, many pages per commit


def _dump(pf: PageFile) -> State:
    with pf.read() as r:
        return {b: dict(r.range(b)) for b in r.buckets()}


def _copy(s: State) -> State:
    return {b: dict(d) for b, d in s.items()}


def _txn(pf: PageFile, work: State, rng: random.Random) -> None:
    """One random write transaction applied to pf (not committed) and to the model."""
    w = pf.write()
    for _ in range(rng.choice([1, 3, 20, 150])):
        r = rng.random()
        b = rng.choice([b"key", b"meta", b"lease"])
        if b not in work:
            w.create_bucket(b)
            work[b] = {}
        if r < 0.6:
            k = b"%05d" % rng.randrange(3000)
            v = rng.randbytes(rng.choice([0, 8, 60, 300, 2000]))
            w.put(b, k, v)
            work[b][k] = v
        elif r < 0.9:
            k = b"%05d" % rng.randrange(3000)
            assert w.delete(b, k) == (k in work[b])
            work[b].pop(k, None)
        elif r < 0.93 and b != b"key":
            w.delete_bucket(b)
            del work[b]
        else:
            for i in range(rng.randrange(50)):
                k = b"z%06d" % (rng.randrange(1000) * 50 + i)
                w.put(b, k, b"seq")
                work[b][k] = b"seq"


def _run_until_crash(fs: CrashFileSystem, rng: random.Random, states: dict[int, State]) -> int:
    """Run a workload until the armed crash fires; returns the txid of the last completed commit."""
    last = 0
    pf = PageFile.open(fs, "/d/db", page_size=PS)
    work: State = {}
    for _step in range(400):
        if rng.random() < 0.03:
            states[pf.txid + 1] = _copy(work)  # defrag rewrites the same contents under the next txid
            pf.defrag()
            last = pf.txid
            continue
        if rng.random() < 0.02:  # install a snapshot of ourselves (exercises write-new + rename)
            snap = io.BytesIO()
            pf.write_snapshot(snap)
            pf.replace_from(io.BytesIO(snap.getvalue()))
            continue
        _txn(pf, work, rng)
        assert pf._writer is not None
        states[pf.txid + 1] = _copy(work)
        pf._writer.commit()
        last = pf.txid
        assert last in states
    return last


@pytest.mark.parametrize("seed", range(40))
def test_power_loss_at_a_random_point(seed: int) -> None:
    rng = random.Random(seed)
    fs = CrashFileSystem()
    fs.makedirs("/d")
    states: dict[int, State] = {0: {}}
    fs.arm(rng.randrange(1, 2500))
    with pytest.raises(SimulatedCrash):  # the crash point lies inside the workload
        _run_until_crash(fs, rng, states)
    after = fs.crash(random.Random(seed * 7919 + 1))
    pf = PageFile.open(after, "/d/db", page_size=PS)  # creates it if the crash hit its creation
    # exactly the state of the commit the meta page names: the last one completed or the one in flight
    assert pf.txid in states
    assert max(states) - 1 <= pf.txid <= max(states)
    assert _dump(pf) == states[pf.txid]
    assert PageFile.check(after, "/d/db", page_size=PS) == []
    # the recovered file keeps working: its free list and pages are consistent
    work = _copy(states[pf.txid])
    for _ in range(20):
        _txn(pf, work, rng)
        assert pf._writer is not None
        pf._writer.commit()
    pf.close()
    pf = PageFile.open(after, "/d/db", page_size=PS)
    assert _dump(pf) == work
    assert PageFile.check(after, "/d/db", page_size=PS) == []
    pf.close()


def test_every_crash_point_of_one_commit() -> None:
    """Crash at each mutating call of a single large commit: before the meta page lands the old state
    survives; once the final fsync returned, the new one does."""
    rng = random.Random(5)
    base: State = {}
    fs0 = CrashFileSystem()
    fs0.makedirs("/d")
    pf = PageFile.open(fs0, "/d/db", page_size=PS)
    _txn(pf, base, rng)
    assert pf._writer is not None
    pf._writer.commit()
    pf.close()
    n = 1
    outcomes: set[tuple[bool, int]] = set()
    while True:
        fs = fs0.crash(random.Random(0))  # an identical, healthy copy (everything was synced)
        pf = PageFile.open(fs, "/d/db", page_size=PS)
        new = _copy(base)
        _txn(pf, new, random.Random(99))
        fs.arm(n)
        assert pf._writer is not None
        try:
            pf._writer.commit()
            done = True
        except SimulatedCrash:
            done = False
        for crash_seed in range(6):
            after = fs.crash(random.Random(crash_seed))
            got = PageFile.open(after, "/d/db", page_size=PS)
            assert got.txid in (1, 2)
            if done:
                assert got.txid == 2  # commit() returned: durable
            outcomes.add((done, got.txid))
            assert _dump(got) == (base if got.txid == 1 else new)
            assert PageFile.check(after, "/d/db", page_size=PS) == []
            got.close()
        if done:
            break
        n += 1
    assert n > 3
    # the crash at the last fsync sometimes kept the new meta page, sometimes not
    assert outcomes == {(False, 1), (False, 2), (True, 2)}


# --------------------------------------------------------------------------- SIGKILL on the real file system


def _expected(txid: int) -> dict[bytes, bytes]:
    """The state after commit `txid` of `_sigkill_child`'s deterministic workload."""
    out: dict[bytes, bytes] = {}
    for t in range(2, txid + 1):
        out[b"k%06d" % t] = b"v%d" % t * (1 + t % 5 * 300)
        out.pop(b"k%06d" % (t - 40), None)
        if t % 25 == 0:
            out[b"blob"] = bytes([t % 256]) * 200_000
    return out


def _sigkill_child(path: str) -> None:
    """Commit forever, printing each txid once commit() returned (run in a child process)."""
    import sys

    from trikv.storage.files import OsFileSystem

    pf = PageFile.open(OsFileSystem(), path)
    with pf.write() as w:
        w.create_bucket(b"b")
        w.commit()
    while True:
        t = pf.txid + 1
        with pf.write() as w:
            w.put(b"b", b"k%06d" % t, b"v%d" % t * (1 + t % 5 * 300))
            w.delete(b"b", b"k%06d" % (t - 40))
            if t % 25 == 0:
                w.put(b"b", b"blob", bytes([t % 256]) * 200_000)
            w.commit()
        sys.stdout.write(f"{pf.txid}\n")
        sys.stdout.flush()


@pytest.mark.parametrize("commits", [1, 37, 300])
def test_sigkill_mid_workload(tmp_path, commits: int) -> None:
    import os
    import signal
    import subprocess
    import sys

    from trikv.storage.files import OsFileSystem

    path = str(tmp_path / "db")
    code = f"from tests.storage.test_pagefile_crash import _sigkill_child; _sigkill_child({path!r})"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        last = 0
        while last < commits:
            line = child.stdout.readline()
            assert line, "child died"
            last = int(line)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    fs = OsFileSystem()
    pf = PageFile.open(fs, path)
    assert pf.txid >= last  # every commit that returned is durable
    with pf.read() as r:
        assert dict(r.range(b"b")) == _expected(pf.txid)
    pf.close()
    assert PageFile.check(fs, path) == []
