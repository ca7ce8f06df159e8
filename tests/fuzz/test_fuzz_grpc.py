"""Fuzz target: the gRPC layer (HTTP/2 on the client port: actors/grpc_server.py, grpc_call.py, grpc_services.py
and the protobuf-to-shape conversions behind every etcd method).

A real member's client port gets, over real TCP: calls on every etcd method path with protobuf bodies that
are arbitrary bytes, mutated encodings, or messages built field by field from the request type's descriptor
(every field of its type, edge integers, unknown enum values, nested messages); gRPC length-prefixed frames
that are malformed (compressed flag without an encoding, unknown flags, a length beyond the body, an
oversized length, a cut prefix, trailing bytes); bad or missing headers (content-type, te, method, unknown
:path, grpc-timeout, grpc-encoding); and raw HTTP/2 garbage after the preface. Every call the server answers
must end with a gRPC status (or be reset, or the connection closed), no traceback may be logged, and after
every example the member must answer a valid Range on a new connection.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import Member, Tracebacks, budget
from tests.grpc_client import GrpcTestClient, Result, frame
from trikv.actors.grpcpb import rpc_pb2 as P

TIMEOUT = 20.0  # seconds per example before it counts as a hang
ANSWER = 10.0  # a unary call's answer (a valid write is fsynced on a busy box)
STREAM_LOOK = 0.1  # how long a streaming call (or a garbage connection) is watched: a valid Watch never ends
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

METHODS: dict[str, Any] = {
    "/etcdserverpb.KV/Range": P.RangeRequest,
    "/etcdserverpb.KV/Put": P.PutRequest,
    "/etcdserverpb.KV/DeleteRange": P.DeleteRangeRequest,
    "/etcdserverpb.KV/Txn": P.TxnRequest,
    "/etcdserverpb.KV/Compact": P.CompactionRequest,
    "/etcdserverpb.Lease/LeaseGrant": P.LeaseGrantRequest,
    "/etcdserverpb.Lease/LeaseRevoke": P.LeaseRevokeRequest,
    "/etcdserverpb.Lease/LeaseTimeToLive": P.LeaseTimeToLiveRequest,
    "/etcdserverpb.Lease/LeaseLeases": P.LeaseLeasesRequest,
    "/etcdserverpb.Lease/LeaseKeepAlive": P.LeaseKeepAliveRequest,
    "/etcdserverpb.Watch/Watch": P.WatchRequest,
    "/etcdserverpb.Maintenance/Status": P.StatusRequest,
    "/etcdserverpb.Maintenance/Hash": P.HashRequest,
    "/etcdserverpb.Maintenance/HashKV": P.HashKVRequest,
    "/etcdserverpb.Maintenance/Snapshot": P.SnapshotRequest,
    "/etcdserverpb.Maintenance/Defragment": P.DefragmentRequest,
    "/etcdserverpb.Maintenance/Alarm": P.AlarmRequest,
    "/etcdserverpb.Maintenance/MoveLeader": P.MoveLeaderRequest,
    "/etcdserverpb.Cluster/MemberList": P.MemberListRequest,
    "/etcdserverpb.Cluster/MemberAdd": P.MemberAddRequest,
    "/etcdserverpb.Cluster/MemberRemove": P.MemberRemoveRequest,
    "/etcdserverpb.Cluster/MemberUpdate": P.MemberUpdateRequest,
    "/etcdserverpb.Cluster/MemberPromote": P.MemberPromoteRequest,
}
STREAMING = {
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Maintenance/Snapshot",
}
# Valid requests of these reconfigure the one-member cluster out of quorum, raise a cluster-wide alarm or
# rewrite the whole file: legitimate admin actions, not hostile input, so only raw bytes go to them.
_RECONFIGURE = {
    "/etcdserverpb.Maintenance/Alarm",
    "/etcdserverpb.Maintenance/MoveLeader",
    "/etcdserverpb.Maintenance/Defragment",
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberPromote",
}
TYPED_PATHS = sorted(p for p in METHODS if p not in _RECONFIGURE)
MAX_MESSAGE = 2 * 1024 * 1024  # about the server's limit (max-request-bytes + 512 KiB): beyond it, refused

EDGES = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), 2**32 - 1, 2**63 - 1, -(2**63), 2**64 - 1]
_F = FieldDescriptor
_RANGES = {
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
}


def _int(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [i for i in EDGES if lo <= i <= hi]
    return st.one_of(st.integers(max(lo, -5), min(hi, 1000)), st.sampled_from(edges), st.integers(lo, hi))


def _scalar(f: Any, depth: int) -> st.SearchStrategy[Any]:
    if f.type in _RANGES:
        return _int(*_RANGES[f.type])
    if f.type == _F.TYPE_BOOL:
        return st.booleans()
    if f.type == _F.TYPE_STRING:
        return st.text(max_size=24)
    if f.type == _F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=24), st.sampled_from([b"", b"\x00", b"fuzz", b"\xff"]))
    if f.type == _F.TYPE_ENUM:  # proto3 enums are open: unknown numbers reach the conversions too
        known = [v.number for v in f.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-2, 40))
    if f.type in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    return message(f.message_type, depth + 1)


def message(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """A message of the descriptor's type, each field unset or of its type (nested messages 2 deep)."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in desc.fields:
        if f.type == _F.TYPE_MESSAGE and (depth >= 2 or f.message_type.GetOptions().map_entry):
            continue
        value = _scalar(f, depth)
        fields[f.name] = st.lists(value, max_size=3) if f.is_repeated else value
    cls = desc._concrete_class
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: cls(**kw))


