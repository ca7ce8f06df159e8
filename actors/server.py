"""The client server actor: one TCP port (listen-client-urls) speaking plain HTTP and the CBOR WebSocket API.

Every connection starts as HTTP/1.1 parsed by h11. A request for `protocol.WS_PATH` that asks for a
WebSocket upgrade is handed, together with every byte read so far on that request, to trio-websocket,
which performs the handshake itself; all other requests go through a small routing table (`/health`,
`/version`, later the JSON gateway), with keep-alive.

On a WebSocket each frame is a CBOR array of `[id, op, payload]` items (see trikv.api.protocol). Items run
concurrently in a per-connection nursery, bounded by `max_in_flight` (the reader stops reading frames while
the bound is reached, so a client that floods is pushed back through TCP). One writer task coalesces all
responses completed in the same scheduling round into one frame, because each WebSocket message costs
tens of microseconds of pure-Python framing on both ends.

Nothing a client sends can stop the server: malformed frames, unknown ops, oversized requests and
backend bugs become typed error items; a broken connection cancels only its own requests.
"""

from __future__ import annotations

import email.utils
import functools
import http
import json
import logging
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

import attrs
import h11
import trio
import trio_websocket

from trikv.api import codec, errors, protocol

log = logging.getLogger("trikv.server")

DEFAULT_MAX_IN_FLIGHT = 1024  # concurrent requests per WebSocket connection
WS_QUEUE_SIZE = 8  # frames buffered ahead of our reader (default 1); x max message = memory per connection
WS_RECEIVE_BYTES = 256 * 1024  # socket read size; 4 KiB (the default) costs ~400 reads per 1.5 MB request
COALESCE_SOFT_LIMIT = 1024 * 1024  # a coalesced response frame above this is split (if it has >1 item)
HANDSHAKE_TIMEOUT = 10.0  # seconds for trio-websocket to finish a handshake we already parsed
CLOSE_TIMEOUT = 2.0  # seconds to wait for the peer's WebSocket close reply
HTTP_RECEIVE_BYTES = 64 * 1024
HTTP_IDLE_TIMEOUT = 300.0  # seconds to send a request head, and again its body (etcd: 5 min read timeout)


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


# --------------------------------------------------------------------------- HTTP side


@attrs.frozen(slots=True)
class HttpRequest:
    method: str
    target: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


