"""etcd 3.4's HTTP/JSON gateway (grpc-gateway) on the client port: `POST /v3/kv/range` and friends.

curl users and tools written against etcd (e.g. etcd_load.py) speak this dialect, so it is matched
field for field: proto3 JSON as golang/protobuf's jsonpb writes it (original field names, int64/uint64
as strings, bytes as base64, zero/false/empty fields omitted, proto field order), and errors the way
grpc-gateway v1 reports them (`{"error","message","code"}` with its gRPC-code -> HTTP-status table).

Requests are decoded the way jsonpb + encoding/json decode them: the first JSON value of the body
(an empty body is an empty request), original or lowerCamelCase field names, integers as numbers or
strings, enums by name or number, unknown fields ignored. What cannot be decoded is a 400 with gRPC
code 3 and a message shaped like Go's, so a client sees the same text it would see from etcd.

Watch and leases are not served here (yet): their paths stay unrouted, i.e. 404.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from trikv.actors.server import Backend, HttpRequest, HttpResponse, Route, method_not_allowed
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

_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)\Z")


class BadRequestError(errors.InvalidRequestError):
    """A body jsonpb would refuse: not JSON, or a value of the wrong type for its field."""


# --------------------------------------------------------------------------- Go-shaped JSON syntax errors


def _go_quote_char(c: str) -> str:
    """Go's encoding/json quoteChar: the offending character as Go prints it in syntax errors."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    if c in named:
        return f"'{named[c]}'"
    if c == "\\":
        return "'\\\\'"
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"'\\x{ord(c):02x}'"
    return f"'{c}'"


def _container_at(doc: str, pos: int) -> str:
    """'{' or '[': the innermost container open at pos (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for c in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append(c)
        elif c in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else "{"


def _go_syntax_message(doc: str, exc: json.JSONDecodeError) -> str:
    """Translate Python's JSON error into what Go's scanner says about the same input."""
    pos = exc.pos
    if exc.msg.startswith("Invalid \\escape"):
        pos += 1
    if pos >= len(doc) or exc.msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    c = doc[pos]
    if exc.msg.startswith("Expecting value"):
        literal = {"n": "null", "t": "true", "f": "false"}.get(c)
        if literal is None:
            return f"invalid character {_go_quote_char(c)} looking for beginning of value"
        for i, want in enumerate(literal):
            if pos + i >= len(doc):
                return "unexpected end of JSON input"
            if doc[pos + i] != want:
                return f"invalid character {_go_quote_char(doc[pos + i])} in literal {literal} (expecting '{want}')"
        return f"invalid character {_go_quote_char(doc[pos + len(literal)])} after top-level value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {_go_quote_char(c)} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {_go_quote_char(c)} after object key"
    if exc.msg.startswith("Expecting ','"):
        where = "object key:value pair" if _container_at(doc, pos) == "{" else "array element"
        return f"invalid character {_go_quote_char(c)} after {where}"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {_go_quote_char(c)} in string literal"
    if exc.msg.startswith("Invalid \\escape"):
        return f"invalid character {_go_quote_char(c)} in string escape code"
    return f"invalid character {_go_quote_char(c)} looking for beginning of value"


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)  # NaN / Infinity: Python extensions Go's decoder does not know


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_body(body: bytes) -> dict[str, Any]:
    """The request object: the first JSON value of the body, as Go's json.Decoder reads it."""
    doc = body.decode("utf-8", errors="replace")
    start = len(doc) - len(doc.lstrip(" \t\r\n"))
    if start == len(doc):
        return {}  # grpc-gateway treats an empty body (io.EOF) as an empty request
    try:
        value, _ = _DECODER.raw_decode(doc, start)
    except json.JSONDecodeError as exc:
        raise BadRequestError(_go_syntax_message(doc, exc)) from None
    except ValueError as exc:  # a NaN/Infinity literal
        raise BadRequestError(f"invalid character '{str(exc)[0]}' looking for beginning of value") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type map[string]json.RawMessage"
        )
    return value


