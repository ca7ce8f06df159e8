"""The client server actor: one TCP port (listen-client-urls) speaking plain HTTP and the CBOR WebSocket API.

Every connection starts as HTTP/1.1 parsed by h11. A request for `protocol.WS_PATH` that asks for a
WebSocket upgrade is handed, together with every byte read so far on that request, to trio-websocket,
which performs the handshake itself; all other requests go through a small routing table (`/health`,
`/version`, later the JSON gateway), with keep-alive.

The WebSocket side (one Session per connection) is actors/wsession.py; the HTTP message shapes are
actors/httpmsg.py. Nothing a client sends can stop the server.
"""

from __future__ import annotations

import functools
import http
import logging
from collections.abc import Mapping
from typing import Any

import h11
import trio
import trio_websocket

from trikv.actors import grpc_call, grpc_server, grpc_services, http1
from trikv.actors.httpmsg import NOT_FOUND, HttpRequest, HttpResponse, Route, method_not_allowed
from trikv.actors.metrics import MemberMetrics
from trikv.actors.sockio import FastSocket
from trikv.actors.wsession import Backend, serve_websocket
from trikv.api import errors, protocol

log = logging.getLogger("trikv.server")

DEFAULT_MAX_IN_FLIGHT = 1024  # concurrent requests per WebSocket connection
HTTP_RECEIVE_BYTES = 64 * 1024
HTTP_IDLE_TIMEOUT = 300.0  # seconds to send a request head, and again its body (etcd: 5 min read timeout)




# --------------------------------------------------------------------------- HTTP side


