"""Segmented write-ahead log: what Raft must have on disk before it speaks.

Layout: a directory of segments named ``%016x-%016x.wal`` (sequence, first index: the index the first
entry appended into the segment would have had, i.e. last index + 1 at the cut), each preallocated to
`segment_size`. Every segment starts with a metadata record, the hard state and the latest snapshot marker
at the moment it was cut, so any suffix of segments replays on its own.

Record framing (little endian)::

    length u32 | magic u16 | type u8 | crc u32 | body[length]

``crc = crc32(body, crc32(length|magic|type))``. Entry bodies are ``term u64 | index u64 | etype u8 |
data``, hard states ``term | vote | commit`` (u64 each); metadata and snapshot markers are codec (CBOR)
bodies. A zero length field ends a segment's log. Records above MAX_RECORD (16 MiB) are refused on append
and rejected on replay before anything is sliced. The magic lets recovery find later valid records quickly.

Torn tail vs corruption (only the last segment may have a torn tail: earlier ones were fsynced before
the next one was renamed into place). A bad record (short, bad magic/CRC, oversize) is a torn tail when
(a) no valid record follows it, or (b) the gap between it and the next valid record has a sector-sized
piece that is all zeros: a sector that never reached the disk (etcd's decoder uses the same sign), so a
power loss that kept later sectors of an unsynced batch is still a tail. Otherwise it is corruption:
CorruptionError(path, offset). Residual risk, as in etcd: a bit flip in a record whose gap happens to
hold a zero-valued sector piece is taken for a tear. Recovery makes everything after the log's end read
as zeros (truncate there, preallocate again) and fsyncs before any new write can land on top of it.

Replay: metadata, the last hard state, the latest snapshot marker, and the entries with index above it.
An entry whose index is already present replaces the suffix from there (a follower truncating its log),
also across segments and restarts; a gap between entries is corruption (append refuses to create one).

Open reads the last segment first (it holds the latest snapshot marker), then only the segments that can
hold entries after that marker; older ones get their head metadata checked but are not decoded (as etcd
starts reading at the snapshot). `verify` (trikvutl check) decodes every segment. Segments are read
incrementally (CHUNK at a time, more only for a record that needs it): up to the zero length field that
ends the log, and past a bad record only as far as the torn-tail rule needs, so opening a preallocated
64 MiB segment that holds a few KiB reads about one CHUNK.

Durability contract: `append` and `save_snapshot` only buffer; `sync` writes the buffered records with one
write per segment touched and one fsync (a cut in the middle of a batch fsyncs the old segment first), and
when it returns every record appended before it is durable. If a write or fsync fails, the WAL refuses
all further calls (StorageError): what reached the disk is unknown until a restart replays it.

Release contract: the Node calls `release_to(i)` only for an i that the page file has durably committed
as its consistent index (after `WriteTxn.commit` returned): segments wholly below i are then never needed
for replay again. Released segments are kept on disk up to `max_wals` files (for inspection and
followers' catch-up tooling), older ones are deleted.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import posixpath
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import attrs

from trikv.api import codec
from trikv.api.errors import CorruptionError, StorageError
from trikv.api.records import Entry, EntryType, HardState, SnapshotMeta, WalMetadata
from trikv.storage import faults
from trikv.storage.files import SECTOR, DirLock, File, FileSystem

MAX_RECORD = 16 << 20
MAGIC = 0x5EA7
_MAGIC_BYTES = struct.pack("<H", MAGIC)

REC_METADATA = 1
REC_ENTRY = 2
REC_HARDSTATE = 3
REC_SNAPSHOT = 4
RECORD_TYPES = {
    REC_METADATA: "metadata",
    REC_ENTRY: "entry",
    REC_HARDSTATE: "hardstate",
    REC_SNAPSHOT: "snapshot",
}

_HDR = struct.Struct("<IHBI")  # length, magic, type, crc
_HDR_PREFIX = struct.Struct("<IHB")
HDR_SIZE = _HDR.size
_ENTRY_HEAD = struct.Struct("<QQB")
_HS = struct.Struct("<QQQ")

_ENTRY_TYPES = tuple(EntryType)
assert all(t.value == i for i, t in enumerate(_ENTRY_TYPES))

_SEGMENT_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")

_crc32 = zlib.crc32
_pack_hdr = _HDR.pack
_pack_prefix = _HDR_PREFIX.pack
_pack_entry_head = _ENTRY_HEAD.pack


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    m = _SEGMENT_RE.match(name)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


# --------------------------------------------------------------------------- encoding


def _record(rtype: int, body: bytes) -> bytes:
    n = len(body)
    if n > MAX_RECORD:
        raise StorageError(f"WAL record of {n} bytes exceeds the maximum of {MAX_RECORD}")
    return _pack_hdr(n, MAGIC, rtype, _crc32(body, _crc32(_pack_prefix(n, MAGIC, rtype)))) + body


def encode_entry(e: Entry) -> bytes:
    """The hot path: one struct pack, two CRC calls, one concatenation per entry."""
    data = e.data
    n = 17 + len(data)
    if n > MAX_RECORD:
        raise StorageError(f"WAL entry {e.index} of {n} bytes exceeds the maximum of {MAX_RECORD}")
    head = _pack_entry_head(e.term, e.index, e.type)
    crc = _crc32(data, _crc32(head, _crc32(_pack_prefix(n, MAGIC, REC_ENTRY))))
    return _pack_hdr(n, MAGIC, REC_ENTRY, crc) + head + data


def encode_hard_state(hs: HardState) -> bytes:
    return _record(REC_HARDSTATE, _HS.pack(hs.term, hs.vote, hs.commit))


def encode_snapshot(meta: SnapshotMeta) -> bytes:
    return _record(REC_SNAPSHOT, codec.encode(meta))


def encode_metadata(meta: WalMetadata) -> bytes:
    return _record(REC_METADATA, codec.encode(meta))


# --------------------------------------------------------------------------- decoding


class Record(NamedTuple):
    """One decoded record and where it sits (for replay and for `trikvutl wal dump`)."""

    offset: int
    type: int
    value: Entry | HardState | SnapshotMeta | WalMetadata
    size: int


@attrs.frozen(slots=True)
class SegmentScan:
    records: list[Record]
    end: int  # where the log of this segment ends (new records go here)
    torn: str | None  # why the tail at `end` was cut off, None for a clean end


def _decode_body(
    rtype: int, body: memoryview, path: str, off: int
) -> Entry | HardState | SnapshotMeta | WalMetadata:
    try:
        if rtype == REC_ENTRY:
            term, index, etype = _ENTRY_HEAD.unpack_from(body)
            return Entry(term, index, EntryType(etype), bytes(body[17:]))
        if rtype == REC_HARDSTATE:
            return HardState(*_HS.unpack_from(body))
        value = codec.decode(body)
    except (struct.error, ValueError) as exc:  # CodecError is a ValueError
        raise CorruptionError(
            path, off, f"undecodable {RECORD_TYPES.get(rtype, rtype)} record: {exc}"
        ) from None
    expected = WalMetadata if rtype == REC_METADATA else SnapshotMeta if rtype == REC_SNAPSHOT else None
    if expected is None or not isinstance(value, expected):
        raise CorruptionError(path, off, f"record type {rtype} holds {type(value).__name__}")
    return value


CHUNK = 1 << 20  # open reads segments in pieces of this size (more only for a record that needs it)


class _Reader:
    """Positional reads of one segment through a window that moves forward: open scans a few KiB of a
    preallocated 64 MiB segment instead of reading it whole. Built on bytes, it never reads."""

    __slots__ = ("_f", "base", "buf", "size")

    def __init__(self, f: File | None, size: int, buf: bytes = b"") -> None:
        self._f = f
        self.size = size
        self.buf = buf
        self.base = 0

    def fill(self, start: int, end: int) -> None:
        """Make the window hold [start, min(end, size)): reads max(CHUNK, that span) from start if not."""
        end = min(end, self.size)
        base = self.base
        if base <= start and end <= base + len(self.buf):
            return
        assert self._f is not None
        self.buf = self._f.pread(min(max(CHUNK, end - start), self.size - start), start)
        self.base = start

    def get(self, start: int, end: int) -> bytes:
        """Bytes [start, min(end, size))."""
        self.fill(start, end)
        return self.buf[start - self.base : end - self.base]


def _valid_at(r: _Reader, off: int) -> bool:
    if off < 0 or off + HDR_SIZE > r.size:
        return False
    length, magic, rtype, crc = _HDR.unpack(r.get(off, off + HDR_SIZE))
    if magic != MAGIC or rtype not in RECORD_TYPES or not 0 < length <= MAX_RECORD:
        return False
    end = off + HDR_SIZE + length
    if end > r.size:
        return False
    return _crc32(r.get(off + HDR_SIZE, end), _crc32(_pack_prefix(length, MAGIC, rtype))) == crc


def _next_valid(r: _Reader, off: int, *, zero_gap: bool) -> int | None:
    """Offset of the first valid record starting after `off` (found by its magic), read chunk by chunk.

    With `zero_gap`, None as soon as the gap from `off` is known to hold a sector-aligned all-zero piece
    (a sector that never reached the disk) before any valid record: the bad record at `off` is then a
    torn tail whatever follows, so the rest of the segment is not read. Pieces are those of
    [off, next valid record): whole sectors, cut at `off` and at the record."""
    zpos = off  # the pieces of [off, zpos) are known to hold data

    def zero_piece_upto(limit: int) -> bool:
        """Whether a piece ending at a sector boundary <= limit is all zeros (advances zpos)."""
        nonlocal zpos
        stop = limit // SECTOR * SECTOR
        if stop <= zpos:
            return False
        data = r.get(zpos, stop)
        pos = zpos
        while pos < stop:
            nxt = (pos // SECTOR + 1) * SECTOR
            if not data[pos - zpos : nxt - zpos].strip(b"\0"):
                return True
            pos = nxt
        zpos = stop
        return False

    search = off + 4  # magic hits at p >= search; the record starts 4 bytes before its magic
    n = r.size
    while search + 2 <= n:
        hi = min(search + CHUNK, n)
        chunk = r.get(search, hi)
        p = chunk.find(_MAGIC_BYTES)
        while p != -1:
            later = search + p - 4
            if zero_gap and zero_piece_upto(later):
                return None
            if _valid_at(r, later):
                piece = max(off, later // SECTOR * SECTOR)  # the last piece, cut at the record
                if zero_gap and piece < later and not r.get(piece, later).strip(b"\0"):
                    return None
                return later
            p = chunk.find(_MAGIC_BYTES, p + 1)
        search = hi - 1  # a magic straddling `hi` is found by the next round
        if zero_gap and zero_piece_upto(search - 4):  # every candidate left starts at or after that
            return None
    return None


def scan_segment(data: bytes, path: str, *, last: bool) -> SegmentScan:
    """Decode one segment held in memory. Raises CorruptionError; a torn tail is allowed only when `last`."""
    return _scan(_Reader(None, len(data), data), path, last=last)


def scan_file(f: File, path: str, *, last: bool) -> SegmentScan:
    """`scan_segment` reading the file incrementally: up to the zero length field that ends the log, and
    past a bad record only as far as the torn-tail rule needs (for a clean last segment: one CHUNK)."""
    return _scan(_Reader(f, f.size()), path, last=last)


def _scan(r: _Reader, path: str, *, last: bool) -> SegmentScan:
    records: list[Record] = []
    n = r.size
    data = r.buf
    base = r.base
    lim = len(data)  # window end, relative to base
    view = memoryview(data)
    off = 0  # absolute
    unpack = _HDR.unpack_from
    unpack_entry = _ENTRY_HEAD.unpack_from
    crc32 = _crc32
    append = records.append
    entry_types = _ENTRY_TYPES
    while True:
        o = off - base
        if o + HDR_SIZE > lim:
            if off + HDR_SIZE > n:
                if not r.get(off, n).strip(b"\0"):
                    break
                return _bad(r, path, off, "truncated record header", last, records)
            r.fill(off, off + HDR_SIZE)
            data, base = r.buf, r.base
            lim = len(data)
            view = memoryview(data)
            o = off - base
        length, magic, rtype, crc = unpack(data, o)
        if length == 0:
            break
        if magic != MAGIC:
            return _bad(r, path, off, "bad record magic", last, records)
        if length > MAX_RECORD:
            return _bad(r, path, off, f"record length {length} above maximum", last, records)
        end = off + HDR_SIZE + length
        if end > n:
            return _bad(r, path, off, f"record of {length} bytes runs past the end of file", last, records)
        if end - base > lim:
            r.fill(off, end)
            data, base = r.buf, r.base
            lim = len(data)
            view = memoryview(data)
            o = off - base
        start = o + HDR_SIZE
        stop = start + length
        # The CRC covers the header's first 7 bytes (length, magic, type) and the body.
        if crc32(view[start:stop], crc32(view[o : o + 7])) != crc:
            return _bad(r, path, off, "crc mismatch", last, records)
        if rtype == REC_ENTRY:  # the hot path, inlined
            if length < 17:
                raise CorruptionError(path, off, f"entry record of {length} bytes")
            term, index, etype = unpack_entry(data, start)
            if etype >= len(entry_types):
                raise CorruptionError(path, off, f"unknown entry type {etype}")
            value: Entry | HardState | SnapshotMeta | WalMetadata = Entry(
                term, index, entry_types[etype], data[start + 17 : stop]
            )
        elif rtype in RECORD_TYPES:
            value = _decode_body(rtype, view[start:stop], path, off)
        else:
            raise CorruptionError(path, off, f"unknown record type {rtype}")
        append(Record(off, rtype, value, HDR_SIZE + length))
        off = end
    if not last:
        later = _next_valid(r, off, zero_gap=False)
        if later is not None:
            raise CorruptionError(path, off, f"log ends here but a valid record follows at {later}")
    return SegmentScan(records, off, None)


def _bad(r: _Reader, path: str, off: int, reason: str, last: bool, records: list[Record]) -> SegmentScan:
    """A torn tail if nothing valid follows, or if the gap up to the next valid record has an unwritten
    (all-zero) sector piece; anything else is corruption. The gap is measured to the next valid record,
    never by the bad record's own length field, which may be the corrupted part."""
    if not last:
        raise CorruptionError(path, off, reason)
    later = _next_valid(r, off, zero_gap=True)
    if later is not None:
        raise CorruptionError(path, off, f"{reason}; valid records follow at {later}")
    return SegmentScan(records, off, reason)


