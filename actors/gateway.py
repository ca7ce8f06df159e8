"""etcd 3.4's HTTP/JSON gateway (grpc-gateway) on the client port: `POST /v3/kv/range` and friends.

curl users and tools written against etcd (e.g. etcd_load.py) speak this dialect, so it is matched
field for field: proto3 JSON as golang/protobuf's jsonpb writes it (original field names, int64/uint64
as strings, bytes as base64, zero/false/empty fields omitted, proto field order), and errors the way
grpc-gateway v1 reports them (`{"error","message","code"}` with its gRPC-code -> HTTP-status table).

Requests are decoded in actors/gateway_requests.py; this module writes responses and routes paths. What
cannot be decoded is a 400 with gRPC code 3 and a message shaped like Go's.

Lease routes come from actors/gateway_lease.py (merged into ENDPOINTS); watch is not served here yet.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from trikv.actors.gateway_lease import LEASE_ENDPOINTS
from trikv.actors.gateway_requests import (
    BadRequestError,
    compaction_request,
    delete_range_request,
    member_list_request,
    parse_body,
    put_request,
    range_request,
    status_request,
    txn_request,
)
from trikv.actors.httpmsg import HttpRequest, HttpResponse, Route, method_not_allowed
from trikv.actors.wsession import Backend
from trikv.api import codec, errors, protocol, rpc

log = logging.getLogger("trikv.gateway")

GrpcCode = errors.GrpcCode

# grpc-gateway v1's runtime.HTTPStatusFromCode.
HTTP_STATUS: dict[int, int] = {
    GrpcCode.OK: 200,
    GrpcCode.CANCELLED: 408,
    GrpcCode.UNKNOWN: 500,
    GrpcCode.INVALID_ARGUMENT: 400,
    GrpcCode.DEADLINE_EXCEEDED: 504,
    GrpcCode.NOT_FOUND: 404,
    GrpcCode.ALREADY_EXISTS: 409,
    GrpcCode.PERMISSION_DENIED: 403,
    GrpcCode.RESOURCE_EXHAUSTED: 429,
    GrpcCode.FAILED_PRECONDITION: 400,
    GrpcCode.ABORTED: 409,
    GrpcCode.OUT_OF_RANGE: 400,
    GrpcCode.UNIMPLEMENTED: 501,
    GrpcCode.INTERNAL: 500,
    GrpcCode.UNAVAILABLE: 503,
    GrpcCode.DATA_LOSS: 500,
    GrpcCode.UNAUTHENTICATED: 401,
}

# grpc-gateway forwards the gRPC response's metadata; etcd's curl transcripts always carry this one.
_METADATA = (("grpc-metadata-content-type", "application/grpc"),)

# --------------------------------------------------------------------------- response shapes -> proto3 JSON


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _proto3(*fields: tuple[str, Any]) -> dict[str, Any]:
    """proto3 JSON in declaration order: zero values are omitted, int64s are strings, bytes are base64."""
    d: dict[str, Any] = {}
    for name, value in fields:
        if isinstance(value, dict):  # a nested message is always written, even when empty
            d[name] = value
        elif not value:
            continue
        elif isinstance(value, bool):
            d[name] = value
        elif isinstance(value, int):
            d[name] = str(value)
        elif isinstance(value, bytes):
            d[name] = _b64(value)
        elif isinstance(value, (list, tuple)):
            d[name] = list(value)
        else:
            d[name] = value
    return d


# The shapes every KV request answers with are written out field by field (what _proto3 does, without its
# per-field type dispatch): they are most of the gateway's responses.


def header_json(h: rpc.ResponseHeader) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if h.cluster_id:
        d["cluster_id"] = str(h.cluster_id)
    if h.member_id:
        d["member_id"] = str(h.member_id)
    if h.revision:
        d["revision"] = str(h.revision)
    if h.raft_term:
        d["raft_term"] = str(h.raft_term)
    return d


def kv_json(kv: rpc.KeyValue) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if kv.key:
        d["key"] = _b64(kv.key)
    if kv.create_revision:
        d["create_revision"] = str(kv.create_revision)
    if kv.mod_revision:
        d["mod_revision"] = str(kv.mod_revision)
    if kv.version:
        d["version"] = str(kv.version)
    if kv.value:
        d["value"] = _b64(kv.value)
    if kv.lease:
        d["lease"] = str(kv.lease)
    return d


def range_json(r: rpc.RangeResponse) -> dict[str, Any]:
    d: dict[str, Any] = {"header": header_json(r.header)}
    if r.kvs:
        d["kvs"] = [kv_json(kv) for kv in r.kvs]
    if r.more:
        d["more"] = True
    if r.count:
        d["count"] = str(r.count)
    return d


def put_json(r: rpc.PutResponse) -> dict[str, Any]:
    d: dict[str, Any] = {"header": header_json(r.header)}
    if r.prev_kv is not None:
        d["prev_kv"] = kv_json(r.prev_kv)
    return d


def delete_range_json(r: rpc.DeleteRangeResponse) -> dict[str, Any]:
    return _proto3(
        ("header", header_json(r.header)),
        ("deleted", r.deleted),
        ("prev_kvs", [kv_json(kv) for kv in r.prev_kvs]),
    )


def response_op_json(r: Any) -> dict[str, Any]:
    if isinstance(r, rpc.RangeResponse):
        return {"response_range": range_json(r)}
    if isinstance(r, rpc.PutResponse):
        return {"response_put": put_json(r)}
    if isinstance(r, rpc.DeleteRangeResponse):
        return {"response_delete_range": delete_range_json(r)}
    if isinstance(r, rpc.TxnResponse):
        return {"response_txn": txn_json(r)}
    raise TypeError(f"not a txn response op: {type(r).__name__}")


def txn_json(r: rpc.TxnResponse) -> dict[str, Any]:
    return _proto3(
        ("header", header_json(r.header)),
        ("succeeded", r.succeeded),
        ("responses", [response_op_json(op) for op in r.responses]),
    )


def compaction_json(r: rpc.CompactionResponse) -> dict[str, Any]:
    return {"header": header_json(r.header)}


def status_json(r: protocol.StatusResponse) -> dict[str, Any]:
    """etcd's StatusResponse declares camelCase proto names (dbSize, raftIndex, ...), hence these keys."""
    return _proto3(
        ("header", header_json(r.header)),
        ("version", r.version),
        ("dbSize", r.db_size),
        ("leader", r.leader),
        ("raftIndex", r.raft_index),
        ("raftTerm", r.raft_term),
        ("raftAppliedIndex", r.raft_applied_index),
        ("errors", r.errors),
        ("dbSizeInUse", r.db_size_in_use),
        ("isLearner", r.is_learner),
    )


