"""etcd 3.4's Lease service over gRPC: LeaseGrant, LeaseRevoke, LeaseTimeToLive, LeaseLeases (unary) and the
LeaseKeepAlive stream, on the lease handlers (actors/lease_api.py) through the same Handlers.

Shapes only. The unary methods go through grpc_services' unary factory (require-leader included); the
keep-alive stream goes through grpc_streams.bidi onto `Handlers.stream` (the LeaseKeepAliveRequest row of
Handlers.streams), so etcdctl's `lease keep-alive` and python-etcd3's leases and locks work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trikv.actors.grpc_call import Method
from trikv.actors.grpc_streams import bidi
from trikv.actors.grpcpb import rpc_pb2
from trikv.api import lease, rpc

Unary = Callable[..., Method]  # grpc_services._unary(backend, pb_request, to_shape, to_pb)


def _header(h: rpc.ResponseHeader) -> Any:
    return rpc_pb2.ResponseHeader(
        cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision, raft_term=h.raft_term
    )


def grant_pb(r: lease.LeaseGrantResponse) -> Any:
    return rpc_pb2.LeaseGrantResponse(header=_header(r.header), ID=r.id, TTL=r.ttl, error=r.error)


def keep_alive_pb(r: lease.LeaseKeepAliveResponse) -> Any:
    return rpc_pb2.LeaseKeepAliveResponse(header=_header(r.header), ID=r.id, TTL=r.ttl)


def time_to_live_pb(r: lease.LeaseTimeToLiveResponse) -> Any:
    return rpc_pb2.LeaseTimeToLiveResponse(
        header=_header(r.header), ID=r.id, TTL=r.ttl, grantedTTL=r.granted_ttl, keys=list(r.keys)
    )


def leases_pb(r: lease.LeaseLeasesResponse) -> Any:
    return rpc_pb2.LeaseLeasesResponse(
        header=_header(r.header), leases=[rpc_pb2.LeaseStatus(ID=s.id) for s in r.leases]
    )


def lease_methods(backend: Any, unary: Unary) -> dict[str, Method]:
    """The etcdserverpb.Lease method table for this member's Handlers."""
    P = rpc_pb2
    return {
        "LeaseGrant": unary(
            backend, P.LeaseGrantRequest, lambda m: lease.LeaseGrantRequest(m.TTL, m.ID), grant_pb
        ),
        "LeaseRevoke": unary(
            backend,
            P.LeaseRevokeRequest,
            lambda m: lease.LeaseRevokeRequest(m.ID),
            lambda r: P.LeaseRevokeResponse(header=_header(r.header)),
        ),
        "LeaseTimeToLive": unary(
            backend,
            P.LeaseTimeToLiveRequest,
            lambda m: lease.LeaseTimeToLiveRequest(m.ID, m.keys),
            time_to_live_pb,
        ),
        "LeaseLeases": unary(backend, P.LeaseLeasesRequest, lambda m: lease.LeaseLeasesRequest(), leases_pb),
        "LeaseKeepAlive": bidi(
            backend, P.LeaseKeepAliveRequest, lambda m: lease.LeaseKeepAliveRequest(m.ID), keep_alive_pb
        ),
    }


__all__ = ["lease_methods"]
