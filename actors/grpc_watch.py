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


def watch_methods(backend: Any) -> dict[str, Method]:
    """The etcdserverpb.Watch method table for this member's Handlers."""
    return {"Watch": bidi(backend, rpc_pb2.WatchRequest, watch_request, watch_response_pb)}


__all__ = ["watch_methods", "watch_request", "watch_response_pb"]
