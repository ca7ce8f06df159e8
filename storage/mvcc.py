"""etcd's MVCC key space on the page file: revisions, generations, history reads, compaction.

Layout in the page file:
  bucket "key":  page key = main(8) sub(4) kind(1) create(8) version(8) user-key  ->  encoded KeyValue
                 (kind b"p" put, b"t" tombstone with an empty value). The index-relevant fields live in the
                 page key so a restart rebuilds the key index without decoding a single value.
  bucket "mvcc": our own counters (current revision, consistent index/term, scheduled/finished compaction).
  bucket "meta": the node's records (conf state, members...), written through ApplyBatch.meta_put.

Revisions follow etcd: an empty store is at revision 1 (FIRST_REVISION), so the first write gets
revision 2. Every write request (or txn) that changes something takes the next main revision; its writes
take sub-revisions 0, 1, ... Read-only txns and deletes that match nothing keep the revision. A compact
revision of 0 means "never compacted" (etcd's -1): compacting at 1, even on an empty store, is allowed.

Durability: an ApplyBatch is ONE page-file write transaction; its effects, the consistent index and the
scheduled compaction commit together. The key index is updated as requests apply and rolled back (by
truncation, everything in a batch is an append) if the batch does not commit.

Compaction: `compact` persists the scheduled revision at once and refuses older reads from then on; the key
index drops that history at the next write()/compact_step() (invisible to readers: what a read at or above
the compact revision sees is unchanged); compact_step() deletes the dropped revisions from the page file in
small transactions, and an interrupted compaction is finished when the store opens.
"""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable, Iterator
from itertools import islice
from types import TracebackType
from typing import Any, Protocol

from sortedcontainers import SortedList

