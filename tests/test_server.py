"""The client server over real loopback sockets, against an in-memory twin of the Node backend."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import h11
import pytest
import trio
import trio_websocket

from trikv.actors import server as server_mod
from trikv.actors.server import serve_clients
from trikv.api import codec, errors, protocol, rpc
from trikv.api.protocol import ERR, OK, WS_PATH

HOST = "127.0.0.1"
CLIENT_MAX_MESSAGE = 8 * 1024 * 1024


def seq(*items: Any) -> Any:
    """A tuple typed Any: the shared shapes' `converter=tuple` fields confuse mypy's attrs plugin."""
    return items


def wrong(value: object) -> Any:
    """A deliberately mistyped field value, as a buggy or hostile client could send."""
    return value


class FakeBackend:
    """An in-memory twin of the Node: a flat key space plus hooks that make timing deterministic.

    Special keys: b"wait:<g>" blocks until gate g opens; b"open:<g>" opens it; b"barrier" blocks until
    `barrier_n` requests are inside at once; b"boom" raises a bug; b"unencodable" returns garbage.
    """

    def __init__(self) -> None:
        self.kv: dict[bytes, rpc.KeyValue] = {}
        self.rev = 1
        self.healthy: tuple[bool, str] = (True, "")
        self.gates: dict[bytes, trio.Event] = {}
        self.waiting = 0
        self.cancelled: list[bytes] = []
        self.barrier_n = 0
        self.barrier_in = 0
        self.barrier = trio.Event()

    def gate(self, name: bytes) -> trio.Event:
        return self.gates.setdefault(name, trio.Event())

    def header(self) -> rpc.ResponseHeader:
        return rpc.ResponseHeader(cluster_id=1, member_id=2, revision=self.rev, raft_term=3)

    async def handle(self, req: Any) -> Any:
        op = protocol.op_of(req)
        key = getattr(req, "key", b"k")
        if key == b"":
            raise errors.EmptyKeyError()
        if key == b"boom":
            raise RuntimeError("backend bug")
        if key == b"unencodable":
            return object()
        if key.startswith(b"wait:"):
            self.waiting += 1
            try:
                await self.gate(key[5:]).wait()
            except trio.Cancelled:
                self.cancelled.append(key)
                raise
            finally:
                self.waiting -= 1
        if key == b"barrier":
            self.barrier_in += 1
            if self.barrier_in >= self.barrier_n:
                self.barrier.set()
            await self.barrier.wait()
        if key.startswith(b"open:"):
            self.gate(key[5:]).set()
        return self.apply(op, req)

    def apply(self, op: str, req: Any) -> Any:
        if op == "put":
            prev = self.kv.get(req.key)
            self.rev += 1
            self.kv[req.key] = rpc.KeyValue(
                req.key,
                prev.create_revision if prev else self.rev,
                self.rev,
                (prev.version if prev else 0) + 1,
                req.value,
            )
            return rpc.PutResponse(self.header(), prev if req.prev_kv else None)
        if op == "range":
            kvs = tuple(kv for k, kv in sorted(self.kv.items()) if self._in(k, req.key, req.range_end))
            return rpc.RangeResponse(self.header(), seq(*kvs), False, len(kvs))
        if op == "delete_range":
            gone = [k for k in self.kv if self._in(k, req.key, req.range_end)]
            removed = tuple(self.kv.pop(k) for k in gone)
            if gone:
                self.rev += 1
            return rpc.DeleteRangeResponse(self.header(), len(gone), seq(*removed) if req.prev_kv else seq())
        if op == "txn":
            ok = all(self._compare(c) for c in req.compare)
            ops = req.success if ok else req.failure
            names = {rpc.PutRequest: "put", rpc.RangeRequest: "range", rpc.DeleteRangeRequest: "delete_range"}
            return rpc.TxnResponse(self.header(), ok, seq(*(self.apply(names[type(o)], o) for o in ops)))
        if op == "compact":
            return rpc.CompactionResponse(self.header())
        if op == "status":
            return protocol.StatusResponse(self.header(), version="3.4.23", leader=2, raft_index=self.rev)
        if op == "member_list":
            return protocol.MemberListResponse(
                self.header(), seq(protocol.Member(2, "n0", seq("http://127.0.0.1:2380")))
            )
        raise AssertionError(op)

    def _compare(self, c: rpc.Compare) -> bool:
        kv = self.kv.get(c.key)
        assert c.target == rpc.CompareTarget.VALUE and c.result == rpc.CompareResult.EQUAL
        return kv is not None and kv.value == c.target_value

    @staticmethod
    def _in(k: bytes, key: bytes, end: bytes) -> bool:
        return k == key if not end else key <= k < end

    async def health(self) -> tuple[bool, str]:
        return self.healthy

    def version(self) -> dict[str, str]:
        return {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}


@attrs.define
class Server:
    port: int
    backend: FakeBackend


@pytest.fixture
async def server(nursery: trio.Nursery) -> Server:
    backend = FakeBackend()
    port = await nursery.start(serve_clients, backend, HOST, 0)
    return Server(port, backend)


async def start_server(nursery: trio.Nursery, **kw: Any) -> Server:
    backend = FakeBackend()
    port = await nursery.start(functools.partial(serve_clients, backend, HOST, 0, **kw))
    return Server(port, backend)


@asynccontextmanager
async def ws_client(port: int) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    url = f"ws://{HOST}:{port}{WS_PATH}"
    async with trio_websocket.open_websocket_url(url, max_message_size=CLIENT_MAX_MESSAGE) as ws:
        yield ws


async def recv_items(ws: trio_websocket.WebSocketConnection) -> list[list[Any]]:
    msg = await ws.get_message()
    assert isinstance(msg, bytes)
    return protocol.decode_frame(msg)


async def call(ws: trio_websocket.WebSocketConnection, items: list[list[Any]]) -> dict[int, list[Any]]:
    """Send one frame, collect one response item per request id."""
    await ws.send_message(protocol.encode_frame(items))
    want = {item[0] for item in items}
    got: dict[int, list[Any]] = {}
    with trio.fail_after(10):
        while want - got.keys():
            for item in await recv_items(ws):
                assert item[0] not in got, "duplicate response"
                got[item[0]] = item
    return got


async def call1(ws: trio_websocket.WebSocketConnection, op: str, payload: Any) -> list[Any]:
    return (await call(ws, [[7, op, payload]]))[7]


def assert_err(item: list[Any], cls: type[errors.EtcdError]) -> errors.EtcdError:
    assert item[1] == ERR, item
    err = errors.from_wire(item[2])
    assert err.code == cls.code, item
    if cls is not errors.InvalidRequestError and cls.__module__ == errors.__name__:
        assert isinstance(err, cls), item
    return err


async def http_exchange(port: int, raw: bytes, n: int = 1) -> list[tuple[h11.Response, bytes]]:
    """Send raw bytes, parse n responses with h11 (as a client)."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        await stream.send_all(raw)
        return await read_responses(stream, n)