@attrs.frozen(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, obj: Any) -> HttpResponse:
        return cls(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json")

    @classmethod
    def text(cls, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
        # Go's http.Error / http.NotFound shape, which is what etcd answers with.
        return cls(status, text.encode(), headers=(("x-content-type-options", "nosniff"), *headers))


Route = Callable[[HttpRequest], Awaitable[HttpResponse]]

NOT_FOUND = HttpResponse.text(404, "404 page not found\n")


def method_not_allowed(allow: str) -> HttpResponse:
    return HttpResponse.text(405, "Method Not Allowed\n", (("allow", allow),))


class _ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read (the upgrade request) and then reads the socket.

    h11 has consumed the handshake from the socket; trio-websocket wants to parse it again itself.
    """

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self._inner = inner
        self._prefix = memoryview(prefix)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            chunk = bytes(self._prefix[:n])
            self._prefix = self._prefix[n:]
            await trio.lowlevel.checkpoint()
            return chunk
        return await self._inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _peer(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    try:
        host, port = sock.getpeername()[:2] if sock is not None else ("?", 0)
    except OSError:
        return "?"
    return f"{host}:{port}"


_DISCONNECTS = (trio.BrokenResourceError, trio.ClosedResourceError, trio_websocket.ConnectionClosed)


def _is_disconnect(exc: BaseException) -> bool:
    """True when exc (or every leaf of an exception group) only says the peer went away."""
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(_DISCONNECTS)
        return rest is None
    return isinstance(exc, _DISCONNECTS)


def _is_ws_upgrade(req: h11.Request) -> bool:
    if req.method != b"GET":
        return False
    for name, value in req.headers:
        if name == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


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


class ClientServer:
    """Serves one client port. Construct, optionally `add_route`, then `serve` (or use serve_clients)."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_request_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_request_bytes <= 0 or max_in_flight <= 0:
            raise errors.ConfigError("max_request_bytes and max_in_flight must be positive")
        self.backend = backend
        self.max_request_bytes = max_request_bytes
        self.max_message_bytes = max_request_bytes + protocol.FRAME_OVERHEAD_BYTES
        self.max_in_flight = max_in_flight
        # path -> handler. The JSON gateway (/v3/kv/range, ...) plugs in here via add_route.
        self.routes: dict[str, Route] = {"/health": self._health, "/version": self._version}

    def add_route(self, path: str, handler: Route) -> None:
        self.routes[path] = handler

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on host:port (0 picks a free port) until cancelled; reports the bound port."""
        async with trio.open_nursery() as nursery:
            listeners: list[trio.SocketListener] = await nursery.start(
                functools.partial(trio.serve_tcp, self._handle_connection, port, host=host)
            )
            bound = listeners[0].socket.getsockname()[1]
            log.info("serving clients on %s:%d", host, bound)
            task_status.started(bound)

    # ----------------------------------------------------------------------- routes

    async def _health(self, req: HttpRequest) -> HttpResponse:
        if req.method != "GET":
            return method_not_allowed("GET")
        try:
            healthy, reason = await self.backend.health()
        except Exception as exc:  # a health probe must answer, not crash the connection
            log.exception("health check failed")
            healthy, reason = False, f"health check failed: {exc}"
        if healthy:
            return HttpResponse.json(200, {"health": "true"})
        return HttpResponse.json(503, {"health": "false", "reason": reason})

    async def _version(self, req: HttpRequest) -> HttpResponse:
        if req.method != "GET":
            return method_not_allowed("GET")
        return HttpResponse.json(200, dict(self.backend.version()))

    # ----------------------------------------------------------------------- HTTP connection

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        # trio.serve_tcp lets a handler's exception take the whole server down: contain everything here.
        peer = _peer(stream)
        try:
            await self._http_loop(stream, peer)
        except Exception as exc:
            if _is_disconnect(exc):
                log.debug("client %s: connection lost", peer)
            else:
                log.exception("client %s: connection failed", peer)
        finally:
            await trio.aclose_forcefully(stream)

    async def _http_loop(self, stream: trio.SocketStream, peer: str) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            # Every byte of the current request head is kept so that an upgrade can be replayed.
            head = bytearray(conn.trailing_data[0])
            try:
                with trio.move_on_after(HTTP_IDLE_TIMEOUT) as idle:
                    event = await self._next_event(conn, stream, head)
                if idle.cancelled_caught:
                    log.debug("client %s: idle HTTP connection closed", peer)
                    return
                if isinstance(event, h11.ConnectionClosed):
                    return
                assert isinstance(event, h11.Request)
                target = event.target.decode("latin-1")
                path, _, query = target.partition("?")
                if _is_ws_upgrade(event):
                    if path != protocol.WS_PATH:
                        await self._respond(stream, conn, "GET", NOT_FOUND, close=True)
                        return
                    # trio-websocket parses the handshake again from the recorded bytes and owns the rest.
                    await self._serve_ws(_ReplayStream(stream, bytes(head)), peer)
                    return
                del head[:]
                req = None
                with trio.move_on_after(HTTP_IDLE_TIMEOUT):  # a body trickling in forever is dropped
                    req = await self._read_request(conn, stream, event, path, query)
            except h11.RemoteProtocolError as exc:
                log.debug("client %s: bad HTTP request: %s", peer, exc)
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    text = f"{status} {http.HTTPStatus(status).phrase}"
                    await self._respond(stream, conn, "GET", HttpResponse.text(status, text), close=True)
                return
            if req is None:  # body too large (answered already) or too slow
                return
            route = self.routes.get(path)
            if route is None:
                resp = NOT_FOUND
            else:
                try:
                    resp = await route(req)
                except Exception:
                    log.exception("client %s: %s %s failed", peer, req.method, req.target)
                    resp = HttpResponse.text(500, "Internal Server Error\n")
            await self._respond(stream, conn, req.method, resp, close=False)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _next_event(
        self, conn: h11.Connection, stream: trio.SocketStream, record: bytearray | None
    ) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await stream.receive_some(HTTP_RECEIVE_BYTES)
            if record is not None:
                record += data
            conn.receive_data(data)

    async def _read_request(
        self, conn: h11.Connection, stream: trio.SocketStream, event: h11.Request, path: str, query: str
    ) -> HttpRequest | None:
        body = bytearray()
        while True:
            part = await self._next_event(conn, stream, None)
            if isinstance(part, h11.EndOfMessage):
                break
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > self.max_message_bytes:
                    resp = HttpResponse.text(413, "413 Request Entity Too Large\n")
                    await self._respond(stream, conn, "POST", resp, close=True)
                    return None
            elif isinstance(part, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("connection closed mid-request")
        return HttpRequest(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("latin-1"),
            path=path,
            query=query,
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers),
            body=bytes(body),
        )

    async def _respond(
        self, stream: trio.SocketStream, conn: h11.Connection, method: str, resp: HttpResponse, *, close: bool
    ) -> None:
        headers = [
            ("content-type", resp.content_type),
            ("content-length", str(len(resp.body))),
            ("date", email.utils.formatdate(usegmt=True)),
            *resp.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        reason = http.HTTPStatus(resp.status).phrase.encode()
        data = conn.send(h11.Response(status_code=resp.status, headers=headers, reason=reason)) or b""
        if method != "HEAD" and resp.body:
            data += conn.send(h11.Data(data=resp.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)

    # ----------------------------------------------------------------------- WebSocket connection

    async def _serve_ws(self, stream: _ReplayStream, peer: str) -> None:
        async with trio.open_nursery() as ws_nursery:  # trio-websocket's reader task lives here
            ws: trio_websocket.WebSocketConnection | None = None
            watch = _ReaderWatch(ws_nursery)
            try:
                with trio.move_on_after(HANDSHAKE_TIMEOUT) as handshake:
                    # A handshake wsproto rejects ends its reader task without ever producing a request.
                    ws_nursery.start_soon(_cancel_when_set, watch.done, handshake)
                    request = await trio_websocket.wrap_server_stream(
                        cast(trio.Nursery, watch),
                        stream,
                        message_queue_size=WS_QUEUE_SIZE,
                        max_message_size=self.max_message_bytes,
                        receive_buffer_size=WS_RECEIVE_BYTES,
                    )
                    ws = await request.accept()
                if ws is None:
                    log.info("client %s: WebSocket handshake failed or timed out", peer)
                    return
                log.debug("client %s: WebSocket open", peer)
                await _Session(self, ws, peer, watch.done).run()
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


class _ReaderWatch:
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


class _Session:
    """One WebSocket connection: a reader that starts requests, a writer that coalesces responses."""

    def __init__(
        self, server: ClientServer, ws: trio_websocket.WebSocketConnection, peer: str, gone: trio.Event
    ) -> None:
        self.server = server
        self.gone = gone
        self.backend = server.backend
        self.ws = ws
        self.peer = peer
        # One slot per response not yet written: bounds tasks in flight AND responses queued for a slow reader.
        self.slots = trio.Semaphore(server.max_in_flight)
        self.out: list[list[Any]] = []
        self.wake = trio.Event()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
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
        max_request = self.server.max_request_bytes
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
                err = self._check(op, payload, check_size)
                if err is not None:
                    await self._push_error(request_id, err)
                    continue
                await self._take_slot()
                nursery.start_soon(self._run, request_id, op, payload)

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
        if check_size and len(codec.encode(payload)) > self.server.max_request_bytes:
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


async def serve_clients(
    backend: Backend,
    host: str,
    port: int,
    *,
    max_request_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    routes: Mapping[str, Route] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the client API on host:port until cancelled; `await nursery.start(...)` returns the bound port.

    `routes` adds HTTP paths (e.g. actors.gateway.gateway_routes) to the built-in /health and /version.
    """
    server = ClientServer(backend, max_request_bytes=max_request_bytes, max_in_flight=max_in_flight)
    for path, handler in (routes or {}).items():
        server.add_route(path, handler)
    await server.serve(host, port, task_status=task_status)


__all__ = [
    "NOT_FOUND",
    "Backend",
    "ClientServer",
    "HttpRequest",
    "HttpResponse",
    "InternalError",
    "Route",
    "method_not_allowed",
    "serve_clients",
]
