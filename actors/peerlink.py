"""A peer link: one WebSocket connection driven directly by wsproto over a trio socket stream.

trio-websocket gives every connection a reader task feeding a memory channel, and a send lock: each Raft
message crossed two extra task hops and a channel. A `Link` has no tasks of its own (the way
actors/server.py drives h11): the task that wants a message reads the socket itself (pings answered and
closes handled inline), and a sender may write a frame straight to the socket without awaiting
(`send_nowait`: what the kernel does not take stays in the link's buffer, in order, until `flush()`).
The bytes on the wire are standard WebSocket frames, so trio-websocket peers and tools still talk to it.
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Iterator
from typing import Protocol
from urllib.parse import urlsplit

import trio
from trio_websocket import CloseReason, ConnectionClosed, ConnectionRejected, HandshakeError
from wsproto import ConnectionState, ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

DISCONNECT_TIMEOUT = 1.0  # seconds to wait for the other side's close frame
NOT_FOUND = b"404 page not found\n"  # etcd's answer to a path it does not serve


class MessageLink(Protocol):
    """What the peer code needs of a connection (a `Link`, or a trio-websocket connection in a tool)."""

    async def send_message(self, message: bytes) -> None: ...
    async def get_message(self) -> bytes | str: ...
    async def aclose(self) -> None: ...


class Link:
    """One open WebSocket connection (either side); one reader task and any number of senders at a time."""

    def __init__(
        self,
        stream: trio.SocketStream,
        ws: WSConnection,
        *,
        raw: socket.socket | None,
        max_message: int,
        receive_buffer: int,
    ) -> None:
        self._stream, self._ws, self._raw = stream, ws, raw  # raw: the same socket, for writes without a wait
        self._max, self._bufsize = max_message, receive_buffer
        self._out = bytearray()  # framed bytes the socket has not taken yet (FIFO)
        self._flushing = trio.StrictFIFOLock()
        self._messages: collections.deque[bytes | str] = collections.deque()
        self._parts: list[bytes | str] = []
        self._part_bytes = 0
        self._pongs: collections.deque[trio.Event] = collections.deque()
        self.close_reason: CloseReason | None = None  # set once the link is closed (either side)

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    # -- sending
    def send_nowait(self, message: bytes) -> int:
        """Frame `message` and write what the socket takes now, without waiting; returns how many bytes stay
        buffered (then someone must `flush()`). Frames leave in call order, whatever the mix of callers."""
        if self.close_reason is not None:
            raise ConnectionClosed(self.close_reason)
        self._write(self._ws.send(BytesMessage(data=message)))
        return len(self._out)

    def buffered(self) -> int:
        return len(self._out)

    def _write(self, data: bytes) -> None:
        if not self._out and self._raw is not None and not self._flushing.locked():
            try:
                n = self._raw.send(data)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self.close_reason = CloseReason(1006, str(exc) or type(exc).__name__)
                raise ConnectionClosed(self.close_reason) from None
            if n == len(data):
                return
            data = data[n:]
        self._out += data

    async def flush(self) -> None:
        """Wait until every buffered byte is on the socket."""
        async with self._flushing:
            while self._out:
                data = bytes(self._out)
                self._out.clear()
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    if self.close_reason is None:
                        self.close_reason = CloseReason(1006, str(exc) or type(exc).__name__)
                    raise ConnectionClosed(self.close_reason) from None

    async def send_message(self, message: bytes) -> None:
        self.send_nowait(message)
        await self.flush()

    async def ping(self) -> None:
        """Returns when the other side's pong arrives (someone must be reading: `get_message`)."""
        pong = trio.Event()
        self._pongs.append(pong)
        self._write(self._ws.send(Ping(payload=b"trikv")))
        await self.flush()
        await pong.wait()

    # -- receiving
    async def get_message(self) -> bytes | str:
        """The next whole message; raises ConnectionClosed once the link is closed and drained."""
        while not self._messages:
            if self.close_reason is not None:
                raise ConnectionClosed(self.close_reason)
            try:
                data = await self._stream.receive_some(self._bufsize)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.close_reason = self.close_reason or CloseReason(1006, str(exc) or type(exc).__name__)
                continue
            if not data:
                self.close_reason = self.close_reason or CloseReason(1006, "connection lost")
                continue
            try:
                self._ws.receive_data(data)
            except (LocalProtocolError, RemoteProtocolError) as exc:
                self.close_reason = CloseReason(1002, str(exc))
                continue
            await self._handle(self._ws.events())
        return self._messages.popleft()

    async def _handle(self, events: Iterator[Event]) -> None:
        for ev in events:
            if isinstance(ev, Message):
                self._parts.append(ev.data)
                self._part_bytes += len(ev.data)
                if self._part_bytes > self._max:
                    await self._close(1009, f"message exceeds {self._max} bytes")
                    return
                if ev.message_finished:
                    if isinstance(ev, TextMessage):
                        self._messages.append("".join(p for p in self._parts if isinstance(p, str)))
                    else:
                        self._messages.append(b"".join(p for p in self._parts if not isinstance(p, str)))
                    self._parts, self._part_bytes = [], 0
            elif isinstance(ev, Ping):
                self._write(self._ws.send(ev.response()))
                await self.flush()
            elif isinstance(ev, Pong):
                if self._pongs:
                    self._pongs.popleft().set()
            elif isinstance(ev, CloseConnection):
                if self._ws.state == ConnectionState.REMOTE_CLOSING:
                    self._write(self._ws.send(ev.response()))
                    await self.flush()
                    self.close_reason = CloseReason(ev.code, ev.reason)
                else:
                    await self._close(ev.code, ev.reason)
                return

    async def _close(self, code: int, reason: str | None) -> None:
        if self.close_reason is None:
            self.close_reason = CloseReason(code, reason)
        if self._ws.state == ConnectionState.OPEN:
            self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
            await self.flush()

    async def aclose(self) -> None:
        """Close handshake (bounded by DISCONNECT_TIMEOUT), then the socket."""
        try:
            with trio.move_on_after(DISCONNECT_TIMEOUT):
                if self._ws.state == ConnectionState.OPEN:
                    await self._close(1000, None)
                    while self._ws.state != ConnectionState.CLOSED:  # their close frame, or EOF
                        data = await self._stream.receive_some(self._bufsize)
                        self._ws.receive_data(data or None)
                        for _ in self._ws.events():
                            pass
                        if not data:
                            break
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError, LocalProtocolError, OSError):
            pass
        finally:
            self.close_reason = self.close_reason or CloseReason(1000, None)
            await self._stream.aclose()