async def read_responses(stream: trio.SocketStream, n: int) -> list[tuple[h11.Response, bytes]]:
    conn = h11.Connection(h11.CLIENT)
    # Let the client state machine believe it sent n GETs so it accepts n responses.
    out = []
    with trio.fail_after(10):
        for _ in range(n):
            conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            conn.send(h11.EndOfMessage())
            resp, body = None, b""
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(ev, h11.Response):
                    resp = ev
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    break
                else:
                    raise AssertionError(ev)
            assert resp is not None
            out.append((resp, body))
            if conn.our_state is h11.MUST_CLOSE:
                break
            conn.start_next_cycle()
    return out


def get(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def header(resp: h11.Response, name: bytes) -> bytes | None:
    return next((v for k, v in resp.headers if k == name), None)


# --------------------------------------------------------------------------- HTTP


async def test_health_version_404_405(server: Server) -> None:
    [(resp, body)] = await http_exchange(server.port, get("/health"))
    assert resp.status_code == 200 and json.loads(body) == {"health": "true"}
    server.backend.healthy = (False, "NOSPACE")
    [(resp, body)] = await http_exchange(server.port, get("/health"))
    assert resp.status_code == 503 and json.loads(body) == {"health": "false", "reason": "NOSPACE"}
    [(resp, body)] = await http_exchange(server.port, get("/version"))
    assert resp.status_code == 200 and json.loads(body) == {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}
    assert header(resp, b"content-type") == b"application/json"
    [(resp, body)] = await http_exchange(
        server.port, get("/v3/kv/range", "POST", "Content-Length: 2\r\n") + b"{}"
    )
    assert resp.status_code == 404 and body == b"404 page not found\n"
    [(resp, body)] = await http_exchange(server.port, get(WS_PATH))  # no upgrade: not a page
    assert resp.status_code == 404
    [(resp, body)] = await http_exchange(server.port, get("/health", "POST", "Content-Length: 0\r\n"))
    assert resp.status_code == 405 and header(resp, b"allow") == b"GET"


async def test_keep_alive_and_pipelining(server: Server) -> None:
    got = await http_exchange(server.port, get("/health") + get("/nope") + get("/version"), n=3)
    assert [r.status_code for r, _ in got] == [200, 404, 200]
    # keep-alive then a WebSocket upgrade on the same TCP connection
    stream = await trio.open_tcp_stream(HOST, server.port)
    await stream.send_all(get("/health"))
    [(resp, _)] = await read_responses(stream, 1)
    assert resp.status_code == 200
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, HOST, WS_PATH)
        item = await call1(ws, "put", rpc.PutRequest(b"a", b"1"))
        assert item[1] == OK and isinstance(item[2], rpc.PutResponse)
        await ws.aclose()


