"""Request and response shapes of the key-value API (etcd's `etcdserverpb`, KV part).

The same objects travel in client frames, inside Raft entries (a proposal's op) and into the MVCC
layer's apply path, so there is exactly one definition of what a put or a txn is.
"""

from __future__ import annotations

import enum
from typing import Union

import attrs

from trikv.api.codec import register
from trikv.api.records import as_tuple


class SortOrder(enum.IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareResult(enum.IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class CompareTarget(enum.IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


@register(100)
@attrs.frozen(slots=True)
class KeyValue:
    key: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""
    lease: int = 0


@register(101)
@attrs.frozen(slots=True)
class ResponseHeader:
    cluster_id: int = 0
    member_id: int = 0
    revision: int = 0
    raft_term: int = 0


@register(102)
@attrs.frozen(slots=True)
class RangeRequest:
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@register(103)
@attrs.frozen(slots=True)
class RangeResponse:
    header: ResponseHeader
    kvs: tuple[KeyValue, ...] = attrs.field(default=(), converter=as_tuple)
    more: bool = False
    count: int = 0


@register(104)
@attrs.frozen(slots=True)
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@register(105)
@attrs.frozen(slots=True)
class PutResponse:
    header: ResponseHeader
    prev_kv: KeyValue | None = None


@register(106)
@attrs.frozen(slots=True)
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@register(107)
@attrs.frozen(slots=True)
class DeleteRangeResponse:
    header: ResponseHeader
    deleted: int = 0
    prev_kvs: tuple[KeyValue, ...] = attrs.field(default=(), converter=as_tuple)


@register(108)
@attrs.frozen(slots=True)
class Compare:
    """`target_value` holds the value compared against: an int (version/create/mod/lease) or bytes."""

    result: CompareResult
    target: CompareTarget
    key: bytes
    target_value: int | bytes = 0
    range_end: bytes = b""


RequestOp = Union[RangeRequest, PutRequest, DeleteRangeRequest, "TxnRequest"]
ResponseOp = Union[RangeResponse, PutResponse, DeleteRangeResponse, "TxnResponse"]


@register(109)
@attrs.frozen(slots=True)
class TxnRequest:
    compare: tuple[Compare, ...] = attrs.field(default=(), converter=as_tuple)
    success: tuple[RequestOp, ...] = attrs.field(default=(), converter=as_tuple)
    failure: tuple[RequestOp, ...] = attrs.field(default=(), converter=as_tuple)


@register(110)
@attrs.frozen(slots=True)
class TxnResponse:
    header: ResponseHeader
    succeeded: bool = False
    responses: tuple[ResponseOp, ...] = attrs.field(default=(), converter=as_tuple)


@register(111)
@attrs.frozen(slots=True)
class CompactionRequest:
    revision: int
    physical: bool = False


@register(112)
@attrs.frozen(slots=True)
class CompactionResponse:
    header: ResponseHeader
