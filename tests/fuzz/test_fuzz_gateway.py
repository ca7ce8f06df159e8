"""Fuzz target: the JSON gateway and the HTTP/1.1 handling in front of it (actors/gateway*.py, actors/server.py).

Raw requests (any method, path, headers and body; JSON bodies with etcd's field names holding values of any
type, huge numbers, base64 garbage) go to a real member over a real socket. The answer must be HTTP; on an
API path it must be etcd's grpc-gateway error shape (`{"error","message","code"}` with the HTTP status of
that code) or a 200 with a JSON object, never a 500; no traceback may be logged; a valid range must be
answered afterwards on a new connection.
"""

from __future__ import annotations

import base64
import json
import socket
from typing import Any

import h11
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import Member, Tracebacks, budget, watchdog
from trikv.actors.gateway import ENDPOINTS, HTTP_STATUS
from trikv.api import errors

TIMEOUT = 15.0  # seconds per example before it counts as a hang

# The streaming paths (/v3/watch, /v3/maintenance/snapshot) answer for as long as the client listens: their
# unary error paths are covered by tests/test_gateway_watch.py; here every path must answer once.
API_PATHS = sorted(ENDPOINTS) + ["/v3beta/" + p[4:] for p in sorted(ENDPOINTS)]
OTHER_PATHS = [
    "/health",
    "/version",
    "/metrics",
    "/",
    "/v3/",
    "/v3/kv",
    "/v3/ws",
    "/v2/keys/a",
    "/%zz",
    "/v3/kv/range?x=1",
]

FIELDS = [
    "key", "range_end", "rangeEnd", "value", "lease", "prev_kv", "prevKv", "limit", "revision", "sort_order",
    "sort_target", "serializable", "keys_only", "count_only", "min_mod_revision", "max_mod_revision",
    "min_create_revision", "max_create_revision", "ignore_value", "ignore_lease", "compare", "success",
    "failure", "request_put", "request_range", "request_delete_range", "request_txn", "result", "target",
    "version", "create_revision", "mod_revision", "physical", "ID", "TTL", "keys", "linearizable", "action",
    "memberID", "alarm", "peerURLs", "isLearner",
]  # fmt: skip

B64_GARBAGE = st.sampled_from(
    ["", "=", "Zm9v", "Zm9v=", "Zm9", "!!!!", "Zm9v\n", "Zm9vYmFy====", "_-_-", "AAAA" * 50]
)
HUGE = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**40, 1e308, -1e308, 1.5, -0.0])
ENUM_NAMES = st.sampled_from(
    [
        "EQUAL",
        "GREATER",
        "LESS",
        "NOT_EQUAL",
        "VERSION",
        "CREATE",
        "MOD",
        "VALUE",
        "LEASE",
        "NONE",
        "ASCEND",
        "DESCEND",
        "KEY",
        "GET",
        "ACTIVATE",
        "NOSPACE",
        "x",
    ]
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HUGE,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    B64_GARBAGE,
    ENUM_NAMES,
    st.integers().map(str),
    HUGE.map(str),
)


def json_objects() -> st.SearchStrategy[Any]:
    """JSON objects with etcd's field names, nested (txn compares and ops), values of every type."""
    return st.recursive(
        json_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)), inner, max_size=6),
        ),
        max_leaves=20,
    )


B64 = st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode())
INT64S = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-3, 100))
INT_FIELDS = [
    "lease",
    "limit",
    "revision",
    "min_mod_revision",
    "max_mod_revision",
    "min_create_revision",
    "max_create_revision",
    "version",
    "create_revision",
    "mod_revision",
    "ID",
    "TTL",
    "memberID",
]
BOOL_FIELDS = [
    "prev_kv",
    "serializable",
    "keys_only",
    "count_only",
    "ignore_value",
    "ignore_lease",
    "physical",
    "keys",
    "linearizable",
    "isLearner",
]
typed_scalars: dict[str, st.SearchStrategy[Any]] = {
    **{name: B64 for name in ("key", "range_end", "value")},
    **{name: st.one_of(INT64S, INT64S.map(str)) for name in INT_FIELDS},
    **{name: st.booleans() for name in BOOL_FIELDS},
    **{name: ENUM_NAMES for name in ("sort_order", "sort_target", "result", "target", "action", "alarm")},
}


