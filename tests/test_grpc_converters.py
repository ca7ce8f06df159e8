"""protobuf <-> trikv shapes for the streaming services (Watch) and Lease: field by field."""

from __future__ import annotations

from trikv.actors import grpc_lease, grpc_watch
from trikv.actors.grpcpb import rpc_pb2
from trikv.api import lease, rpc, watch

H = rpc.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)


def test_watch_requests_every_oneof() -> None:
    create = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(
            key=b"a",
            range_end=b"b",
            start_revision=5,
            progress_notify=True,
            filters=[1],
            prev_kv=True,
            watch_id=7,
        )
    )
    assert grpc_watch.watch_request(create) == watch.WatchRequest(
        create_request=watch.WatchCreateRequest(b"a", b"b", 5, True, (1,), True, 7, False)
    )
    cancel = rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=7))
    assert grpc_watch.watch_request(cancel) == watch.WatchRequest(cancel_request=watch.WatchCancelRequest(7))
    progress = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
    assert grpc_watch.watch_request(progress).progress_request == watch.WatchProgressRequest()
    assert grpc_watch.watch_request(rpc_pb2.WatchRequest()) == watch.WatchRequest()


def test_watch_response_with_put_and_delete_events() -> None:
    put = watch.Event(watch.EventType.PUT, rpc.KeyValue(b"k", 2, 3, 1, b"v", 9))
    tomb = watch.Event(
        watch.EventType.DELETE, rpc.KeyValue(b"k", mod_revision=4), rpc.KeyValue(b"k", 2, 3, 1, b"v")
    )
    r = watch.WatchResponse(H, watch_id=7, compact_revision=0, events=(put, tomb))
    pb = grpc_watch.watch_response_pb(r)
    assert (pb.header.revision, pb.watch_id, len(pb.events)) == (3, 7, 2)
    assert (
        pb.events[0].type,
        pb.events[0].kv.value,
        pb.events[0].kv.lease,
        pb.events[0].HasField("prev_kv"),
    ) == (
        0,
        b"v",
        9,
        False,
    )
    assert (pb.events[1].type, pb.events[1].kv.mod_revision, pb.events[1].prev_kv.value) == (1, 4, b"v")
    cancelled = grpc_watch.watch_response_pb(
        watch.WatchResponse(H, watch_id=1, canceled=True, compact_revision=8, cancel_reason="x")
    )
    assert (cancelled.canceled, cancelled.compact_revision, cancelled.cancel_reason) == (True, 8, "x")


def test_lease_responses() -> None:
    assert grpc_lease.grant_pb(lease.LeaseGrantResponse(H, 5, 60)).TTL == 60
    ttl = grpc_lease.time_to_live_pb(lease.LeaseTimeToLiveResponse(H, 5, 59, 60, (b"a", b"b")))
    assert (ttl.ID, ttl.TTL, ttl.grantedTTL, list(ttl.keys)) == (5, 59, 60, [b"a", b"b"])
    leases = grpc_lease.leases_pb(lease.LeaseLeasesResponse(H, (lease.LeaseStatus(5), lease.LeaseStatus(6))))
    assert [s.ID for s in leases.leases] == [5, 6]
    assert grpc_lease.keep_alive_pb(lease.LeaseKeepAliveResponse(H, 5, 0)).TTL == 0
