"""etcd 3.4's Watch service over gRPC: the bidirectional Watch stream onto Handlers.stream (the WatchRequest
row of Handlers.streams, served by actors/watch_serve.py), through grpc_streams.bidi.

Shapes only: each protobuf WatchRequest (create / cancel / progress, etcd's oneof) becomes trikv's
WatchRequest, each WatchResponse goes out as etcd's, events as mvccpb.Event. Require-leader comes from
the gRPC metadata and is enforced by the bridge (3 election timeouts without a leader end the stream).
"""

from __future__ import annotations

from typing import Any

from trikv.actors.grpc_call import Method
from trikv.actors.grpc_streams import bidi
from trikv.actors.grpcpb import kv_pb2, rpc_pb2
from trikv.api import rpc, watch
from trikv.api.watch import IdentityCache


def watch_request(m: Any) -> watch.WatchRequest:
    which = m.WhichOneof("request_union")
    if which == "create_request":
        c = m.create_request
        create = watch.WatchCreateRequest(
            key=c.key,
            range_end=c.range_end,
            start_revision=c.start_revision,
            progress_notify=c.progress_notify,
            filters=tuple(c.filters),
            prev_kv=c.prev_kv,
            watch_id=c.watch_id,
            fragment=c.fragment,
        )
        return watch.WatchRequest(create_request=create)
    if which == "cancel_request":
        return watch.WatchRequest(cancel_request=watch.WatchCancelRequest(m.cancel_request.watch_id))
    if which == "progress_request":
        return watch.WatchRequest(progress_request=watch.WatchProgressRequest())
    return watch.WatchRequest()  # etcd ignores a request with nothing set


def _kv(kv: rpc.KeyValue) -> Any:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def _event(e: watch.Event) -> Any:
    out = kv_pb2.Event(type=e.type.name, kv=_kv(e.kv))
    if e.prev_kv is not None:
        out.prev_kv.CopyFrom(_kv(e.prev_kv))
    return out


def watch_response_pb(r: watch.WatchResponse) -> Any:
    h = r.header
    return rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(
            cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision, raft_term=h.raft_term
        ),
        watch_id=r.watch_id,
        created=r.created,
        canceled=r.canceled,
        compact_revision=r.compact_revision,
        cancel_reason=r.cancel_reason,
        fragment=r.fragment,
        events=[_event(e) for e in r.events],
    )


class Serialized:
    """A message already serialized: what the gRPC server asks of a message (`SerializeToString`)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64: a negative value is ten bytes, as protobuf writes it
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


_parts = IdentityCache()


def _header_field(h: rpc.ResponseHeader) -> bytes:  # field 1
    return _field(0x0A, watch_response_pb(watch.WatchResponse(h)).header.SerializeToString())


def _events_field(events: tuple[watch.Event, ...]) -> bytes:  # field 11, repeated
    return b"".join(_field(0x5A, _event(e).SerializeToString()) for e in events)


def watch_response_wire(r: watch.WatchResponse) -> Any:
    """watch_response_pb's bytes; for an event response built around the header and events encoded once
    for every watcher that shares them (protobuf fields in number order, repeated fields concatenated)."""
    if r.created or r.canceled or r.compact_revision or r.cancel_reason or not r.events:
        return watch_response_pb(r)
    return Serialized(
        b"".join(
            (
                _parts.get(r.header, _header_field),
                b"\x10" + _varint(r.watch_id) if r.watch_id else b"",  # field 2
                b"\x38\x01" if r.fragment else b"",  # field 7
                _parts.get(r.events, _events_field),
            )
        )
    )


def watch_methods(backend: Any) -> dict[str, Method]:
    """The etcdserverpb.Watch method table for this member's Handlers."""
    return {"Watch": bidi(backend, rpc_pb2.WatchRequest, watch_request, watch_response_wire)}


__all__ = ["Serialized", "watch_methods", "watch_request", "watch_response_pb", "watch_response_wire"]
