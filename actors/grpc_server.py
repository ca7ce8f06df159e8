"""gRPC over HTTP/2 on the client port: h2 (sans-I/O) driven on a Trio stream, in the style of server.py's h11.

etcdctl and every clientv3 open with the HTTP/2 prior-knowledge preface, so server.py sniffs the first bytes
(`sniff`) and hands such a connection here with the bytes read so far. This module knows framing, streams,
flow control and limits, nothing of etcd: a method table (grpc_services.py) maps "/service/method" to a
protobuf request type and a coroutine. One reader task feeds h2 and dispatches events; each call runs in its
own task under its own cancel scope (client RST_STREAM or grpc-timeout cancels it); every task writes through
grpc_writer.Writer: stream messages once per scheduler turn for the whole connection, the rest at once.

Hygiene: messages above `max_message_bytes` -> ResourceExhausted; errors trailers-only, grpc-message
percent-encoded; inbound windows reopened as calls consume (unary: as the message is buffered; streams: as
the handler takes each message); outbound data waits for the peer's window; limits on concurrent streams
and the header list; too-early pings and reset floods get GOAWAY(ENHANCE_YOUR_CALM) (grpc_call.Budget);
GOAWAY with the last stream id on shutdown, and a lingering close after any GOAWAY of ours.
"""

from __future__ import annotations

import logging
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
from google.protobuf.message import DecodeError

from trikv.actors import h2frames  # noqa: F401  (installs a cheap frame repr: h2 builds one per frame)
from trikv.actors.grpc_call import Budget, Call, CallContext, Limits, Requests, Services, parse_timeout
from trikv.actors.grpc_status import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    GrpcStatus,
    percent_encode,
    status_of,
    too_large,
    unimplemented_method,
    unknown_service,
)
from trikv.actors.grpc_writer import Writer
from trikv.api.errors import GrpcCode

log = logging.getLogger("trikv.grpc")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_SNIFF = PREFACE[:14]  # "PRI * HTTP/2.0": enough to tell HTTP/2 from any HTTP/1.1 request line
RECEIVE_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # draining a connection after our GOAWAY
CONNECTION_WINDOW = 1 << 20  # inbound, across all streams; reopened every half window
_OK_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


async def sniff(stream: trio.abc.Stream, timeout: float) -> tuple[bool, bytes]:
    """Read just enough to tell an HTTP/2 preface from HTTP/1.1: (is_http2, the bytes read)."""
    data = b""
    with trio.move_on_after(timeout):
        while len(data) < len(_SNIFF) and _SNIFF.startswith(data):
            chunk = await stream.receive_some(RECEIVE_BYTES)
            if not chunk:
                break
            data += chunk
    return data.startswith(_SNIFF), data


