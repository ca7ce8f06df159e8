"""The JSON gateway's lease routes (actors/gateway_lease.py): request decoding and etcd 3.4's response bytes.
The grant body is etcd's own, captured with curl (the etcd 3.4 reference, "HTTP/JSON gateway")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trikv.actors.gateway import gateway_routes
from trikv.actors.httpmsg import HttpRequest
from trikv.api import errors, rpc
from trikv.api.lease import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseStatus,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)

HEADER = rpc.ResponseHeader(1622177361155699721, 13195394291058371180, 9050, 6)
LEASE = 7668682508335494672


class LeaseBackend:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def handle(self, req: Any) -> Any:
        self.calls.append(req)
        if isinstance(req, LeaseGrantRequest):
            return LeaseGrantResponse(HEADER, LEASE, req.ttl)
        if isinstance(req, LeaseRevokeRequest):
            if req.id != LEASE:
                raise errors.LeaseNotFoundError()
            return LeaseRevokeResponse(HEADER)
        if isinstance(req, LeaseKeepAliveRequest):
            return LeaseKeepAliveResponse(HEADER, req.id, 30 if req.id == LEASE else 0)
        if isinstance(req, LeaseTimeToLiveRequest):
            if req.id != LEASE:
                return LeaseTimeToLiveResponse(HEADER, req.id, -1)
            return LeaseTimeToLiveResponse(HEADER, LEASE, 29, 30, (b"k", b"k2") if req.keys else ())
        if isinstance(req, LeaseLeasesRequest):
            return LeaseLeasesResponse(HEADER, (LeaseStatus(LEASE),))
        raise AssertionError(req)

    async def health(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> dict[str, str]:
        return {}


async def post(backend: LeaseBackend, path: str, body: str) -> tuple[int, bytes]:
    route = gateway_routes(backend)[path]
    resp = await route(HttpRequest("POST", path, path, "", (), body.encode()))
    return resp.status, resp.body


H = '"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9050","raft_term":"6"}'


@pytest.mark.parametrize(
    ("path", "body", "want"),
    [
        ("/v3/lease/grant", '{"TTL":30}', '{HDR,"ID":"7668682508335494672","TTL":"30"}'.replace("HDR", H)),
        ("/v3/lease/revoke", '{"ID":"7668682508335494672"}', "{HDR}".replace("HDR", H)),
        ("/v3/kv/lease/revoke", '{"ID":7668682508335494672}', "{HDR}".replace("HDR", H)),
        (
            "/v3/lease/keepalive",
            '{"ID":"7668682508335494672"}',
            '{"result":{HDR,"ID":"7668682508335494672","TTL":"30"}}'.replace("HDR", H),
        ),
        ("/v3/lease/keepalive", '{"ID":"5"}', '{"result":{HDR,"ID":"5"}}'.replace("HDR", H)),
        ("/v3/lease/timetolive", '{"ID":"5"}', '{HDR,"ID":"5","TTL":"-1"}'.replace("HDR", H)),
        (
            "/v3/kv/lease/timetolive",
            '{"ID":"7668682508335494672","keys":true}',
            '{HDR,"ID":"7668682508335494672","TTL":"29","grantedTTL":"30","keys":["aw==","azI="]}'.replace(
                "HDR", H
            ),
        ),
        ("/v3/lease/leases", "{}", '{HDR,"leases":[{"ID":"7668682508335494672"}]}'.replace("HDR", H)),
    ],
)
async def test_lease_routes_answer_etcds_json(path: str, body: str, want: str) -> None:
    status, got = await post(LeaseBackend(), path, body)
    assert (status, got.decode()) == (200, want)


async def test_lease_route_errors() -> None:
    backend = LeaseBackend()
    status, got = await post(backend, "/v3/lease/revoke", '{"ID":"1"}')
    assert status == 404
    assert json.loads(got) == {
        "error": "etcdserver: requested lease not found",
        "message": "etcdserver: requested lease not found",
        "code": 5,
    }
    status, got = await post(backend, "/v3/lease/grant", '{"TTL":"x"}')
    assert status == 400 and json.loads(got)["code"] == 3
    assert [type(c) for c in backend.calls] == [LeaseRevokeRequest]
