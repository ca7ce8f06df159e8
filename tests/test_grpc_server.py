"""The gRPC surface over a real loopback socket against a fake Handlers: framing, errors, limits, hygiene."""

from __future__ import annotations

import functools
from typing import Any

import h2.errors
import h2.settings
import pytest
import trio

from tests.grpc_client import HOST, GrpcTestClient, Result, frame
from trikv.actors import grpc_call, grpc_status, grpc_streams
from trikv.actors.grpcpb import rpc_pb2
from trikv.actors.server import ClientServer
from trikv.api import errors, protocol, rpc
from trikv.api.errors import GrpcCode

HEADER = rpc.ResponseHeader(cluster_id=7, member_id=9, revision=42, raft_term=3)
RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"


class FakeHandlers:
    """Answers from canned shapes; records every request and every cancelled handler."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.fail_with: BaseException | None = None
        self.leader = True
        self.cancelled = 0
        self.value = b"v"

    async def handle(self, req: Any) -> Any:
        self.seen.append(req)
        if self.fail_with is not None:
            raise self.fail_with
        if isinstance(req, rpc.RangeRequest):
            if req.key == b"hang":
                try:
                    await trio.sleep_forever()
                except trio.Cancelled:
                    self.cancelled += 1
                    raise
            kv = rpc.KeyValue(req.key, 2, 3, 1, self.value)
            return rpc.RangeResponse(HEADER, (kv,), count=1)
        if isinstance(req, rpc.PutRequest):
            return rpc.PutResponse(HEADER)
        if isinstance(req, rpc.TxnRequest):
            return rpc.TxnResponse(HEADER, True, (rpc.PutResponse(HEADER), rpc.RangeResponse(HEADER)))
        if isinstance(req, protocol.StatusRequest):
            return protocol.StatusResponse(HEADER, version="3.4.0", db_size=123, leader=9, raft_index=5)
        if isinstance(req, protocol.MemberListRequest):
            return protocol.MemberListResponse(
                HEADER, (protocol.Member(9, "a", ("http://p",), ("http://c",)),)
            )
        raise errors.InvalidRequestError("unexpected")

    def has_leader(self) -> bool:
        return self.leader

    async def health(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> dict[str, str]:
        return {"etcdserver": "3.4.0", "etcdcluster": "3.4.0"}


@pytest.fixture
def fake() -> FakeHandlers:
    return FakeHandlers()


@pytest.fixture
async def server(nursery: trio.Nursery, fake: FakeHandlers) -> ClientServer:
    srv = ClientServer(fake)  # type: ignore[arg-type]
    srv.port = await nursery.start(srv.serve, HOST, 0)  # type: ignore[attr-defined]
    return srv


async def client(server: ClientServer, **kw: Any) -> GrpcTestClient:
    return await GrpcTestClient.connect(server.port, **kw)  # type: ignore[attr-defined]


def rng(key: bytes, **kw: Any) -> bytes:
    return rpc_pb2.RangeRequest(key=key, **kw).SerializeToString()


async def test_unary_calls_convert_shapes_both_ways(server: ClientServer, fake: FakeHandlers) -> None:
    c = await client(server)
    r = await c.call(RANGE, frame(rng(b"foo", range_end=b"fop", keys_only=True, revision=4, sort_order=2)))
    assert (r.headers[":status"], r.headers["content-type"], r.status) == ("200", "application/grpc", 0)
    resp = rpc_pb2.RangeResponse.FromString(r.messages()[0])
    assert (resp.header.revision, resp.header.member_id, resp.count) == (42, 9, 1)
    assert (resp.kvs[0].key, resp.kvs[0].value, resp.kvs[0].mod_revision) == (b"foo", b"v", 3)
    assert fake.seen[-1] == rpc.RangeRequest(
        b"foo", b"fop", revision=4, sort_order=rpc.SortOrder.DESCEND, keys_only=True
    )
    txn = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(result=3, target=3, key=b"k", value=b"x")],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k", value=b"y"))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k"))],
    )
    r = await c.call("/etcdserverpb.KV/Txn", frame(txn.SerializeToString()))
    got = rpc_pb2.TxnResponse.FromString(r.messages()[0])
    assert got.succeeded and [x.WhichOneof("response") for x in got.responses] == [
        "response_put",
        "response_range",
    ]
    assert fake.seen[-1] == rpc.TxnRequest(
        (rpc.Compare(rpc.CompareResult.NOT_EQUAL, rpc.CompareTarget.VALUE, b"k", b"x"),),
        (rpc.PutRequest(b"k", b"y"),),
        (rpc.RangeRequest(b"k"),),
    )
    r = await c.call("/etcdserverpb.Maintenance/Status", frame(b""))
    st = rpc_pb2.StatusResponse.FromString(r.messages()[0])
    assert (st.version, st.dbSize, st.leader, st.raftIndex) == ("3.4.0", 123, 9, 5)
    r = await c.call("/etcdserverpb.Cluster/MemberList", frame(b""))
    ml = rpc_pb2.MemberListResponse.FromString(r.messages()[0])
    assert [(m.ID, m.name, list(m.peerURLs), list(m.clientURLs)) for m in ml.members] == [
        (9, "a", ["http://p"], ["http://c"])
    ]


async def test_http1_still_served_on_the_same_port(server: ClientServer) -> None:
    stream = await trio.open_tcp_stream(HOST, server.port)  # type: ignore[attr-defined]
    await stream.send_all(b"GET /version HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b'"etcdserver":"3.4.0"' in data


ALL_ERRORS = sorted(errors._BY_MESSAGE.values(), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_error_table_maps_every_etcd_error(cls: type[errors.EtcdError]) -> None:
    """etcd's rpctypes: the code and the exact message (clientv3 retries on Unavailable, etcdctl prints it)."""
    assert grpc_status.status_of(cls()) == (int(cls.code), cls.message)
    assert cls.message.startswith("etcdserver: ")