async def connect(url: str, *, connect_timeout: float, max_message: int, receive_buffer: int) -> Link:
    """Dial ws://host:port/path and finish the opening handshake (HandshakeError if refused)."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise HandshakeError(f"unsupported peer URL {url}")
    port = parts.port or 80
    with trio.fail_after(connect_timeout):
        infos = await trio.socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"cannot resolve {parts.hostname}")
        family, kind, proto, _, addr = infos[0]
        raw = socket.socket(family, kind, proto)
        sock = trio.socket.from_stdlib_socket(raw)  # the same socket object: raw.send() never blocks
        try:
            await sock.connect(addr)
            stream = trio.SocketStream(sock)
            ws = WSConnection(ConnectionType.CLIENT)
            await stream.send_all(ws.send(Request(host=parts.netloc, target=parts.path or "/")))
            while True:
                data = await stream.receive_some(receive_buffer)
                if not data:
                    raise HandshakeError("connection closed during the handshake")
                ws.receive_data(data)
                for ev in ws.events():
                    if isinstance(ev, AcceptConnection):
                        link = Link(stream, ws, raw=raw, max_message=max_message, receive_buffer=receive_buffer)
                        await link._handle(ws.events())  # frames that came with the handshake answer
                        return link
                    if isinstance(ev, (RejectConnection, RejectData)):
                        code = getattr(ev, "status_code", 0)
                        raise ConnectionRejected(code, (), b"")
        except BaseException:
            sock.close()
            raise


async def accept(
    stream: trio.SocketStream, path: str, *, timeout: float, max_message: int, receive_buffer: int
) -> Link | None:
    """The server side of the handshake: a Link for `path`, else a 404 (or 400) answer and None."""
    ws = WSConnection(ConnectionType.SERVER)
    with trio.move_on_after(timeout):
        while True:
            data = await stream.receive_some(receive_buffer)
            if not data:
                return None
            try:
                ws.receive_data(data)
                events = list(ws.events())
            except RemoteProtocolError as exc:
                if exc.event_hint is not None:
                    await stream.send_all(ws.send(exc.event_hint))
                return None
            for ev in events:
                if not isinstance(ev, Request):
                    continue
                if ev.target != path:
                    headers = [(b"content-type", b"text/plain; charset=utf-8")]
                    await stream.send_all(ws.send(RejectConnection(status_code=404, headers=headers, has_body=True)))
                    await stream.send_all(ws.send(RejectData(data=NOT_FOUND, body_finished=True)))
                    return None
                await stream.send_all(ws.send(AcceptConnection()))
                link = Link(stream, ws, raw=None, max_message=max_message, receive_buffer=receive_buffer)
                await link._handle(ws.events())  # frames that came with the request
                return link
    return None


__all__ = ["DISCONNECT_TIMEOUT", "Link", "MessageLink", "accept", "connect"]