_TYPED = {
    path: message(METHODS[path].DESCRIPTOR).map(lambda m: m.SerializeToString()) for path in TYPED_PATHS
}


def _cut_or_flip(data: bytes, at: int, bit: int, cut: bool) -> bytes:
    if not data:
        return data
    at %= len(data)
    return data[:at] if cut else data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :]


def payloads(path: str) -> st.SearchStrategy[bytes]:
    raw = st.binary(max_size=120)
    typed = _TYPED.get(path)
    if typed is None:
        return raw
    mutated = st.builds(_cut_or_flip, typed, st.integers(0, 1 << 16), st.integers(0, 7), st.booleans())
    return st.one_of(typed, typed, mutated, raw)


@st.composite
def bodies(draw: st.DrawFn, path: str) -> bytes:
    """The DATA a call sends: length-prefixed messages, well framed or not."""
    msgs = draw(st.lists(payloads(path), min_size=1, max_size=3 if path in STREAMING else 1))
    framing = draw(
        st.sampled_from(["ok", "ok", "ok", "ok", "flag", "long", "huge", "short", "trail", "none"])
    )
    body = b"".join(frame(m) for m in msgs)
    if framing == "flag":  # compressed without grpc-encoding, or a flag gRPC does not define
        return frame(msgs[0], draw(st.sampled_from([1, 2, 128, 255])))
    if framing == "long":  # the prefix promises more than the stream carries
        return bytes([0]) + (len(msgs[0]) + draw(st.integers(1, 1000))).to_bytes(4, "big") + msgs[0]
    if framing == "huge":
        n = draw(st.sampled_from([MAX_MESSAGE + 1, 1 << 30, 2**32 - 1]))
        return bytes([0]) + n.to_bytes(4, "big") + msgs[0]
    if framing == "short":
        return body[: draw(st.integers(1, 4))]
    if framing == "trail":
        return body + draw(st.binary(min_size=1, max_size=8))
    if framing == "none":
        return b""
    return body


_HEADER_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
_HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
HEADER_FAULTS = st.one_of(
    st.just(("drop", "content-type")),
    st.just(("drop", "te")),
    st.just(("drop", ":path")),
    st.just(("drop", ":method")),
    st.tuples(st.just("content-type"), st.sampled_from(["text/plain", "application/grpc+json", "", "x"])),
    st.tuples(st.just(":method"), st.sampled_from(["GET", "PUT", "post", ""])),
    st.tuples(st.just("te"), st.sampled_from(["gzip", ""])),
    st.tuples(
        st.just("grpc-timeout"),
        st.one_of(st.sampled_from(["1n", "1S", "99999999H", "x", "", "5"]), _HEADER_VALUE),
    ),
    st.tuples(st.just("grpc-encoding"), st.sampled_from(["gzip", "identity", "snappy", ""])),
    st.tuples(st.just("hasleader"), st.sampled_from(["true", "false", "x"])),
    st.tuples(_HEADER_TOKEN, _HEADER_VALUE),
)
PATHS = st.one_of(
    st.sampled_from(sorted(METHODS)),
    st.sampled_from(sorted(METHODS)),
    st.sampled_from(
        [
            "/etcdserverpb.KV/Nope",
            "/etcdserverpb.Auth/Authenticate",
            "/nope.Service/Range",
            "/",
            "",
            "//",
            "/etcdserverpb.KV/Range/extra",
            "etcdserverpb.KV/Range",
        ]
    ),
    _HEADER_VALUE,
)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, list[tuple[str, str | None]], bytes]:
    """(path, header changes: (name, value) or (\"drop\", name), body)."""
    path = draw(PATHS)
    faults = draw(st.lists(HEADER_FAULTS, max_size=2)) if draw(st.integers(0, 3)) == 0 else []
    body = draw(bodies(path))
    return path, faults, body


def _headers(path: str, faults: list[tuple[str, str | None]]) -> list[tuple[bytes, bytes]]:
    headers = {
        ":method": "POST",
        ":scheme": "http",
        ":path": path,
        ":authority": "localhost",
        "content-type": "application/grpc",
        "te": "trailers",
    }
    extra: list[tuple[str, str]] = []
    for name, value in faults:
        if name == "drop":
            headers.pop(str(value), None)
        elif name in headers:
            headers[name] = str(value)
        else:
            extra.append((name, str(value)))
    return [(k.encode(), v.encode()) for k, v in [*headers.items(), *extra]]