def test_error_table_codes_of_note() -> None:
    # A wrong code makes etcdctl hang (retrying a non-retryable error) or retry a write.
    assert grpc_status.status_of(errors.NoLeaderError())[0] == GrpcCode.UNAVAILABLE
    assert grpc_status.status_of(errors.CompactedError())[0] == GrpcCode.OUT_OF_RANGE
    assert grpc_status.status_of(errors.MemberNotFoundError())[0] == GrpcCode.NOT_FOUND
    assert grpc_status.status_of(errors.RequestTooLargeError())[0] == GrpcCode.INVALID_ARGUMENT
    assert grpc_status.status_of(ValueError("bug")) == (13, "etcdserver: internal error")


def test_grpc_message_percent_encoding() -> None:
    text = "50% done: ключ\n"
    encoded = grpc_status.percent_encode(text)
    assert encoded == "50%25 done: %D0%BA%D0%BB%D1%8E%D1%87%0A"
    assert grpc_status.percent_decode(encoded) == text


async def test_errors_are_trailers_only_with_etcd_code_and_message(
    server: ClientServer, fake: FakeHandlers
) -> None:
    c = await client(server)
    for err in (errors.CompactedError(), errors.NoLeaderError(), errors.InvalidRequestError("bad 100% ✓")):
        fake.fail_with = err
        r = await c.call(PUT, frame(rpc_pb2.PutRequest(key=b"k").SerializeToString()))
        assert not r.trailers and not r.data  # trailers-only: one HEADERS frame with END_STREAM
        assert (r.status, r.message) == (int(err.code), err.text)
    fake.fail_with = RuntimeError("boom")
    r = await c.call(PUT, frame(rpc_pb2.PutRequest(key=b"k").SerializeToString()))
    assert (r.status, r.message) == (13, "etcdserver: internal error")


async def test_require_leader_metadata(server: ClientServer, fake: FakeHandlers) -> None:
    c = await client(server)
    fake.leader = False
    r = await c.call(RANGE, frame(rng(b"a")), [("hasleader", "true")])
    assert (r.status, r.message) == (GrpcCode.UNAVAILABLE, "etcdserver: no leader")
    r = await c.call(RANGE, frame(rng(b"a")))  # without the metadata the request is served
    assert r.status == 0


async def test_unknown_service_and_method_and_unbuilt_services(server: ClientServer) -> None:
    c = await client(server)
    r = await c.call("/etcdserverpb.Nope/Range", frame(b""))
    assert (r.status, r.message) == (GrpcCode.UNIMPLEMENTED, "unknown service etcdserverpb.Nope")
    r = await c.call("/etcdserverpb.KV/Nope", frame(b""))
    assert (r.status, r.message) == (
        GrpcCode.UNIMPLEMENTED,
        "unknown method Nope for service etcdserverpb.KV",
    )
    for path in ("/etcdserverpb.Auth/AuthEnable", "/etcdserverpb.Auth/UserAdd"):  # a service not built yet
        assert (await c.call(path, frame(b""))).status == GrpcCode.UNIMPLEMENTED
    assert (await c.call(RANGE, frame(rng(b"a")))).status == 0  # the connection still serves


