"""WAL unit acceptance: torn tails at every byte, corruption, suffix replacement, segments, release, lock."""

from __future__ import annotations

import itertools
import posixpath
import random
import struct

import pytest

from trikv.api.errors import CorruptionError, LockedError, StorageError
from trikv.api.records import Entry, EntryType, HardState, SnapshotMeta, WalMetadata
from trikv.storage.files import SECTOR, CrashFileSystem, OsFileSystem
from trikv.storage.wal import (
    HDR_SIZE,
    MAGIC,
    MAX_RECORD,
    REC_ENTRY,
    WAL,
    encode_metadata,
    parse_segment_name,
    scan_segment,
    verify,
)

META = WalMetadata(cluster_id=11, member_id=22)


def ent(i: int, term: int = 1, size: int = 40) -> Entry:
    # Data without zero bytes, so no piece of a record is all zeros unless the disk left it so.
    return Entry(term, i, EntryType.NORMAL, bytes((i * 7 + k) % 255 + 1 for k in range(size)))


def fresh(segment_size: int = 4096, max_wals: int = 5) -> tuple[CrashFileSystem, WAL]:
    fs = CrashFileSystem()
    fs.makedirs("/m")
    return fs, WAL.create(fs, "/m/wal", META, segment_size=segment_size, max_wals=max_wals)


def only_segment(fs: CrashFileSystem) -> str:
    (name,) = fs.listdir("/m/wal")
    return posixpath.join("/m/wal", name)


def image(content: bytes, name: str) -> CrashFileSystem:
    """A file system holding one WAL segment with exactly these bytes."""
    fs = CrashFileSystem()
    fs.makedirs("/m/wal")
    f = fs.open(f"/m/wal/{name}", create=True)
    f.pwrite(content, 0)
    f.sync()
    fs.sync_dir("/m/wal")
    return fs


def read(fs: CrashFileSystem, path: str) -> bytes:
    f = fs.open(path)
    return f.pread(f.size(), 0)


def test_create_open_roundtrip_and_exists():
    fs, wal = fresh()
    assert WAL.exists(fs, "/m/wal") and not WAL.exists(fs, "/m/other")
    wal.append([ent(1), ent(2)], HardState(1, 5, 1))
    wal.save_snapshot(SnapshotMeta(0, 0))
    wal.sync()
    wal.close()
    wal, rep = WAL.open(fs, "/m/wal", segment_size=4096)
    assert rep.metadata == META
    assert rep.hard_state == HardState(1, 5, 1)
    assert rep.entries == [ent(1), ent(2)]
    assert rep.snapshot == SnapshotMeta(0, 0)
    assert wal.last_index == 2
    with pytest.raises(StorageError):
        WAL.create(fs, "/m/wal", META)


def test_unsynced_appends_are_not_on_disk():
    fs, wal = fresh()
    wal.append([ent(1)])
    wal.sync()
    wal.append([ent(2)])
    wal.close()  # no sync
    _, rep = WAL.open(fs, "/m/wal", segment_size=4096)
    assert rep.entries == [ent(1)]


def test_lock_refuses_a_second_opener(tmp_path):
    fs, wal = fresh()
    with pytest.raises(LockedError):
        WAL.open(fs, "/m/wal", segment_size=4096)
    wal.close()
    WAL.open(fs, "/m/wal", segment_size=4096)[0].close()

    ofs = OsFileSystem()
    d = str(tmp_path / "wal")
    w = WAL.create(ofs, d, META, segment_size=8192)
    with pytest.raises(LockedError):
        WAL.open(ofs, d)
    w.close()
    w2, _ = WAL.open(ofs, d)
    w2.close()


def test_suffix_replacement_within_a_run_and_across_replay():
    fs, wal = fresh(segment_size=1024)
    wal.append([ent(i) for i in range(1, 21)])
    wal.sync()
    wal.append([ent(15, term=2), ent(16, term=2)])  # a follower truncating from 15
    assert wal.last_index == 16
    wal.sync()
    wal.close()
    wal, rep = WAL.open(fs, "/m/wal", segment_size=1024)
    assert rep.entries == [ent(i) for i in range(1, 15)] + [ent(15, 2), ent(16, 2)]
    wal.append([ent(3, term=3)])  # below several segment boundaries
    wal.sync()
    wal.close()
    _, rep = WAL.open(fs, "/m/wal", segment_size=1024)
    assert rep.entries == [ent(1), ent(2), ent(3, 3)]


