"""HashKV cost: how long a member spends hashing its key space (the corruption check, `endpoint hashkv`).

    python -m trikv.tools.bench_hashkv                 # 100k keys x 3 revisions, 128-byte values
    python -m trikv.tools.bench_hashkv --keys 20000    # smaller

Builds a page file with the MVCC store in a temp dir (real OsFileSystem), compacts half its history, then
times `hash_kv` in one go and in `KVHasher` steps of 2,000 page keys (what a member does between awaits, so
the longest step is what the Raft loop may wait for one step). Single process, wall clock.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from trikv.api import rpc
from trikv.storage.files import OsFileSystem
from trikv.storage.hashkv import KVHasher, hash_kv
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--revisions", type=int, default=3, help="puts per key")
    ap.add_argument("--value-bytes", type=int, default=128)
    ap.add_argument("--step", type=int, default=2000)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        pf = PageFile.open(OsFileSystem(), str(Path(d) / "db"))
        kv = KVStore(pf)
        value = b"v" * a.value_bytes
        for _ in range(a.revisions):
            with kv.write() as b:
                for i in range(a.keys):
                    b.put(rpc.PutRequest(b"key%08d" % i, value))
                b.commit()
        half = kv.current_revision - a.keys * a.revisions // 2
        with kv.write() as b:
            b.compact(rpc.CompactionRequest(half))
            b.commit()
        rev, crev = kv.current_revision, kv.compact_revision
        pages = a.keys * a.revisions
        t0 = time.perf_counter()
        h = hash_kv(pf, rev, crev)
        whole = time.perf_counter() - t0
        hasher = KVHasher(rev, crev)
        times: list[float] = []
        t0 = time.perf_counter()
        while True:
            s0 = time.perf_counter()
            with pf.read() as rx:
                done = hasher.step(rx, a.step)
            times.append(time.perf_counter() - s0)
            if done:
                break
        stepped = time.perf_counter() - t0
        assert hasher.hash == h
        size = pf.size()
        pf.close()
    print(
        f"page keys {pages:,} ({a.keys:,} keys x {a.revisions} revisions, half compacted), db {size / 1e6:.1f} MB"
    )
    print(f"hash_kv in one go: {whole:.2f} s ({pages / whole:,.0f} page keys/s)")
    times.sort()
    print(
        f"KVHasher, {len(times)} steps of {a.step:,}: {stepped:.2f} s; step median "
        f"{times[len(times) // 2] * 1000:.1f} ms, 90th {times[len(times) * 9 // 10] * 1000:.1f} ms, "
        f"longest {times[-1] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