async def test_garbage_request_line_gets_400_and_server_lives(server: Server) -> None:
    [(resp, body)] = await http_exchange(server.port, b"\x00\x01garbage\r\n\r\n")
    assert resp.status_code == 400 and body.startswith(b"400")
    [(resp, _)] = await http_exchange(server.port, b"GET /health HTTP/1.1\r\nHost x\r\n\r\n")  # bad header
    assert resp.status_code == 400
    # half a request then EOF: no answer possible, no harm done
    stream = await trio.open_tcp_stream(HOST, server.port)
    await stream.send_all(b"GET /hea")
    await stream.aclose()
    [(resp, _)] = await http_exchange(server.port, get("/health"))
    assert resp.status_code == 200


async def test_idle_and_oversized_http_requests_are_dropped(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod, "HTTP_IDLE_TIMEOUT", 0.2)
    srv = await start_server(nursery, max_request_bytes=1000)
    with trio.fail_after(5):
        async with await trio.open_tcp_stream(HOST, srv.port) as stream:
            assert await stream.receive_some(100) == b""  # closed by the server, unasked
        async with await trio.open_tcp_stream(HOST, srv.port) as stream:
            await stream.send_all(get("/health", "POST", "Content-Length: 10\r\n") + b"12345")
            assert await stream.receive_some(100) == b""  # body never finished
    size = 1000 + protocol.FRAME_OVERHEAD_BYTES + 1
    raw = get("/v3/kv/put", "POST", f"Content-Length: {size}\r\n") + b"x" * size
    [(resp, _)] = await http_exchange(srv.port, raw)
    assert resp.status_code == 413


UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"


async def test_upgrade_on_unknown_path_is_404(server: Server) -> None:
    # raw bytes: trio-websocket's client leaks its socket when a handshake is rejected
    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    [(resp, body)] = await http_exchange(server.port, get("/nope", extra=UPGRADE + key))
    assert resp.status_code == 404 and body == b"404 page not found\n"