async def test_bad_lengths_bad_protobuf_and_compression(server: ClientServer) -> None:
    c = await client(server)
    r = await c.call(RANGE, frame(rng(b"a"))[:-1])  # the declared length is never reached
    assert r.status == GrpcCode.INTERNAL and "one request message" in r.message
    r = await c.call(RANGE, frame(rng(b"a")) * 2)
    assert r.status == GrpcCode.INTERNAL
    r = await c.call(RANGE, frame(b"\xff\xff\xff"))
    assert r.status == GrpcCode.INTERNAL and r.message.startswith("grpc: error unmarshalling request")
    r = await c.call(RANGE, frame(rng(b"a"), flag=1), [("grpc-encoding", "gzip")])
    assert (r.status, r.message) == (12, 'grpc: Decompressor is not installed for grpc-encoding "gzip"')
    assert (await c.call(RANGE, frame(rng(b"a")))).status == 0


async def test_enum_values_etcd_does_not_have_are_typed_errors(
    server: ClientServer, fake: FakeHandlers
) -> None:
    c = await client(server)
    r = await c.call(RANGE, frame(rng(b"a", sort_order=7)))
    assert (r.status, r.message) == (GrpcCode.INVALID_ARGUMENT, "etcdserver: invalid sort option")
    txn = rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(result=9, target=0, key=b"k", version=1)])
    r = await c.call("/etcdserverpb.KV/Txn", frame(txn.SerializeToString()))
    assert (r.status, r.message) == (GrpcCode.INVALID_ARGUMENT, "etcdserver: invalid request")
    assert fake.seen == []


async def test_malformed_timeout_and_wrong_content_type(server: ClientServer, fake: FakeHandlers) -> None:
    c = await client(server)
    r = await c.call(RANGE, frame(rng(b"a")), [("grpc-timeout", "5x")])
    assert (r.status, r.message) == (GrpcCode.INTERNAL, "transport: malformed grpc-timeout: '5x'")
    r = await c.call(RANGE, frame(rng(b"a")), [("grpc-timeout", "123456789S")])  # 9 digits: too many
    assert r.status == GrpcCode.INTERNAL
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(
        sid,
        [(b":method", b"POST"), (b":scheme", b"http"), (b":path", RANGE.encode()), (b":authority", b"x"),
         (b"content-type", b"application/json")],
        end_stream=True,
    )  # fmt: skip
    c.results[sid] = Result()
    await c.flush()
    r = await c.wait(sid)
    assert (r.headers[":status"], r.status) == ("415", GrpcCode.INTERNAL)
    assert fake.seen == []
    assert (await c.call(RANGE, frame(rng(b"a")), [("grpc-timeout", "2S")])).status == 0


async def test_oversized_message_is_resource_exhausted(server: ClientServer, fake: FakeHandlers) -> None:
    limit = protocol.DEFAULT_MAX_REQUEST_BYTES + protocol.FRAME_OVERHEAD_BYTES
    c = await client(server)
    sid = c.start(PUT)
    await c.send_body(sid, (limit + 1).to_bytes(5, "big") + b"xx", end=False)  # only the prefix is needed
    r = await c.wait(sid)
    assert (r.status, r.message) == (8, f"grpc: received message larger than max ({limit + 1} vs. {limit})")
    assert fake.seen == []
    assert (await c.call(RANGE, frame(rng(b"a")))).status == 0


async def test_proposal_above_max_request_bytes_is_too_large(
    server: ClientServer, fake: FakeHandlers
) -> None:
    """Between max-request-bytes and the transport limit: etcd's own error, and nothing reaches Handlers."""
    c = await client(server)
    put = rpc_pb2.PutRequest(key=b"k", value=b"a" * 1_600_000).SerializeToString()
    r = await c.call(PUT, frame(put))
    assert (r.status, r.message) == (GrpcCode.INVALID_ARGUMENT, "etcdserver: request is too large")
    assert fake.seen == []
    put = rpc_pb2.PutRequest(key=b"k", value=b"a" * 1_500_000).SerializeToString()
    assert (await c.call(PUT, frame(put))).status == 0