# --------------------------------------------------------------------------- replay


@attrs.define
class Replay:
    """What a WAL holds: identity, last hard state, latest snapshot marker, entries after it."""

    metadata: WalMetadata
    hard_state: HardState = HardState()
    snapshot: SnapshotMeta | None = None
    entries: list[Entry] = attrs.Factory(list)
    torn: str | None = None  # set when a torn tail was cut off during open


@attrs.frozen(slots=True)
class _Segment:
    seq: int
    first_index: int
    name: str


def _scan_path(fs: FileSystem, path: str, *, last: bool) -> SegmentScan:
    f = fs.open(path)
    try:
        return scan_file(f, path, last=last)
    finally:
        f.close()


def _head_metadata(fs: FileSystem, path: str) -> WalMetadata:
    """The metadata record at the head of a segment, read and checked without reading the rest."""
    f = fs.open(path)
    try:
        head = f.pread(HDR_SIZE, 0)
        if len(head) < HDR_SIZE:
            raise CorruptionError(path, 0, "segment shorter than a record header")
        length, magic, rtype, crc = _HDR.unpack_from(head)
        if magic != MAGIC or rtype != REC_METADATA or not 0 < length <= 4096:
            raise CorruptionError(path, 0, "segment does not start with a metadata record")
        body = f.pread(length, HDR_SIZE)
    finally:
        f.close()
    if len(body) != length or _crc32(body, _crc32(head[:7])) != crc:
        raise CorruptionError(path, 0, "bad metadata record")
    value = _decode_body(REC_METADATA, memoryview(body), path, 0)
    assert isinstance(value, WalMetadata)
    return value


