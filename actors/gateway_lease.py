"""etcd 3.4's JSON gateway for the Lease service: request decoders and response encoders, field for field
as grpc-gateway writes them (proto names: "ID", "TTL", "grantedTTL"; int64 as strings; zero values omitted).

Routes (merged into actors/gateway.py's ENDPOINTS table): /v3/lease/grant, /v3/lease/revoke and
/v3/kv/lease/revoke, /v3/lease/keepalive (a stream in etcd: each request object is answered by one
`{"result": ...}` object), /v3/lease/timetolive and /v3/kv/lease/timetolive, /v3/lease/leases.
This module does not import gateway.py (which imports it); the proto3 JSON rules it needs are a few lines.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from trikv.actors.gateway_requests import _Fields
from trikv.api import rpc
from trikv.api.lease import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)


def _fields(*pairs: tuple[str, Any]) -> dict[str, Any]:
    """proto3 JSON: zero values omitted, int64 as strings, nested messages always written."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if isinstance(value, (dict, list)):
            if isinstance(value, dict) or value:
                out[name] = value
        elif isinstance(value, bool):
            if value:
                out[name] = value
        elif isinstance(value, int):
            if value:
                out[name] = str(value)
        elif value:
            out[name] = value
    return out


def _header(h: rpc.ResponseHeader) -> dict[str, Any]:
    return _fields(
        ("cluster_id", h.cluster_id),
        ("member_id", h.member_id),
        ("revision", h.revision),
        ("raft_term", h.raft_term),
    )


# --------------------------------------------------------------------------- requests


def grant_request(obj: Any) -> LeaseGrantRequest:
    f = _Fields(obj, "LeaseGrantRequest")
    return LeaseGrantRequest(f.int64("TTL"), f.int64("ID"))


def revoke_request(obj: Any) -> LeaseRevokeRequest:
    return LeaseRevokeRequest(_Fields(obj, "LeaseRevokeRequest").int64("ID"))


def keepalive_request(obj: Any) -> LeaseKeepAliveRequest:
    return LeaseKeepAliveRequest(_Fields(obj, "LeaseKeepAliveRequest").int64("ID"))


def timetolive_request(obj: Any) -> LeaseTimeToLiveRequest:
    f = _Fields(obj, "LeaseTimeToLiveRequest")
    return LeaseTimeToLiveRequest(f.int64("ID"), f.boolean("keys"))


def leases_request(obj: Any) -> LeaseLeasesRequest:
    _Fields(obj, "LeaseLeasesRequest")
    return LeaseLeasesRequest()


# --------------------------------------------------------------------------- responses


def grant_json(r: LeaseGrantResponse) -> dict[str, Any]:
    return _fields(("header", _header(r.header)), ("ID", r.id), ("TTL", r.ttl), ("error", r.error))


def revoke_json(r: LeaseRevokeResponse) -> dict[str, Any]:
    return {"header": _header(r.header)}


def keepalive_json(r: LeaseKeepAliveResponse) -> dict[str, Any]:
    """grpc-gateway's answer on a stream: each message wrapped in "result"."""
    return {"result": _fields(("header", _header(r.header)), ("ID", r.id), ("TTL", r.ttl))}


def timetolive_json(r: LeaseTimeToLiveResponse) -> dict[str, Any]:
    keys = [base64.b64encode(k).decode("ascii") for k in r.keys]
    return _fields(
        ("header", _header(r.header)),
        ("ID", r.id),
        ("TTL", r.ttl),
        ("grantedTTL", r.granted_ttl),
        ("keys", keys),
    )


def leases_json(r: LeaseLeasesResponse) -> dict[str, Any]:
    return _fields(("header", _header(r.header)), ("leases", [_fields(("ID", s.id)) for s in r.leases]))


# path -> (request decoder, response encoder), as gateway.ENDPOINTS
LEASE_ENDPOINTS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], dict[str, Any]]]] = {
    "/v3/lease/grant": (grant_request, grant_json),
    "/v3/lease/revoke": (revoke_request, revoke_json),
    "/v3/kv/lease/revoke": (revoke_request, revoke_json),
    "/v3/lease/keepalive": (keepalive_request, keepalive_json),
    "/v3/lease/timetolive": (timetolive_request, timetolive_json),
    "/v3/kv/lease/timetolive": (timetolive_request, timetolive_json),
    "/v3/lease/leases": (leases_request, leases_json),
    "/v3/kv/lease/leases": (leases_request, leases_json),
}

__all__ = ["LEASE_ENDPOINTS"]
