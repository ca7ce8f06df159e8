"""Storage benchmark: the disk's raw fsync rate, then WAL, page file and MVCC on top of it.

    python tools/bench_storage.py --quick      # ~20 s smoke run (smaller sizes, same measurements)
    python tools/bench_storage.py              # full run: 100k-key MVCC, restart with 1M keys
    python tools/bench_storage.py --profile    # also print the cProfile top entries of the restart

Everything runs in a temp dir (--dir to choose the file system) on the real OsFileSystem, one thing at a
time, single process. Numbers are wall-clock on a shared machine: read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trikv.api.records import Entry, HardState, WalMetadata
from trikv.api.rpc import PutRequest, RangeRequest
from trikv.storage.files import OsFileSystem
from trikv.storage.mvcc import FIRST_REVISION, KVStore
from trikv.storage.pagefile import PageFile
from trikv.storage.wal import WAL


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _until(seconds: float, step: Callable[[], int]) -> tuple[int, float]:
    """Run `step` (returns work units done) until `seconds` pass; (units, elapsed)."""
    n = 0
    t0 = time.perf_counter()
    while True:
        n += step()
        el = time.perf_counter() - t0
        if el >= seconds:
            return n, el


def bench_fsync(tmp: str, seconds: float) -> float:
    path = os.path.join(tmp, "fsync.bin")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    block = b"\xab" * 512
    try:

        def step() -> int:
            os.write(fd, block)
            os.fsync(fd)
            return 1

        n, el = _until(seconds, step)
    finally:
        os.close(fd)
        os.remove(path)
    return n / el


def bench_wal(tmp: str, batch: int, seconds: float) -> float:
    fs = OsFileSystem()
    d = os.path.join(tmp, f"wal{batch}")
    wal = WAL.create(fs, d, WalMetadata(cluster_id=1, member_id=1))
    data = os.urandom(256)
    index = [wal.last_index]

    def step() -> int:
        i = index[0]
        wal.append([Entry(1, i + k + 1, data=data) for k in range(batch)], HardState(1, 1, i))
        wal.sync()
        index[0] = i + batch
        return batch

    try:
        n, el = _until(seconds, step)
    finally:
        wal.close()
        shutil.rmtree(d, ignore_errors=True)
    return n / el


def bench_pagefile(tmp: str, puts: int, seconds: float) -> tuple[float, float, int]:
    fs = OsFileSystem()
    path = os.path.join(tmp, f"pf{puts}.db")
    pf = PageFile.open(fs, path)
    rnd = random.Random(puts)
    value = os.urandom(256)
    with pf.write() as tx:
        tx.create_bucket(b"b")
        tx.commit()
    lat: list[float] = []

    def step() -> int:
        t0 = time.perf_counter()
        with pf.write() as tx:
            for _ in range(puts):
                tx.put(b"b", rnd.getrandbits(64).to_bytes(8, "big"), value)
            tx.commit()
        lat.append(time.perf_counter() - t0)
        return 1

    try:
        _until(seconds, step)
    finally:
        pf.close()
        os.remove(path)
    return _pct(lat, 50) * 1e3, _pct(lat, 99) * 1e3, len(lat)


def _key(i: int) -> bytes:
    return b"/bench/%010d" % i


def load_mvcc(kv: KVStore, keys: int, per_batch: int, value: bytes) -> float:
    """Put keys 0..keys-1 in batches of per_batch; returns puts/s."""
    t0 = time.perf_counter()
    for start in range(0, keys, per_batch):
        with kv.write() as b:
            for i in range(start, min(keys, start + per_batch)):
                b.put(PutRequest(_key(i), value))
            b.commit()
    return keys / (time.perf_counter() - t0)


def bench_mvcc(tmp: str, keys: int, seconds: float) -> dict[str, float]:
    fs = OsFileSystem()
    path = os.path.join(tmp, "mvcc.db")
    pf = PageFile.open(fs, path)
    kv = KVStore(pf)
    value = os.urandom(256)
    rnd = random.Random(7)
    out: dict[str, float] = {}
    try:
        out["load_puts_per_s"] = load_mvcc(kv, keys, 1000, value)

        def put_step(per: int) -> Callable[[], int]:
            def step() -> int:
                with kv.write() as b:
                    for _ in range(per):
                        b.put(PutRequest(_key(rnd.randrange(keys)), value))
                    b.commit()
                return per

            return step

        for per in (1, 100):
            n, el = _until(seconds, put_step(per))
            out[f"puts_per_s_batch{per}"] = n / el

        def range_step() -> int:
            kv.range(RangeRequest(_key(rnd.randrange(keys))))
            return 1

        n, el = _until(seconds, range_step)
        out["range1_per_s"] = n / el

        def range100_step() -> int:
            i = rnd.randrange(keys)
            kv.range(RangeRequest(_key(i), _key(i + 100)))
            return 1

        n, el = _until(seconds, range100_step)
        out["range100_per_s"] = n / el
    finally:
        kv.close()
        pf.close()
        os.remove(path)
    return out


def bench_restart(tmp: str, keys: int, profile: bool) -> dict[str, Any]:
    fs = OsFileSystem()
    path = os.path.join(tmp, "restart.db")
    pf = PageFile.open(fs, path)
    kv = KVStore(pf)
    t0 = time.perf_counter()
    load_mvcc(kv, keys, 10_000, b"v" * 64)
    load_s = time.perf_counter() - t0
    kv.close()
    pf.close()
    size = os.path.getsize(path)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    pf = PageFile.open(fs, path)
    kv = KVStore(pf)
    if prof is not None:
        prof.disable()
    restart_s = time.perf_counter() - t0
    assert kv.current_revision == FIRST_REVISION + keys, kv.current_revision  # one revision per put
    report = ""
    if prof is not None:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
        report = buf.getvalue()
    kv.close()
    pf.close()
    os.remove(path)
    return {"keys": keys, "load_s": load_s, "db_bytes": size, "restart_s": restart_s, "profile": report}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~20 s smoke run with smaller sizes")
    ap.add_argument("--dir", default=None, help="directory for the temp files (default: system temp)")
    ap.add_argument("--profile", action="store_true", help="print cProfile top entries of the restart")
    ap.add_argument("--restart-keys", type=int, default=None, help="keys for the restart test")
    args = ap.parse_args(argv)
    quick = args.quick
    secs = 1.0 if quick else 3.0
    mvcc_keys = 20_000 if quick else 100_000
    restart_keys = args.restart_keys or (100_000 if quick else 1_000_000)
    tmp = tempfile.mkdtemp(prefix="trikv-bench-", dir=args.dir)
    print(f"trikv storage benchmark ({'quick' if quick else 'full'}), temp dir {tmp}")
    try:
        print(f"disk raw fsync (512 B write + fsync):   {bench_fsync(tmp, secs):10,.0f} /s")
        for batch in (1, 16, 256):
            r = bench_wal(tmp, batch, secs)
            print(f"WAL 256 B records, batch {batch:3d}, 1 fsync: {r:10,.0f} records/s")
        for puts in (1, 1000):
            p50, p99, n = bench_pagefile(tmp, puts, secs)
            print(
                f"page file commit, {puts:4d} puts/txn:     p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  ({n} txns)"
            )
        m = bench_mvcc(tmp, mvcc_keys, secs)
        print(f"MVCC with {mvcc_keys:,} keys (256 B values):")
        print(f"  load, 1000 puts/batch:                {m['load_puts_per_s']:10,.0f} puts/s")
        print(f"  put, 1 put/batch (commit each):       {m['puts_per_s_batch1']:10,.0f} puts/s")
        print(f"  put, 100 puts/batch:                  {m['puts_per_s_batch100']:10,.0f} puts/s")
        print(f"  range, one key:                       {m['range1_per_s']:10,.0f} ranges/s")
        print(f"  range, 100 consecutive keys:          {m['range100_per_s']:10,.0f} ranges/s")
        rs = bench_restart(tmp, restart_keys, args.profile)
        print(
            f"restart with {rs['keys']:,} keys ({rs['db_bytes'] / 2**20:.0f} MiB page file, loaded in "
            f"{rs['load_s']:.1f} s): {rs['restart_s']:.2f} s (PageFile.open + KVStore rebuild)"
        )
        if rs["profile"]:
            print(rs["profile"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