from trikv.api import codec
from trikv.api.checks import check_request, key_span
from trikv.api.errors import CompactedError, FutureRevError, KeyNotFoundError
from trikv.api.rpc import (
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    ResponseHeader,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from trikv.api.watch import Event, EventType
from trikv.storage.keyindex import Generation, KeyIndex, bound, main_of, pack

KEY_BUCKET = b"key"
MVCC_BUCKET = b"mvcc"
META_BUCKET = b"meta"
RESERVED_BUCKETS = frozenset({KEY_BUCKET, MVCC_BUCKET})

_PUT = 0x70  # b"p"
_TOMB = 0x74  # b"t"
_HDR = struct.Struct(">QIBQQ")
_HDR_SIZE = _HDR.size
_U64 = struct.Struct(">Q")

VALUE_CACHE_ENTRIES = 4096  # decoded values kept by KVStore._load (the hot keys' reads skip tree walk + decode)
VALUE_CACHE_MAX_BYTES = 1024  # larger encoded values are not kept (bounds the cache to a few MB)

FIRST_REVISION = 1  # etcd's store starts here (kvstore.go: currentRev = 1); revision 0 never holds data

_CURRENT_REV = b"current_revision"
_CONSISTENT_INDEX = b"consistent_index"
_CONSISTENT_TERM = b"consistent_term"
_SCHEDULED_COMPACT = b"scheduled_compact_revision"
_FINISHED_COMPACT = b"finished_compact_revision"


class _Reader(Protocol):
    def get(self, bucket: bytes, key: bytes) -> bytes | None: ...
    def range(
        self, bucket: bytes, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]: ...
    def buckets(self) -> list[bytes]: ...
    def close(self) -> None: ...


class _Writer(_Reader, Protocol):
    def create_bucket(self, name: bytes) -> None: ...
    def put(self, bucket: bytes, key: bytes, value: bytes) -> None: ...
    def delete(self, bucket: bytes, key: bytes) -> bool: ...
    def commit(self) -> None: ...
    def prepare(self) -> Callable[[], None]: ...
    def rollback(self) -> None: ...


class PageFileLike(Protocol):
    """What the store needs of storage.pagefile.PageFile (tests also run it on an in-memory twin)."""

    def read(self) -> Any: ...
    def write(self) -> Any: ...
    def close(self) -> None: ...


def _page_key(rev: int, kind: int, create: int, version: int, key: bytes) -> bytes:
    return _HDR.pack(rev >> 32, rev & 0xFFFFFFFF, kind, create, version) + key


def _u64(data: bytes | None) -> int:
    return 0 if data is None else int(_U64.unpack(data)[0])


def _check_static(req: Any) -> None:
    """etcd's static checks again at apply (the handlers ran them before proposing): defense in depth.

    No txn-ops bound and no size limit here: those are member flags, and an entry must apply alike on
    every member.
    """
    check_request(req, max_txn_ops=None)


def _cmp(a: int | bytes, b: int | bytes) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


_SORT_FIELD = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


class KVStore:
    """The MVCC store over one page file. Not thread-safe (see docs/ARCHITECTURE.md threading contract)."""

    def __init__(self, pagefile: PageFileLike) -> None:
        self._pf = pagefile
        self._index: dict[bytes, KeyIndex] = {}
        self._keys: SortedList = SortedList()
        self.current_revision = FIRST_REVISION
        self.compact_revision = 0  # scheduled: reads below it fail from the moment it is applied
        self.finished_compact_revision = 0
        self.consistent_index = 0
        self.consistent_term = 0
        self._index_compacted_to = 0
        self._compact_cursor = b""
        self._batch: ApplyBatch | None = None
        # Decoded values of recent reads by page key: a page key names one immutable value (its revision is
        # in it), so an entry never goes stale; a rolled-back batch's are dropped (its revisions are reused).
        self._values: dict[bytes, KeyValue] = {}
        # The watch hub sets this while a watcher asks for prev_kv: each write event then carries its
        # previous value (read once, at apply, instead of once per watcher later).
        self.want_prev = False
        self._open()

    # ----------------------------------------------------------------------------------- open / rebuild
    def _open(self) -> None:
        with self._pf.read() as rx:
            have = set(rx.buckets())
        if not {KEY_BUCKET, MVCC_BUCKET, META_BUCKET} <= have:
            with self._pf.write() as tx:
                for b in (KEY_BUCKET, MVCC_BUCKET, META_BUCKET):
                    tx.create_bucket(b)
                tx.commit()
        with self._pf.read() as rx:
            self.current_revision = _u64(rx.get(MVCC_BUCKET, _CURRENT_REV))
            self.consistent_index = _u64(rx.get(MVCC_BUCKET, _CONSISTENT_INDEX))
            self.consistent_term = _u64(rx.get(MVCC_BUCKET, _CONSISTENT_TERM))
            self.compact_revision = _u64(rx.get(MVCC_BUCKET, _SCHEDULED_COMPACT))
            self.finished_compact_revision = _u64(rx.get(MVCC_BUCKET, _FINISHED_COMPACT))
            self._rebuild(rx)
        self._index_compacted_to = self.finished_compact_revision
        if self.compact_revision > self.finished_compact_revision:
            while not self.compact_step(10_000):
                pass

    def _rebuild(self, rx: _Reader) -> None:
        """One pass over the key bucket in revision order; only page keys are parsed, never values.

        The cyclic GC is paused meanwhile: a million new containers would otherwise trigger collections
        that rescan every object built so far (measured: ~8x slower).
        """
        index: dict[bytes, KeyIndex] = {}
        get = index.get
        unpack = _HDR.unpack_from
        hs = _HDR_SIZE
        top = 0
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for pk, _ in rx.range(KEY_BUCKET):
                main, sub, kind, create, version = unpack(pk)
                key = pk[hs:]
                rev = (main << 32) | sub
                top = main
                ki = get(key)
                if ki is None:
                    if kind == _PUT:
                        index[key] = KeyIndex([Generation(create, version, [rev])])
                        continue
                    ki = index[key] = KeyIndex()
                if kind == _PUT:
                    g = ki.gens[-1]
                    if not g.revs:
                        g.created = create
                    g.revs.append(rev)
                    g.ver = version
                else:
                    ki.tombstone(rev)
            self._index = index
            self._keys = SortedList(index)
        finally:
            if gc_was:
                gc.enable()
        # The persisted counter wins over the newest page key: compaction may have deleted every key (the
        # tombstones go too), and a store that never wrote anything is still at etcd's revision 1.
        self.current_revision = max(self.current_revision, top, self.compact_revision, FIRST_REVISION)

    # ----------------------------------------------------------------------------------- reads
    def range(self, req: RangeRequest) -> RangeResponse:
        """Serve a range from the committed state."""
        _check_static(req)
        rx = self._pf.read()
        try:
            return self._range(rx, self.current_revision, self.compact_revision, req)
        finally:
            rx.close()

    def history(
        self, lo: int, hi: int, key: bytes, range_end: bytes, limit: int, prev_kv: bool
    ) -> tuple[list[Event], int]:
        """Events of revisions lo..hi on a key span from the committed state (see `_history`)."""
        rx = self._pf.read()
        try:
            return self._history(rx, lo, hi, key, range_end, limit, prev_kv)
        finally:
            rx.close()

    def _history(
        self, rx: _Reader, lo: int, hi: int, key: bytes, range_end: bytes, limit: int, prev_kv: bool
    ) -> tuple[list[Event], int]:
        """(events, last revision read) of revisions lo..hi on the span, in revision then apply order.

        The key bucket is ordered by revision, so this is one scan. It stops after `limit` events but only
        at a revision boundary (all events of a revision or none: watch atomicity); the caller checks that
        `lo` is not compacted. prev_kv is the key's value at mod_revision - 1, when history still has it.
        """
        if hi < lo:
            return [], hi
        start, end, single = key_span(key, range_end)
        out: list[Event] = []
        last = lo - 1
        unpack = _HDR.unpack_from
        for pk, raw in rx.range(KEY_BUCKET, _U64.pack(lo), _U64.pack(hi + 1)):
            main, _sub, kind, _create, _version = unpack(pk)
            if main != last:
                if len(out) >= limit:
                    return out, last
                last = main
            k = pk[_HDR_SIZE:]
            if single:
                if k != start:
                    continue
            elif k < start or (end is not None and k >= end):
                continue
            prev = None
            if prev_kv:
                ki = self._index.get(k)
                hit = ki.get(bound(main - 1)) if ki is not None else None
                if hit is not None:
                    prev = self._load(rx, k, *hit)
            if kind == _PUT:
                out.append(Event(EventType.PUT, codec.decode(raw), prev))
            else:
                out.append(Event(EventType.DELETE, KeyValue(k, 0, main, 0), prev))
        return out, hi

    def meta_get(self, key: bytes) -> bytes | None:
        with self._pf.read() as rx:
            value: bytes | None = rx.get(META_BUCKET, key)
            return value

    def _visible(
        self, start: bytes, end: bytes | None, single: bool, upto: int
    ) -> list[tuple[bytes, int, int, int]]:
        """[(key, packed mod rev, create main, version)] of keys live below packed bound `upto`, key order."""
        out = []
        if single:
            ki = self._index.get(start)
            if ki is not None:
                hit = ki.get(upto)
                if hit is not None:
                    out.append((start, *hit))
            return out
        if end is not None and end <= start:
            return out
        index = self._index
        for key in self._keys.irange(start, end, inclusive=(True, False)):
            hit = index[key].get(upto)
            if hit is not None:
                out.append((key, *hit))
        return out

    def _load(self, rx: _Reader, key: bytes, rev: int, create: int, version: int) -> KeyValue:
        pk = _page_key(rev, _PUT, create, version, key)
        kv: KeyValue | None = self._values.get(pk)
        if kv is not None:
            return kv
        raw = rx.get(KEY_BUCKET, pk)
        if raw is None:  # the index and the page file disagree: never expected
            raise KeyError(f"mvcc: revision {main_of(rev)} of {key!r} missing from the page file")
        kv = codec.decode(raw)
        if len(raw) <= VALUE_CACHE_MAX_BYTES:
            values = self._values
            if len(values) >= VALUE_CACHE_ENTRIES:
                for old in list(islice(values, VALUE_CACHE_ENTRIES // 4)):
                    del values[old]
            values[pk] = kv
        return kv

    def _range(self, rx: _Reader, current: int, compacted: int, req: RangeRequest) -> RangeResponse:
        rev = req.revision
        if rev <= 0:
            rev = current
        elif rev > current:
            raise FutureRevError()
        elif rev < compacted:
            raise CompactedError()
        header = ResponseHeader(revision=current)
        start, end, single = key_span(req.key, req.range_end)
        hits = self._visible(start, end, single, bound(rev))
        count = len(hits)
        if req.count_only:
            return RangeResponse(header=header, count=count)
        if req.min_mod_revision or req.max_mod_revision or req.min_create_revision or req.max_create_revision:
            lo_m, hi_m = req.min_mod_revision, req.max_mod_revision
            lo_c, hi_c = req.min_create_revision, req.max_create_revision
            hits = [
                h
                for h in hits
                if not (hi_m and main_of(h[1]) > hi_m)
                and not (lo_m and main_of(h[1]) < lo_m)
                and not (hi_c and h[2] > hi_c)
                and not (lo_c and h[2] < lo_c)
            ]
        order, target = req.sort_order, req.sort_target
        if target != SortTarget.KEY and order == SortOrder.NONE:
            order = SortOrder.ASCEND  # etcd: a non-key target sorts ascending by default
        limit = req.limit
        kvs: list[KeyValue]
        if order != SortOrder.NONE and target == SortTarget.VALUE:
            kvs = [self._load(rx, k, r, c, v) for k, r, c, v in hits]
            kvs.sort(key=_SORT_FIELD[target], reverse=order == SortOrder.DESCEND)
            more = 0 < limit < len(kvs)
            if more:
                del kvs[limit:]
        else:
            if order != SortOrder.NONE and not (target == SortTarget.KEY and order == SortOrder.ASCEND):
                pos = {SortTarget.KEY: 0, SortTarget.VERSION: 3, SortTarget.CREATE: 2, SortTarget.MOD: 1}[
                    target
                ]
                hits.sort(key=lambda h: h[pos], reverse=order == SortOrder.DESCEND)
            more = 0 < limit < len(hits)
            if more:
                del hits[limit:]
            kvs = [self._load(rx, k, r, c, v) for k, r, c, v in hits]
        if req.keys_only:
            kvs = [
                KeyValue(kv.key, kv.create_revision, kv.mod_revision, kv.version, b"", kv.lease) for kv in kvs
            ]
        return RangeResponse(header=header, kvs=kvs, more=more, count=count)

    # ----------------------------------------------------------------------------------- writes
    def write(self) -> ApplyBatch:
        """Begin the one write batch (one page-file transaction); use as a context manager."""
        if self._batch is not None:
            raise RuntimeError("mvcc: a write batch is already open")
        self._settle_index_compaction()
        batch = ApplyBatch(self, self._pf.write())
        self._batch = batch
        return batch

    def _settle_index_compaction(self) -> None:
        if self._index_compacted_to >= self.compact_revision:
            return
        upto = bound(self.compact_revision)
        gone = [key for key, ki in self._index.items() if ki.compact(upto)]
        for key in gone:
            del self._index[key]
            self._keys.remove(key)
        self._index_compacted_to = self.compact_revision
        self._compact_cursor = b""

    def compact_step(self, limit: int = 1000) -> bool:
        """Delete up to `limit` dropped revisions in one small write txn. True when compaction is finished."""
        if self._batch is not None:
            raise RuntimeError("mvcc: compact_step while a write batch is open")
        if self.finished_compact_revision >= self.compact_revision:
            return True
        self._settle_index_compaction()
        target = self.compact_revision
        end = _U64.pack(target + 1)
        index = self._index
        with self._pf.write() as tx:
            scanned = []
            for pk, _ in tx.range(KEY_BUCKET, self._compact_cursor, end):
                scanned.append(pk)
                if len(scanned) >= limit:
                    break
            for pk in scanned:
                main, sub = _HDR.unpack_from(pk)[:2]
                ki = index.get(pk[_HDR_SIZE:])
                if ki is None or not ki.has((main << 32) | sub):
                    tx.delete(KEY_BUCKET, pk)
            done = len(scanned) < limit
            if done:
                tx.put(MVCC_BUCKET, _FINISHED_COMPACT, _U64.pack(target))
            tx.commit()
        if done:
            self.finished_compact_revision = target
            self._compact_cursor = b""
        else:
            self._compact_cursor = scanned[-1] + b"\0"
        return done

    def close(self) -> None:
        if self._batch is not None:
            self._batch.rollback()
        self._index = {}
        self._keys = SortedList()


class ApplyBatch:
    """Many requests in one page-file write transaction; reads in it see its writes.

    Every request is validated against the state before it mutates anything, so a request that raises
    (a typed EtcdError) leaves no trace and the batch stays usable.
    """

    def __init__(self, store: KVStore, tx: _Writer) -> None:
        self._s = store
        self._tx = tx
        self.revision = store.current_revision
        self._compact_rev = store.compact_revision
        self._ci: tuple[int, int] | None = None
        self._undo: dict[bytes, tuple[int, int, int, int] | None] = {}
        self._done = False
        # per-request state
        self._main = 0
        self._sub = 0
        # every put / delete applied in this batch, in apply order, until the watch hub takes them
        self.events: list[Event] = []

    def __enter__(self) -> ApplyBatch:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.rollback()

    # ----------------------------------------------------------------------------------- requests
    def range(self, req: RangeRequest) -> RangeResponse:
        _check_static(req)
        return self._s._range(self._tx, self.revision, self._compact_rev, req)

    def history(
        self, lo: int, hi: int, key: bytes, range_end: bytes, limit: int, prev_kv: bool
    ) -> tuple[list[Event], int]:
        """KVStore.history through this batch (it sees the batch's writes)."""
        return self._s._history(self._tx, lo, hi, key, range_end, limit, prev_kv)

    @property
    def compact_revision(self) -> int:
        return self._compact_rev

    def reader(self) -> _Reader:
        """This batch's transaction as a reader: it sees every write applied so far (HashKV reads it)."""
        return self._tx

    def take_events(self) -> list[Event]:
        """The events applied since the last call (the watch hub's feed)."""
        events, self.events = self.events, []
        return events

    def put(self, req: PutRequest) -> PutResponse:
        _check_static(req)
        prev = self._current_kv(req.key) if (req.prev_kv or req.ignore_value or req.ignore_lease) else None
        if prev is None and (req.ignore_value or req.ignore_lease):
            raise KeyNotFoundError()
        self._begin()
        self._do_put(req, prev)
        self.revision = self._main
        return PutResponse(header=self._header(), prev_kv=prev if req.prev_kv else None)

    def delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        _check_static(req)
        self._begin()
        resp = self._do_delete(req)
        if self._sub:
            self.revision = self._main
        return DeleteRangeResponse(header=self._header(), deleted=resp[0], prev_kvs=resp[1])

    def txn(self, req: TxnRequest) -> TxnResponse:
        _check_static(req)
        path = self._path(req)  # compares see the state before the txn, as in etcd
        self._check_dynamic(req, path)
        self._begin()
        resp = self._do_txn(req, path)
        if self._sub:
            self.revision = self._main
        return _with_header(resp, self._header())

    def compact(self, req: CompactionRequest) -> CompactionResponse:
        rev = req.revision
        if rev <= self._compact_rev:
            raise CompactedError()
        if rev > self.revision:
            raise FutureRevError()
        self._compact_rev = rev
        self._tx.put(MVCC_BUCKET, _SCHEDULED_COMPACT, _U64.pack(rev))
        return CompactionResponse(header=self._header())

    def set_consistent_index(self, index: int, term: int) -> None:
        """Recorded here, written once at commit (the batch is atomic: per entry it was two tree puts)."""
        self._ci = (index, term)

    def meta_put(self, key: bytes, value: bytes) -> None:
        self._tx.put(META_BUCKET, key, value)

    def meta_get(self, key: bytes) -> bytes | None:
        return self._tx.get(META_BUCKET, key)

    # raw buckets for the node's other state (members, leases, alarms); never the MVCC ones
    def _raw(self, bucket: bytes) -> bytes:
        if bucket in RESERVED_BUCKETS:
            raise ValueError(f"mvcc: bucket {bucket!r} is reserved")
        return bucket

    def bucket_put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        self._tx.create_bucket(self._raw(bucket))
        self._tx.put(bucket, key, value)

    def bucket_get(self, bucket: bytes, key: bytes) -> bytes | None:
        return self._tx.get(self._raw(bucket), key)

    def bucket_delete(self, bucket: bytes, key: bytes) -> bool:
        self._tx.create_bucket(self._raw(bucket))  # deleting from a missing bucket is not an error here
        return self._tx.delete(bucket, key)

    def bucket_range(
        self, bucket: bytes, start: bytes = b"", end: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        return list(self._tx.range(self._raw(bucket), start, end))

    # ----------------------------------------------------------------------------------- end
    def commit(self) -> None:
        """Write and sync the transaction; only then does the store's committed view move."""
        self.prepare_commit()()

    def prepare_commit(self) -> Callable[[], None]:
        """The first step of a commit (CPU only, see PageFile's WriteTxn.prepare): from its return the store's
        reads (`KVStore.range`, `history`) see this batch, whole, while the returned step writes and fsyncs
        it, possibly in a worker thread. No batch can open before that step has returned."""
        if self._done:
            raise RuntimeError("mvcc: batch already finished")
        s = self._s
        if self.revision != s.current_revision:
            self._tx.put(MVCC_BUCKET, _CURRENT_REV, _U64.pack(self.revision))
        if self._ci is not None:
            self._tx.put(MVCC_BUCKET, _CONSISTENT_INDEX, _U64.pack(self._ci[0]))
            self._tx.put(MVCC_BUCKET, _CONSISTENT_TERM, _U64.pack(self._ci[1]))
        try:
            finish = self._tx.prepare()
        except BaseException:
            self.rollback()
            raise
        self._done = True
        s._batch = None
        s.current_revision = self.revision
        if self._ci is not None:
            s.consistent_index, s.consistent_term = self._ci
        if self._compact_rev != s.compact_revision:
            s.compact_revision = self._compact_rev
            s._compact_cursor = b""
        return finish

    def rollback(self) -> None:
        if self._done:
            return
        self._done = True
        s = self._s
        s._batch = None
        s._values.clear()
        self.events = []
        try:
            self._tx.rollback()
        finally:
            for key, mark in self._undo.items():
                if mark is None:
                    del s._index[key]
                    s._keys.remove(key)
                else:
                    s._index[key].undo(mark)
            self._undo.clear()

    # ----------------------------------------------------------------------------------- internals
    def _header(self) -> ResponseHeader:
        return ResponseHeader(revision=self.revision)

    def _begin(self) -> None:
        self._main = self.revision + 1
        self._sub = 0

    def _view(self) -> int:
        """Packed bound of what a read inside the current request sees (its own writes included)."""
        return bound(self._main if self._sub else self.revision)

    def _current_kv(self, key: bytes) -> KeyValue | None:
        ki = self._s._index.get(key)
        hit = ki.get(bound(self.revision)) if ki is not None else None
        if hit is None:
            return None
        return self._s._load(self._tx, key, *hit)

    def _touch(self, key: bytes) -> KeyIndex:
        s = self._s
        ki = s._index.get(key)
        if ki is None:
            ki = s._index[key] = KeyIndex()
            s._keys.add(key)
            if key not in self._undo:
                self._undo[key] = None
        elif key not in self._undo:
            self._undo[key] = ki.mark()
        return ki

    def _do_put(self, req: PutRequest, prev: KeyValue | None) -> None:
        key = req.key
        ki = self._touch(key)
        cur = ki.latest()
        if cur is not None and prev is None and (req.ignore_value or req.ignore_lease):
            prev = self._s._load(self._tx, key, *cur)
        value = prev.value if (req.ignore_value and prev is not None) else req.value
        lease = prev.lease if (req.ignore_lease and prev is not None) else req.lease
        create = cur[1] if cur is not None else self._main
        version = cur[2] + 1 if cur is not None else 1
        rev = pack(self._main, self._sub)
        self._sub += 1
        kv = KeyValue(key, create, self._main, version, value, lease)
        self._tx.put(KEY_BUCKET, _page_key(rev, _PUT, create, version, key), codec.encode(kv))
        if prev is None and cur is not None and self._s.want_prev:
            prev = self._s._load(self._tx, key, *cur)
        self.events.append(Event(EventType.PUT, kv, prev))
        ki.put(rev, create, version)

    def _do_delete(self, req: DeleteRangeRequest) -> tuple[int, list[KeyValue]]:
        start, end, single = key_span(req.key, req.range_end)
        hits = self._s._visible(start, end, single, self._view())
        prev = [self._s._load(self._tx, *h) for h in hits] if req.prev_kv else []
        if not prev and hits and self._s.want_prev:
            olds: list[KeyValue | None] = [self._s._load(self._tx, *h) for h in hits]
        else:
            olds = list(prev) or [None] * len(hits)
        for (key, _r, _c, _v), old in zip(hits, olds, strict=True):
            ki = self._touch(key)
            rev = pack(self._main, self._sub)
            self._sub += 1
            self._tx.put(KEY_BUCKET, _page_key(rev, _TOMB, 0, 0, key), b"")
            self.events.append(Event(EventType.DELETE, KeyValue(key, 0, self._main, 0), old))
            ki.tombstone(rev)
        return len(hits), prev

    def _compare(self, c: Compare) -> bool:
        start, end, single = key_span(c.key, c.range_end)
        hits = self._s._visible(start, end, single, bound(self.revision))
        t = c.target
        if not hits:
            if t == CompareTarget.VALUE:
                return False  # a missing value never compares (etcd)
            return self._compare_one(c, KeyValue(c.key))
        for key, r, cr, v in hits:
            if t == CompareTarget.VALUE or t == CompareTarget.LEASE:
                kv = self._s._load(self._tx, key, r, cr, v)
            else:
                kv = KeyValue(key, cr, main_of(r), v)
            if not self._compare_one(c, kv):
                return False
        return True

    @staticmethod
    def _compare_one(c: Compare, kv: KeyValue) -> bool:
        t = c.target
        have: int | bytes
        want: int | bytes
        if t == CompareTarget.VALUE:
            have = kv.value
            want = c.target_value if isinstance(c.target_value, bytes) else b""
        else:
            have = {
                CompareTarget.VERSION: kv.version,
                CompareTarget.CREATE: kv.create_revision,
                CompareTarget.MOD: kv.mod_revision,
                CompareTarget.LEASE: kv.lease,
            }[t]
            want = c.target_value if isinstance(c.target_value, int) else 0
        r = _cmp(have, want)
        res = c.result
        if res == CompareResult.EQUAL:
            return r == 0
        if res == CompareResult.GREATER:
            return r > 0
        if res == CompareResult.LESS:
            return r < 0
        return r != 0

    def _path(self, req: TxnRequest) -> list[Any]:
        """The branch each (nested) txn takes: [succeeded, [paths of nested txns in the branch]]."""
        ok = all(self._compare(c) for c in req.compare)
        ops = req.success if ok else req.failure
        return [ok, [self._path(op) for op in ops if isinstance(op, TxnRequest)]]

    def _check_dynamic(self, req: TxnRequest, path: list[Any]) -> None:
        ops = req.success if path[0] else req.failure
        nested = iter(path[1])
        for op in ops:
            if isinstance(op, TxnRequest):
                self._check_dynamic(op, next(nested))
            elif isinstance(op, PutRequest):
                if (op.ignore_value or op.ignore_lease) and self._current_kv(op.key) is None:
                    raise KeyNotFoundError()
            elif isinstance(op, RangeRequest) and op.revision > 0:
                if op.revision > self.revision:
                    raise FutureRevError()
                if op.revision < self._compact_rev:
                    raise CompactedError()

    def _do_txn(self, req: TxnRequest, path: list[Any]) -> TxnResponse:
        ok = path[0]
        nested = iter(path[1])
        out: list[Any] = []
        for op in req.success if ok else req.failure:
            if isinstance(op, RangeRequest):
                view = self._main if self._sub else self.revision
                out.append(self._s._range(self._tx, view, self._compact_rev, op))
            elif isinstance(op, PutRequest):
                prev = self._current_kv(op.key) if op.prev_kv else None
                self._do_put(op, prev)
                out.append(PutResponse(header=ResponseHeader(revision=self._main), prev_kv=prev))
            elif isinstance(op, DeleteRangeRequest):
                n, prevs = self._do_delete(op)
                rev = self._main if self._sub else self.revision
                out.append(
                    DeleteRangeResponse(header=ResponseHeader(revision=rev), deleted=n, prev_kvs=prevs)
                )
            else:
                sub = self._do_txn(op, next(nested))
                rev = self._main if self._sub else self.revision
                out.append(_with_header(sub, ResponseHeader(revision=rev)))
        return TxnResponse(header=ResponseHeader(), succeeded=ok, responses=out)


def _with_header(resp: TxnResponse, header: ResponseHeader) -> TxnResponse:
    return TxnResponse(header=header, succeeded=resp.succeeded, responses=resp.responses)


__all__ = ["FIRST_REVISION", "ApplyBatch", "KVStore", "PageFileLike"]