async def test_flow_control_both_ways(server: ClientServer, fake: FakeHandlers) -> None:
    """A 1 MiB request exceeds the initial windows (the server opens them as it buffers); a 1 MiB answer
    exceeds the client's 64 KiB window (the server waits for the client's window updates)."""
    c = await client(server)
    big = b"x" * (1 << 20)
    r = await c.call(PUT, frame(rpc_pb2.PutRequest(key=b"k", value=big).SerializeToString()))
    assert r.status == 0 and fake.seen[-1].value == big
    fake.value = big
    r = await c.call(RANGE, frame(rng(b"k")))
    assert r.status == 0 and rpc_pb2.RangeResponse.FromString(r.messages()[0]).kvs[0].value == big
    # Without window updates from the client the answer stalls at its window, then completes when opened.
    c2 = await client(server, auto_ack=False)
    sid = c2.start(RANGE)
    await c2.send_body(sid, frame(rng(b"k")))
    with trio.move_on_after(0.5):
        await c2.wait(sid)
    assert not c2.results[sid].ended and len(c2.results[sid].data) == 65535
    c2.conn.increment_flow_control_window(1 << 21)
    c2.conn.increment_flow_control_window(1 << 21, stream_id=sid)
    await c2.flush()
    assert (await c2.wait(sid)).status == 0 and len(c2.results[sid].data) > 1 << 20


async def test_grpc_timeout_is_deadline_exceeded_and_cancels(
    server: ClientServer, fake: FakeHandlers
) -> None:
    c = await client(server)
    start = trio.current_time()
    r = await c.call(RANGE, frame(rng(b"hang")), [("grpc-timeout", "100m")])
    assert (r.status, r.message) == (GrpcCode.DEADLINE_EXCEEDED, "context deadline exceeded")
    assert trio.current_time() - start < 2 and fake.cancelled == 1


async def test_client_reset_cancels_the_handler(server: ClientServer, fake: FakeHandlers) -> None:
    c = await client(server)
    sid = c.start(RANGE)
    await c.send_body(sid, frame(rng(b"hang")))
    with trio.fail_after(5):
        while not fake.seen:
            await trio.sleep(0.01)
    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    await c.flush()
    with trio.fail_after(5):
        while fake.cancelled == 0:
            await trio.sleep(0.01)
    assert (await c.call(RANGE, frame(rng(b"a")))).status == 0


async def test_reset_flood_gets_goaway_and_others_are_served(server: ClientServer) -> None:
    c = await client(server)
    for _ in range(300):  # rapid reset: open and cancel at once, over and over
        sid = c.start(RANGE)
        c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    await c.flush()
    await c.read_until_closed()
    assert c.goaway is not None and c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert c.goaway.additional_data == b"too_many_resets"
    other = await client(server)
    assert (await other.call(RANGE, frame(rng(b"a")))).status == 0


async def test_malformed_frames_close_only_that_connection(server: ClientServer) -> None:
    c = await client(server)
    # A DATA frame on stream 0 is a connection error (RFC 9113 6.1).
    await c.stream.send_all(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    await c.read_until_closed()
    assert c.goaway is not None and c.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    raw = await trio.open_tcp_stream(HOST, server.port)  # type: ignore[attr-defined]
    await raw.send_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64)  # garbage after the preface
    with trio.fail_after(5):
        while await raw.receive_some(4096):
            pass
    other = await client(server)
    assert (await other.call(RANGE, frame(rng(b"a")))).status == 0


async def test_too_many_pings_get_goaway(server: ClientServer) -> None:
    c = await client(server)
    for i in range(4):
        c.conn.ping(b"%08d" % i)
    await c.flush()
    await c.read_until_closed()
    assert c.goaway is not None and c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert c.goaway.additional_data == b"too_many_pings"


async def test_settings_limit_streams_and_headers(server: ClientServer) -> None:
    c = await client(server)
    assert (await c.call(RANGE, frame(rng(b"a")))).status == 0
    s = h2.settings.SettingCodes
    assert c.remote_settings[s.MAX_CONCURRENT_STREAMS] == 256
    assert c.remote_settings[s.MAX_HEADER_LIST_SIZE] == 64 * 1024