class GrpcConnection:
    """One HTTP/2 connection carrying gRPC calls; `serve` returns when it is closed."""

    def __init__(self, stream: trio.abc.Stream, peer: str, services: Services, limits: Limits) -> None:
        self.stream, self.peer, self.services, self.limits = stream, peer, services, limits
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_outbound_headers=False,  # ours are fixed and valid
                normalize_outbound_headers=False,
            )
        )
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: limits.window,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list,
            },
        )
        self.calls: dict[int, Call] = {}
        self.writer = Writer(stream, self.conn)
        self._closed = False
        self.budget = Budget(limits, trio.current_time())
        self._nursery: trio.Nursery | None = None
        self._unacked = 0

    # ----------------------------------------------------------------------- connection

    async def serve(self, first: bytes) -> None:
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)  # from the default 64 KiB
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.writer.run)
                await self.flush()
                await self._read_loop(first)
                nursery.cancel_scope.cancel()  # the peer is gone or broke the protocol: its calls end
            if self._closed:
                await self._linger()
        finally:
            if not self._closed:  # the server is shutting down: tell the client which streams were seen
                with trio.CancelScope(shield=True, deadline=trio.current_time() + 1.0):
                    self.goaway(h2.errors.ErrorCodes.NO_ERROR)
                    try:
                        await self.flush()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass

    async def _read_loop(self, data: bytes) -> None:
        while not self._closed:
            if data:
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:  # h2 has queued a GOAWAY naming the error
                    log.debug("client %s: HTTP/2 protocol error: %s", self.peer, exc)
                    self._closed = True
                    await self.flush()
                    return
                for event in events:
                    self._dispatch(event)
                if self._frame_too_large():
                    self.goaway(h2.errors.ErrorCodes.FRAME_SIZE_ERROR, b"frame too large")
                await self.flush()
                if self._closed:
                    return
            data = bytes(await self.stream.receive_some(RECEIVE_BYTES))
            if not data:
                return

    async def _linger(self) -> None:
        """After our GOAWAY: half-close and drain what the client still sends, so that closing with unread
        input (a TCP RST) cannot destroy the GOAWAY before the client reads it."""
        with trio.move_on_after(LINGER_SECONDS):
            try:
                if isinstance(self.stream, trio.abc.HalfCloseableStream):
                    await self.stream.send_eof()
                while await self.stream.receive_some(RECEIVE_BYTES):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _frame_too_large(self) -> bool:
        """h2 buffers a whole frame before checking its length: refuse a too-long one from its header."""
        pending = self.conn.incoming_buffer._data
        return len(pending) >= 9 and int.from_bytes(pending[:3], "big") > self.conn.max_inbound_frame_size

    def goaway(self, code: int, debug: bytes = b"") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.conn.close_connection(error_code=code, additional_data=debug or None)
        except h2.exceptions.ProtocolError:
            pass

    async def flush(self) -> None:
        await self.writer.flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._open(event)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._client_done(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._stream_reset(event)
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            sid = getattr(event, "stream_id", 0)
            for call in [self.calls[sid]] if sid in self.calls else self.calls.values():
                call.window.set()
        elif isinstance(event, h2.events.PingReceived):  # h2 has queued the ack
            self._ping()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._closed = True

    def _ping(self) -> None:
        if not self.budget.ping(trio.current_time(), bool(self.calls)):
            log.info("client %s: too many pings, closing", self.peer)
            self.goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_pings")

    def _stream_reset(self, event: h2.events.StreamReset) -> None:
        call = self.calls.pop(event.stream_id, None)
        if call is not None:
            call.reset = call.done = True
            call.scope.cancel()
            call.arrived.set()
            call.window.set()
        if event.remote_reset and not self.budget.reset(trio.current_time()):
            log.warning("client %s: stream reset flood, closing", self.peer)
            self.goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_resets")

    # ----------------------------------------------------------------------- calls

    def _open(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        meta = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers or ()}
        if meta.get(":method") != "POST" or not meta.get("content-type", "").startswith("application/grpc"):
            status = b"405" if meta.get(":method") != "POST" else b"415"
            self.conn.send_headers(sid, [(b":status", status), (b"grpc-status", b"13")], end_stream=True)
            return
        service, _, name = meta.get(":path", "").lstrip("/").partition("/")
        deadline = float("inf")
        try:
            methods = self.services.get(service)
            if methods is None:
                raise unknown_service(service)
            method = methods.get(name)
            if method is None:
                raise unimplemented_method(service, name)
            if "grpc-timeout" in meta:
                deadline = trio.current_time() + parse_timeout(meta["grpc-timeout"])
        except GrpcStatus as exc:
            self._trailers_only(sid, int(exc.code), exc.message, client_done=False)
            return
        call = Call(sid, method, meta, deadline)
        self.calls[sid] = call
        if method.streaming:
            self._start(call)

    def _data(self, event: h2.events.DataReceived) -> None:
        sid, size = event.stream_id, event.flow_controlled_length
        call = self.calls.get(sid)
        if size:
            self._unacked += size  # the connection's window: always reopened, in batches
            if self._unacked >= CONNECTION_WINDOW // 2:
                self.conn.increment_flow_control_window(self._unacked)
                self._unacked = 0
            if event.stream_ended is not None:
                pass  # the stream's window no longer matters
            elif call is None or not call.method.streaming:
                self.open_window(call, size, sid)  # unary: the message is consumed as it is buffered
            elif size > len(event.data):
                self.open_window(call, size - len(event.data))  # padding is never consumed
        if call is None or call.done:
            return
        call.buf += event.data
        while len(call.buf) >= 5:
            flag, length = call.buf[0], int.from_bytes(call.buf[1:5], "big")
            if length > self.limits.max_message_bytes:
                return self._fail(call, too_large(length, self.limits.max_message_bytes))
            if flag not in (0, 1):
                return self._fail(
                    call, GrpcStatus(GrpcCode.INTERNAL, f"grpc: unexpected payload flag {flag}")
                )
            if flag == 1:
                enc = call.metadata.get("grpc-encoding", "")
                msg = f'grpc: Decompressor is not installed for grpc-encoding "{enc}"'
                return self._fail(call, GrpcStatus(GrpcCode.UNIMPLEMENTED, msg))
            if len(call.buf) < 5 + length:
                return None
            call.inbound.append(bytes(call.buf[5 : 5 + length]))
            del call.buf[: 5 + length]
            call.arrived.set()
        return None

    def _client_done(self, sid: int) -> None:
        call = self.calls.get(sid)
        if call is None:
            return
        call.client_done = True
        call.arrived.set()
        if call.done or call.method.streaming:
            return
        if call.buf or len(call.inbound) != 1:
            what = "an incomplete message" if call.buf else f"{len(call.inbound)} messages"
            msg = f"grpc: a unary call needs one request message, got {what}"
            return self._fail(call, GrpcStatus(GrpcCode.INTERNAL, msg))
        self._start(call)

    def open_window(self, call: Call | None, size: int, sid: int = 0) -> None:
        """Let the client send `size` more bytes on the stream (when it is still open)."""
        sid = call.sid if call is not None else sid
        if size <= 0 or (call is not None and (call.done or call.client_done)):
            return
        try:
            self.conn.increment_flow_control_window(size, stream_id=sid)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            pass

    async def _consumed(self, call: Call, size: int) -> None:
        self.open_window(call, size)
        await self.flush()

    def decode(self, call: Call, raw: bytes) -> Any:
        msg = call.method.request_type()
        try:
            msg.ParseFromString(raw)
        except DecodeError as exc:
            raise GrpcStatus(GrpcCode.INTERNAL, f"grpc: error unmarshalling request: {exc}") from None
        return msg

    def _start(self, call: Call) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._run, call)

    async def _run(self, call: Call) -> None:
        ctx = CallContext(call.metadata)
        status: tuple[int, str] = (0, "")
        try:
            with call.scope:
                if call.method.streaming:
                    await call.method.call(
                        Requests(call, self._consumed, self.decode), lambda m: self._send(call, m), ctx
                    )
                else:
                    request = self.decode(call, call.inbound.popleft())
                    await self._send(call, await call.method.call(request, ctx), flush=False)
            if call.scope.cancelled_caught:
                if call.reset:
                    return
                status = status_of(
                    DEADLINE_EXCEEDED if trio.current_time() >= call.scope.deadline else CANCELLED
                )
        except h2.exceptions.StreamClosedError:
            return
        except Exception as exc:
            status = status_of(exc)
        self._finish(call, *status)
        await self.flush()

    async def _send(self, call: Call, message: Any, *, flush: bool = True) -> None:
        """One response message, framed, sent as the peer's flow-control window allows."""
        payload = message.SerializeToString()
        frame = b"\x00" + len(payload).to_bytes(4, "big") + payload
        view = memoryview(frame)
        if not call.headers_sent:
            self.conn.send_headers(call.sid, _OK_HEADERS)
            call.headers_sent = True
        self.budget.sent = True
        while view:
            if call.done:
                raise h2.exceptions.StreamClosedError(call.sid)
            size = min(
                self.conn.local_flow_control_window(call.sid), self.conn.max_outbound_frame_size, len(view)
            )
            if size <= 0:
                call.window = trio.Event()
                await self.flush()
                await call.window.wait()
                continue
            self.conn.send_data(call.sid, bytes(view[:size]))
            view = view[size:]
        if flush:  # a stream message; a unary answer leaves with its trailers, in one write
            await self.writer.queued(len(frame))

    def _trailers_only(self, sid: int, code: int, message: str, *, client_done: bool) -> None:
        self._end(sid, [*_OK_HEADERS, *_status_headers(code, message)], client_done)

    def _end(self, sid: int, headers: list[tuple[bytes, bytes]], client_done: bool) -> None:
        try:
            self.conn.send_headers(sid, headers, end_stream=True)
            if not client_done:  # the client is still sending: we have answered, it may stop
                self.conn.reset_stream(sid, h2.errors.ErrorCodes.NO_ERROR)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.budget.sent = True

    def _finish(self, call: Call, code: int, message: str) -> None:
        if call.done:
            return
        call.done = True
        self.calls.pop(call.sid, None)
        if call.headers_sent:
            self._end(call.sid, _status_headers(code, message), call.client_done)
        else:
            self._trailers_only(call.sid, code, message, client_done=call.client_done)

    def _fail(self, call: Call, status: GrpcStatus) -> None:
        """End a call early (bad message, oversized): its handler, if running, is cancelled."""
        call.scope.cancel()
        call.reset = True  # its task must not answer again
        self._finish(call, int(status.code), status.message)
        call.arrived.set()
        call.window.set()


def _status_headers(code: int, message: str) -> list[tuple[bytes, bytes]]:
    grpc_message = [(b"grpc-message", percent_encode(message).encode("ascii"))] if message else []
    return [(b"grpc-status", str(code).encode()), *grpc_message]


async def serve_grpc(
    stream: trio.abc.Stream, peer: str, first: bytes, services: Services, limits: Limits
) -> None:
    """Serve one HTTP/2 connection whose first bytes (already read) are `first`."""
    await GrpcConnection(stream, peer, services, limits).serve(first)


__all__ = ["PREFACE", "GrpcConnection", "serve_grpc", "sniff"]