async def test_bad_websocket_handshake_is_refused_promptly(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trikv.server")
    bad = get(WS_PATH, extra=UPGRADE)
    [(resp, _)] = await http_exchange(server.port, bad)  # no Sec-WebSocket-Key
    assert resp.status_code == 400
    with trio.fail_after(5):  # the server lets go of it well before the handshake timeout
        while not any("handshake failed" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)
    [(resp, _)] = await http_exchange(server.port, get("/health"))
    assert resp.status_code == 200


# --------------------------------------------------------------------------- WebSocket: ops


async def test_round_trip_of_each_op(server: Server) -> None:
    async with ws_client(server.port) as ws:
        put = await call1(ws, "put", rpc.PutRequest(b"foo", b"bar"))
        assert put[1] == OK and put[2] == rpc.PutResponse(server.backend.header())
        put = await call1(ws, "put", rpc.PutRequest(b"foo", b"baz", prev_kv=True))
        assert put[2].prev_kv.value == b"bar"
        rng = await call1(ws, "range", rpc.RangeRequest(b"foo"))
        assert rng[1] == OK and [kv.value for kv in rng[2].kvs] == [b"baz"] and rng[2].count == 1
        txn = rpc.TxnRequest(
            seq(rpc.Compare(rpc.CompareResult.EQUAL, rpc.CompareTarget.VALUE, b"foo", b"baz")),
            seq(rpc.PutRequest(b"foo2", b"x"), rpc.RangeRequest(b"foo")),
            seq(),
        )
        res = await call1(ws, "txn", txn)
        assert res[1] == OK and res[2].succeeded
        assert isinstance(res[2].responses[0], rpc.PutResponse)
        assert res[2].responses[1].kvs[0].key == b"foo"
        dele = await call1(ws, "delete_range", rpc.DeleteRangeRequest(b"foo", b"foo3", prev_kv=True))
        assert dele[2].deleted == 2 and {kv.key for kv in dele[2].prev_kvs} == {b"foo", b"foo2"}
        comp = await call1(ws, "compact", rpc.CompactionRequest(2))
        assert isinstance(comp[2], rpc.CompactionResponse)
        st = await call1(ws, "status", protocol.StatusRequest())
        assert st[2].version == "3.4.23"
        ml = await call1(ws, "member_list", protocol.MemberListRequest())
        assert ml[2].members[0].name == "n0"
        empty = await call1(ws, "put", rpc.PutRequest(b"", b"v"))
        err = assert_err(empty, errors.EmptyKeyError)
        assert err.text == "etcdserver: key is not provided"


async def test_many_concurrent_requests_answered_out_of_order(server: Server) -> None:
    n = 300
    server.backend.barrier_n = n  # passes only when all n are inside the backend at once
    async with ws_client(server.port) as ws:
        got = await call(ws, [[i, "range", rpc.RangeRequest(b"barrier")] for i in range(1, n + 1)])
        assert all(item[1] == OK for item in got.values())

        # #1 waits for a gate that the last request opens: the server answers 2..51 before 1.
        items = [[1, "range", rpc.RangeRequest(b"wait:a")]]
        items += [[i, "put", rpc.PutRequest(b"k%d" % i, b"v")] for i in range(2, 51)]
        items += [[51, "put", rpc.PutRequest(b"open:a")]]
        await ws.send_message(protocol.encode_frame(items))
        order: list[int] = []
        with trio.fail_after(10):
            while len(order) < 51:
                order += [item[0] for item in await recv_items(ws)]
        assert sorted(order) == list(range(1, 52))
        assert order.index(1) > order.index(50)


async def test_responses_of_one_round_are_coalesced(server: Server) -> None:
    async with ws_client(server.port) as ws:
        await ws.send_message(
            protocol.encode_frame([[i, "put", rpc.PutRequest(b"k", b"v")] for i in range(1, 51)])
        )
        with trio.fail_after(10):
            first = await recv_items(ws)
        assert sorted(item[0] for item in first) == list(range(1, 51))  # all 50 in one frame

        # Responses finishing at different times travel in different frames.
        await ws.send_message(
            protocol.encode_frame(
                [[1, "range", rpc.RangeRequest(b"wait:b")], [2, "put", rpc.PutRequest(b"x")]]
            )
        )
        with trio.fail_after(10):
            assert [item[0] for item in await recv_items(ws)] == [2]
            await ws.send_message(protocol.encode_frame([[3, "put", rpc.PutRequest(b"open:b")]]))
            rest = [item[0] for item in await recv_items(ws)]
        assert sorted(rest) == [1, 3]


async def test_in_flight_bound_stops_reading(nursery: trio.Nursery) -> None:
    srv = await start_server(nursery, max_in_flight=4)
    async with ws_client(srv.port) as ws:
        await ws.send_message(
            protocol.encode_frame([[i, "range", rpc.RangeRequest(b"wait:c")] for i in range(10)])
        )
        with trio.fail_after(5):
            while srv.backend.waiting < 4:
                await trio.sleep(0.01)
        await trio.sleep(0.1)
        assert srv.backend.waiting == 4
        srv.backend.gate(b"c").set()
        got: set[int] = set()
        with trio.fail_after(10):
            while len(got) < 10:
                got.update(item[0] for item in await recv_items(ws))


# --------------------------------------------------------------------------- WebSocket: bad input


async def test_request_size_limit(server: Server) -> None:
    async with ws_client(server.port) as ws:
        ok = await call1(ws, "put", rpc.PutRequest(b"big", b"x" * 1_500_000))
        assert ok[1] == OK
        big = await call1(ws, "put", rpc.PutRequest(b"big", b"x" * 1_600_000))
        err = assert_err(big, errors.RequestTooLargeError)
        assert err.text == "etcdserver: request is too large"
        # other items of the same oversized frame still run; the connection stays up
        got = await call(
            ws, [[1, "put", rpc.PutRequest(b"a", b"x" * 1_600_000)], [2, "range", rpc.RangeRequest(b"big")]]
        )
        assert got[1][1] == ERR and got[2][1] == OK and len(got[2][2].kvs[0].value) == 1_500_000
    # beyond the transport limit (max-request-bytes + 512 KiB) the frame is refused by closing (1009)
    # (own stream: trio-websocket's client leaks its socket after this close)
    async with await trio.open_tcp_stream(HOST, server.port) as stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, HOST, WS_PATH)
        await ws.send_message(protocol.encode_frame([[1, "put", rpc.PutRequest(b"a", b"x" * 2_200_000)]]))
        with pytest.raises(trio_websocket.ConnectionClosed) as info, trio.fail_after(10):
            await ws.get_message()
        assert info.value.reason is not None and info.value.reason.code == 1009
    async with ws_client(server.port) as ws:
        assert (await call1(ws, "range", rpc.RangeRequest(b"a")))[1] == OK