class RawClient(GrpcTestClient):
    """The test client with h2's outbound checks off, so that it can send headers no client would."""

    def __init__(self, stream: trio.SocketStream) -> None:
        super().__init__(stream)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )

    async def read_once(self) -> None:
        try:
            await super().read_once()
        except h2.exceptions.ProtocolError:  # what the server sent after a GOAWAY: the connection is done
            self.closed = True


def check_answer(path: str, result: Result) -> None:
    """An answered call carries a gRPC status (headers-only or in the trailers)."""
    meta = result.trailers or result.headers
    assert "grpc-status" in meta, f"{path}: answer without grpc-status: {result!r}"
    assert 0 <= int(meta["grpc-status"]) <= 16, f"{path}: not a gRPC status: {meta['grpc-status']!r}"
    event(f"grpc-status {meta['grpc-status']}")


async def run_calls(m: Member, session: list[tuple[str, list[tuple[str, str | None]], bytes]]) -> None:
    client = RawClient(await trio.open_tcp_stream("127.0.0.1", m.client_port))
    try:
        client.conn.initiate_connection()
        await client.flush()
        sids: list[tuple[int, str]] = []
        try:
            for path, faults, body in session:
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(sid, _headers(path, faults))
                client.results[sid] = Result()
                await client.send_body(sid, body)
                sids.append((sid, path))
        except (h2.exceptions.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the server closed the connection on us (GOAWAY, then its close): a refusal
        for sid, path in sids:
            result = client.results[sid]
            streaming = path in STREAMING
            with trio.move_on_after(STREAM_LOOK if streaming else ANSWER) as scope:
                while not (result.ended or result.reset is not None or client.closed or client.goaway):
                    await client.read_once()
            if scope.cancelled_caught and not streaming:
                raise AssertionError(f"{path}: no answer, no reset, no close within {ANSWER} s")
            if result.ended:
                check_answer(path, result)
            if client.closed or client.goaway:  # refused: the server lingers, then closes
                return
    finally:
        await client.aclose()


async def probe(m: Member) -> None:
    """A valid call on a new connection is answered."""
    client = await GrpcTestClient.connect(m.client_port)
    try:
        request = P.RangeRequest(key=b"fuzz-probe", serializable=True)
        result = await client.call(
            "/etcdserverpb.KV/Range", frame(request.SerializeToString()), timeout=ANSWER
        )
        assert result.status == 0, f"the probe failed: {result.status} {result.message}"
    finally:
        await client.aclose()


async def calls_then_probe(m: Member, session: list[Any]) -> None:
    with trio.fail_after(TIMEOUT):
        await run_calls(m, session)
        await probe(m)


@budget(examples=300, deadline_ms=20_000)
@given(session=st.lists(calls(), min_size=1, max_size=3))
@example(session=[("/etcdserverpb.KV/Range", [], frame(b"\xff", 1))])
def test_grpc_calls(member: Member, module_tracebacks: Tracebacks, session: list[Any]) -> None:
    trio.run(calls_then_probe, member, session)
    module_tracebacks.check()
    member.alive()


# --------------------------------------------------------------------------- raw HTTP/2 after the preface


@st.composite
def h2_frames(draw: st.DrawFn) -> bytes:
    """One HTTP/2 frame with any type, flags and stream, its length field honest or not."""
    payload = draw(st.binary(max_size=40))
    length = len(payload) if draw(st.booleans()) else draw(st.integers(0, 2**24 - 1))
    ftype = draw(st.one_of(st.integers(0, 9), st.integers(0, 255)))
    flags = draw(st.integers(0, 255))
    sid = draw(st.one_of(st.integers(0, 5), st.integers(0, 2**31 - 1)))
    return length.to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


async def garbage(m: Member, settings_first: bool, chunks: list[bytes]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", m.client_port)
    try:
        head = PREFACE + (b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" if settings_first else b"")
        try:
            await stream.send_all(head)
            for chunk in chunks:
                await stream.send_all(chunk)
            with trio.move_on_after(STREAM_LOOK):  # whatever it answers (a GOAWAY), until it closes
                while await stream.receive_some(65536):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # it closed the connection: a refusal
    finally:
        await stream.aclose()


async def garbage_then_probe(m: Member, settings_first: bool, chunks: list[bytes]) -> None:
    with trio.fail_after(TIMEOUT):
        await garbage(m, settings_first, chunks)
        await probe(m)


@budget(examples=60, deadline_ms=20_000)
@given(
    settings_first=st.booleans(),
    chunks=st.lists(st.one_of(h2_frames(), st.binary(min_size=1, max_size=60)), min_size=1, max_size=4),
)
def test_http2_garbage(
    member: Member, module_tracebacks: Tracebacks, settings_first: bool, chunks: list[bytes]
) -> None:
    trio.run(garbage_then_probe, member, settings_first, chunks)
    module_tracebacks.check()
    member.alive()
