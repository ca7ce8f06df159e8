"""The CBOR WebSocket API on the client port: one Session per connection.

Each frame is a CBOR array of `[id, op, payload]` items (see trikv.api.protocol). Items run concurrently,
bounded by `max_in_flight` (the reader stops reading frames while the bound is reached, so a client that
floods is pushed back through TCP). One writer task coalesces all responses completed in the same
scheduling round into one frame, because each WebSocket message costs tens of microseconds of
pure-Python framing on both ends. Malformed frames, unknown ops, ill-typed or oversized requests and
backend bugs become typed error items; a broken connection cancels only its own requests.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

import attrs
import trio
import trio_websocket

from trikv.api import codec, errors, protocol

log = logging.getLogger("trikv.server")

WS_QUEUE_SIZE = 8  # frames buffered ahead of our reader (default 1); x max message = memory per connection
WS_RECEIVE_BYTES = 256 * 1024  # socket read size; 4 KiB (the default) costs ~400 reads per 1.5 MB request
COALESCE_SOFT_LIMIT = 1024 * 1024  # a coalesced response frame above this is split (if it has >1 item)
HANDSHAKE_TIMEOUT = 10.0  # seconds for trio-websocket to finish a handshake we already parsed
CLOSE_TIMEOUT = 2.0  # seconds to wait for the peer's WebSocket close reply

InternalError = errors.InternalError


class Backend(Protocol):
    """What the client surfaces call (actors/handlers.py implements it)."""

    async def handle(self, request: Any) -> Any:
        """Serve one request: an instance of one of the request shapes (the wire op names it in protocol.OPS).

        Returns the response shape; raises EtcdError subclasses. May be cancelled (client gone).
        """
        ...

    async def health(self) -> tuple[bool, str]:
        """(healthy, reason) for GET /health."""
        ...

    def version(self) -> dict[str, str]:
        """{"etcdserver": ..., "etcdcluster": ...} for GET /version."""
        ...

    async def stream(self, first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: Emit) -> None:
        """Serve one stream: `first` opened it, later client items arrive on `inbound` (closed when the
        client ends its side), every answer goes out through `emit` (which waits while the connection's
        outbound queue is full). Returning ends the stream with OK; an EtcdError ends it with ERR."""
        ...


Emit = Callable[[Any], Awaitable[None]]


class PolicyViolation(Exception):
    """Raised by a stream handler whose client breaks the connection's contract (a watch client that reads
    nothing while its buffers are full): the whole connection closes with WebSocket code 1008 and this
    text as the reason; the client's other streams resume elsewhere."""


POLICY_VIOLATION = 1008  # WebSocket close code
MAX_STREAMS = 256  # open streams per connection (beyond: "etcdserver: too many requests")
STREAM_INBOUND = 64  # client items buffered per stream before the connection's reader waits


# --------------------------------------------------------------------------- request shape validation

_Checker = Callable[[Any], bool]
_field_checkers: dict[type, tuple[tuple[str, _Checker], ...]] = {}


def _checker(tp: Any) -> _Checker:
    """A predicate for one resolved field annotation; what it cannot judge it accepts."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        options = [_checker(arg) for arg in typing.get_args(tp)]
        return lambda v: any(check(v) for check in options)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _checker(args[0])
            return lambda v: isinstance(v, tuple) and all(item(x) for x in v)
        return lambda v: isinstance(v, tuple)
    if tp is type(None):
        return lambda v: v is None
    if isinstance(tp, type):
        if attrs.has(tp):
            return lambda v: isinstance(v, tp) and shape_problem(v) is None
        return lambda v: isinstance(v, tp)
    return lambda v: True


def shape_problem(obj: Any) -> str | None:
    """Name the first field of a decoded attrs request whose value has the wrong type, else None.

    The codec builds shapes from whatever CBOR says; a put whose key is an int must be refused here,
    at the edge, before it is proposed, logged and applied on every member.
    """
    cls = type(obj)
    checks = _field_checkers.get(cls)
    if checks is None:
        attrs.resolve_types(cls)
        checks = tuple((f.name, _checker(f.type)) for f in attrs.fields(cls))
        _field_checkers[cls] = checks
    for name, check in checks:
        value = getattr(obj, name)
        if not check(value):
            return f"{cls.__name__}.{name} has the wrong type ({type(value).__name__})"
    return None


async def serve_websocket(
    stream: trio.abc.Stream, peer: str, backend: Backend, *, max_request_bytes: int, max_in_flight: int
) -> None:
    """Finish the WebSocket handshake on a stream that already carried the upgrade request, then serve it."""
    async with trio.open_nursery() as ws_nursery:  # trio-websocket's reader task lives here
        ws: trio_websocket.WebSocketConnection | None = None
        watch = ReaderWatch(ws_nursery)
        try:
            with trio.move_on_after(HANDSHAKE_TIMEOUT) as handshake:
                # A handshake wsproto rejects ends its reader task without ever producing a request.
                ws_nursery.start_soon(_cancel_when_set, watch.done, handshake)
                request = await trio_websocket.wrap_server_stream(
                    cast(trio.Nursery, watch),
                    stream,
                    message_queue_size=WS_QUEUE_SIZE,
                    max_message_size=max_request_bytes + protocol.FRAME_OVERHEAD_BYTES,
                    receive_buffer_size=WS_RECEIVE_BYTES,
                )
                ws = await request.accept()
            if ws is None:
                log.info("client %s: WebSocket handshake failed or timed out", peer)
                return
            log.debug("client %s: WebSocket open", peer)
            await Session(backend, ws, peer, watch.done, max_request_bytes, max_in_flight).run()
        finally:
            if ws is not None:
                with trio.move_on_after(CLOSE_TIMEOUT) as scope:
                    scope.shield = True
                    await ws.aclose()
            ws_nursery.cancel_scope.cancel()
        log.debug("client %s: WebSocket closed", peer)


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


class ReaderWatch:
    """Stands in for the nursery given to trio-websocket, to learn when its reader task ends.

    The reader task ends exactly when the connection is gone; our reader may be parked on a full
    in-flight bound (not in get_message), and long requests would otherwise outlive their client.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.done = trio.Event()

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object, name: object = None) -> None:
        async def run() -> None:
            try:
                await fn(*args)
            finally:
                self.done.set()

        self._nursery.start_soon(run, name=name or fn)