async def test_garbage_frames_text_and_unknown_ops(server: Server) -> None:
    async with ws_client(server.port) as ws:
        for bad in (b"\xff\xfe garbage", codec.encode({"a": 1}), codec.encode([[1, "put"]]), b""):
            await ws.send_message(bad)
            [item] = await recv_items(ws)
            assert item[0] == 0
            err = assert_err(item, errors.InvalidRequestError)
            assert "undecodable frame" in err.text
        await ws.send_message("hello")
        [item] = await recv_items(ws)
        assert item[0] == 0 and "text message" in assert_err(item, errors.InvalidRequestError).text
        got = await call(
            ws,
            [
                [1, "frobnicate", rpc.PutRequest(b"k")],
                [2, 42, rpc.PutRequest(b"k")],
                [3, "put", rpc.RangeRequest(b"k")],
                [4, "put", {"key": b"k"}],
                [5, "put", rpc.PutRequest(b"k", b"v")],
            ],
        )
        assert "unknown op 'frobnicate'" in assert_err(got[1], errors.InvalidRequestError).text
        assert "unknown op 42" in assert_err(got[2], errors.InvalidRequestError).text
        assert "takes PutRequest, got RangeRequest" in assert_err(got[3], errors.InvalidRequestError).text
        assert "got dict" in assert_err(got[4], errors.InvalidRequestError).text
        assert got[5][1] == OK


