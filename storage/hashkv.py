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
from typing import Any

from trikv.storage.mvcc import _HDR, _HDR_SIZE, _PUT, _U64, KEY_BUCKET, META_BUCKET, MVCC_BUCKET

_MEMBER_OWN = frozenset({b"consistent_index", b"consistent_term"})


class KVHasher:
    """`hash_kv` in resumable steps: each `step` reads up to `limit` page keys through the transaction it is
    given (a fresh one per step), so a caller may let writers run between steps. Revisions above `revision` are never read (later writes
    do not matter) and physical compaction only deletes revisions the hash skips; if the compact revision
    itself moves, the caller starts again."""

    def __init__(self, revision: int, compact_revision: int) -> None:
        self.revision = revision
        self.compact_revision = compact_revision
        self._h = zlib.crc32(KEY_BUCKET)
        self._kept: dict[bytes, tuple[bytes, bytes] | None] = {}
        self._kept_done = False
        self._cursor = b""
        self.done = False

    def _flush_kept(self) -> None:
        if not self._kept_done:
            for pk, value in sorted(e for e in self._kept.values() if e is not None):
                self._h = zlib.crc32(value, zlib.crc32(pk, self._h))
            self._kept.clear()
            self._kept_done = True

    def step(self, rx: Any, limit: int = 1000) -> bool:
        """Hash the next `limit` page keys read through `rx` (a page-file read or write transaction that
        holds every revision up to `revision`); True when the hash is complete."""
        end = _U64.pack(self.revision + 1)
        n = 0
        last = None
        for pk, value in rx.range(KEY_BUCKET, self._cursor, end):
            last = pk
            n += 1
            main, _sub, kind = _HDR.unpack_from(pk)[:3]
            if main <= self.compact_revision:
                self._kept[pk[_HDR_SIZE:]] = (pk, value) if kind == _PUT else None
            else:
                self._flush_kept()
                self._h = zlib.crc32(value, zlib.crc32(pk, self._h))
            if n >= limit:
                break
        if last is not None:
            self._cursor = last + b"\0"
        if n < limit:
            self._flush_kept()
            self.done = True
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
