"""The plain-request fast path (actors/http1.py): what it takes, what it leaves to h11, and that its responses
are byte for byte what h11 writes (the keep-alive and fallback behaviour over sockets is in test_server.py)."""

from __future__ import annotations

import json

import h11
import pytest
import trio

from trikv.actors import http1
from trikv.actors.http1 import FALLBACK, PlainHead, parse_head
from trikv.actors.httpmsg import NOT_FOUND, HttpResponse, method_not_allowed

from .test_server import HOST, get, header, read_responses, start_server

CLOSE = "Connection: close\r\n"

BODY = b'{"key":"Zm9v"}'
PLAIN = (
    b"POST /v3/kv/range?x=1 HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nAccept-Encoding: identity\r\n"
    b"Content-Length: 14\r\nContent-Type: application/json\r\n\r\n" + BODY
)


def h11_request(raw: bytes) -> tuple[h11.Request, bytes]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    req = conn.next_event()
    assert isinstance(req, h11.Request)
    body = b""
    while not isinstance(ev := conn.next_event(), h11.EndOfMessage):
        assert isinstance(ev, h11.Data)
        body += ev.data
    return req, body


def test_a_plain_request_parses_as_h11_parses_it() -> None:
    head = parse_head(PLAIN + b"GET /next", 1 << 20)
    assert isinstance(head, PlainHead)
    req, body = h11_request(PLAIN)
    assert (head.method, head.target, head.headers) == (req.method, req.target, tuple(req.headers))
    assert PLAIN[head.head_length : head.head_length + head.body_length] == body == BODY
    mine = http1.plain_request(head, PLAIN)
    assert (mine.method, mine.path, mine.query, mine.body) == ("POST", "/v3/kv/range", "x=1", BODY)
    assert mine.header("content-type") == "application/json"
    get = parse_head(b"GET /health HTTP/1.1\r\nhost: x\r\nConnection: Keep-Alive\r\nX-Empty:\r\n\r\n", 10)
    assert isinstance(get, PlainHead) and get.body_length == 0 and (b"x-empty", b"") in get.headers


def test_an_incomplete_head_waits() -> None:
    for cut in (0, 10, PLAIN.index(b"\r\n\r\n") + 3):
        assert parse_head(PLAIN[:cut], 1 << 20) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",  # HTTP/1.0: keep-alive rules differ
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PUT / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host: h11 answers 400
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",  # above the body limit: h11's 413
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\nY: z\r\n\r\n",  # bare LF
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x01garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * http1.HEAD_LIMIT + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * http1.HEAD_LIMIT,  # never ends: h11 refuses it
    ],
)
def test_anything_else_goes_to_h11(raw: bytes) -> None:
    assert parse_head(raw, 100) == FALLBACK


@pytest.mark.parametrize(
    "resp",
    [
        HttpResponse(
            200, b'{"header":{}}', "application/json", (("grpc-metadata-content-type", "application/grpc"),)
        ),
        HttpResponse.json(503, {"health": "false"}),
        HttpResponse(200, b""),
        NOT_FOUND,
        method_not_allowed("POST"),
        HttpResponse.text(429, "too many\n"),
    ],
)
def test_responses_are_what_h11_writes(resp: HttpResponse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "http_date", lambda: b"Mon, 07 Dec 2026 06:00:00 GMT")
    conn = http1.h11_after(PLAIN)
    headers = [
        ("content-type", resp.content_type),
        ("content-length", str(len(resp.body))),
        ("date", http1.http_date().decode()),
        *resp.headers,
    ]
    want = conn.send(h11.Response(status_code=resp.status, headers=headers, reason=http1.reason(resp.status)))
    assert want is not None
    want += (conn.send(h11.Data(data=resp.body)) or b"") if resp.body else b""
    want += conn.send(h11.EndOfMessage()) or b""
    assert conn.our_state is h11.DONE  # keep-alive: h11 added no Connection: close either
    assert http1.plain_response(resp) == want


def test_streaming_and_bodiless_responses_are_left_to_h11() -> None:
    async def stream(write: object) -> None:
        pass

    assert http1.plain_response(HttpResponse(200, stream=stream)) is None
    assert http1.plain_response(HttpResponse(204)) is None


def test_the_date_is_an_http_date() -> None:
    date = http1.http_date()
    assert date.endswith(b" GMT") and len(date) == 29


async def test_plain_requests_trickled_then_one_for_h11_on_one_connection(nursery: trio.Nursery) -> None:
    srv = await start_server(nursery)
    raw = (
        get("/health") + get("/nope", "POST", "Content-Length: 2\r\n") + b"{}" + get("/version", extra=CLOSE)
    )
    async with await trio.open_tcp_stream(HOST, srv.port) as stream:
        for i in range(0, len(raw), 7):  # heads and bodies split anywhere
            await stream.send_all(raw[i : i + 7])
            await trio.sleep(0.001)
        got = await read_responses(stream, 3)
        assert [(r.status_code, header(r, b"connection")) for r, _ in got] == [
            (200, None),
            (404, None),
            (200, b"close"),  # the last went to h11, which honours Connection: close
        ]
        assert json.loads(got[2][1])["etcdcluster"] == "3.4.0"
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""
