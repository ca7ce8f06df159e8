"""Request and response shapes of etcd's Lease service (etcdserverpb Lease*), plus the lease records that
travel in Raft entries (checkpoints) and live in the page file. Codec tags 300-349.

IDs are etcd's int64 lease IDs (positive); TTLs are seconds.
"""

from __future__ import annotations

import attrs

from trikv.api.codec import register
from trikv.api.records import as_tuple
from trikv.api.rpc import ResponseHeader

# etcd's lease.MaxLeaseTTL: above it a grant fails with "etcdserver: too large lease TTL".
MAX_LEASE_TTL = 9_000_000_000
NO_LEASE = 0


@register(300)
@attrs.frozen(slots=True)
class LeaseGrantRequest:
    """`id` 0 lets the member choose; what is proposed always carries the chosen ID, so every member applies
    the same one."""

    ttl: int
    id: int = 0


@register(301)
@attrs.frozen(slots=True)
class LeaseGrantResponse:
    header: ResponseHeader
    id: int = 0
    ttl: int = 0
    error: str = ""


@register(302)
@attrs.frozen(slots=True)
class LeaseRevokeRequest:
    id: int


@register(303)
@attrs.frozen(slots=True)
class LeaseRevokeResponse:
    header: ResponseHeader


@register(304)
@attrs.frozen(slots=True)
class LeaseKeepAliveRequest:
    id: int


@register(305)
@attrs.frozen(slots=True)
class LeaseKeepAliveResponse:
    """TTL 0: the lease is unknown or expired (etcd's answer on the stream)."""

    header: ResponseHeader
    id: int = 0
    ttl: int = 0


@register(306)
@attrs.frozen(slots=True)
class LeaseTimeToLiveRequest:
    id: int
    keys: bool = False


@register(307)
@attrs.frozen(slots=True)
class LeaseTimeToLiveResponse:
    """TTL -1: the lease is unknown or expired (etcd)."""

    header: ResponseHeader
    id: int = 0
    ttl: int = 0
    granted_ttl: int = 0
    keys: tuple[bytes, ...] = attrs.field(default=(), converter=as_tuple)


@register(308)
@attrs.frozen(slots=True)
class LeaseLeasesRequest:
    pass


@register(309)
@attrs.frozen(slots=True)
class LeaseStatus:
    id: int


@register(310)
@attrs.frozen(slots=True)
class LeaseLeasesResponse:
    header: ResponseHeader
    leases: tuple[LeaseStatus, ...] = attrs.field(default=(), converter=as_tuple)


@register(311)
@attrs.frozen(slots=True)
class LeaseCheckpoint:
    id: int
    remaining_ttl: int


@register(312)
@attrs.frozen(slots=True)
class LeaseCheckpointRequest:
    """Proposed by the leader's LeaseManager only (never by a client): remaining TTLs to remember, so a
    leader change does not restart a lease's full TTL."""

    checkpoints: tuple[LeaseCheckpoint, ...] = attrs.field(default=(), converter=as_tuple)


@register(313)
@attrs.frozen(slots=True)
class LeaseCheckpointResponse:
    header: ResponseHeader


@register(314)
@attrs.frozen(slots=True)
class LeaseRecord:
    """One lease in the page file's lease bucket (etcd's leasepb.Lease)."""

    id: int
    ttl: int
    remaining_ttl: int = 0


KEEPALIVE_STREAM_OP = "lease_keepalive"  # etcd's LeaseKeepAlive stream (protocol.STREAM_OPS)


def lease_ops() -> dict[str, type]:
    """The wire op names of the unary lease requests (added to protocol.OPS). "lease_keepalive_once" is one
    keep-alive as a plain request (etcdctl's `lease keep-alive --once`, the JSON gateway)."""
    return {
        "lease_grant": LeaseGrantRequest,
        "lease_revoke": LeaseRevokeRequest,
        "lease_keepalive_once": LeaseKeepAliveRequest,
        "lease_timetolive": LeaseTimeToLiveRequest,
        "lease_leases": LeaseLeasesRequest,
    }


__all__ = [
    "KEEPALIVE_STREAM_OP",
    "MAX_LEASE_TTL",
    "NO_LEASE",
    "LeaseCheckpoint",
    "LeaseCheckpointRequest",
    "LeaseCheckpointResponse",
    "LeaseGrantRequest",
    "LeaseGrantResponse",
    "LeaseKeepAliveRequest",
    "LeaseKeepAliveResponse",
    "LeaseLeasesRequest",
    "LeaseLeasesResponse",
    "LeaseRecord",
    "LeaseRevokeRequest",
    "LeaseRevokeResponse",
    "LeaseStatus",
    "LeaseTimeToLiveRequest",
    "LeaseTimeToLiveResponse",
    "lease_ops",
]