async def test_requests_with_wrongly_typed_fields_are_refused(server: Server) -> None:
    put = rpc.PutRequest
    bad_txn = rpc.TxnRequest(success=seq(rpc.KeyValue(b"k")))
    bad_cmp = rpc.TxnRequest(
        seq(rpc.Compare(rpc.CompareResult.EQUAL, rpc.CompareTarget.VALUE, b"k", wrong("str")))
    )
    nested = rpc.TxnRequest(success=seq(rpc.TxnRequest(success=seq(put(b"k", wrong(None))))))
    async with ws_client(server.port) as ws:
        got = await call(
            ws,
            [
                [1, "put", put(wrong(123), b"v")],
                [2, "put", put(b"k", b"v", lease=wrong("x"))],
                [3, "txn", bad_txn],
                [4, "txn", bad_cmp],
                [5, "txn", nested],
                [6, "range", rpc.RangeRequest(b"k", limit=True)],  # bool is an int, as in Python
            ],
        )
        assert (
            "PutRequest.key has the wrong type (int)" in assert_err(got[1], errors.InvalidRequestError).text
        )
        assert "PutRequest.lease" in assert_err(got[2], errors.InvalidRequestError).text
        assert "TxnRequest.success" in assert_err(got[3], errors.InvalidRequestError).text
        assert "TxnRequest.compare" in assert_err(got[4], errors.InvalidRequestError).text
        assert "TxnRequest.success" in assert_err(got[5], errors.InvalidRequestError).text
        assert got[6][1] == OK
    assert server.backend.kv == {}  # nothing malformed reached the backend


async def test_backend_exception_is_an_internal_error(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trikv.server")
    async with ws_client(server.port) as ws:
        got = await call(
            ws,
            [
                [1, "put", rpc.PutRequest(b"boom")],
                [2, "range", rpc.RangeRequest(b"unencodable")],
                [3, "put", rpc.PutRequest(b"fine")],
            ],
        )
        for i in (1, 2):
            assert got[i][1] == ERR and got[i][2]["code"] == errors.GrpcCode.INTERNAL
        assert got[3][1] == OK
        assert (await call1(ws, "range", rpc.RangeRequest(b"fine")))[2].count == 1
    tracebacks = [r for r in caplog.records if r.name == "trikv.server" and r.exc_info]
    assert any("backend bug" in str(r.exc_info[1]) for r in tracebacks if r.exc_info)


async def test_abrupt_disconnect_cancels_in_flight(server: Server) -> None:
    stream = await trio.open_tcp_stream(HOST, server.port)
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, HOST, WS_PATH)
        await ws.send_message(protocol.encode_frame([[1, "range", rpc.RangeRequest(b"wait:d")]]))
        with trio.fail_after(5):
            while server.backend.waiting < 1:
                await trio.sleep(0.01)
        await stream.aclose()  # TCP gone, no WebSocket close handshake
    with trio.fail_after(5):
        while not server.backend.cancelled:
            await trio.sleep(0.01)
    assert server.backend.cancelled == [b"wait:d"] and server.backend.waiting == 0
    async with ws_client(server.port) as ws2:
        assert (await call1(ws2, "put", rpc.PutRequest(b"after")))[1] == OK


async def test_disconnect_with_full_in_flight_bound_cancels(nursery: trio.Nursery) -> None:
    # The reader is parked on the bound, not in get_message: the disconnect must still be noticed.
    srv = await start_server(nursery, max_in_flight=2)
    stream = await trio.open_tcp_stream(HOST, srv.port)
    async with trio.open_nursery() as client:
        ws = await trio_websocket.wrap_client_stream(client, stream, HOST, WS_PATH)
        await ws.send_message(
            protocol.encode_frame([[i, "range", rpc.RangeRequest(b"wait:e")] for i in range(1, 6)])
        )
        with trio.fail_after(5):
            while srv.backend.waiting < 2:
                await trio.sleep(0.01)
        await stream.aclose()
    with trio.fail_after(5):
        while srv.backend.waiting:
            await trio.sleep(0.01)
    assert srv.backend.cancelled == [b"wait:e"] * 2


# --------------------------------------------------------------------------- measurement (not a test of speed)