def test_gaps_are_refused_on_append_and_buffer_nothing():
    fs, wal = fresh()
    wal.append([ent(1)])
    with pytest.raises(StorageError):
        wal.append([ent(3)])
    with pytest.raises(StorageError):
        wal.append([ent(2), ent(4)], HardState(9, 9, 9))
    with pytest.raises(StorageError):
        wal.append([ent(2), Entry(1, 3, EntryType.NORMAL, bytes(MAX_RECORD))])
    assert wal.last_index == 1
    wal.append([ent(2)])
    wal.sync()
    wal.close()
    _, rep = WAL.open(fs, "/m/wal", segment_size=4096)
    assert rep.entries == [ent(1), ent(2)] and rep.hard_state == HardState()


def test_snapshot_marker_drops_entries_through_its_index():
    fs, wal = fresh()
    wal.append([ent(i) for i in range(1, 11)])
    wal.save_snapshot(SnapshotMeta(6, 1))  # a leader compacting at its applied index
    wal.sync()
    wal.close()
    wal, rep = WAL.open(fs, "/m/wal", segment_size=4096)
    assert rep.snapshot == SnapshotMeta(6, 1)
    assert rep.entries == [ent(i) for i in range(7, 11)]
    wal.save_snapshot(SnapshotMeta(50, 3))  # a follower installing a leader's snapshot
    assert wal.last_index == 50
    wal.append([ent(51, 3)])
    wal.sync()
    wal.close()
    _, rep = WAL.open(fs, "/m/wal", segment_size=4096)
    assert rep.snapshot == SnapshotMeta(50, 3)
    assert rep.entries == [ent(51, 3)]


def test_segments_are_cut_named_by_first_index_and_found_without_scanning():
    fs, wal = fresh(segment_size=1024)
    for i in range(1, 101):
        wal.append([ent(i)], HardState(1, 1, i - 1))
        if i % 5 == 0:
            wal.sync()
    names = wal.segment_names
    assert len(names) > 5
    parsed = [parse_segment_name(n) for n in names]
    assert [p[0] for p in parsed if p] == list(range(len(names)))
    for path in (posixpath.join("/m/wal", n) for n in names):
        assert fs.open(path).size() >= 1024  # preallocated
    # Each segment's name says the first index it holds; segment_for uses only names.
    for i in (1, 17, 50, 100):
        path = wal.segment_for(i)
        scan = scan_segment(read(fs, path), path, last=path.endswith(names[-1]))
        assert i in {r.value.index for r in scan.records if r.type == REC_ENTRY}
    wal.close()
    _, rep = WAL.open(fs, "/m/wal", segment_size=1024)
    assert rep.entries == [ent(i) for i in range(1, 101)]
    assert rep.hard_state == HardState(1, 1, 99)


def test_a_batch_larger_than_a_segment_cuts_inside_one_sync():
    fs, wal = fresh(segment_size=1024)
    wal.append([ent(i, size=300) for i in range(1, 30)], HardState(2, 2, 20))
    wal.append([ent(30, size=3000)])  # bigger than a whole segment: gets its own
    wal.sync()
    assert len(wal.segment_names) >= 10
    wal.close()
    _, rep = WAL.open(fs, "/m/wal", segment_size=1024)
    assert rep.entries == [ent(i, size=300) for i in range(1, 30)] + [ent(30, size=3000)]
    assert rep.hard_state == HardState(2, 2, 20)


def test_release_to_keeps_max_wals_released_files_and_replay_still_works():
    fs, wal = fresh(segment_size=1024, max_wals=2)
    for i in range(1, 201):
        wal.append([ent(i)], HardState(1, 1, i))
        wal.sync()
    wal.save_snapshot(SnapshotMeta(150, 1))
    wal.sync()
    before = wal.segment_names
    wal.release_to(150)
    after = wal.segment_names
    assert fs.listdir("/m/wal") == after
    holding = posixpath.basename(
        max((n for n in before if parse_segment_name(n)[1] <= 150), key=lambda n: parse_segment_name(n)[0])  # type: ignore[index]
    )
    kept_released = after[: after.index(holding)]
    assert len(kept_released) == 2  # max_wals released files stay
    assert before[-len(after) :] == after
    wal.release_to(10_000)  # everything but the current segment is released
    assert wal.segment_names[-1] == before[-1] and len(wal.segment_names) == 3
    first = parse_segment_name(wal.segment_names[0])[1]  # type: ignore[index]
    assert first > 150
    wal.close()
    # The heads of the kept segments carry the snapshot marker and hard state of the deleted ones.
    _, rep = WAL.open(fs, "/m/wal", segment_size=1024)
    assert rep.snapshot == SnapshotMeta(150, 1)
    assert rep.hard_state == HardState(1, 1, 200)
    assert rep.entries == [ent(i) for i in range(first, 201)]