def member_json(m: protocol.Member) -> dict[str, Any]:
    return _proto3(
        ("ID", m.id),
        ("name", m.name),
        ("peerURLs", m.peer_urls),
        ("clientURLs", m.client_urls),
        ("isLearner", m.is_learner),
    )


def member_list_json(r: protocol.MemberListResponse) -> dict[str, Any]:
    return _proto3(("header", header_json(r.header)), ("members", [member_json(m) for m in r.members]))


_GO_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_HTML_RE = re.compile("[<>&\u2028\u2029]")


# msgspec writes the bytes json.dumps(separators=(",", ":"), ensure_ascii=False) writes (compact, raw UTF-8,
# the same escapes; tests/test_gateway_json.py checks it), ~8x faster: it was a response's largest cost.
_ENCODE = msgspec.json.Encoder().encode
_GO_HTML_BYTES = re.compile(rb"[<>&]|\xe2\x80[\xa8\xa9]")  # the escapes below, in UTF-8


def go_json(obj: Any) -> bytes:
    """Compact JSON as Go's encoder writes it: raw UTF-8, but <, >, & and U+2028/9 escaped."""
    data: bytes = _ENCODE(obj)
    if _GO_HTML_BYTES.search(data):  # these only ever occur inside strings, so a blanket replace is exact
        text = _GO_HTML_RE.sub(lambda m: _GO_HTML_ESCAPES[m.group()], data.decode())
        return text.encode()
    return data


# --------------------------------------------------------------------------- routes


def error_response(err: errors.EtcdError) -> HttpResponse:
    """grpc-gateway v1's error body (errorBody: error, message, code) with its HTTP status for the code."""
    body = {"error": err.text, "message": err.text, "code": int(err.code)}
    return HttpResponse(HTTP_STATUS.get(int(err.code), 500), go_json(body), "application/json", _METADATA)


# path -> (request decoder, response encoder); the request's type picks its handler
ENDPOINTS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], dict[str, Any]]]] = {
    "/v3/kv/range": (range_request, range_json),
    "/v3/kv/put": (put_request, put_json),
    "/v3/kv/deleterange": (delete_range_request, delete_range_json),
    "/v3/kv/txn": (txn_request, txn_json),
    "/v3/kv/compaction": (compaction_request, compaction_json),
    "/v3/maintenance/status": (status_request, status_json),
    "/v3/cluster/member/list": (member_list_request, member_list_json),
}
ENDPOINTS.update(LEASE_ENDPOINTS)  # /v3/lease/* (actors/gateway_lease.py)


def _endpoint(
    backend: Backend,
    decode: Callable[[Any], Any],
    encode: Callable[[Any], dict[str, Any]],
    max_request_bytes: int,
) -> Route:
    async def route(req: HttpRequest) -> HttpResponse:
        if req.method != "POST":
            return method_not_allowed("POST")
        try:
            request = decode(parse_body(req.body))
            # Only a body above the limit can hold a request above it (base64 inflates, never shrinks).
            if len(req.body) > max_request_bytes and len(codec.encode(request)) > max_request_bytes:
                raise errors.RequestTooLargeError()
            result = await backend.handle(request)
            body = go_json(encode(result))
        except errors.EtcdError as err:
            return error_response(err)
        except Exception:
            log.exception("gateway: %s %s failed", req.method, req.path)
            return error_response(errors.InternalError())
        return HttpResponse(200, body, "application/json", _METADATA)

    return route


def gateway_routes(
    backend: Backend, *, max_request_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES
) -> Mapping[str, Route]:
    """The gateway's path -> handler table, for `serve_clients(..., routes=...)` / ClientServer.add_route."""
    return {
        path: _endpoint(backend, decode, encode, max_request_bytes)
        for path, (decode, encode) in ENDPOINTS.items()
    }


__all__ = ["ENDPOINTS", "HTTP_STATUS", "BadRequestError", "gateway_routes", "go_json", "parse_body"]