def _list_segments(fs: FileSystem, dirpath: str) -> list[_Segment]:
    segs = []
    for name in fs.listdir(dirpath):
        parsed = parse_segment_name(name)
        if parsed is not None:
            segs.append(_Segment(parsed[0], parsed[1], name))
    segs.sort(key=lambda s: s.seq)
    for a, b in itertools.pairwise(segs):
        if b.seq != a.seq + 1:
            raise CorruptionError(posixpath.join(dirpath, b.name), 0, f"segment {a.seq + 1} is missing")
    return segs


class _Replayer:
    """Folds records into a Replay, applying suffix replacement and snapshot markers."""

    def __init__(self) -> None:
        self.metadata: WalMetadata | None = None
        self.hard_state = HardState()
        self.snapshot: SnapshotMeta | None = None
        self.entries: list[Entry] = []

    def feed(self, path: str, scan: SegmentScan) -> None:
        records = scan.records
        if not records or records[0].type != REC_METADATA:
            raise CorruptionError(path, 0, "segment does not start with a metadata record")
        entries = self.entries
        for rec in records:
            v = rec.value
            if rec.type == REC_ENTRY:
                assert isinstance(v, Entry)
                if entries:
                    first = entries[0].index
                    last = entries[-1].index
                    if v.index <= last:
                        del entries[max(0, v.index - first) :]
                    elif v.index != last + 1:
                        raise CorruptionError(path, rec.offset, f"entry {v.index} leaves a gap after {last}")
                entries.append(v)
            elif rec.type == REC_HARDSTATE:
                assert isinstance(v, HardState)
                self.hard_state = v
            elif rec.type == REC_SNAPSHOT:
                assert isinstance(v, SnapshotMeta)
                if self.snapshot is None or v.index >= self.snapshot.index:
                    self.snapshot = v
                self._drop_through(v.index)
            else:
                assert isinstance(v, WalMetadata)
                self.check_metadata(path, v, rec.offset)

    def check_metadata(self, path: str, meta: WalMetadata, offset: int = 0) -> None:
        """Every segment belongs to the member and cluster named by the first one."""
        if self.metadata is None:
            self.metadata = meta
        elif meta != self.metadata:
            raise CorruptionError(
                path, offset, f"metadata {meta} differs from the first segment's {self.metadata}"
            )

    def _drop_through(self, index: int) -> None:
        entries = self.entries
        if entries and entries[0].index <= index:
            del entries[: min(len(entries), index - entries[0].index + 1)]


