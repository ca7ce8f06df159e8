"""SIGKILL a real child process writing the WAL (and the page file) at random moments; every record it
acknowledged as durable must be there after reopening, and nothing may be corrupt."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from tests.storage.sigkill_child import BUCKET, MAX_WALS, SEGMENT_SIZE, payload
from trikv.storage.files import OsFileSystem
from trikv.storage.wal import WAL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILLS = 50


def run_child(datadir: str, seed: int, rng: random.Random) -> tuple[int, int, int]:
    """Start a child, kill -9 it after a random number of acks plus a random delay.

    Returns (index the child started from, highest W ack, highest P ack)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.sigkill_child", datadir, str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        ready = proc.stdout.readline().split()
        assert ready and ready[0] == b"READY", (ready, proc.stderr.read() if proc.stderr else b"")
        acks_wanted = rng.randint(0, 40)
        w_ack = p_ack = 0
        for _ in range(acks_wanted):
            line = proc.stdout.readline().split()
            if not line:
                break
            if line[0] == b"W":
                w_ack = int(line[1])
            else:
                p_ack = int(line[1])
        time.sleep(rng.random() * 0.004)
        proc.send_signal(signal.SIGKILL)
        # Acks already in the pipe were printed after their fsync: they count too.
        for line in proc.stdout.read().splitlines():
            kind, idx = line.split()
            if kind == b"W":
                w_ack = int(idx)
            else:
                p_ack = int(idx)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            err = proc.stderr.read()
            proc.stderr.close()
            assert b"Traceback" not in err, err.decode()
    assert proc.returncode == -signal.SIGKILL
    return int(ready[1]), w_ack, p_ack


def verify(datadir: str, w_ack: int, p_ack: int) -> None:
    fs = OsFileSystem()
    wal, rep = WAL.open(fs, os.path.join(datadir, "wal"), segment_size=SEGMENT_SIZE, max_wals=MAX_WALS)
    try:
        assert rep.entries, "no entries after reopen"
        assert rep.entries[-1].index >= w_ack, (rep.entries[-1].index, w_ack)
        for e in rep.entries:
            assert e.data == payload(e.index), e.index
        # Released segments may be gone, but only below the last page-file commit (release_to's contract).
        assert rep.entries[0].index <= max(p_ack, 1), (rep.entries[0].index, p_ack)
    finally:
        wal.close()
    try:
        from trikv.storage.pagefile import PageFile
    except ImportError:
        return
    db = os.path.join(datadir, "db")
    if not fs.exists(db):
        assert p_ack == 0
        return
    assert PageFile.check(fs, db) == []
    pf = PageFile.open(fs, db)
    try:
        with pf.read() as tx:
            last = tx.get(BUCKET, b"last") if BUCKET in tx.buckets() else None
            assert int(last or 0) >= p_ack
            if p_ack:
                assert tx.get(BUCKET, b"%012d" % p_ack) == payload(p_ack)
    finally:
        pf.close()


def test_sigkill_at_random_moments_loses_no_acknowledged_record(tmp_path):
    rng = random.Random(20261127)
    datadir = str(tmp_path)
    best_w = best_p = 0
    for kill in range(KILLS):
        start, w_ack, p_ack = run_child(datadir, kill, rng)
        assert start >= best_w  # what an earlier child acked was still there when this one started
        best_w, best_p = max(best_w, w_ack), max(best_p, p_ack)
        verify(datadir, best_w, best_p)
    assert best_w > 100  # the children really wrote