def test_metadata_mismatch_between_segments_is_corruption():
    fs, wal = fresh(segment_size=1024)
    for i in range(1, 40):
        wal.append([ent(i)])
        wal.sync()
    wal.close()
    names = fs.listdir("/m/wal")
    # Rewrite the second segment's head with another member's identity (same length: ids < 24 are 1 byte).
    path = posixpath.join("/m/wal", names[1])
    data = bytearray(read(fs, path))
    old, new = encode_metadata(META), encode_metadata(WalMetadata(11, 23))
    assert data.startswith(old) and len(old) == len(new)
    data[: len(new)] = new
    f = fs.open(path)
    f.pwrite(bytes(data), 0)
    f.sync()
    with pytest.raises(CorruptionError) as err:
        WAL.open(fs, "/m/wal", segment_size=1024)
    assert err.value.path == path
    assert verify(fs, "/m/wal") and "differs" in verify(fs, "/m/wal")[0]


def test_missing_middle_segment_is_corruption():
    fs, wal = fresh(segment_size=1024)
    for i in range(1, 60):
        wal.append([ent(i)])
        wal.sync()
    wal.close()
    names = fs.listdir("/m/wal")
    fs.remove(posixpath.join("/m/wal", names[2]))
    with pytest.raises(CorruptionError):
        WAL.open(fs, "/m/wal", segment_size=1024)


def _five_records() -> tuple[bytes, str, int, int]:
    """A segment with entries 1..5; returns its bytes, name, and offset/length of the last record."""
    fs, wal = fresh()
    for i in range(1, 6):
        wal.append([ent(i, size=37 + i)])
    wal.sync()
    wal.close()
    path = only_segment(fs)
    data = read(fs, path)
    scan = scan_segment(data, path, last=True)
    last = scan.records[-1]
    assert last.value == ent(5, size=42)
    return data, posixpath.basename(path), last.offset, last.size


@pytest.mark.parametrize("after", ["eof", "zeros", "garbage"])
def test_truncation_at_every_byte_of_the_last_record_is_a_torn_tail(after):
    data, name, off, size = _five_records()
    rng = random.Random(5)
    for cut in range(off, off + size):
        if after == "eof":
            content = data[:cut]
        elif after == "zeros":
            content = data[:cut] + bytes(len(data) - cut)
        else:
            content = data[:cut] + bytes(rng.randrange(1, 256) for _ in range(300))
        fs = image(content, name)
        wal, rep = WAL.open(fs, "/m/wal", segment_size=4096)
        assert rep.entries == [ent(i, size=37 + i) for i in range(1, 5)], cut
        assert (rep.torn is None) == (cut == off and after != "garbage"), (cut, rep.torn)
        # The tail is cut off durably: appending again and reopening gives a clean log.
        wal.append([ent(5, term=2)])
        wal.sync()
        wal.close()
        again = fs.crash(rng)
        _, rep = WAL.open(again, "/m/wal", segment_size=4096)
        assert rep.entries[-1] == ent(5, term=2) and len(rep.entries) == 5
        assert rep.torn is None


def test_a_flipped_byte_with_valid_records_after_is_corruption_naming_file_and_offset():
    fs, wal = fresh()
    for i in range(1, 11):
        wal.append([ent(i, size=50 + i)])
    wal.sync()
    wal.close()
    path = only_segment(fs)
    data = read(fs, path)
    rec = scan_segment(data, path, last=True).records[6]  # after the metadata and hard state head
    assert rec.value.index == 5
    for pos in range(rec.offset, rec.offset + rec.size):
        bad = bytearray(data)
        bad[pos] ^= 0x55
        img = image(bytes(bad), posixpath.basename(path))
        with pytest.raises(CorruptionError) as err:
            WAL.open(img, "/m/wal", segment_size=4096)
        assert err.value.path == path and err.value.offset == rec.offset, pos
        assert str(rec.offset) in str(err.value)
        assert verify(img, "/m/wal")


def test_corruption_in_an_earlier_segment_is_never_a_tail():
    fs, wal = fresh(segment_size=1024)
    for i in range(1, 40):
        wal.append([ent(i)])
        wal.sync()
    wal.close()
    first = posixpath.join("/m/wal", fs.listdir("/m/wal")[0])
    data = read(fs, first)
    last_rec = scan_segment(data, first, last=False).records[-1]
    f = fs.open(first)
    f.pwrite(bytes([data[last_rec.offset + HDR_SIZE + 3] ^ 1]), last_rec.offset + HDR_SIZE + 3)
    with pytest.raises(CorruptionError) as err:
        WAL.open(fs, "/m/wal", segment_size=1024)
    assert err.value.path == first and err.value.offset == last_rec.offset


