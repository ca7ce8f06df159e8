"""A torn WAL tail: a record cut short at the end of a crashed member's last WAL segment.

Honest only for records that were never fsynced, hence never acknowledged: the nemesis crashes the member
at `wal.before_fsync` (its batch buffered, not yet written) and then writes the head of a record at the
log's end, cut at a random offset, as a power cut in the middle of that batch's write would leave it.
Cutting a record that was fsynced instead (after a plain SIGKILL) would make the member forget a vote or
an acknowledged entry, which Raft does not claim to survive, so the nemesis never does that. The member
must restart, treating the cut record as a torn tail.
"""

from __future__ import annotations

import random
from pathlib import Path

from trikv.storage.wal import parse_segment_name, scan_segment


def last_segment(wal_dir: Path) -> Path | None:
    segs = sorted(
        (parsed[0], p) for p in wal_dir.iterdir() if (parsed := parse_segment_name(p.name)) is not None
    )
    return segs[-1][1] if segs else None


def tear_tail(wal_dir: Path, rng: random.Random) -> str:
    """Write a copy of the last record's head, cut at a random offset, at the log's end in the last
    segment; returns what was done, for the fault's detail."""
    seg = last_segment(wal_dir)
    if seg is None:
        return "no segment"
    data = seg.read_bytes()
    scan = scan_segment(data, str(seg), last=True)
    if not scan.records:
        return f"{seg.name}: no record, left alone"
    rec = scan.records[-1]
    cut = rng.randrange(1, rec.size)
    with open(seg, "r+b") as f:
        f.seek(scan.end)
        f.write(data[rec.offset : rec.offset + cut])
    return f"{seg.name}: a record of {rec.size} bytes cut at {cut} written at {scan.end}"
