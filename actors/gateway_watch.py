"""The JSON gateway's watch: `POST /v3/watch` (and etcd 3.4's /v3beta/ alias) as grpc-gateway serves it.

The body holds one or more WatchRequest JSON objects (the first opens the stream); the answer is a
chunked stream of newline-terminated `{"result": WatchResponse}` objects, one HTTP chunk each, so
`curl -N` and etcd3gw's watch read it unchanged. A stream that ends with an error writes grpc-gateway's
`{"error": {...}}` object last.
"""

from __future__ import annotations

import http
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import trio

from trikv.actors.gateway import HTTP_STATUS, error_response, go_json, header_json, kv_json
from trikv.actors.gateway_requests import BadRequestError, _Fields
from trikv.actors.httpmsg import HttpRequest, HttpResponse, Route, method_not_allowed
from trikv.actors.wsession import PolicyViolation
from trikv.api import errors
from trikv.api.rpc import ResponseHeader
from trikv.api.watch import (
    Event,
    EventType,
    FilterType,
    IdentityCache,
    WatchCancelRequest,
    WatchCreateRequest,
    WatchProgressRequest,
    WatchRequest,
    WatchResponse,
)

log = logging.getLogger("trikv.gateway")

WATCH_PATHS = ("/v3/watch", "/v3beta/watch")
MAX_REQUESTS = 10_000  # WatchRequest objects one body may carry (a body is bounded by max-request-bytes too)
_METADATA = (("grpc-metadata-content-type", "application/grpc"),)


class StreamBackend(Protocol):
    async def stream(
        self, first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: Callable[[Any], Awaitable[None]]
    ) -> None: ...


# --------------------------------------------------------------------------- JSON -> WatchRequest


def watch_requests(body: bytes) -> list[WatchRequest]:
    """The WatchRequest objects of a body (grpc-gateway decodes a stream of concatenated JSON objects)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError("invalid character in request body") from exc
    decoder = json.JSONDecoder()
    out: list[WatchRequest] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise BadRequestError(f"invalid character in request body: {exc.msg}") from exc
        out.append(watch_request(obj))
        if len(out) > MAX_REQUESTS:
            raise BadRequestError(f"more than {MAX_REQUESTS} watch requests in one body")
    if not out:
        raise BadRequestError("EOF")
    return out


def watch_request(obj: Any) -> WatchRequest:
    f = _Fields(obj, "WatchRequest")
    if f.has("create_request"):
        c = _Fields(f.raw("create_request"), "WatchCreateRequest")
        filters = tuple(
            _Fields({"f": v}, "WatchCreateRequest").enumeration(
                "f", FilterType, "WatchCreateRequest_FilterType"
            )
            for v in c.array("filters")
        )
        return WatchRequest(
            create_request=WatchCreateRequest(
                key=c.octets("key"),
                range_end=c.octets("range_end"),
                start_revision=c.int64("start_revision"),
                progress_notify=c.boolean("progress_notify"),
                filters=tuple(int(x) for x in filters),
                prev_kv=c.boolean("prev_kv"),
                watch_id=c.int64("watch_id"),
                fragment=c.boolean("fragment"),
            )
        )
    if f.has("cancel_request"):
        cancel = _Fields(f.raw("cancel_request"), "WatchCancelRequest")
        return WatchRequest(cancel_request=WatchCancelRequest(cancel.int64("watch_id")))
    if f.has("progress_request"):
        return WatchRequest(progress_request=WatchProgressRequest())
    return WatchRequest()


# --------------------------------------------------------------------------- WatchResponse -> proto3 JSON


def _event_json(ev: Event) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if ev.type != EventType.PUT:
        d["type"] = ev.type.name  # jsonpb writes enums by name; PUT (0) is omitted
    d["kv"] = kv_json(ev.kv)
    if ev.prev_kv is not None:
        d["prev_kv"] = kv_json(ev.prev_kv)
    return d


def watch_response_json(r: WatchResponse) -> dict[str, Any]:
    d: dict[str, Any] = {"header": header_json(r.header)}
    if r.watch_id:
        d["watch_id"] = str(r.watch_id)
    if r.created:
        d["created"] = True
    if r.canceled:
        d["canceled"] = True
    if r.compact_revision:
        d["compact_revision"] = str(r.compact_revision)
    if r.cancel_reason:
        d["cancel_reason"] = r.cancel_reason
    if r.fragment:
        d["fragment"] = True
    if r.events:
        d["events"] = [_event_json(ev) for ev in r.events]
    return d


# Watchers of one shape share the header and events objects of a run (WatchHub._deliver): their JSON is
# built once and reused by every stream (trikv.api.watch.IdentityCache, bounded in entries and bytes).
_json_parts = IdentityCache()


def _header_text(h: ResponseHeader) -> str:
    return go_json(header_json(h)).decode()


def _events_text(events: tuple[Event, ...]) -> str:
    return go_json([_event_json(ev) for ev in events]).decode()


def watch_response_line(r: WatchResponse) -> bytes:
    """`{"result": ...}` and a newline: watch_response_json's bytes, events and header encoded once per
    revision for all watchers that share them."""
    if not r.events or r.created or r.canceled or r.compact_revision or r.fragment or r.cancel_reason:
        return go_json({"result": watch_response_json(r)}) + b"\n"
    header = _json_parts.get(r.header, _header_text)
    events = _json_parts.get(r.events, _events_text)
    wid = f',"watch_id":"{r.watch_id}"' if r.watch_id else ""
    return f'{{"result":{{"header":{header}{wid},"events":{events}}}}}\n'.encode()


def _stream_error(err: errors.EtcdError) -> dict[str, Any]:
    status = HTTP_STATUS.get(int(err.code), 500)
    return {
        "error": {
            "grpc_code": int(err.code),
            "http_code": status,
            "message": err.text,
            "http_status": http.HTTPStatus(status).phrase,
        }
    }


# --------------------------------------------------------------------------- the route


def watch_routes(backend: StreamBackend) -> Mapping[str, Route]:
    async def route(req: HttpRequest) -> HttpResponse:
        if req.method != "POST":
            return method_not_allowed("POST")
        try:
            requests = watch_requests(req.body)
        except errors.EtcdError as err:
            return error_response(err)

        async def run(write: Callable[[bytes], Awaitable[None]]) -> None:
            send, recv = trio.open_memory_channel[Any](len(requests))
            for later in requests[1:]:
                send.send_nowait(later)

            async def emit(resp: Any) -> None:
                await write(watch_response_line(resp))

            try:
                await backend.stream(requests[0], recv, emit)
            except errors.EtcdError as err:
                await write(go_json(_stream_error(err)) + b"\n")
            except PolicyViolation as exc:  # a stuck reader: drop the connection (a chunk may be half sent)
                raise trio.ClosedResourceError(str(exc)) from None
            finally:
                send.close()  # kept open until now: a closed inbound would end the watch at once

        return HttpResponse(200, content_type="application/json", headers=_METADATA, stream=run)

    return {path: route for path in WATCH_PATHS}


__all__ = ["WATCH_PATHS", "watch_request", "watch_requests", "watch_response_json", "watch_routes"]