# --------------------------------------------------------------------------- the WAL


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Replay allocates one object per record and no cycles; the cyclic GC would rescan them all
    repeatedly (measured: half of replay's CPU). Startup-only, and the previous state is restored."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _tmp_dir(dirpath: str) -> str:
    return dirpath.rstrip("/") + ".tmp"


class WAL:
    """A segmented, group-committed log (see the module docstring for format and contracts)."""

    def __init__(
        self,
        fs: FileSystem,
        dirpath: str,
        metadata: WalMetadata,
        lock: DirLock,
        segments: list[_Segment],
        file: File,
        offset: int,
        *,
        head_end: int,
        hard_state: HardState,
        snapshot: SnapshotMeta | None,
        last_index: int,
        segment_size: int,
        max_wals: int,
    ) -> None:
        self._fs = fs
        self.dirpath = dirpath
        self.metadata = metadata
        self._lock: DirLock | None = lock
        self._segments = segments
        self._released = 0  # leading segments released by release_to
        self._file = file
        self._off = offset  # write position in the current (last) segment
        self._head_end = head_end  # end of the segment's head records (metadata, state)
        self.segment_size = segment_size
        self.max_wals = max_wals
        # State as appended (buffered or not) ...
        self.last_index = last_index
        self.hard_state = hard_state
        self.snapshot = snapshot
        # ... and as of the last successful sync.
        self.synced_index = last_index
        self._w_hard_state = hard_state
        self._w_snapshot = snapshot
        self._w_last = last_index
        self._buf: list[bytes] = []
        self._buf_size = 0
        # (buffer position, kind, value): "E" runs (value = first index, contiguous), "H", "S".
        self._marks: list[tuple[int, str, object]] = []
        self._failed: str | None = None
        self._meta_record = encode_metadata(metadata)

    # ---------------------------------------------------------------- lifecycle

    @staticmethod
    def exists(fs: FileSystem, dirpath: str) -> bool:
        return fs.exists(dirpath) and any(parse_segment_name(n) for n in fs.listdir(dirpath))

    @classmethod
    def create(
        cls,
        fs: FileSystem,
        dirpath: str,
        metadata: WalMetadata,
        *,
        segment_size: int = 64 << 20,
        max_wals: int = 5,
    ) -> WAL:
        """A new, empty WAL. Built in `<dir>.tmp` and renamed, so a crash leaves either nothing or a WAL."""
        if cls.exists(fs, dirpath):
            raise StorageError(f"{dirpath}: a WAL already exists")
        if fs.exists(dirpath) and fs.listdir(dirpath):
            raise StorageError(f"{dirpath}: exists and is not empty")
        tmp = _tmp_dir(dirpath)
        if fs.exists(tmp):
            fs.rmtree(tmp)
        fs.makedirs(tmp)
        name = segment_name(0, 1)
        f = fs.open(posixpath.join(tmp, name), create=True)
        head = encode_metadata(metadata) + encode_hard_state(HardState())
        f.preallocate(segment_size)
        f.pwrite(head, 0)
        f.sync()
        f.close()
        fs.sync_dir(tmp)
        fs.rename(tmp, dirpath)
        fs.sync_dir(posixpath.dirname(dirpath.rstrip("/")) or ".")
        # Positioned from what was just written: no replay, so the preallocated segment is never read.
        lock = fs.lock(dirpath)
        try:
            f = fs.open(posixpath.join(dirpath, name))
        except BaseException:
            lock.release()
            raise
        return cls(
            fs,
            dirpath,
            metadata,
            lock,
            [_Segment(0, 1, name)],
            f,
            len(head),
            head_end=len(head),
            hard_state=HardState(),
            snapshot=None,
            last_index=0,
            segment_size=segment_size,
            max_wals=max_wals,
        )

    @classmethod
    def open(
        cls, fs: FileSystem, dirpath: str, *, segment_size: int = 64 << 20, max_wals: int = 5
    ) -> tuple[WAL, Replay]:
        """Lock, replay every segment, cut off a torn tail (made durable) and position for appends."""
        lock = fs.lock(dirpath)
        try:
            for name in fs.listdir(dirpath):
                if name.endswith(".wal.tmp"):
                    fs.remove(posixpath.join(dirpath, name))
            segments = _list_segments(fs, dirpath)
            if not segments:
                raise StorageError(f"{dirpath}: no WAL segments")
            rep = _Replayer()
            last_seg = segments[-1]
            last_path = posixpath.join(dirpath, last_seg.name)
            f = fs.open(last_path)
        except BaseException:
            lock.release()
            raise
        try:
            with _no_gc():
                last_scan = scan_file(f, last_path, last=True)
                # The last segment holds the latest snapshot marker (its head carries a copy). Segments
                # whose successor starts at or below marker + 1 hold only entries replay would drop:
                # check their identity, skip their records (etcd reads from the snapshot on, too).
                snap_index = max(
                    (r.value.index for r in last_scan.records if isinstance(r.value, SnapshotMeta)), default=0
                )
                start = 0
                while start < len(segments) - 1 and segments[start + 1].first_index <= snap_index + 1:
                    start += 1
                for seg in segments[:start]:
                    path = posixpath.join(dirpath, seg.name)
                    rep.check_metadata(path, _head_metadata(fs, path))
                for seg in segments[start:-1]:
                    path = posixpath.join(dirpath, seg.name)
                    rep.feed(path, _scan_path(fs, path, last=False))
                rep.feed(last_path, last_scan)
            assert rep.metadata is not None
            if rep.snapshot is not None:
                rep._drop_through(rep.snapshot.index)
            end = last_scan.end
            size = f.size()
            if size > end:
                # What lies past the log's end (a torn tail, leftovers of an unsynced batch, or just the
                # preallocated zeros) must read as zeros, durably, before a new record lands on it: a
                # stale record there could otherwise replay as if it followed the new ones. Cutting the
                # file at the end and growing it back costs one fsync instead of reading it all.
                f.truncate(end)
                f.preallocate(segment_size)
                f.sync()
            elif size < segment_size:
                f.preallocate(segment_size)
            head_end = 0
            for rec in last_scan.records:
                if rec.type == REC_ENTRY:
                    break
                head_end = rec.offset + rec.size
            if rep.entries:
                last_index = rep.entries[-1].index
            else:
                last_index = max(rep.snapshot.index if rep.snapshot else 0, last_seg.first_index - 1)
            wal = cls(
                fs,
                dirpath,
                rep.metadata,
                lock,
                segments,
                f,
                end,
                head_end=head_end,
                hard_state=rep.hard_state,
                snapshot=rep.snapshot,
                last_index=last_index,
                segment_size=segment_size,
                max_wals=max_wals,
            )
        except BaseException:
            f.close()
            lock.release()
            raise
        replay = Replay(rep.metadata, rep.hard_state, rep.snapshot, rep.entries, last_scan.torn)
        return wal, replay

    def close(self) -> None:
        """Release the file and the lock. Records appended since the last sync are discarded."""
        self._file.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._failed = "closed"

    # ---------------------------------------------------------------- appending

    def _check(self) -> None:
        if self._failed is not None:
            raise StorageError(f"{self.dirpath}: WAL unusable ({self._failed})")

    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        """Buffer entries (an index already present replaces the suffix from there) and a hard state.

        All or nothing: a gap or an oversize entry raises StorageError and buffers none of the call."""
        self._check()
        if entries:
            first = entries[0].index
            if first > self.last_index + 1:
                raise StorageError(f"append of entry {first} leaves a gap after {self.last_index}")
            if first < 1:
                raise StorageError(f"entry index {first} < 1")
            expect = first
            for e in entries:
                if e.index != expect:
                    raise StorageError(f"entries not contiguous: {e.index} after {expect - 1}")
                expect += 1
            recs = [encode_entry(e) for e in entries]
            self._marks.append((len(self._buf), "E", first))
            self._buf += recs
            self._buf_size += sum(map(len, recs))
            self.last_index = expect - 1
        if hard_state is not None:
            self._marks.append((len(self._buf), "H", hard_state))
            rec = encode_hard_state(hard_state)
            self._buf.append(rec)
            self._buf_size += len(rec)
            self.hard_state = hard_state

    def save_snapshot(self, meta: SnapshotMeta) -> None:
        """Buffer a snapshot marker: replay drops entries up to meta.index and starts after it."""
        self._check()
        self._marks.append((len(self._buf), "S", meta))
        rec = encode_snapshot(meta)
        self._buf.append(rec)
        self._buf_size += len(rec)
        self.snapshot = meta
        if meta.index > self.last_index:
            self.last_index = meta.index

    def _fsync(self, f: File) -> None:
        """The one place data reaches the platter (tests replace it to prove they would notice)."""
        f.sync()

    def sync(self) -> None:
        """Write everything buffered and make it durable with one fsync (plus one per segment cut)."""
        self._check()
        buf = self._buf
        if not buf:
            return
        marks = self._marks
        size = self._buf_size
        if faults.ACTIVE is not None:
            faults.ACTIVE.point("wal.before_fsync")
        self._buf, self._buf_size, self._marks = [], 0, []
        try:
            if self._off + size <= self.segment_size:
                self._file.pwrite(b"".join(buf), self._off)
                self._off += size
                self._advance_state(marks, len(buf))
            else:
                self._write_with_cuts(buf, marks)
            self._fsync(self._file)
        except BaseException as exc:
            self._failed = f"sync failed: {exc!r}"
            raise
        self.synced_index = self.last_index
        if faults.ACTIVE is not None:
            faults.ACTIVE.point("wal.after_fsync")

    def _advance_state(self, marks: list[tuple[int, str, object]], upto: int, start: int = 0) -> None:
        """Fold the state changes of buffered records [start, upto) into what the disk now holds."""
        for i, (pos, kind, value) in enumerate(marks):
            if pos >= upto:
                break
            if kind == "E":
                end = marks[i + 1][0] if i + 1 < len(marks) else upto
                end = min(end, upto)
                if end > max(pos, start):
                    assert isinstance(value, int)
                    self._w_last = value + (end - pos) - 1
            elif pos >= start:
                if kind == "H":
                    assert isinstance(value, HardState)
                    self._w_hard_state = value
                else:
                    assert isinstance(value, SnapshotMeta)
                    self._w_snapshot = value
                    self._w_last = max(self._w_last, value.index)

    def _write_with_cuts(self, buf: list[bytes], marks: list[tuple[int, str, object]]) -> None:
        pos = 0
        n = len(buf)
        while pos < n:
            chunk_end = pos
            size = 0
            room = self.segment_size - self._off
            while chunk_end < n and size + len(buf[chunk_end]) <= room:
                size += len(buf[chunk_end])
                chunk_end += 1
            if chunk_end == pos and self._off <= self._head_end:
                # A record bigger than a whole segment: it gets an (oversized) segment of its own.
                size = len(buf[pos])
                chunk_end = pos + 1
            if chunk_end > pos:
                self._file.pwrite(b"".join(buf[pos:chunk_end]), self._off)
                self._off += size
                self._advance_state(marks, chunk_end, pos)
                pos = chunk_end
            if pos < n:
                self._cut()

    def _cut(self) -> None:
        """Seal the current segment (fsync) and switch to a new one made durable before it is used."""
        self._fsync(self._file)
        cur = self._segments[-1]
        seg = _Segment(cur.seq + 1, self._w_last + 1, segment_name(cur.seq + 1, self._w_last + 1))
        path = posixpath.join(self.dirpath, seg.name)
        tmp = path + ".tmp"
        f = self._fs.open(tmp, create=True)
        try:
            head = self._meta_record + encode_hard_state(self._w_hard_state)
            if self._w_snapshot is not None:
                head += encode_snapshot(self._w_snapshot)
            f.truncate(0)
            f.preallocate(self.segment_size)
            f.pwrite(head, 0)
            self._fsync(f)
            self._fs.rename(tmp, path)
            self._fs.sync_dir(self.dirpath)
            f.path = path
        except BaseException:
            f.close()
            raise
        self._file.close()
        self._file = f
        self._segments.append(seg)
        self._off = self._head_end = len(head)

    # ---------------------------------------------------------------- release

    def release_to(self, index: int) -> None:
        """Segments wholly below `index` may go: keep at most `max_wals` released files, delete older ones.

        Contract: only call it for an index the page file has durably committed (its consistent index);
        replay then never needs the entries below it.
        """
        self._check()
        segs = self._segments
        while self._released < len(segs) - 1 and segs[self._released + 1].first_index <= index:
            self._released += 1
        while self._released > self.max_wals:
            seg = segs.pop(0)
            self._released -= 1
            self._fs.remove(posixpath.join(self.dirpath, seg.name))
            self._fs.sync_dir(self.dirpath)  # one at a time: a crash never leaves a gap in the sequence

    # ---------------------------------------------------------------- inspection

    @property
    def segment_names(self) -> list[str]:
        return [s.name for s in self._segments]

    def segment_for(self, index: int) -> str:
        """Path of the segment an entry with this index was appended into (by name, no scanning)."""
        chosen = self._segments[0]
        for seg in self._segments:
            if seg.first_index <= index:
                chosen = seg
        return posixpath.join(self.dirpath, chosen.name)


def verify(fs: FileSystem, dirpath: str) -> list[str]:
    """Read-only check of a WAL directory (no lock, no repair): one line per problem, [] when healthy."""
    try:
        segments = _list_segments(fs, dirpath)
    except CorruptionError as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"{dirpath}: {exc}"]
    if not segments:
        return [f"{dirpath}: no WAL segments"]
    rep = _Replayer()
    for i, seg in enumerate(segments):
        path = posixpath.join(dirpath, seg.name)
        try:
            rep.feed(path, _scan_path(fs, path, last=i == len(segments) - 1))
        except CorruptionError as exc:
            return [str(exc)]
    return []


