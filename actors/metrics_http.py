"""GET /metrics: on every client URL (a route) and on `listen-metrics-urls` (a small HTTP listener, like etcd).

The metrics listener serves only /metrics and /health (etcd's), never the client API, so it can be exposed
to a monitoring network. A scrape renders values already in memory (actors/metrics.py): it never waits for
the Raft loop, a page-file commit or a defrag.
"""

from __future__ import annotations

import email.utils
import functools
import http
import logging
from collections.abc import Awaitable, Callable

import h11
import prometheus_client
import trio

from trikv.actors.httpmsg import NOT_FOUND, HttpRequest, HttpResponse, Route, method_not_allowed
from trikv.actors.metrics import MemberMetrics

log = logging.getLogger("trikv.metrics")

IDLE_TIMEOUT = 30.0  # seconds a metrics connection may sit between requests
MAX_HEAD = 16 * 1024
Health = Callable[[], Awaitable[tuple[bool, str]]]


def metrics_route(metrics: MemberMetrics) -> Route:
    async def serve(req: HttpRequest) -> HttpResponse:
        if req.method not in ("GET", "HEAD"):
            return method_not_allowed("GET")
        # Rendering ~100 KB of text is pure Python: off the event loop, so the Raft loop never waits on a scrape.
        body = await trio.to_thread.run_sync(metrics.exposition)
        return HttpResponse(200, body, prometheus_client.CONTENT_TYPE_LATEST)

    return serve


def metrics_routes(metrics: MemberMetrics) -> dict[str, Route]:
    """What the Node adds to each client URL's routes."""
    return {"/metrics": metrics_route(metrics)}


def health_route(health: Health) -> Route:
    async def serve(req: HttpRequest) -> HttpResponse:
        if req.method != "GET":
            return method_not_allowed("GET")
        healthy, reason = await health()
        if healthy:
            return HttpResponse.json(200, {"health": "true"})
        return HttpResponse.json(503, {"health": "false", "reason": reason})

    return serve


async def _serve_connection(routes: dict[str, Route], stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        while True:
            event: object = None
            with trio.move_on_after(IDLE_TIMEOUT):
                event = await _next(conn, stream)
                while not isinstance(event, (h11.Request, h11.ConnectionClosed)):
                    event = await _next(conn, stream)
            if not isinstance(event, h11.Request):
                return
            while not isinstance(await _next(conn, stream), (h11.EndOfMessage, h11.ConnectionClosed)):
                pass  # a body is ignored (only GETs are served)
            method = event.method.decode("ascii", "replace")
            target = event.target.decode("latin-1")
            path, _, query = target.partition("?")
            route = routes.get(path)
            req = HttpRequest(method, target, path, query, ())
            resp = NOT_FOUND if route is None else await route(req)
            headers = [
                ("content-type", resp.content_type),
                ("content-length", str(len(resp.body))),
                ("date", email.utils.formatdate(usegmt=True)),
                *resp.headers,
            ]
            reason = http.HTTPStatus(resp.status).phrase.encode()
            data = conn.send(h11.Response(status_code=resp.status, headers=headers, reason=reason)) or b""
            if method != "HEAD":
                data += conn.send(h11.Data(data=resp.body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            await stream.send_all(data)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.debug("metrics connection dropped: %s", exc)
    except Exception:  # a bad scrape must never take the member down
        log.exception("metrics request failed")
    finally:
        await trio.aclose_forcefully(stream)


async def _next(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(MAX_HEAD))


async def serve_metrics(
    metrics: MemberMetrics,
    health: Health,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve /metrics and /health on host:port until cancelled; reports the bound port."""
    routes = {**metrics_routes(metrics), "/health": health_route(health)}
    async with trio.open_nursery() as nursery:
        listeners: list[trio.SocketListener] = await nursery.start(
            functools.partial(trio.serve_tcp, functools.partial(_serve_connection, routes), port, host=host)
        )
        bound = listeners[0].socket.getsockname()[1]
        log.info("serving metrics on %s:%d", host, bound)
        task_status.started(bound)


__all__ = ["metrics_route", "metrics_routes", "serve_metrics"]
