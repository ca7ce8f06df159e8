"""Open reads a segment incrementally: a 64 MiB preallocated segment costs a few reads, not 64 MiB, and
the incremental torn-tail-vs-corruption verdict is the plain rule's, at every window size."""

from __future__ import annotations

import os
import random
import struct
import zlib

import pytest

import trikv.storage.wal as walmod
from trikv.api.errors import CorruptionError
from trikv.api.records import Entry, EntryType, HardState, WalMetadata
from trikv.storage.files import SECTOR, CrashFileSystem, File, OsFileSystem
from trikv.storage.wal import HDR_SIZE, MAGIC, MAX_RECORD, RECORD_TYPES, WAL, scan_file, scan_segment

META = WalMetadata(cluster_id=5, member_id=6)
BIG = 64 << 20


def ent(i: int, size: int = 100) -> Entry:
    return Entry(1, i, EntryType.NORMAL, bytes((i * 7 + k) % 255 + 1 for k in range(size)))


class CountingFile:
    """A File that counts the bytes read through it."""

    def __init__(self, inner: File, fs: CountingFs) -> None:
        self._inner = inner
        self._fs = fs
        self.path = inner.path

    def pread(self, size: int, offset: int) -> bytes:
        data = self._inner.pread(size, offset)
        self._fs.bytes_read += len(data)
        return data

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        self._inner.pwrite(data, offset)

    def size(self) -> int:
        return self._inner.size()

    def truncate(self, size: int) -> None:
        self._inner.truncate(size)

    def preallocate(self, size: int) -> None:
        self._inner.preallocate(size)

    def sync(self) -> None:
        self._inner.sync()

    def close(self) -> None:
        self._inner.close()


class CountingFs(OsFileSystem):
    def __init__(self) -> None:
        self.bytes_read = 0

    def open(self, path: str, create: bool = False) -> File:  # type: ignore[override]
        return CountingFile(super().open(path, create), self)


def only_segment(d: str) -> str:
    (name,) = os.listdir(d)
    return os.path.join(d, name)


def test_create_and_open_of_a_64mib_segment_read_only_a_small_part(tmp_path):
    fs = CountingFs()
    d = str(tmp_path / "wal")
    wal = WAL.create(fs, d, META, segment_size=BIG)
    assert fs.bytes_read == 0  # create positions itself from what it wrote
    wal.append([ent(i) for i in range(1, 41)], HardState(1, 1, 40))
    wal.sync()
    wal.close()
    assert os.path.getsize(only_segment(d)) == BIG

    fs.bytes_read = 0
    wal, rep = WAL.open(fs, d, segment_size=BIG)
    assert 0 < fs.bytes_read < 4 << 20
    assert rep.entries == [ent(i) for i in range(1, 41)] and rep.hard_state == HardState(1, 1, 40)
    assert rep.torn is None
    wal.append([ent(41)])
    wal.sync()
    wal.close()
    _, rep = WAL.open(OsFileSystem(), d, segment_size=BIG)
    assert [e.index for e in rep.entries] == list(range(1, 42))


def test_a_torn_tail_and_far_stale_records_cost_no_full_read_and_are_gone_after_open(tmp_path):
    """A torn record followed by zeros is decided at the first zero sector; stale valid records deep in
    the preallocated area (leftovers of an unsynced batch after a zero length field) read as zeros once
    open returns, without open reading them, so they can never follow a new record."""
    d = str(tmp_path / "wal")
    wal = WAL.create(OsFileSystem(), d, META, segment_size=BIG)
    wal.append([ent(i) for i in range(1, 11)])
    wal.sync()
    wal.close()
    path = only_segment(d)
    with open(path, "rb") as fh:
        end = scan_segment(fh.read(1 << 20), path, last=True).end
    stale = walmod.encode_entry(ent(11)) + walmod.encode_entry(ent(12))
    far = 40 << 20
    with open(path, "r+b") as fh:
        fh.seek(end)
        fh.write(walmod.encode_entry(ent(11))[:30])  # half a record: torn
        fh.seek(far)
        fh.write(stale)

    fs = CountingFs()
    wal, rep = WAL.open(fs, d, segment_size=BIG)
    assert fs.bytes_read < 4 << 20
    assert rep.torn == "crc mismatch" and [e.index for e in rep.entries] == list(range(1, 11))
    wal.close()
    assert os.path.getsize(path) == BIG
    with open(path, "rb") as fh:
        fh.seek(end)
        assert fh.read(30) == bytes(30)
        fh.seek(far)
        assert fh.read(len(stale)) == bytes(len(stale))


