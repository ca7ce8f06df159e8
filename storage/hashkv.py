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
"""

from __future__ import annotations

import zlib
from typing import Any

from trikv.storage.mvcc import _HDR, _HDR_SIZE, _PUT, _U64, KEY_BUCKET, META_BUCKET, MVCC_BUCKET

_MEMBER_OWN = frozenset({b"consistent_index", b"consistent_term"})


def hash_kv(pf: Any, revision: int, compact_revision: int) -> int:
    """crc32 of the key space at `revision` (see the module docstring); `pf` is a PageFile (committed state)."""
    h = zlib.crc32(KEY_BUCKET)
    kept: dict[bytes, tuple[bytes, bytes] | None] = {}
    with pf.read() as rx:
        it = rx.range(KEY_BUCKET, b"", _U64.pack(revision + 1))
        for pk, value in it:
            main, _sub, kind = _HDR.unpack_from(pk)[:3]
            if main > compact_revision:
                for entry in sorted(e for e in kept.values() if e is not None):
                    h = zlib.crc32(entry[1], zlib.crc32(entry[0], h))
                kept.clear()
                h = zlib.crc32(value, zlib.crc32(pk, h))
                for pk2, value2 in it:
                    h = zlib.crc32(value2, zlib.crc32(pk2, h))
                return h & 0xFFFFFFFF
            kept[pk[_HDR_SIZE:]] = (pk, value) if kind == _PUT else None
    for entry in sorted(e for e in kept.values() if e is not None):
        h = zlib.crc32(entry[1], zlib.crc32(entry[0], h))
    return h & 0xFFFFFFFF


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


__all__ = ["hash_all", "hash_kv"]
