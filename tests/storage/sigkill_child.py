"""Child process for test_sigkill: appends WAL records (and page-file commits) forever, printing an ack
line only after each one is durable. The parent SIGKILLs it at random moments and checks every ack.

Usage: python -m tests.storage.sigkill_child DATA_DIR SEED
Acks: ``W <last index>`` after wal.sync(); ``P <index>`` after a page-file commit recording that index.
Entry payloads are a pure function of the index, so the parent can verify without talking to the child.
"""

from __future__ import annotations

import os
import random
import sys

from trikv.api.records import Entry, EntryType, HardState, WalMetadata
from trikv.storage.files import OsFileSystem
from trikv.storage.wal import WAL

META = WalMetadata(cluster_id=5, member_id=9)
SEGMENT_SIZE = 64 << 10
MAX_WALS = 2
BUCKET = b"acks"


def payload(index: int) -> bytes:
    return (b"%d:" % index) * (1 + index % 23)


def main(datadir: str, seed: int) -> None:
    fs = OsFileSystem()
    wal_dir = os.path.join(datadir, "wal")
    if WAL.exists(fs, wal_dir):
        wal, _ = WAL.open(fs, wal_dir, segment_size=SEGMENT_SIZE, max_wals=MAX_WALS)
    else:
        wal = WAL.create(fs, wal_dir, META, segment_size=SEGMENT_SIZE, max_wals=MAX_WALS)
    try:
        from trikv.storage.pagefile import PageFile
    except ImportError:  # the page file is another engineer's module; the WAL part stands alone
        pf = None
    else:
        pf = PageFile.open(fs, os.path.join(datadir, "db"))
    rng = random.Random(seed)
    out = sys.stdout
    out.write(f"READY {wal.last_index}\n")
    out.flush()
    batches = 0
    while True:
        first = wal.last_index + 1
        n = rng.randint(1, 32)
        wal.append(
            [Entry(1, i, EntryType.NORMAL, payload(i)) for i in range(first, first + n)],
            HardState(1, 9, first - 1),
        )
        wal.sync()
        last = first + n - 1
        out.write(f"W {last}\n")
        out.flush()
        batches += 1
        if pf is not None and batches % 4 == 0:
            with pf.write() as tx:
                tx.create_bucket(BUCKET)
                tx.put(BUCKET, b"%012d" % last, payload(last))
                tx.put(BUCKET, b"last", b"%d" % last)
                tx.commit()
            out.write(f"P {last}\n")
            out.flush()
            # The contract: release only what the page file has durably committed.
            wal.release_to(last)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