# --------------------------------------------------------------------------- benchmark hooks


def bench_wal(
    fs: FileSystem, dirpath: str, *, batch: int, record_size: int = 256, records: int = 20_000
) -> float:
    """Records/s through append + sync with `batch` entries per sync (fresh WAL in `dirpath`).

    Entries are built before the clock starts (Raft builds them in the Node); the time is the WAL's:
    encode, one write, one fsync per batch. The ceiling is batch x the disk's fsync/s (`bench_fsync`)."""
    import time

    wal = WAL.create(fs, dirpath, WalMetadata(1, 1))
    try:
        data = bytes(record_size)
        rounds = max(1, records // batch)
        batches = [
            [Entry(1, i, EntryType.NORMAL, data) for i in range(r * batch + 1, (r + 1) * batch + 1)]
            for r in range(rounds)
        ]
        t0 = time.perf_counter()
        for ents in batches:
            wal.append(ents, HardState(1, 1, ents[0].index))
            wal.sync()
        elapsed = time.perf_counter() - t0
    finally:
        wal.close()
    return rounds * batch / elapsed


def bench_fsync(fs: FileSystem, path: str, *, count: int = 500) -> float:
    """Raw fsyncs/s of the disk under `path`: one small overwrite + fsync each."""
    import time

    f = fs.open(path, create=True)
    try:
        f.preallocate(1 << 20)
        f.sync()
        t0 = time.perf_counter()
        for i in range(count):
            f.pwrite(b"x" * 256, (i * 256) % (1 << 20))
            f.sync()
        return count / (time.perf_counter() - t0)
    finally:
        f.close()
