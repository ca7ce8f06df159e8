"""Plain HTTP messages on the client port: what routes (/health, /version, the JSON gateway) take and give."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs


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
    # A streaming response (the gateway's watch): called with `write`, which sends one HTTP chunk per call;
    # `body` is then ignored and the connection closes when it returns.
    stream: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]] | None = None

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


__all__ = ["NOT_FOUND", "HttpRequest", "HttpResponse", "Route", "method_not_allowed"]
