"""etcd 3.4's JSON gateway for /v3/maintenance/defragment and /v3/maintenance/snapshot.

Defragment is unary (`{"header":{...}}`); importing this module adds it to actors.gateway's table.
Snapshot is a server stream: grpc-gateway writes one `{"result":{"header":..,"remaining_bytes":"..",
"blob":"<base64>"}}` object per message, each followed by a newline. trikv's HTTP layer answers with one
body, so the route collects the stream first: the whole snapshot is held in memory (base64) while it is
answered; use `trikvctl snapshot save` (the CBOR stream, bounded memory) for large databases.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import trio

from trikv.actors.gateway import ENDPOINTS, error_response, go_json, header_json
from trikv.actors.gateway_requests import _Fields, parse_body
from trikv.actors.httpmsg import HttpRequest, HttpResponse, Route, method_not_allowed
from trikv.actors.wsession import Backend
from trikv.api import errors
from trikv.api.snapshot import DefragmentRequest, DefragmentResponse, SnapshotRequest, SnapshotResponse

log = logging.getLogger("trikv.gateway")

SNAPSHOT_PATH = "/v3/maintenance/snapshot"
_METADATA = (("grpc-metadata-content-type", "application/grpc"),)


def defragment_request(obj: Any) -> DefragmentRequest:
    _Fields(obj, "DefragmentRequest")
    return DefragmentRequest()


def defragment_json(r: DefragmentResponse) -> dict[str, Any]:
    return {"header": header_json(r.header)}


def snapshot_json(r: SnapshotResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header_json(r.header)}
    if r.remaining_bytes:
        out["remaining_bytes"] = str(r.remaining_bytes)
    if r.blob:
        out["blob"] = base64.b64encode(r.blob).decode("ascii")
    return {"result": out}


def snapshot_route(backend: Backend) -> Route:
    """POST /v3/maintenance/snapshot: the Snapshot stream as newline-separated JSON results."""

    async def route(req: HttpRequest) -> HttpResponse:
        if req.method != "POST":
            return method_not_allowed("POST")
        lines: list[bytes] = []

        async def emit(r: Any) -> None:
            lines.append(go_json(snapshot_json(r)) + b"\n")

        try:
            _Fields(parse_body(req.body), "SnapshotRequest")
            _send, recv = trio.open_memory_channel[Any](1)
            await backend.stream(SnapshotRequest(), recv, emit)
        except errors.EtcdError as err:
            return error_response(err)
        except Exception:
            log.exception("gateway: %s %s failed", req.method, req.path)
            return error_response(errors.InternalError())
        return HttpResponse(200, b"".join(lines), "application/json", _METADATA)

    return route


ENDPOINTS["/v3/maintenance/defragment"] = (defragment_request, defragment_json)

__all__ = ["SNAPSHOT_PATH", "defragment_json", "defragment_request", "snapshot_json", "snapshot_route"]
