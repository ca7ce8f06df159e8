"""The watch stream handler the client surfaces run (etcd's serverWatchStream recv / send loops).

One task feeds the client's messages to the hub's WatchStream; the other takes the stream's responses and
emits them (emit waits while the connection's outbound queue is full: that is how a slow client's
watchers fall behind into the hub's unsynced group instead of growing memory). When the client ends its
side, or the connection goes, the stream's watchers leave the hub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trikv.actors.watch import WatchHub
from trikv.api import errors
from trikv.api.watch import WatchRequest

Emit = Callable[[Any], Awaitable[None]]


def watch_handler(hub: WatchHub) -> Callable[[Any, trio.MemoryReceiveChannel[Any], Emit], Awaitable[None]]:
    """The stream handler for Handlers.streams[WatchRequest]."""

    async def serve(first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: Emit) -> None:
        if not isinstance(first, WatchRequest):
            raise errors.InvalidRequestError(f"etcdserver: a watch stream takes WatchRequest, got {first!r}")
        stream = hub.open_stream()
        try:
            async with trio.open_nursery() as nursery:

                async def receive() -> None:
                    stream.request(first)
                    async for item in inbound:
                        if isinstance(item, WatchRequest):
                            stream.request(item)
                    nursery.cancel_scope.cancel()  # the client ended its side

                nursery.start_soon(receive)
                while True:
                    for resp in await stream.next():
                        await emit(resp)
        finally:
            stream.close()

    return serve


__all__ = ["watch_handler"]
