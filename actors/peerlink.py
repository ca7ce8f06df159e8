"""A peer link: one WebSocket connection over a trio socket stream, framed by actors/wsframes.py.

trio-websocket gives every connection a reader task feeding a memory channel, and a send lock: each Raft
message crossed two extra task hops and a channel. A `Link` has no tasks of its own (the way
actors/server.py drives h11): the task that wants a message reads the socket itself (pings answered and
closes handled inline), and a sender may write a frame straight to the socket without awaiting
(`send_nowait`: what the kernel does not take stays in the link's buffer, in order, until `flush()`).
wsproto does the opening handshake; the frames after it are wsframes' (wsproto's general frame code was
~10 % of a follower's CPU per put). The bytes on the wire are standard WebSocket frames, so trio-websocket
peers and tools still talk to it.
"""

from __future__ import annotations

import collections
import socket
from typing import Protocol
from urllib.parse import urlsplit

import trio
from trio_websocket import CloseReason, ConnectionClosed, ConnectionRejected, HandshakeError
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import RemoteProtocolError

from trikv.actors import wsframes
from trikv.actors.sockio import FastSocket
from trikv.actors.wsframes import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameReader

DISCONNECT_TIMEOUT = 1.0  # seconds to wait for the other side's close frame
NOT_FOUND = b"404 page not found\n"  # etcd's answer to a path it does not serve
MAX_HANDSHAKE = 65536  # bytes of an opening handshake's HTTP head


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
        *,
        client: bool,
        raw: socket.socket | None,
        max_message: int,
        receive_buffer: int,
        trailing: bytes = b"",
    ) -> None:
        self._stream = stream
        self._io = FastSocket(stream)
        self._raw = raw  # the same socket as a stdlib one, for writes without a wait (client side)
        self._client = client  # a client masks what it sends; a server expects masked frames
        self._bufsize = receive_buffer
        self._reader = FrameReader(masked=not client, max_message=max_message)
        self._reader.feed(trailing)
        self._out = bytearray()  # framed bytes the socket has not taken yet (FIFO)
        self._flushing = trio.StrictFIFOLock()
        self._pongs: collections.deque[trio.Event] = collections.deque()
        self._close_sent = False
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
        self._write(wsframes.frame(OP_BINARY, message, masked=self._client))
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
        if self.close_reason is not None:
            raise ConnectionClosed(self.close_reason)
        pong = trio.Event()
        self._pongs.append(pong)
        self._write(wsframes.frame(OP_PING, b"trikv", masked=self._client))
        await self.flush()
        await pong.wait()

    # -- receiving
    async def get_message(self) -> bytes | str:
        """The next whole message; raises ConnectionClosed once the link is closed and drained."""
        reader = self._reader
        while True:
            try:
                got = reader.next()
            except wsframes.ProtocolError as exc:
                await self._close(exc.code, exc.reason)
                raise ConnectionClosed(self.close_reason) from None
            if got is None:
                if self.close_reason is not None:
                    raise ConnectionClosed(self.close_reason)
                await self._receive()
                continue
            op, payload = got
            if op == OP_BINARY or op == OP_TEXT:
                return payload
            assert isinstance(payload, bytes)
            if op == OP_PING:
                if not self._close_sent:
                    self._write(wsframes.frame(OP_PONG, payload, masked=self._client))
                    await self.flush()
            elif op == OP_PONG:
                if self._pongs:
                    self._pongs.popleft().set()
            elif op == OP_CLOSE:
                try:
                    code, reason = wsframes.parse_close(payload)
                except wsframes.ProtocolError as exc:
                    await self._close(exc.code, exc.reason)
                    raise ConnectionClosed(self.close_reason) from None
                if not self._close_sent:  # answer their close with ours (RFC 6455 5.5.1)
                    self.close_reason = self.close_reason or CloseReason(code, reason)
                    await self._send_close(1000 if code == 1005 else code, None)
                self.close_reason = self.close_reason or CloseReason(code, reason)
                raise ConnectionClosed(self.close_reason)

    async def _receive(self) -> None:
        """One read from the socket into the frame reader (sockio: no scheduler pass when data is there)."""
        try:
            data = await self._io.receive_some(self._bufsize)
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            self.close_reason = self.close_reason or CloseReason(1006, str(exc) or type(exc).__name__)
            return
        if not data:
            self.close_reason = self.close_reason or CloseReason(1006, "connection lost")
            return
        self._reader.feed(data)

    async def _send_close(self, code: int, reason: str | None) -> None:
        if self._close_sent:
            return
        self._close_sent = True
        try:
            self._write(wsframes.frame(OP_CLOSE, wsframes.close_payload(code, reason), masked=self._client))
            await self.flush()
        except ConnectionClosed:
            pass

    async def _close(self, code: int, reason: str | None) -> None:
        if self.close_reason is None:
            self.close_reason = CloseReason(code, reason)
        await self._send_close(code, reason)

    async def aclose(self) -> None:
        """Close handshake (bounded by DISCONNECT_TIMEOUT), then the socket."""
        try:
            with trio.move_on_after(DISCONNECT_TIMEOUT):
                if not self._close_sent and self.close_reason is None:
                    await self._close(1000, None)
                    while True:  # their close frame, or EOF
                        await self.get_message()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.close_reason = self.close_reason or CloseReason(1000, None)
            await self._stream.aclose()


async def _read_head(stream: trio.SocketStream, receive_buffer: int, what: str) -> tuple[bytes, bytes]:
    """An HTTP head (through its blank line) and the bytes after it; b"" head when the peer hung up."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HANDSHAKE:
            raise HandshakeError(f"{what} over {MAX_HANDSHAKE} bytes")
        data = await stream.receive_some(receive_buffer)
        if not data:
            return b"", b""
        buf += data
    cut = buf.index(b"\r\n\r\n") + 4
    return buf[:cut], buf[cut:]


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
            head, trailing = await _read_head(stream, receive_buffer, "handshake answer")
            if not head:
                raise HandshakeError("connection closed during the handshake")
            ws.receive_data(head)
            for ev in ws.events():
                if isinstance(ev, AcceptConnection):
                    # Frames that came right behind the answer go to the link's frame reader.
                    return Link(
                        stream,
                        client=True,
                        raw=raw,
                        max_message=max_message,
                        receive_buffer=receive_buffer,
                        trailing=trailing,
                    )
                if isinstance(ev, (RejectConnection, RejectData)):
                    code = getattr(ev, "status_code", 0)
                    raise ConnectionRejected(code, (), b"")
            raise HandshakeError("the peer did not accept the WebSocket handshake")
        except BaseException:
            sock.close()
            raise


async def accept(
    stream: trio.SocketStream, path: str, *, timeout: float, max_message: int, receive_buffer: int
) -> Link | None:
    """The server side of the handshake: a Link for `path`, else a 404 (or 400) answer and None."""
    ws = WSConnection(ConnectionType.SERVER)
    with trio.move_on_after(timeout):
        try:
            head, trailing = await _read_head(stream, receive_buffer, "handshake request")
        except HandshakeError:
            return None
        if not head:
            return None
        try:
            ws.receive_data(head)
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
            # Frames that came with the request (a client that did not wait) go to the frame reader.
            return Link(
                stream, client=False, raw=None, max_message=max_message, receive_buffer=receive_buffer, trailing=trailing
            )
    return None


__all__ = ["DISCONNECT_TIMEOUT", "Link", "MessageLink", "accept", "connect"]
