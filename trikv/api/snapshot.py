"""Maintenance shapes for snapshots and defragmentation (etcd's Maintenance.Snapshot / Defragment).

Codec tags 425-449 (the maintenance range's part B). `SnapshotResponse` is one item of the Snapshot stream:
`blob` is a chunk of the member's page file, `remaining_bytes` what is left after it (etcd's fields); the
last chunk carries etcd's 32-byte SHA-256 trailer of everything sent before it, so a saved file is the
page file followed by its digest (`size % 512 == 32` says a file has one, as etcd decides).
"""

from __future__ import annotations

import attrs

from trikv.api.codec import register
from trikv.api.rpc import ResponseHeader

SNAPSHOT_OP = "snapshot"
DEFRAGMENT_OP = "defragment"
HASH_SIZE = 32  # SHA-256 trailer of a snapshot stream (etcd's)
CHUNK_SIZE = 32 * 1024  # bytes per Snapshot stream item (etcd sends 32 KiB blobs)


@register(425)
@attrs.frozen(slots=True)
class DefragmentRequest:
    pass


@register(426)
@attrs.frozen(slots=True)
class DefragmentResponse:
    header: ResponseHeader


@register(427)
@attrs.frozen(slots=True)
class SnapshotRequest:
    pass


@register(428)
@attrs.frozen(slots=True)
class SnapshotResponse:
    header: ResponseHeader
    remaining_bytes: int = 0
    blob: bytes = b""


__all__ = [
    "CHUNK_SIZE",
    "DEFRAGMENT_OP",
    "HASH_SIZE",
    "SNAPSHOT_OP",
    "DefragmentRequest",
    "DefragmentResponse",
    "SnapshotRequest",
    "SnapshotResponse",
]
