"""The fast path for plain HTTP/1.1 requests on the client port; h11 serves everything else.

etcd's JSON gateway traffic is small keep-alive POSTs, and h11's general machinery (event objects, header
validation on both sides, a state machine per message) cost more CPU per request than the request's own
work. A request head this module recognises as plain, a strict subset of what h11 parses the same way
(HTTP/1.1 GET or POST, a Host, at most one Content-Length within the body limit, no Transfer-Encoding,
Upgrade, Expect or Connection other than keep-alive, every line well formed), is parsed here and its
response written here, byte for byte what h11 writes for it. Anything else -- and a response that streams
-- goes to h11 with every byte read so far, so its behaviour (errors, close, upgrades, chunked bodies) is
exactly h11's. h11 also writes streaming responses (the gateway's watch): `respond_streaming`.
"""

from __future__ import annotations

import email.utils
import http
import re
import time

import attrs
import h11
import trio
import trio_websocket

from trikv.actors.httpmsg import HttpRequest, HttpResponse

HEAD_LIMIT = 16 * 1024  # h11's max_incomplete_event_size: a longer head goes to h11, which refuses it

_REQUEST_LINE = re.compile(rb"(GET|POST) ([\x21-\x7e]+) HTTP/1\.1\Z")
_HEADER = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*([^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?[ \t]*\Z")
_DIGITS = re.compile(rb"[0-9]{1,18}\Z")
# Headers whose presence changes how the message is framed or what follows it: h11's business.
_NOT_PLAIN = frozenset({b"transfer-encoding", b"upgrade", b"expect"})


@attrs.frozen(slots=True)
class PlainHead:
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # names lowercased, as h11 gives them
    head_length: int  # bytes up to and including the blank line
    body_length: int


FALLBACK = "fallback"  # parse_head: not a plain request, let h11 have it


def parse_head(buf: bytes | bytearray, max_body: int) -> PlainHead | str | None:
    """A plain request's head at the start of buf; None while it is incomplete; FALLBACK otherwise."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return FALLBACK if len(buf) > HEAD_LIMIT else None
    if end > HEAD_LIMIT:
        return FALLBACK
    lines = bytes(buf[:end]).split(b"\r\n")
    m = _REQUEST_LINE.match(lines[0])
    if m is None:
        return FALLBACK
    headers = []
    length = -1
    host = False
    for line in lines[1:]:
        h = _HEADER.match(line)
        if h is None:
            return FALLBACK  # obs-fold, bare CR/LF, bad name or value: h11 decides
        name = h.group(1).lower()
        value = h.group(2) or b""
        if name == b"content-length":
            if length >= 0 or not _DIGITS.match(value):
                return FALLBACK
            length = int(value)
        elif name == b"host":
            host = True
        elif name in _NOT_PLAIN or (name == b"connection" and value.lower() != b"keep-alive"):
            return FALLBACK
        headers.append((name, value))
    if not host or length > max_body:
        return FALLBACK
    return PlainHead(m.group(1), m.group(2), tuple(headers), end + 4, max(length, 0))


_REASONS: dict[int, bytes] = {}
_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The Date header's value (RFC 7231), formatted once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date[1]


def reason(status: int) -> bytes:
    phrase = _REASONS.get(status)
    if phrase is None:
        phrase = _REASONS[status] = http.HTTPStatus(status).phrase.encode()
    return phrase


def plain_request(head: PlainHead, raw: bytes) -> HttpRequest:
    """The route's view of a plain request (raw: its head and body)."""
    target = head.target.decode("latin-1")
    path, _, query = target.partition("?")
    return HttpRequest(
        method=head.method.decode("ascii"),
        target=target,
        path=path,
        query=query,
        headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers),
        body=raw[head.head_length :],
    )


def plain_response(resp: HttpResponse) -> bytes | None:
    """The whole keep-alive response as h11 writes it (server.py's headers), or None for h11 to write:
    a streaming response, or a status without a body."""
    status = resp.status
    if resp.stream is not None or status < 200 or status in (204, 304):
        return None
    parts = [
        b"HTTP/1.1 %d %s\r\ncontent-type: " % (status, reason(status)),
        resp.content_type.encode("latin-1"),
        b"\r\ncontent-length: %d\r\ndate: " % len(resp.body),
        http_date(),
        b"\r\n",
    ]
    for name, value in resp.headers:
        parts += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    parts += (b"\r\n", resp.body)
    return b"".join(parts)


def h11_after(raw: bytes) -> h11.Connection:
    """An h11 connection that has read this plain, complete request: it writes the response."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    while not isinstance(conn.next_event(), h11.EndOfMessage):
        pass
    return conn


async def respond_streaming(stream: trio.SocketStream, conn: h11.Connection, resp: HttpResponse) -> None:
    """A chunked response written by `resp.stream` (one chunk per write), until it returns or the client goes
    (its end of the connection is watched meanwhile); the connection closes afterwards."""
    assert resp.stream is not None
    headers = [("content-type", resp.content_type), ("connection", "close"), *resp.headers]
    reason = http.HTTPStatus(resp.status).phrase.encode()
    await stream.send_all(
        conn.send(h11.Response(status_code=resp.status, headers=headers, reason=reason)) or b""
    )

    async def write(chunk: bytes) -> None:
        await stream.send_all(conn.send(h11.Data(data=chunk)) or b"")

    async def watch_client(scope: trio.CancelScope) -> None:
        try:
            while await stream.receive_some(64 * 1024):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    done = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_client, nursery.cancel_scope)
        try:
            await resp.stream(write)
            done = True
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio_websocket.ConnectionClosed):
            pass
        nursery.cancel_scope.cancel()
    if not done:
        raise trio.ClosedResourceError("streaming response ended by the client")  # a disconnect: closed
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")


__all__ = [
    "FALLBACK",
    "HEAD_LIMIT",
    "PlainHead",
    "h11_after",
    "http_date",
    "parse_head",
    "plain_request",
    "plain_response",
    "reason",
    "respond_streaming",
]
