"""A gRPC call's shapes: the method table entries, the limits, and one call's state on a connection.

grpc_server.py drives the connection; grpc_services.py fills the method table. `Requests` is what a
streaming method reads: it reopens the stream's flow-control window as each message is taken, so a slow
handler slows its client rather than growing a buffer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio

from trikv.actors.grpc_status import GrpcStatus
from trikv.api.errors import GrpcCode

_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


@attrs.frozen
class CallContext:
    """What a method sees of its call besides the message: the request metadata (lower-case names)."""

    metadata: Mapping[str, str]


Emit = Callable[[Any], Awaitable[None]]


@attrs.frozen
class Method:
    """One RPC: its protobuf request type and the coroutine serving it.

    Unary: `call(request, ctx) -> response`. Streaming (client, server or bidirectional streams alike):
    `call(requests, emit, ctx)`, where `requests` is an async iterator of decoded messages (ends when the
    client half-closes) and `emit(response)` sends one message (waiting for flow control).
    """

    request_type: type[Any]
    call: Callable[..., Awaitable[Any]]
    streaming: bool = False


Services = Mapping[str, Mapping[str, Method]]  # "etcdserverpb.KV" -> "Range" -> Method


@attrs.frozen
class Limits:
    max_message_bytes: int  # etcd: max-request-bytes + 512 KiB (grpc MaxRecvMsgSize)
    max_streams: int = 256
    max_header_list: int = 64 * 1024
    window: int = 256 * 1024  # initial stream window; the connection window is opened as data arrives
    ping_min_time: float = 5.0  # etcd's grpc keepalive enforcement MinTime
    ping_strikes: int = 2
    reset_rate: float = 100.0  # client RST_STREAMs per second a connection may sustain ...
    reset_burst: float = 200.0  # ... and in one burst


def parse_timeout(value: str) -> float:
    """grpc-timeout ("100m", "5S", ...) in seconds; at most 8 digits and a unit, as the gRPC spec says."""
    digits, unit = value[:-1], value[-1:]
    if not (1 <= len(digits) <= 8) or not digits.isdigit() or unit not in _TIMEOUT_UNITS:
        raise GrpcStatus(GrpcCode.INTERNAL, f"transport: malformed grpc-timeout: {value!r}")
    return int(digits) * _TIMEOUT_UNITS[unit]


class Call:
    def __init__(self, sid: int, method: Method, metadata: dict[str, str], deadline: float) -> None:
        self.sid, self.method, self.metadata = sid, method, metadata
        self.scope = trio.CancelScope(deadline=deadline)
        self.buf = bytearray()
        self.inbound: deque[bytes] = deque()
        self.arrived = trio.Event()
        self.window = trio.Event()
        self.client_done = self.headers_sent = self.done = self.reset = False


class Requests:
    """The async iterator a streaming method reads: decoded messages, flow control opened per message."""

    def __init__(
        self,
        call: Call,
        consumed: Callable[[Call, int], Awaitable[None]],
        decode: Callable[[Call, bytes], Any],
    ) -> None:
        self._call, self._consumed, self._decode = call, consumed, decode

    def __aiter__(self) -> Requests:
        return self

    async def __anext__(self) -> Any:
        call = self._call
        while not call.inbound:
            if call.client_done or call.done:
                raise StopAsyncIteration
            call.arrived = trio.Event()
            await call.arrived.wait()
        raw = call.inbound.popleft()
        await self._consumed(call, 5 + len(raw))
        return self._decode(call, raw)


class Budget:
    """A connection's abuse budgets: keepalive ping strikes (grpc-go's enforcement policy: a ping sooner than
    min-time after the last, with nothing sent in between, is a strike; without calls the min-time is 2 h)
    and client stream resets (a token bucket: the rapid-reset attack opens and cancels streams forever)."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.sent = False  # headers or data sent since the last ping: strikes start over
        self._strikes, self._last_ping = 0, -1e18
        self._tokens, self._refilled = limits.reset_burst, now

    def ping(self, now: float, active: bool) -> bool:
        """False when this ping is one strike too many."""
        if self.sent:
            self.sent, self._strikes = False, 0
        elif now - self._last_ping < (self.limits.ping_min_time if active else 7200.0):
            self._strikes += 1
        self._last_ping = now
        return self._strikes <= self.limits.ping_strikes

    def reset(self, now: float) -> bool:
        """False when the client has reset streams faster than the budget allows."""
        lim = self.limits
        self._tokens = min(lim.reset_burst, self._tokens + (now - self._refilled) * lim.reset_rate) - 1
        self._refilled = now
        return self._tokens >= 0


__all__ = [
    "Budget",
    "Call",
    "CallContext",
    "Emit",
    "Limits",
    "Method",
    "Requests",
    "Services",
    "parse_timeout",
]