class Session:
    """One WebSocket connection: a reader that starts requests, a writer that coalesces responses."""

    def __init__(
        self,
        backend: Backend,
        ws: trio_websocket.WebSocketConnection,
        peer: str,
        gone: trio.Event,
        max_request_bytes: int,
        max_in_flight: int,
    ) -> None:
        self.gone = gone
        self.backend = backend
        self.max_request_bytes = max_request_bytes
        self.ws = ws
        self.peer = peer
        # One slot per response not yet written: bounds tasks in flight AND responses queued for a slow reader.
        self.slots = trio.Semaphore(max_in_flight)
        self.out: list[list[Any]] = []
        self.wake = trio.Event()
        self.streams: dict[int, trio.MemorySendChannel[Any]] = {}  # open streams' inbound items, by id

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._session_scope = nursery.cancel_scope
            nursery.start_soon(self._writer, nursery.cancel_scope)
            nursery.start_soon(self._watch_gone, nursery.cancel_scope)
            try:
                await self._reader(nursery)
            except trio_websocket.ConnectionClosed:
                pass
            finally:
                # The client is gone (or closing): its in-flight requests have nobody to answer to.
                nursery.cancel_scope.cancel()

    async def _watch_gone(self, cancel_scope: trio.CancelScope) -> None:
        await self.gone.wait()
        cancel_scope.cancel()

    async def _take_slot(self) -> None:
        try:
            self.slots.acquire_nowait()
        except trio.WouldBlock:
            await self.slots.acquire()

    def _push(self, item: list[Any]) -> None:
        self.out.append(item)
        self.wake.set()

    async def _push_error(self, request_id: int, err: errors.EtcdError) -> None:
        await self._take_slot()
        self._push(protocol.error_item(request_id, err))

    async def _reader(self, nursery: trio.Nursery) -> None:
        max_request = self.max_request_bytes
        while True:
            msg = await self.ws.get_message()
            if isinstance(msg, str):
                await self._push_error(
                    0, errors.InvalidRequestError("etcdserver: text message; frames are binary CBOR")
                )
                continue
            try:
                items = protocol.decode_frame(msg)
            except codec.CodecError as exc:
                await self._push_error(0, errors.InvalidRequestError(f"etcdserver: undecodable frame: {exc}"))
                continue
            # Only a frame above the limit can hold a request above it, so the common case costs nothing.
            check_size = len(msg) > max_request
            for request_id, op, payload in items:
                inbound = self.streams.get(request_id)
                if inbound is not None:
                    await self._to_stream(request_id, inbound, op, payload, check_size)
                    continue
                if op in protocol.STREAM_OPS:
                    await self._open_stream(nursery, request_id, op, payload, check_size)
                    continue
                err = self._check(op, payload, check_size)
                if err is not None:
                    await self._push_error(request_id, err)
                    continue
                await self._take_slot()
                nursery.start_soon(self._run, request_id, op, payload)

    # ---------------------------------------------------------------- streams

    def _check_stream_item(self, op: str, payload: Any, check_size: bool) -> errors.EtcdError | None:
        shapes = protocol.STREAM_OPS.get(op, ())
        if type(payload) not in shapes:
            return errors.InvalidRequestError(f"etcdserver: stream {op!r} does not take {type(payload).__name__}")
        problem = shape_problem(payload)
        if problem is not None:
            return errors.InvalidRequestError(f"etcdserver: {problem}")
        if check_size and len(codec.encode(payload)) > self.max_request_bytes:
            return errors.RequestTooLargeError()
        return None

    async def _open_stream(
        self, nursery: trio.Nursery, stream_id: int, op: str, payload: Any, check_size: bool
    ) -> None:
        err = self._check_stream_item(op, payload, check_size)
        if err is None and len(self.streams) >= MAX_STREAMS:
            err = errors.TooManyRequestsError()
        if err is not None:
            await self._push_error(stream_id, err)
            return
        send, recv = trio.open_memory_channel[Any](STREAM_INBOUND)
        self.streams[stream_id] = send
        nursery.start_soon(self._run_stream, stream_id, payload, recv)

    async def _to_stream(
        self, stream_id: int, inbound: trio.MemorySendChannel[Any], op: Any, payload: Any, check_size: bool
    ) -> None:
        if op == protocol.STREAM_CLOSE:
            self.streams.pop(stream_id, None)
            inbound.close()
            return
        err = self._check_stream_item(op, payload, check_size)
        if err is not None:
            await self._push_error(0, err)  # the stream goes on; the bad item is answered on id 0
            return
        try:
            await inbound.send(payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the handler already ended the stream

    async def _run_stream(self, stream_id: int, first: Any, inbound: trio.MemoryReceiveChannel[Any]) -> None:
        async def emit(result: Any) -> None:
            await self._take_slot()
            self._push([stream_id, protocol.MORE, result])

        try:
            async with inbound:
                await self.backend.stream(first, inbound, emit)
            item = [stream_id, protocol.OK, None]
        except errors.EtcdError as err:
            item = protocol.error_item(stream_id, err)
        except PolicyViolation as exc:
            log.warning("client %s: closing the connection (%s)", self.peer, exc)
            with trio.move_on_after(CLOSE_TIMEOUT):  # a stuck client may not take even the close frame
                await self.ws.aclose(POLICY_VIOLATION, str(exc)[:120])
            self._session_scope.cancel()
            return
        except Exception:
            log.exception("client %s: stream #%d failed", self.peer, stream_id)
            item = protocol.error_item(stream_id, InternalError())
        finally:
            sender = self.streams.pop(stream_id, None)
            if sender is not None:
                sender.close()
        await self._take_slot()
        self._push(item)

    def _check(self, op: Any, payload: Any, check_size: bool) -> errors.EtcdError | None:
        shape = protocol.OPS.get(op) if isinstance(op, str) else None
        if shape is None:
            return errors.InvalidRequestError(f"etcdserver: unknown op {op!r}")
        if type(payload) is not shape:
            return errors.InvalidRequestError(
                f"etcdserver: op {op!r} takes {shape.__name__}, got {type(payload).__name__}"
            )
        problem = shape_problem(payload)
        if problem is not None:
            return errors.InvalidRequestError(f"etcdserver: {problem}")
        if check_size and len(codec.encode(payload)) > self.max_request_bytes:
            return errors.RequestTooLargeError()
        return None

    async def _run(self, request_id: int, op: str, payload: Any) -> None:
        try:
            result = await self.backend.handle(payload)
            item = protocol.ok_item(request_id, result)
        except errors.EtcdError as err:
            item = protocol.error_item(request_id, err)
        except Exception:
            log.exception("client %s: backend failed on %s #%d", self.peer, op, request_id)
            item = protocol.error_item(request_id, InternalError())
        self._push(item)

    async def _writer(self, cancel_scope: trio.CancelScope) -> None:
        try:
            while True:
                await self.wake.wait()
                # One more scheduling round: responses finishing alongside this one join its frame.
                await trio.lowlevel.checkpoint()
                items, self.out = self.out, []
                self.wake = trio.Event()
                for frame in self._encode(items):
                    await self.ws.send_message(frame)
                for _ in items:
                    self.slots.release()
        except trio_websocket.ConnectionClosed:
            cancel_scope.cancel()

    def _encode(self, items: list[list[Any]]) -> list[bytes]:
        try:
            frame = protocol.encode_frame(items)
        except codec.CodecError:
            items = [self._encodable(item) for item in items]
            frame = protocol.encode_frame(items)
        if len(frame) > COALESCE_SOFT_LIMIT and len(items) > 1:
            mid = len(items) // 2
            return self._encode(items[:mid]) + self._encode(items[mid:])
        return [frame]

    def _encodable(self, item: list[Any]) -> list[Any]:
        try:
            protocol.encode_frame([item])
        except codec.CodecError:
            log.exception("client %s: cannot encode the response to #%s", self.peer, item[0])
            return protocol.error_item(item[0], InternalError())
        return item


__all__ = ["Backend", "ReaderWatch", "Session", "serve_websocket", "shape_problem"]