class _ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read (the upgrade request) and then reads the socket.

    h11 has consumed the handshake from the socket; trio-websocket wants to parse it again itself.
    """

    def __init__(self, inner: trio.abc.Stream, prefix: bytes, metrics: MemberMetrics | None = None) -> None:
        self._inner = inner
        self._prefix = memoryview(prefix)
        self._metrics = metrics  # counts the WebSocket's bytes as etcd counts its gRPC clients'

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            chunk = bytes(self._prefix[:n])
            self._prefix = self._prefix[n:]
            await trio.lowlevel.checkpoint()
            return chunk
        data = await self._inner.receive_some(max_bytes)
        if self._metrics is not None:
            self._metrics.client_received.inc(len(data))
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)
        if self._metrics is not None:
            self._metrics.client_sent.inc(len(data))

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
        self.metrics: MemberMetrics | None = None  # client bytes (etcd_network_client_grpc_*_bytes_total)
        self.max_request_bytes = max_request_bytes
        self.max_message_bytes = max_request_bytes + protocol.FRAME_OVERHEAD_BYTES
        self.max_in_flight = max_in_flight
        # path -> handler. The JSON gateway (/v3/kv/range, ...) plugs in here via add_route.
        self.routes: dict[str, Route] = {"/health": self._health, "/version": self._version}
        # gRPC (etcd's v3 API) on the same port: a connection opening with the HTTP/2 preface goes there.
        self.grpc_services = grpc_services.services(backend, max_request_bytes)
        self.grpc_limits = grpc_call.Limits(max_message_bytes=self.max_message_bytes)
        self._waiting: dict[trio.CancelScope, float] = {}  # plain-path connection -> awaiting bytes since

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
            nursery.start_soon(self._close_idle)
            bound = listeners[0].socket.getsockname()[1]
            log.info("serving clients on %s:%d", host, bound)
            task_status.started(bound)

    async def _close_idle(self) -> None:
        """Ends the plain-path connections that waited over HTTP_IDLE_TIMEOUT for a request's bytes: one
        sweep for all of them (a deadline per request costs more CPU than the request's parsing)."""
        while True:
            await trio.sleep(HTTP_IDLE_TIMEOUT / 8)
            limit = trio.current_time() - HTTP_IDLE_TIMEOUT
            for scope, since in list(self._waiting.items()):
                if since < limit:
                    scope.cancel()

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
            is_http2, first = await grpc_server.sniff(stream, HTTP_IDLE_TIMEOUT)
            if is_http2:
                counted: trio.abc.Stream = stream
                if self.metrics is not None:  # gRPC's bytes count like the WebSocket's (a counting wrapper)
                    self.metrics.client_received.inc(len(first))
                    counted = _ReplayStream(stream, b"", self.metrics)
                await grpc_server.serve_grpc(counted, peer, first, self.grpc_services, self.grpc_limits)
                return
            await self._http_loop(stream, peer, first)
        except Exception as exc:
            if _is_disconnect(exc):
                log.debug("client %s: connection lost", peer)
            else:
                log.exception("client %s: connection failed", peer)
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve(self, req: HttpRequest, peer: str) -> HttpResponse:
        route = self.routes.get(req.path)
        if route is None:
            resp = NOT_FOUND
        else:
            try:
                resp = await route(req)
            except Exception:
                log.exception("client %s: %s %s failed", peer, req.method, req.target)
                resp = HttpResponse.text(500, "Internal Server Error\n")
        if self.metrics is not None and req.path.startswith("/v3/"):  # API calls, not /metrics or /dashboard
            self.metrics.client_received.inc(len(req.body))
            self.metrics.client_sent.inc(len(resp.body))
        return resp

    async def _http_loop(self, stream: trio.SocketStream, peer: str, first: bytes = b"") -> None:
        """Plain requests on the fast path (actors/http1.py); from the first other one on, h11 has the rest."""
        buf = bytearray(first)
        idle = trio.CancelScope()  # cancelled by _close_idle when a request's bytes are awaited too long
        waiting = self._waiting
        sock = FastSocket(stream)
        try:
            with idle:
                while True:
                    head = http1.parse_head(buf, self.max_message_bytes)
                    if head is None:
                        waiting[idle] = trio.current_time()
                        while head is None:
                            data = await sock.receive_some(HTTP_RECEIVE_BYTES)
                            if not data:
                                return  # closed between requests (or mid-head, which h11 would only log too)
                            buf += data
                            head = http1.parse_head(buf, self.max_message_bytes)
                    if not isinstance(head, http1.PlainHead):
                        break
                    total = head.head_length + head.body_length
                    if len(buf) < total:
                        waiting[idle] = trio.current_time()  # the body gets its own window
                        while len(buf) < total:
                            data = await sock.receive_some(HTTP_RECEIVE_BYTES)
                            if not data:
                                return
                            buf += data
                    waiting.pop(idle, None)  # a route may take its time (watch streams)
                    raw = bytes(buf[:total])
                    del buf[:total]
                    resp = await self._serve(http1.plain_request(head, raw), peer)
                    out = http1.plain_response(resp)
                    if out is None:  # h11 writes a streaming or bodiless response (and the connection ends)
                        conn = http1.h11_after(raw)
                        await self._respond(stream, conn, head.method.decode(), resp, close=False)
                        return
                    await sock.send_all(out)
        finally:
            waiting.pop(idle, None)
        if idle.cancelled_caught:
            log.debug("client %s: idle HTTP connection closed", peer)
            return
        await self._h11_loop(stream, peer, bytes(buf))

    async def _h11_loop(self, stream: trio.SocketStream, peer: str, first: bytes = b"") -> None:
        conn = h11.Connection(h11.SERVER)
        if first:  # read while telling HTTP/1.1 from HTTP/2
            conn.receive_data(first)
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
                    await serve_websocket(
                        _ReplayStream(stream, bytes(head), self.metrics),
                        peer,
                        self.backend,
                        max_request_bytes=self.max_request_bytes,
                        max_in_flight=self.max_in_flight,
                    )
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
            resp = await self._serve(req, peer)
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
        if resp.stream is not None:
            await http1.respond_streaming(stream, conn, resp)
            return
        headers = [
            ("content-type", resp.content_type),
            ("content-length", str(len(resp.body))),
            ("date", http1.http_date().decode()),
            *resp.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        reason = http1.reason(resp.status)
        data = conn.send(h11.Response(status_code=resp.status, headers=headers, reason=reason)) or b""
        if method != "HEAD" and resp.body:
            data += conn.send(h11.Data(data=resp.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)



async def serve_clients(
    backend: Backend,
    host: str,
    port: int,
    *,
    max_request_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    routes: Mapping[str, Route] | None = None,
    metrics: MemberMetrics | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the client API on host:port until cancelled; `await nursery.start(...)` returns the bound port.

    `routes` adds HTTP paths (e.g. actors.gateway.gateway_routes) to the built-in /health and /version.
    """
    server = ClientServer(backend, max_request_bytes=max_request_bytes, max_in_flight=max_in_flight)
    server.metrics = metrics
    for path, handler in (routes or {}).items():
        server.add_route(path, handler)
    await server.serve(host, port, task_status=task_status)


__all__ = ["ClientServer", "serve_clients"]
