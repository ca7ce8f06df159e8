"""Hashes of a member's state for the corruption check (etcd's HashKV and Hash, our own bytes).

`hash_kv(pf, revision, compact_revision)` follows etcd's HashByRev shape: a crc32 (zlib's, IEEE) started
over the bucket name b"key", then fed, in revision order, every (page key, value) of the MVCC key bucket
with main revision <= `revision` that is either above `compact_revision` or the newest live (non-tombstone)
revision of its key at or below it -- exactly what every member keeps once compaction finishes, so members
agree whether or not their physical compaction is done. A page key carries the revision, the kind, the
create revision, the version and the user key; the value is the encoded KeyValue (deterministic CBOR), so
any changed byte of a key, value or revision changes the hash.

`hash_all(pf)` (etcd's Hash) covers every bucket except this member's own records: the meta bucket (its
identity and conf state) and the consistent index counters.

`KVHasher` computes `hash_kv` in steps of a bounded number of keys, each through a fresh transaction, so
a member can hash a large key space while it keeps applying, without stalling its Raft loop.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

from trikv.storage.mvcc import _HDR_SIZE, _PUT, _U64, KEY_BUCKET, META_BUCKET, MVCC_BUCKET

_KIND_AT = 12  # a page key: main revision (8 bytes), sub revision (4), kind (1), ...
_MEMBER_OWN = frozenset({b"consistent_index", b"consistent_term"})


class KVHasher:
    """`hash_kv` in resumable steps: each `step` handles up to `limit` page keys through the transaction it
    is given (a fresh one per step), so a caller may let writers run between steps. Revisions above
    `revision` are never read (later writes do not matter) and physical compaction only deletes revisions
    the hash skips; if the compact revision itself moves, the caller starts again.

    Three phases: the page keys at or below the compact revision (remembering each key's newest one, in
    revision order, without values), then those kept entries with their values, then everything above."""

    def __init__(self, revision: int, compact_revision: int) -> None:
        self.revision = revision
        self.compact_revision = compact_revision
        self._h = zlib.crc32(KEY_BUCKET)
        # user key -> page key of its newest revision at or below the compact revision (None: a tombstone);
        # a key seen again is re-inserted, so the dict's order is the revision order of these entries
        self._kept: dict[bytes, bytes | None] = {}
        self._pending: Iterator[bytes | None] | None = None
        self._phase = 0
        self._cursor = b""
        self.done = False

    def _feed(self, pk: bytes, value: bytes) -> None:
        self._h = zlib.crc32(value, zlib.crc32(pk, self._h))

    def step(self, rx: Any, limit: int = 1000) -> bool:
        """Handle the next `limit` page keys read through `rx` (a page-file read or write transaction that
        holds every revision up to `revision`); True when the hash is complete."""
        if self._phase == 0:
            n, last = 0, None
            end = _U64.pack(min(self.revision, self.compact_revision) + 1)
            for pk, _ in rx.range(KEY_BUCKET, self._cursor, end):
                last, n = pk, n + 1
                key = pk[_HDR_SIZE:]
                self._kept.pop(key, None)
                self._kept[key] = pk if pk[_KIND_AT] == _PUT else None
                if n >= limit:
                    break
            if last is not None:
                self._cursor = last + b"\0"
            if n < limit:
                self._phase, self._pending = 1, iter(self._kept.values())
            return False
        if self._phase == 1:
            assert self._pending is not None
            n = 0
            for pk in self._pending:
                if pk is not None:
                    self._feed(pk, rx.get(KEY_BUCKET, pk) or b"")
                    n += 1
                    if n >= limit:
                        return False
            self._phase, self._pending, self._kept = 2, None, {}
            self._cursor = _U64.pack(self.compact_revision + 1)
            return False
        n, last = 0, None
        for pk, value in rx.range(KEY_BUCKET, self._cursor, _U64.pack(self.revision + 1)):
            last, n = pk, n + 1
            self._feed(pk, value)
            if n >= limit:
                break
        if last is not None:
            self._cursor = last + b"\0"
        self.done = n < limit
        return self.done

    @property
    def hash(self) -> int:
        return self._h & 0xFFFFFFFF


def hash_kv(pf: Any, revision: int, compact_revision: int) -> int:
    """crc32 of the key space at `revision` (see the module docstring); `pf` is a PageFile (committed state)."""
    hasher = KVHasher(revision, compact_revision)
    with pf.read() as rx:
        while not hasher.step(rx, 10_000):
            pass
    return hasher.hash


def hash_all(pf: Any) -> int:
    """crc32 over every bucket name, key and value, except this member's own records."""
    h = 0
    with pf.read() as rx:
        for name in sorted(rx.buckets()):
            if name == META_BUCKET:
                continue
            h = zlib.crc32(name, h)
            for k, v in rx.range(name):
                if name == MVCC_BUCKET and k in _MEMBER_OWN:
                    continue
                h = zlib.crc32(v, zlib.crc32(k, h))
    return h & 0xFFFFFFFF


__all__ = ["KVHasher", "hash_all", "hash_kv"]
