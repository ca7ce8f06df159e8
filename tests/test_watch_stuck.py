"""A watch client that reads nothing: the member's memory stays bounded (the hub's per-watch buffers, then
unsynced catch-up) and, after `stuck_seconds` with full buffers, the connection is closed with WebSocket
code 1008 (counted in `WatchHub.stuck_closed`). Real client server over loopback, a hub over a stub store."""

from __future__ import annotations

from typing import Any

import trio
import trio_websocket

from trikv.actors.server import serve_clients
from trikv.actors.watch import WatchHub
from trikv.actors.watch_serve import watch_handler
from trikv.api import protocol, rpc
from trikv.api.watch import Event, EventType, WatchCreateRequest, WatchRequest

HOST = "127.0.0.1"
VALUE = b"v" * 16384


class StubStore:
    """The Backend's history side: every revision holds one put of VALUE to b"k"."""

    def __init__(self) -> None:
        self.revision = 1

    async def history(
        self, lo: int, hi: int, key: bytes, range_end: bytes, limit: int, prev_kv: bool
    ) -> tuple[list[Event], int, int]:
        await trio.lowlevel.checkpoint()
        last = min(hi, self.revision, lo + limit - 1)
        return [_put(rev) for rev in range(lo, last + 1)], last, 0


def _put(rev: int) -> Event:
    return Event(EventType.PUT, rpc.KeyValue(b"k", 2, rev, rev - 1, VALUE))


class WatchOnly:
    def __init__(self, hub: WatchHub) -> None:
        self.stream = watch_handler(hub)

    async def handle(self, request: Any) -> Any:
        raise AssertionError("no unary requests here")

    async def health(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> dict[str, str]:
        return {"etcdserver": "3.4.0", "etcdcluster": "3.4.0"}


async def test_a_client_that_reads_nothing_is_disconnected_with_1008(nursery: trio.Nursery) -> None:
    store = StubStore()
    hub = WatchHub(
        store, lambda rev: rpc.ResponseHeader(revision=rev), buffer_bytes=64 * 1024, stuck_seconds=1.0
    )
    nursery.start_soon(hub.run)
    port = await nursery.start(serve_clients, WatchOnly(hub), HOST, 0)
    async with trio_websocket.open_websocket(HOST, port, protocol.WS_PATH, use_ssl=False) as ws:
        create = WatchRequest(create_request=WatchCreateRequest(b"k"))
        await ws.send_message(protocol.encode_frame([[1, "watch", create]]))
        high_water = 0
        with trio.fail_after(30):
            while hub.stuck_closed == 0:  # the writer: 16 KiB per revision, the client reads nothing
                store.revision += 1
                hub.notify([_put(store.revision)], store.revision)
                high_water = max(high_water, hub.buffered_bytes)
                await trio.sleep(0.001)
        assert store.revision > 1000, "the writes went on while the client was stuck"
        assert high_water <= hub.buffer_bytes + len(VALUE) + 1024
        assert hub.slow_watchers >= 1
        with trio.fail_after(10):
            while hub.watcher_count():
                await trio.sleep(0.01)
        try:
            with trio.fail_after(10):
                while True:
                    await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            assert exc.reason is not None
            assert exc.reason.code in (1008, 1006)  # 1006: the close frame did not fit the full socket
