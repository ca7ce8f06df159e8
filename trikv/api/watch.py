"""Watch shapes (etcd's `etcdserverpb` Watch service and `mvccpb.Event`).

A watch stream carries `WatchRequest`s one way (each holds exactly one of create / cancel / progress, as
etcd's oneof) and `WatchResponse`s the other. Codec tags 350-399 are the watch range.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs
import cbor2

from trikv.api import codec
from trikv.api.codec import register
from trikv.api.records import as_tuple
from trikv.api.rpc import KeyValue, ResponseHeader


class EventType(enum.IntEnum):
    PUT = 0
    DELETE = 1


class FilterType(enum.IntEnum):
    NOPUT = 0  # etcd: filter out put events
    NODELETE = 1  # etcd: filter out delete events


PROGRESS_WATCH_ID = -1  # etcd 3.4: a progress response belongs to no watch (watch_id -1 on the wire)
AUTO_WATCH_ID = 0  # etcd's clientv3.AutoWatchID: the server picks the id


@register(350)
@attrs.frozen(slots=True)
class Event:
    """One change: a DELETE's kv carries only key and mod_revision (etcd's tombstone event)."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


@register(351)
@attrs.frozen(slots=True)
class WatchCreateRequest:
    key: bytes
    range_end: bytes = b""
    start_revision: int = 0
    progress_notify: bool = False
    filters: tuple[int, ...] = attrs.field(default=(), converter=as_tuple)
    prev_kv: bool = False
    watch_id: int = AUTO_WATCH_ID
    fragment: bool = False


@register(352)
@attrs.frozen(slots=True)
class WatchCancelRequest:
    watch_id: int


@register(353)
@attrs.frozen(slots=True)
class WatchProgressRequest:
    pass


@register(354)
@attrs.frozen(slots=True)
class WatchRequest:
    """One message on a watch stream; exactly one field is set (etcd's WatchRequest oneof).

    `require_leader` on the stream's first message stands for etcd's require-leader gRPC metadata: the
    member ends the stream with "etcdserver: no leader" after 3 election timeouts without a leader.
    """

    create_request: WatchCreateRequest | None = None
    cancel_request: WatchCancelRequest | None = None
    progress_request: WatchProgressRequest | None = None
    require_leader: bool = False


_RESPONSE_TAG = 355


@register(_RESPONSE_TAG)
@attrs.frozen(slots=True)
class WatchResponse:
    header: ResponseHeader
    watch_id: int = 0
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    fragment: bool = False
    events: tuple[Event, ...] = attrs.field(default=(), converter=as_tuple)


class IdentityCache:
    """Encodings of shared objects, keyed by identity: the watch hub gives every watcher of one shape the
    same header and events objects of a run, so each surface encodes them once for all. An entry holds its
    object, so an id is never reused while the entry lives; the oldest go first beyond `size` entries or
    `max_bytes` of encodings (the objects they hold are of the same order), and a miss only costs an encode."""

    def __init__(self, size: int = 1024, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: dict[int, tuple[object, Any]] = {}

    def get(self, obj: object, build: Callable[[Any], Any]) -> Any:
        hit = self._entries.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = build(obj)
        entries = self._entries
        self.bytes += len(value)
        while entries and (len(entries) >= self.size or self.bytes > self.max_bytes):
            old = entries.pop(next(iter(entries)))
            self.bytes -= len(old[1])
        entries[id(obj)] = (obj, value)
        return value


_cbor_parts = IdentityCache()
# A WatchResponse is tag + array(8): header, watch_id, created, canceled, compact_revision, cancel_reason,
# fragment, events. Built by hand for event responses: header and events are encoded once per revision.
_CBOR_PREFIX = cbor2.dumps(cbor2.CBORTag(codec.TAG_BASE + _RESPONSE_TAG, [0] * 8))[:-8]
_CBOR_FLAGS = b"\xf4\xf4\x00\x60"  # created false, canceled false, compact_revision 0, cancel_reason ""


def _cbor_response(r: WatchResponse) -> bytes | None:
    if r.created or r.canceled or r.compact_revision or r.cancel_reason or not r.events:
        return None  # rare shapes take the generic encoder
    return b"".join(
        (
            _CBOR_PREFIX,
            _cbor_parts.get(r.header, codec.encode),
            cbor2.dumps(r.watch_id),
            _CBOR_FLAGS,
            b"\xf5" if r.fragment else b"\xf4",
            _cbor_parts.get(r.events, codec.encode),
        )
    )


codec.register_encoder(WatchResponse, _cbor_response)


__all__ = [
    "AUTO_WATCH_ID",
    "PROGRESS_WATCH_ID",
    "Event",
    "EventType",
    "FilterType",
    "IdentityCache",
    "WatchCancelRequest",
    "WatchCreateRequest",
    "WatchProgressRequest",
    "WatchRequest",
    "WatchResponse",
]
