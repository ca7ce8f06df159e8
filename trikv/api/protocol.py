"""The client wire protocol: CBOR frames over a WebSocket on the client port.

One WebSocket message carries a CBOR array of items, so both sides can coalesce many requests or
responses into one frame (each frame costs tens of microseconds of framing in pure Python):

- request item:  ``[request_id, op, payload]``      op is one of `OPS`, payload an rpc shape
- response item: ``[request_id, OK, result]``       result an rpc shape
                 ``[request_id, ERR, error]``       error = ``{"code": int, "message": str}`` (etcd's)

Request ids are chosen by the client and unique per connection; responses may come in any order.
A frame that cannot be decoded at all is answered with one ERR item whose id is 0, and the connection
stays open. A stream (watch, lease keep-alive, snapshot) keeps its id for many items both ways and ends
with one final OK or ERR item (see STREAM_OPS below).
"""

from __future__ import annotations

from typing import Any

import attrs

from trikv.api import codec, errors
from trikv.api.codec import register
from trikv.api.records import as_tuple
from trikv.api.rpc import ResponseHeader

OK = 0  # final answer (of a request, or the normal end of a stream)
ERR = 1  # final error
MORE = 2  # one answer of a stream; more may follow

# Streams (etcd's Watch, LeaseKeepAlive, Snapshot): the client opens one with `[id, op, payload]` for an op in
# STREAM_OPS, sends more items with the same id (any op name of the stream's own), and ends its side with
# `[id, STREAM_CLOSE, None]`; the server answers with MORE items and ends with OK (None) or ERR.
STREAM_CLOSE = "close"
STREAM_OPS: dict[str, tuple[type, ...]] = {}  # stream op -> the shapes its items may have (filled by features)

# Paths on the client port. WebSocket clients connect to WS_PATH; plain HTTP serves the rest.
WS_PATH = "/v3/ws"

# Default limits (etcd's): requests above max-request-bytes are refused with "request is too large";
# the transport's frame limit sits above it so such a request is read and answered, not cut off.
DEFAULT_MAX_REQUEST_BYTES = 1572864  # 1.5 MiB
FRAME_OVERHEAD_BYTES = 512 * 1024  # transport max message = max-request-bytes + this (etcd: +512 KiB)


@register(200)
@attrs.frozen(slots=True)
class StatusRequest:
    pass


@register(201)
@attrs.frozen(slots=True)
class StatusResponse:
    """etcd's maintenance Status: what `endpoint status` prints."""

    header: ResponseHeader
    version: str = ""
    db_size: int = 0
    leader: int = 0
    raft_index: int = 0
    raft_term: int = 0
    raft_applied_index: int = 0
    errors: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    db_size_in_use: int = 0
    is_learner: bool = False


@register(202)
@attrs.frozen(slots=True)
class Member:
    id: int
    name: str = ""
    peer_urls: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    client_urls: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    is_learner: bool = False


@register(203)
@attrs.frozen(slots=True)
class MemberListRequest:
    linearizable: bool = False


@register(204)
@attrs.frozen(slots=True)
class MemberListResponse:
    header: ResponseHeader
    members: tuple[Member, ...] = attrs.field(default=(), converter=as_tuple)


# op name -> the request shape it takes. The server refuses any other op or a payload of another type.
OPS: dict[str, type] = {}


def _ops() -> None:
    from trikv.api import rpc

    OPS.update(
        {
            "range": rpc.RangeRequest,
            "put": rpc.PutRequest,
            "delete_range": rpc.DeleteRangeRequest,
            "txn": rpc.TxnRequest,
            "compact": rpc.CompactionRequest,
            "status": StatusRequest,
            "member_list": MemberListRequest,
        }
    )


_ops()


def op_of(request: Any) -> str:
    """The wire op name of a request shape (the inverse of OPS)."""
    for name, shape in OPS.items():
        if type(request) is shape:
            return name
    raise KeyError(type(request).__name__)


def encode_frame(items: list[list[Any]]) -> bytes:
    return codec.encode(items)


def decode_frame(data: bytes) -> list[Any]:
    """Decode one frame into its items; raises CodecError when the frame is not an array of items."""
    items = codec.decode(data)
    if not isinstance(items, (list, tuple)):
        raise codec.CodecError("frame is not an array of items")
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 3 or not isinstance(item[0], int):
            raise codec.CodecError("frame item is not [id, op|status, payload]")
    return list(items)


def error_item(request_id: int, err: errors.EtcdError) -> list[Any]:
    return [request_id, ERR, errors.to_wire(err)]


def ok_item(request_id: int, result: Any) -> list[Any]:
    return [request_id, OK, result]


# --------------------------------------------------------------------------- cluster API (etcd's Cluster service)


@register(205)
@attrs.frozen(slots=True)
class MemberAddRequest:
    peer_urls: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    is_learner: bool = False


@register(206)
@attrs.frozen(slots=True)
class MemberAddResponse:
    header: ResponseHeader
    member: Member
    members: tuple[Member, ...] = attrs.field(default=(), converter=as_tuple)


@register(207)
@attrs.frozen(slots=True)
class MemberRemoveRequest:
    id: int


@register(208)
@attrs.frozen(slots=True)
class MemberUpdateRequest:
    id: int
    peer_urls: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@register(209)
@attrs.frozen(slots=True)
class MemberPromoteRequest:
    id: int


@register(210)
@attrs.frozen(slots=True)
class MoveLeaderRequest:
    target_id: int


@register(211)
@attrs.frozen(slots=True)
class MoveLeaderResponse:
    header: ResponseHeader


def _cluster_ops() -> None:
    OPS.update(
        {
            "member_add": MemberAddRequest,
            "member_remove": MemberRemoveRequest,
            "member_update": MemberUpdateRequest,
            "member_promote": MemberPromoteRequest,
            "move_leader": MoveLeaderRequest,
        }
    )


_cluster_ops()


def _watch_ops() -> None:
    """etcd's Watch service, a stream of WatchRequest items (trikv.api.watch; tags 350-399)."""
    from trikv.api import watch

    STREAM_OPS["watch"] = (watch.WatchRequest,)


_watch_ops()


def _lease_ops() -> None:
    """etcd's Lease service (trikv.api.lease; tags 300-349)."""
    from trikv.api.lease import KEEPALIVE_STREAM_OP, LeaseKeepAliveRequest, lease_ops

    OPS.update(lease_ops())
    STREAM_OPS[KEEPALIVE_STREAM_OP] = (LeaseKeepAliveRequest,)


_lease_ops()


def _maintenance_ops() -> None:
    """Snapshot (a stream) and Defragment (trikv.api.snapshot; tags 425-449)."""
    from trikv.api import snapshot

    OPS[snapshot.DEFRAGMENT_OP] = snapshot.DefragmentRequest
    STREAM_OPS[snapshot.SNAPSHOT_OP] = (snapshot.SnapshotRequest,)


_maintenance_ops()


def _alarm_ops() -> None:
    """Alarm, Hash and HashKV (trikv.api.maintenance; tags 400-424)."""
    from trikv.api import maintenance

    OPS[maintenance.ALARM_OP] = maintenance.AlarmRequest
    OPS[maintenance.HASH_OP] = maintenance.HashRequest
    OPS[maintenance.HASHKV_OP] = maintenance.HashKVRequest


_alarm_ops()
