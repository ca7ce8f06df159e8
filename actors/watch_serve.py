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

from trikv.actors.events import RaftStatus
from trikv.actors.watch import WatchHub, WatchStream
from trikv.actors.wsession import PolicyViolation
from trikv.api import errors
from trikv.api.watch import WatchRequest

Emit = Callable[[Any], Awaitable[None]]


LEADERLESS_ELECTIONS = 3  # etcd's monitorLeader: election timeouts without a leader before require-leader
# streams are cancelled


def watch_handler(
    hub: WatchHub, status: RaftStatus | None = None, election_seconds: float = 1.0
) -> Callable[[Any, trio.MemoryReceiveChannel[Any], Emit], Awaitable[None]]:
    """The stream handler for Handlers.streams[WatchRequest]; `status` enables require-leader."""

    async def monitor_leader(poll: float, lost: trio.Event, scope: trio.CancelScope) -> None:
        assert status is not None
        since: float | None = None
        while True:
            await trio.sleep(poll)
            if status.lead != 0:
                since = None
                continue
            now = trio.current_time()
            since = now if since is None else since
            if now - since >= LEADERLESS_ELECTIONS * election_seconds:
                lost.set()
                scope.cancel()
                return

    async def serve(first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: Emit) -> None:
        if not isinstance(first, WatchRequest):
            raise errors.InvalidRequestError(f"etcdserver: a watch stream takes WatchRequest, got {first!r}")
        stream = hub.open_stream()
        leaderless = trio.Event()
        stuck = False
        try:
            async with trio.open_nursery() as nursery:

                async def receive() -> None:
                    stream.request(first)
                    async for item in inbound:
                        if isinstance(item, WatchRequest):
                            stream.request(item)
                    nursery.cancel_scope.cancel()  # the client ended its side

                nursery.start_soon(receive)
                if status is not None and first.require_leader:
                    nursery.start_soon(
                        monitor_leader, election_seconds / 10, leaderless, nursery.cancel_scope
                    )
                while True:
                    if not await _emit_unless_stuck(hub, stream, emit, await stream.next()):
                        stuck = True
                        nursery.cancel_scope.cancel()
        finally:
            stream.close()
        if stuck:
            raise PolicyViolation(f"watch client read nothing for {hub.stuck_seconds:g} s with a full buffer")
        if leaderless.is_set():
            raise errors.NoLeaderError()  # etcd: require-leader streams end when the member lost its leader

    return serve


async def _emit_unless_stuck(hub: WatchHub, stream: WatchStream, emit: Emit, resps: list[Any]) -> bool:
    """Emit in order; False when the client has read nothing for `hub.stuck_seconds` while this stream's
    watchers cannot take more (a full buffer or a watcher fallen behind): memory stays bounded, the hub
    counts it. One timer per list (re-armed while the client takes some): one per response cost more than
    the send."""
    i, n = 0, len(resps)
    while i < n:
        began = i
        with trio.move_on_after(hub.stuck_seconds) as waited:
            while i < n:
                await emit(resps[i])  # cancelled only while waiting for room: nothing was queued then
                i += 1
        if (
            waited.cancelled_caught
            and i == began
            and (
                stream.buffered >= hub.buffer_bytes // 2
                or any(not w.synced for w in stream.watchers.values())
            )
        ):
            hub.stuck_closed += 1
            return False
    return True


__all__ = ["watch_handler"]