async def test_streams_beyond_the_limit_and_oversized_headers_close_that_connection(
    nursery: trio.Nursery, fake: FakeHandlers
) -> None:
    srv = ClientServer(fake)  # type: ignore[arg-type]
    srv.grpc_limits = grpc_call.Limits(max_message_bytes=1 << 20, max_streams=2)
    port = await nursery.start(srv.serve, HOST, 0)
    c = await GrpcTestClient.connect(port)  # it has not read the server's SETTINGS: it opens 3 streams
    for _ in range(3):
        sid = c.start(RANGE)
        await c.send_body(sid, frame(rng(b"hang")), end=True)
        with trio.fail_after(5):
            while len(fake.seen) < min(sid // 2 + 1, 2):  # the first two are being served
                await trio.sleep(0.01)
    await c.read_until_closed()
    assert c.goaway is not None and c.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    with trio.fail_after(5):  # the calls of the closed connection are cancelled
        while fake.cancelled < 2:
            await trio.sleep(0.01)
    c = await GrpcTestClient.connect(port)
    c.start(RANGE, [("x-big", "a" * 70_000)])  # above the advertised 64 KiB header list
    await c.flush()
    await c.read_until_closed()
    assert c.goaway is not None and c.goaway.error_code != 0
    other = await GrpcTestClient.connect(port)
    assert (await other.call(RANGE, frame(rng(b"a")))).status == 0


async def test_shutdown_sends_goaway_with_last_stream_id(fake: FakeHandlers) -> None:
    srv = ClientServer(fake)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        port = await nursery.start(functools.partial(srv.serve, HOST, 0))
        c = await GrpcTestClient.connect(port)
        assert (await c.call(RANGE, frame(rng(b"a")))).status == 0
        nursery.cancel_scope.cancel()
    await c.read_until_closed()
    assert c.goaway is not None and c.goaway.error_code == 0 and c.goaway.last_stream_id == 1


# --------------------------------------------------------------------------- streams (actors/grpc_streams.py)

KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"


class FakeStreams(FakeHandlers):
    """`stream` answers every keep-alive (a lease id) with its TTL, the way the lease handler will."""

    async def stream(self, first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: Any) -> None:
        await emit(first)
        async for lease_id in inbound:
            if lease_id == 13:
                raise errors.LeaseNotFoundError()
            await emit(lease_id)


@pytest.fixture
async def stream_server(nursery: trio.Nursery) -> tuple[ClientServer, FakeStreams]:
    fake = FakeStreams()
    srv = ClientServer(fake)  # type: ignore[arg-type]
    bridge = grpc_streams.bidi(
        fake,
        rpc_pb2.LeaseKeepAliveRequest,
        lambda m: m.ID,
        lambda lease_id: rpc_pb2.LeaseKeepAliveResponse(ID=lease_id, TTL=60),
        no_leader_grace=0.3,
    )
    srv.grpc_services = {**srv.grpc_services, "etcdserverpb.Lease": {"LeaseKeepAlive": bridge}}
    srv.port = await nursery.start(srv.serve, HOST, 0)  # type: ignore[attr-defined]
    return srv, fake


def keepalive(lease_id: int) -> bytes:
    return frame(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id).SerializeToString())


async def test_bidi_stream_bridges_messages_both_ways(
    stream_server: tuple[ClientServer, FakeStreams],
) -> None:
    srv, _ = stream_server
    c = await client(srv)
    sid = c.start(KEEPALIVE)
    for lease_id in (1, 2, 3):
        await c.send_body(sid, keepalive(lease_id), end=False)
    with trio.fail_after(5):
        while len(c.results[sid].messages()) < 3:
            await c.read_once()
    await c.send_body(sid, b"", end=True)  # half-close: the handler's inbound ends, the stream ends OK
    r = await c.wait(sid)
    got = [rpc_pb2.LeaseKeepAliveResponse.FromString(m) for m in r.messages()]
    assert [(g.ID, g.TTL) for g in got] == [(1, 60), (2, 60), (3, 60)] and r.status == 0
    assert r.trailers and r.headers[":status"] == "200"  # headers, messages, then trailers


async def test_bidi_stream_error_ends_with_etcd_status(
    stream_server: tuple[ClientServer, FakeStreams],
) -> None:
    srv, _ = stream_server
    c = await client(srv)
    sid = c.start(KEEPALIVE)
    await c.send_body(sid, keepalive(1) + keepalive(13), end=False)
    r = await c.wait(sid)
    assert (r.status, r.message) == (GrpcCode.NOT_FOUND, "etcdserver: requested lease not found")
    assert len(r.messages()) == 1


async def test_require_leader_cancels_a_stream_without_leader(
    stream_server: tuple[ClientServer, FakeStreams],
) -> None:
    srv, fake = stream_server
    fake.leader = False
    c = await client(srv)
    start = trio.current_time()
    sid = c.start(KEEPALIVE, [("hasleader", "true")])
    await c.send_body(sid, keepalive(1), end=False)
    r = await c.wait(sid)
    assert (r.status, r.message) == (GrpcCode.UNAVAILABLE, "etcdserver: no leader")
    assert 0.3 <= trio.current_time() - start < 3
    sid = c.start(KEEPALIVE)  # without the metadata the stream lives on
    await c.send_body(sid, keepalive(2), end=False)
    with trio.move_on_after(0.6):
        await c.wait(sid)
    assert not c.results[sid].ended and len(c.results[sid].messages()) == 1
