"""Maintenance shapes for alarms and hashes (etcd's Maintenance.Alarm / Hash / HashKV), codec tags 400-424.

An `AlarmRequest` with ACTIVATE or DEACTIVATE travels inside a Raft entry like a write, so every member
records the same alarms in its page file; GET is answered from the local copy. etcd's AlarmResponse has no
header on the wire (its applier never fills one), which the gateway and trikvctl reproduce.

HashKV is a crc32 (zlib's, IEEE polynomial) over the MVCC key space at a revision: see
`trikv.storage.hashkv` for exactly which bytes go in. `compact_revision` is -1 for a store that was never
compacted, as etcd reports it.
"""

from __future__ import annotations

import enum

import attrs

from trikv.api.codec import register
from trikv.api.records import as_tuple
from trikv.api.rpc import ResponseHeader

ALARM_OP = "alarm"
HASH_OP = "hash"
HASHKV_OP = "hashkv"


class AlarmType(enum.IntEnum):
    """etcd's etcdserverpb.AlarmType."""

    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


class AlarmAction(enum.IntEnum):
    """etcd's etcdserverpb.AlarmRequest_AlarmAction."""

    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


@register(400)
@attrs.frozen(slots=True)
class AlarmRequest:
    action: AlarmAction = AlarmAction.GET
    member_id: int = 0  # 0 with GET: every member's alarms
    alarm: AlarmType = AlarmType.NONE  # NONE with GET: every type


@register(401)
@attrs.frozen(slots=True)
class AlarmMember:
    member_id: int
    alarm: AlarmType

    def describe(self) -> str:
        """etcd's proto text form, as `alarm list` and Status.errors print it (trailing space included)."""
        return f"memberID:{self.member_id} alarm:{self.alarm.name} "


@register(402)
@attrs.frozen(slots=True)
class AlarmResponse:
    header: ResponseHeader | None = None
    alarms: tuple[AlarmMember, ...] = attrs.field(default=(), converter=as_tuple)


@register(403)
@attrs.frozen(slots=True)
class HashKVRequest:
    revision: int = 0  # 0: the current revision


@register(404)
@attrs.frozen(slots=True)
class HashKVResponse:
    header: ResponseHeader
    hash: int = 0
    compact_revision: int = -1


@register(405)
@attrs.frozen(slots=True)
class HashRequest:
    pass


@register(406)
@attrs.frozen(slots=True)
class HashResponse:
    header: ResponseHeader
    hash: int = 0


__all__ = [
    "ALARM_OP",
    "HASHKV_OP",
    "HASH_OP",
    "AlarmAction",
    "AlarmMember",
    "AlarmRequest",
    "AlarmResponse",
    "AlarmType",
    "HashKVRequest",
    "HashKVResponse",
    "HashRequest",
    "HashResponse",
]