def typed_object(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """An object whose fields mostly have the types etcd's JSON wants (nested compares and ops in a txn)."""
    fields = dict(typed_scalars)
    if depth < 2:
        op = st.fixed_dictionaries(
            {},
            optional={
                "request_put": typed_object(depth + 1),
                "request_range": typed_object(depth + 1),
                "request_delete_range": typed_object(depth + 1),
                "request_txn": typed_object(depth + 1),
            },
        )
        fields.update(
            compare=st.lists(typed_object(depth + 1), max_size=3),
            success=st.lists(op, max_size=3),
            failure=st.lists(op, max_size=2),
        )
    key = fields.pop("key")
    return st.fixed_dictionaries({"key": key}, optional=fields)


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    typed_object().map(_body),
    typed_object().map(_body),
    json_objects().map(_body),
    st.dictionaries(st.sampled_from(FIELDS), json_scalars, max_size=6).map(_body),
    st.binary(max_size=80),
    st.text(max_size=40).map(str.encode),
    json_objects().map(_body).flatmap(lambda b: st.sampled_from([b[: len(b) // 2], b + b"}", b"[" + b])),
)
# one_of draws its branches about evenly: the repeats make most requests POSTs to API paths (the gateway)
methods = st.one_of(
    st.just("POST"),
    st.just("POST"),
    st.just("POST"),
    st.sampled_from(["POST", "GET", "PUT", "HEAD", "DELETE", "OPTIONS"]),
    st.text("ABCXYZ", max_size=8),
)
paths = st.one_of(
    st.sampled_from(API_PATHS),
    st.sampled_from(API_PATHS),
    st.sampled_from(API_PATHS),
    st.sampled_from(OTHER_PATHS),
    st.text(max_size=20).map(lambda t: "/" + t),
)
token = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
headers = st.lists(
    st.one_of(
        st.tuples(token, st.text(max_size=20)),
        st.tuples(
            st.sampled_from(
                [
                    "content-type",
                    "transfer-encoding",
                    "content-length",
                    "expect",
                    "connection",
                    "upgrade",
                    "grpc-timeout",
                    "te",
                ]
            ),
            st.text(max_size=12),
        ),
    ),
    max_size=3,
).flatmap(lambda h: st.sampled_from([[], h]))


def raw_request(method: str, path: str, hdrs: list[tuple[str, str]], body: bytes, framing: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    for name, value in hdrs:
        head += f"{name}: {value}\r\n"
    if framing == "length":
        head += f"content-length: {len(body)}\r\n"
    elif framing == "chunked":
        head += "transfer-encoding: chunked\r\n"
        body = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + body


def roundtrip(port: int, data: bytes, head: bool = False) -> tuple[int, bytes] | None:
    """Send raw bytes, read one response (None when the server closed without one)."""
    conn = h11.Connection(h11.CLIENT)
    status, body = 0, bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # nothing more comes: a request waiting for its body ends now
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
                continue
            if isinstance(ev, h11.Response):
                status = ev.status_code
                if head:  # the answer to HEAD has no body, whatever content-length says
                    return status, b""
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return status, bytes(body)
            elif isinstance(ev, h11.ConnectionClosed):
                return None


def check_answer(method: str, path: str, answer: tuple[int, bytes] | None) -> None:
    if answer is None:
        event("closed without an answer")
        return
    status, body = answer
    event(f"HTTP {status}")
    if status in (400, 501) and body.startswith(f"{status} ".encode()):
        event(
            f"HTTP-level {status}"
        )  # h11 refused the request itself (bad header, framing): Go's text answer
        return
    assert status < 500, (status, body)
    api = path.split("?")[0] in API_PATHS and method == "POST"
    if not api or status in (404, 405, 413):
        return
    doc = json.loads(body)
    assert isinstance(doc, dict), body
    if status != 200:
        assert set(doc) == {"error", "message", "code"}, doc
        assert doc["error"] == doc["message"] and doc["message"], doc
        assert HTTP_STATUS[doc["code"]] == status, doc
        assert doc["code"] not in (errors.GrpcCode.INTERNAL, errors.GrpcCode.UNKNOWN), doc
        event(f"code {doc['code']} {doc['message'][:30]}")


def probe(port: int) -> None:
    body = json.dumps({"key": base64.b64encode(b"fuzz-probe").decode()}).encode()
    answer = roundtrip(port, raw_request("POST", "/v3/kv/range", [], body, "length"))
    assert answer is not None and answer[0] == 200, answer
    assert "header" in json.loads(answer[1])


@budget(examples=200, deadline_ms=20_000)
@given(
    method=methods,
    path=paths,
    hdrs=headers,
    body=bodies,
    framing=st.sampled_from(["length", "length", "chunked", "none"]),
)
@example(
    method="POST",
    path="/v3/kv/range",
    hdrs=[],
    body=b'{"key":"Zm9v","limit":"9223372036854775808"}',
    framing="length",
)
@example(method="POST", path="/v3/kv/put", hdrs=[], body=b'{"key":"Zm9v","lease":1e308}', framing="length")
@example(
    method="POST",
    path="/v3/kv/txn",
    hdrs=[],
    body=b'{"compare":[{"target":"VALUE","key":"Zm9v"}]}',
    framing="length",
)
def test_gateway(
    member: Member, module_tracebacks: Tracebacks, method: str, path: str, hdrs: list[tuple[str, str]], body: bytes,
    framing: str,
) -> None:  # fmt: skip
    with watchdog(TIMEOUT + 5):
        data = raw_request(method, path, hdrs, body, framing)
        check_answer(method, path, roundtrip(member.client_port, data, head=method == "HEAD"))
        probe(member.client_port)
    module_tracebacks.check()
    member.alive()