def test_oversize_length_is_rejected_before_allocating():
    data, name, off, size = _five_records()
    huge = struct.pack("<IHB", MAX_RECORD + 1, MAGIC, REC_ENTRY) + b"\xff\xff\xff\xff"
    # As the last thing in the log (zeros after): a tail.
    tail = data[: off + size] + huge + bytes(100)
    _, rep = WAL.open(image(tail, name), "/m/wal", segment_size=4096)
    assert len(rep.entries) == 5 and "above maximum" in (rep.torn or "")
    # In the middle, valid records after: corruption at its offset.
    middle = data[:off] + huge + data[off:]
    with pytest.raises(CorruptionError) as err:
        WAL.open(image(middle, name), "/m/wal", segment_size=4096)
    assert err.value.offset == off and "above maximum" in err.value.reason
    # Appending a record above the maximum is refused up front.
    _, wal = fresh()
    with pytest.raises(StorageError):
        wal.append([Entry(1, 1, EntryType.NORMAL, bytes(MAX_RECORD))])


def test_a_torn_sector_inside_an_unsynced_batch_is_a_tail_even_with_valid_records_after():
    """Power loss kept later sectors of a batch but not an earlier one: that is a tear, not corruption."""
    fs, wal = fresh()
    wal.append([ent(i, size=300) for i in range(1, 6)])
    wal.sync()
    wal.close()
    path = only_segment(fs)
    data = read(fs, path)
    recs = scan_segment(data, path, last=True).records
    r = next(r for r in recs if r.type == REC_ENTRY and r.offset < SECTOR < r.offset + r.size)
    end = min(2 * SECTOR, r.offset + r.size)
    bad = bytearray(data)
    bad[SECTOR:end] = bytes(end - SECTOR)  # that sector never reached the disk; later records did
    assert any(x.offset > end for x in recs)
    _, rep = WAL.open(image(bytes(bad), posixpath.basename(path)), "/m/wal", segment_size=4096)
    assert rep.entries == [ent(i, size=300) for i in range(1, r.value.index)]
    assert rep.torn == "crc mismatch"


def test_create_uses_an_empty_dir_but_refuses_a_non_empty_one():
    fs = CrashFileSystem()
    fs.makedirs("/m/wal")
    WAL.create(fs, "/m/wal", META, segment_size=4096).close()
    assert fs.listdir("/m") == ["wal"]
    fs.makedirs("/m/other")
    fs.open("/m/other/junk", create=True).close()
    with pytest.raises(StorageError):
        WAL.create(fs, "/m/other", META, segment_size=4096)
    assert fs.listdir("/m") == ["other", "wal"]  # nothing left behind


def test_open_skips_segments_wholly_below_the_snapshot_but_checks_their_identity():
    fs, wal = fresh(segment_size=1024, max_wals=100)
    for i in range(1, 201):
        wal.append([ent(i)], HardState(1, 1, i))
        wal.sync()
    wal.save_snapshot(SnapshotMeta(150, 1))
    wal.append([ent(201)])
    wal.sync()
    wal.close()
    names = fs.listdir("/m/wal")
    skipped = [n for n, nxt in itertools.pairwise(names) if parse_segment_name(nxt)[1] <= 151]  # type: ignore[index]
    assert len(skipped) >= 3
    # A damaged body in a skipped segment does not stop the member (its entries are below the snapshot) ...
    seg0 = posixpath.join("/m/wal", names[0])
    data = read(fs, seg0)
    rec = scan_segment(data, seg0, last=False).records[-1]
    f = fs.open(seg0)
    f.pwrite(bytes([data[rec.offset + HDR_SIZE + 20] ^ 0xFF]), rec.offset + HDR_SIZE + 20)
    wal, rep = WAL.open(fs, "/m/wal", segment_size=1024)
    wal.close()
    assert rep.snapshot == SnapshotMeta(150, 1)
    assert rep.entries == [ent(i) for i in range(151, 202)]
    assert rep.hard_state == HardState(1, 1, 200)
    # ... but the offline check still finds it.
    problems = verify(fs, "/m/wal")
    assert len(problems) == 1 and seg0 in problems[0]
    # A skipped segment of another member is refused.
    seg1 = posixpath.join("/m/wal", skipped[1])
    f = fs.open(seg1)
    f.pwrite(encode_metadata(WalMetadata(11, 23)), 0)
    with pytest.raises(CorruptionError) as err:
        WAL.open(fs, "/m/wal", segment_size=1024)
    assert err.value.path == seg1
