"""A small gRPC client over h2 for the benchmark: one HTTP/2 connection, many concurrent calls as streams.

Clients on one connection are multiplexed like clientv3's: a reader task dispatches each stream's
length-prefixed messages to its call; senders share the connection under one lock so frames leave in
order. Unary calls and bidirectional streams (Watch, LeaseKeepAlive) use the same call object.
"""

from __future__ import annotations

import math

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio

READ = 65536
_END = object()


class GrpcError(Exception):
    """A non-zero grpc-status, a reset stream or a lost connection."""


class Call:
    """One gRPC call: messages in (send), messages out (receive), the status at its end."""

    def __init__(self, conn: GrpcConn, sid: int) -> None:
        self.conn = conn
        self.sid = sid
        self.buf = bytearray()
        self.status: bytes | None = None
        self.message = b""
        self.ended = False
        self._tx, self._rx = trio.open_memory_channel[object](math.inf)

    def _data(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 5:
            size = int.from_bytes(self.buf[1:5], "big")
            if len(self.buf) < 5 + size:
                return
            self._tx.send_nowait(bytes(self.buf[5 : 5 + size]))
            del self.buf[: 5 + size]

    def _headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b"grpc-status":
                self.status = value
            elif name == b"grpc-message":
                self.message = value

    def _end(self, error: str | None = None) -> None:
        if error is not None and self.status is None:
            self.status, self.message = b"?", error.encode()
        self._tx.send_nowait(_END)

    async def send(self, message: bytes, end: bool = False) -> None:
        await self.conn._send_data(self.sid, b"\x00" + len(message).to_bytes(4, "big") + message, end)

    async def receive(self) -> bytes:
        item = _END if self.ended else await self._rx.receive()
        if item is _END:
            self.ended = True
            if self.status == b"0":
                raise GrpcError("stream ended")
            raise GrpcError(f"grpc-status {self.status!r}: {self.message[:200]!r}")
        assert isinstance(item, bytes)
        return item

    async def cancel(self) -> None:
        await self.conn._reset(self.sid)


class GrpcConn:
    def __init__(self, stream: trio.SocketStream, authority: str) -> None:
        self._stream = stream
        self._authority = authority.encode()
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self._calls: dict[int, Call] = {}
        self._lock = trio.Lock()
        self._window = trio.Event()
        self._dead: str | None = None

    @classmethod
    async def open(cls, endpoint: str, nursery: trio.Nursery) -> GrpcConn:
        host, port = endpoint.rsplit(":", 1)
        conn = cls(await trio.open_tcp_stream(host, int(port)), endpoint)
        conn._h2.initiate_connection()
        conn._h2.increment_flow_control_window(2**30)  # the connection's receive window: never the limit
        await conn._flush()
        nursery.start_soon(conn._reader)
        return conn

    async def aclose(self) -> None:
        self._dead = self._dead or "closed"
        await self._stream.aclose()

    async def _flush(self) -> None:
        async with self._lock:
            out = self._h2.data_to_send()
            if out:
                await self._stream.send_all(out)

    async def open_call(self, path: str, first: bytes | None = None, end: bool = False) -> Call:
        if self._dead:
            raise GrpcError(f"connection lost: {self._dead}")
        sid = self._h2.get_next_available_stream_id()
        call = Call(self, sid)
        self._calls[sid] = call
        headers = [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
            (b":authority", self._authority), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        ]  # fmt: skip
        self._h2.send_headers(sid, headers)
        if first is None:
            await self._flush()
        else:
            await call.send(first, end)
        return call

    async def unary(self, path: str, body: bytes) -> bytes:
        call = await self.open_call(path, body, end=True)
        try:
            return await call.receive()
        finally:
            self._calls.pop(call.sid, None)

    async def _send_data(self, sid: int, data: bytes, end: bool) -> None:
        # In frames of at most the peer's max frame size (16 KiB by default): a 128-put txn is larger.
        while True:
            size = min(len(data), self._h2.max_outbound_frame_size)
            while self._h2.local_flow_control_window(sid) < size:
                if self._dead:
                    raise GrpcError(f"connection lost: {self._dead}")
                self._window = trio.Event() if self._window.is_set() else self._window
                await self._window.wait()
            chunk, data = data[:size], data[size:]
            self._h2.send_data(sid, chunk, end_stream=end and not data)
            await self._flush()
            if not data:
                return

    async def _reset(self, sid: int) -> None:
        self._calls.pop(sid, None)
        try:
            self._h2.reset_stream(sid, error_code=8)  # CANCEL
            await self._flush()
        except (h2.exceptions.H2Error, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _reader(self) -> None:
        try:
            while True:
                data = await self._stream.receive_some(READ)
                if not data:
                    raise GrpcError("connection closed by the server")
                for ev in self._h2.receive_data(data):
                    self._event(ev)
                await self._flush()
        except (
            GrpcError,
            OSError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            h2.exceptions.H2Error,
        ) as exc:
            self._dead = self._dead or str(exc) or type(exc).__name__
        finally:
            for call in self._calls.values():
                call._end(self._dead or "connection lost")
            self._calls.clear()
            self._window.set()

    def _event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.WindowUpdated):
            self._window.set()
            return
        call = self._calls.get(getattr(ev, "stream_id", 0) or 0)
        if call is None:
            return
        if isinstance(ev, h2.events.DataReceived):
            call._data(ev.data)
            self._h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.ResponseReceived | h2.events.TrailersReceived):
            call._headers(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            self._calls.pop(call.sid, None)
            call._end()
        elif isinstance(ev, h2.events.StreamReset):
            self._calls.pop(call.sid, None)
            call._end(f"stream reset ({ev.error_code})")