# --------------------------------------------------------------------------- proto3 JSON -> request shapes


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Fields:
    """The fields of one JSON request object, looked up by proto name or lowerCamelCase (jsonpb accepts both)."""

    def __init__(self, obj: Any, message: str) -> None:
        if not isinstance(obj, dict):
            if obj is not None:
                raise BadRequestError(
                    f"json: cannot unmarshal {_json_kind(obj)} into Go value of type etcdserverpb.{message}"
                )
            obj = {}
        self.obj: dict[str, Any] = obj
        self.message = message

    def raw(self, name: str) -> Any:
        value = self.obj.get(name)
        if value is None:
            value = self.obj.get(_camel(name))
        return value

    def has(self, name: str) -> bool:
        return self.raw(name) is not None

    def _wrong(self, name: str, value: Any, go_type: str) -> BadRequestError:
        return BadRequestError(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
            f"{self.message}.{name} of type {go_type}"
        )

    def int64(self, name: str) -> int:
        value = self.raw(name)
        if value is None:
            return 0
        if isinstance(value, str) and _INT_TEXT.match(value):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise self._wrong(name, value, "int64")
        if not _INT64[0] <= number <= _INT64[1]:
            raise BadRequestError(
                f"json: cannot unmarshal number {value} into Go struct field "
                f"{self.message}.{name} of type int64"
            )
        return number

    def boolean(self, name: str) -> bool:
        value = self.raw(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._wrong(name, value, "bool")
        return value

    def octets(self, name: str) -> bytes:
        value = self.raw(name)
        if value is None:
            return b""
        if not isinstance(value, str):
            raise self._wrong(name, value, "[]uint8")
        return _b64decode(value)

    def enumeration(self, name: str, cls: type[enum.IntEnum], go_type: str) -> Any:
        value = self.raw(name)
        if value is None:
            return cls(0)
        if isinstance(value, str) and value in cls.__members__:
            return cls[value]
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        raise BadRequestError(f"unknown value {json.dumps(value)} for enum etcdserverpb.{go_type}")

    def array(self, name: str) -> list[Any]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(name, value, "[]*etcdserverpb." + name)
        return value


def _b64decode(text: str) -> bytes:
    """Standard base64, or URL-safe (jsonpb falls back to it); Go's message when neither decodes."""
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")
    bad = next((i for i, c in enumerate(text) if c not in alphabet), len(text) - len(text) % 4)
    raise BadRequestError(f"illegal base64 data at input byte {bad}")


def range_request(obj: Any) -> rpc.RangeRequest:
    f = _Fields(obj, "RangeRequest")
    return rpc.RangeRequest(
        key=f.octets("key"),
        range_end=f.octets("range_end"),
        limit=f.int64("limit"),
        revision=f.int64("revision"),
        sort_order=f.enumeration("sort_order", rpc.SortOrder, "RangeRequest_SortOrder"),
        sort_target=f.enumeration("sort_target", rpc.SortTarget, "RangeRequest_SortTarget"),
        serializable=f.boolean("serializable"),
        keys_only=f.boolean("keys_only"),
        count_only=f.boolean("count_only"),
        min_mod_revision=f.int64("min_mod_revision"),
        max_mod_revision=f.int64("max_mod_revision"),
        min_create_revision=f.int64("min_create_revision"),
        max_create_revision=f.int64("max_create_revision"),
    )


def put_request(obj: Any) -> rpc.PutRequest:
    f = _Fields(obj, "PutRequest")
    return rpc.PutRequest(
        key=f.octets("key"),
        value=f.octets("value"),
        lease=f.int64("lease"),
        prev_kv=f.boolean("prev_kv"),
        ignore_value=f.boolean("ignore_value"),
        ignore_lease=f.boolean("ignore_lease"),
    )


def delete_range_request(obj: Any) -> rpc.DeleteRangeRequest:
    f = _Fields(obj, "DeleteRangeRequest")
    return rpc.DeleteRangeRequest(
        key=f.octets("key"), range_end=f.octets("range_end"), prev_kv=f.boolean("prev_kv")
    )


_UNION_FIELD = {
    rpc.CompareTarget.VERSION: "version",
    rpc.CompareTarget.CREATE: "create_revision",
    rpc.CompareTarget.MOD: "mod_revision",
    rpc.CompareTarget.LEASE: "lease",
}


def compare(obj: Any) -> rpc.Compare:
    """A Compare; `target_value` comes from the target_union member that `target` names."""
    f = _Fields(obj, "Compare")
    target = f.enumeration("target", rpc.CompareTarget, "Compare_CompareTarget")
    chosen: int | bytes
    if target == rpc.CompareTarget.VALUE:
        chosen = f.octets("value")
    else:
        chosen = f.int64(_UNION_FIELD[target])
    return rpc.Compare(
        result=f.enumeration("result", rpc.CompareResult, "Compare_CompareResult"),
        target=target,
        key=f.octets("key"),
        target_value=chosen,
        range_end=f.octets("range_end"),
    )


_REQUEST_OPS: dict[str, Callable[[Any], Any]] = {}


def request_op(obj: Any) -> Any:
    """One RequestOp: exactly one of request_range / request_put / request_delete_range / request_txn."""
    f = _Fields(obj, "RequestOp")
    present = [name for name in _REQUEST_OPS if f.has(name)]
    if not present:
        raise errors.KeyNotFoundError()  # etcd's checkRequestOp answers an empty op so
    if len(present) > 1:  # jsonpb would keep one of them at random (Go map order); refuse instead
        raise BadRequestError("etcdserver: a txn RequestOp must hold exactly one request")
    return _REQUEST_OPS[present[0]](f.raw(present[0]))


def txn_request(obj: Any) -> rpc.TxnRequest:
    f = _Fields(obj, "TxnRequest")
    return rpc.TxnRequest(
        compare=tuple(compare(c) for c in f.array("compare")),
        success=tuple(request_op(op) for op in f.array("success")),
        failure=tuple(request_op(op) for op in f.array("failure")),
    )


_REQUEST_OPS.update(
    {
        "request_range": range_request,
        "request_put": put_request,
        "request_delete_range": delete_range_request,
        "request_txn": txn_request,
    }
)


def compaction_request(obj: Any) -> rpc.CompactionRequest:
    f = _Fields(obj, "CompactionRequest")
    return rpc.CompactionRequest(revision=f.int64("revision"), physical=f.boolean("physical"))


def status_request(obj: Any) -> protocol.StatusRequest:
    _Fields(obj, "StatusRequest")
    return protocol.StatusRequest()


def member_list_request(obj: Any) -> protocol.MemberListRequest:
    f = _Fields(obj, "MemberListRequest")
    return protocol.MemberListRequest(linearizable=f.boolean("linearizable"))


# --------------------------------------------------------------------------- response shapes -> proto3 JSON


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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


def header_json(h: rpc.ResponseHeader) -> dict[str, Any]:
    return _proto3(
        ("cluster_id", h.cluster_id),
        ("member_id", h.member_id),
        ("revision", h.revision),
        ("raft_term", h.raft_term),
    )


def kv_json(kv: rpc.KeyValue) -> dict[str, Any]:
    return _proto3(
        ("key", kv.key),
        ("create_revision", kv.create_revision),
        ("mod_revision", kv.mod_revision),
        ("version", kv.version),
        ("value", kv.value),
        ("lease", kv.lease),
    )


def range_json(r: rpc.RangeResponse) -> dict[str, Any]:
    return _proto3(
        ("header", header_json(r.header)),
        ("kvs", [kv_json(kv) for kv in r.kvs]),
        ("more", r.more),
        ("count", r.count),
    )


def put_json(r: rpc.PutResponse) -> dict[str, Any]:
    return _proto3(("header", header_json(r.header)), ("prev_kv", r.prev_kv and kv_json(r.prev_kv)))


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


def go_json(obj: Any) -> bytes:
    """Compact JSON as Go's encoder writes it: raw UTF-8, but <, >, & and U+2028/9 escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if _GO_HTML_RE.search(text):  # these only ever occur inside strings, so a blanket replace is exact
        text = _GO_HTML_RE.sub(lambda m: _GO_HTML_ESCAPES[m.group()], text)
    return text.encode()


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
