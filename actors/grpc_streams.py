"""gRPC streams onto Handlers.stream: the bridge Watch and LeaseKeepAlive plug into with one table entry.

`bidi(backend, pb_request, to_shape, to_pb)` makes a streaming Method: the first client message (as
trikv's shape) opens `backend.stream(first, inbound, emit)`, later messages go to `inbound` (closed when
the client half-closes), and every shape the handler emits goes out as its protobuf. The inbound channel
is small and the gRPC reader reopens the stream's window only as messages are taken, so a slow handler
slows its client instead of growing a queue.

etcd's stream interceptor: with "hasleader: true" metadata a stream is cancelled with
"etcdserver: no leader" once the member has known no leader for 3 election timeouts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from trikv.actors.grpc_call import CallContext, Emit, Method
from trikv.api import errors

REQUIRE_LEADER_KEY = "hasleader"  # etcd's rpctypes.MetadataRequireLeaderKey
STREAM_INBOUND = 16  # client messages converted ahead of the handler
LEADER_POLL = 0.1  # seconds between leader checks of a require-leader stream


async def _require_leader(has_leader: Callable[[], bool], grace: float) -> None:
    """Return (raise) once no leader has been known for `grace` seconds."""
    lost_at: float | None = None
    while True:
        if has_leader():
            lost_at = None
        elif lost_at is None:
            lost_at = trio.current_time()
        elif trio.current_time() - lost_at >= grace:
            raise errors.NoLeaderError()
        await trio.sleep(LEADER_POLL)


def bidi(
    backend: Any,
    pb_request: type[Any],
    to_shape: Callable[[Any], Any],
    to_pb: Callable[[Any], Any],
    *,
    no_leader_grace: float = 3.0,
) -> Method:
    """A streaming Method over `backend.stream` (Handlers); `no_leader_grace` = 3 election timeouts."""
    has_leader: Callable[[], bool] = getattr(backend, "has_leader", lambda: True)

    async def call(requests: AsyncIterator[Any], emit: Emit, ctx: CallContext) -> None:
        first = None
        async for message in requests:
            first = to_shape(message)
            break
        if first is None:
            return  # the client closed without asking anything

        send, recv = trio.open_memory_channel[Any](STREAM_INBOUND)

        async def pump() -> None:
            async with send:
                async for message in requests:
                    await send.send(to_shape(message))

        async def out(shape: Any) -> None:
            await emit(to_pb(shape))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            if ctx.metadata.get(REQUIRE_LEADER_KEY) == "true":
                nursery.start_soon(_require_leader, has_leader, no_leader_grace)
            async with recv:
                await backend.stream(first, recv, out)
            nursery.cancel_scope.cancel()

    return Method(pb_request, call, streaming=True)


__all__ = ["REQUIRE_LEADER_KEY", "bidi"]