# ---------------------------------------------------------------- the verdict, against the plain rule


def plain_valid_at(data: bytes, off: int) -> bool:
    if off + HDR_SIZE > len(data):
        return False
    length, magic, rtype, crc = struct.unpack_from("<IHBI", data, off)
    if magic != MAGIC or rtype not in RECORD_TYPES or not 0 < length <= MAX_RECORD:
        return False
    body = data[off + HDR_SIZE : off + HDR_SIZE + length]
    return len(body) == length and zlib.crc32(body, zlib.crc32(data[off : off + 7])) == crc


def plain_is_tail(data: bytes, off: int) -> bool:
    """The rule as stated in the module docstring, by brute force over every offset."""
    later = next((q for q in range(off, len(data)) if plain_valid_at(data, q)), None)
    if later is None:
        return True
    pos = off
    while pos < later:
        nxt = min(later, (pos // SECTOR + 1) * SECTOR)
        if data[pos:nxt] == bytes(nxt - pos):
            return True
        pos = nxt
    return False


def as_file(data: bytes) -> File:
    f = CrashFileSystem().open("/seg", create=True)
    f.pwrite(data, 0)
    return f


def damaged_segment(rng: random.Random) -> bytes:
    recs = [walmod.encode_metadata(META), walmod.encode_hard_state(HardState(1, 1, 0))]
    recs += [
        walmod.encode_entry(ent(i, rng.choice([0, 30, 300, 900]))) for i in range(1, rng.randrange(2, 25))
    ]
    body = bytearray(b"".join(recs))
    body += bytes(rng.choice([0, 5, 700, 3000]))
    for _ in range(rng.randrange(1, 4)):
        p = rng.randrange(len(body))
        kind = rng.randrange(4)
        if kind == 0:
            body[p] ^= 1 << rng.randrange(8)
        elif kind == 1:  # a sector that never reached the disk
            s = p // SECTOR * SECTOR
            body[s : s + SECTOR] = bytes(len(body[s : s + SECTOR]))
        elif kind == 2:  # a valid piece reappearing elsewhere (a stale record)
            q = rng.randrange(len(body))
            n = rng.randrange(1, 400)
            body[q : q + n] = body[p : p + n]
        else:
            n = rng.randrange(1, 300)
            body[p : p + n] = rng.randbytes(n)
    return bytes(body)


@pytest.mark.parametrize("chunk", [16, 100, 4096, 1 << 20])
def test_incremental_scan_gives_the_plain_rules_verdict_at_every_window_size(monkeypatch, chunk):
    monkeypatch.setattr(walmod, "CHUNK", chunk)
    rng = random.Random(chunk)
    seen = set()
    for _ in range(150):
        data = damaged_segment(rng)
        for last in (True, False):
            try:
                whole = scan_segment(data, "seg", last=last)
            except CorruptionError as exc:
                with pytest.raises(CorruptionError) as inc:
                    scan_file(as_file(data), "seg", last=last)
                assert (inc.value.path, inc.value.offset, inc.value.reason) == (
                    exc.path,
                    exc.offset,
                    exc.reason,
                )
                if last and "valid records follow" in exc.reason:
                    assert not plain_is_tail(data, exc.offset)
                    seen.add("corrupt")
                continue
            inc_scan = scan_file(as_file(data), "seg", last=last)
            assert inc_scan == whole
            if last and whole.torn is not None:
                assert plain_is_tail(data, whole.end)
                seen.add("torn")
    assert seen == {"torn", "corrupt"}  # both verdicts were exercised


def test_verify_and_open_agree_on_a_long_log_read_in_small_windows(monkeypatch, tmp_path):
    """Records straddling many window boundaries, including ones larger than a window."""
    monkeypatch.setattr(walmod, "CHUNK", 256)
    d = str(tmp_path / "wal")
    fs = OsFileSystem()
    wal = WAL.create(fs, d, META, segment_size=32 << 10)
    want = [ent(i, size=(i * 37) % 700) for i in range(1, 400)]
    for k in range(0, len(want), 50):
        wal.append(want[k : k + 50], HardState(1, 1, k))
        wal.sync()
    wal.close()
    assert walmod.verify(fs, d) == []
    _, rep = WAL.open(fs, d, segment_size=32 << 10)
    assert rep.entries == want
    assert len(os.listdir(d)) > 3
