"""Stream messages on one HTTP/2 connection leave in one socket write per scheduler turn (actors/grpc_writer.py),
complete and in order per call; a client that stops reading still blocks its handlers after a bounded amount
of framed output. A real GrpcConnection, the h2 test client, the server's stream wrapped to count writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import h2.settings
import trio
import trio.testing

from tests.grpc_client import HOST, GrpcTestClient, frame
from trikv.actors.grpc_call import CallContext, Emit, Limits, Method
from trikv.actors.grpc_server import GrpcConnection
from trikv.actors.grpc_writer import HIGH_WATER
from trikv.actors.grpcpb import rpc_pb2

FAN = "/test.Fan/Fan"
CALLS, PER_CALL = 20, 10


class Counting(trio.abc.Stream):
    """The server's side of the connection, counting `send_all` calls (socket writes)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner, self.writes = inner, 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Fan:
    """A streaming method: each call says how many messages it wants (ID) and, once `go` is set, gets them
    all at once (TTL 0, 1, ...), the way one put reaches every watch call of a connection."""

    def __init__(self, calls: int, size: int = 0, pause: bool = False) -> None:
        self.calls, self.pause = calls, pause
        self.pad = b"x" * size
        self.opened, self.emitted = 0, 0
        self.all_open, self.go = trio.Event(), trio.Event()

    async def call(self, requests: AsyncIterator[Any], emit: Emit, ctx: CallContext) -> None:
        first = await requests.__anext__()
        self.opened += 1
        if self.opened == self.calls:
            self.all_open.set()
        await self.go.wait()
        for i in range(first.ID):
            await emit(_message(first.ID, i, self.pad))
            self.emitted += 1
            if self.pause:
                await trio.lowlevel.checkpoint()

    def services(self) -> dict[str, dict[str, Method]]:
        return {"test.Fan": {"Fan": Method(rpc_pb2.LeaseKeepAliveRequest, self.call, streaming=True)}}


def _message(lease_id: int, i: int, pad: bytes) -> Any:
    """A keep-alive answer; `pad` (unknown field 15, which protobuf keeps) makes it as long as a test needs."""
    msg = rpc_pb2.LeaseKeepAliveResponse(ID=lease_id, TTL=i)
    return msg.FromString(msg.SerializeToString() + b"\x7a" + _varint(len(pad)) + pad) if pad else msg


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out) + bytes([n])


async def _read_forever(c: GrpcTestClient) -> None:
    while True:
        await c.read_once()


def ask(n: int) -> bytes:
    return frame(rpc_pb2.LeaseKeepAliveRequest(ID=n).SerializeToString())


async def test_a_fan_out_leaves_in_one_write_complete_and_in_order(nursery: trio.Nursery) -> None:
    fan = Fan(CALLS)
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    port = listeners[0].socket.getsockname()[1]
    served: list[Counting] = []

    async def serve_one() -> None:
        stream = Counting(await listeners[0].accept())
        served.append(stream)
        await GrpcConnection(stream, "test", fan.services(), Limits(max_message_bytes=1 << 20)).serve(b"")

    nursery.start_soon(serve_one)
    c = await GrpcTestClient.connect(port)
    sids = [c.start(FAN) for _ in range(CALLS)]
    for sid in sids:
        await c.send_body(sid, ask(PER_CALL), end=False)
    with trio.fail_after(10):
        async with trio.open_nursery() as reading:
            reading.start_soon(_read_forever, c)
            await fan.all_open.wait()
            await trio.testing.wait_all_tasks_blocked()
            before = served[0].writes
            fan.go.set()
            while sum(len(c.results[sid].messages()) for sid in sids) < CALLS * PER_CALL:
                await trio.sleep(0.001)
            reading.cancel_scope.cancel()
    for sid in sids:
        got = [rpc_pb2.LeaseKeepAliveResponse.FromString(m) for m in c.results[sid].messages()]
        assert [(g.ID, g.TTL) for g in got] == [(PER_CALL, i) for i in range(PER_CALL)]
    # Every message was framed in the turn `go` woke the calls: the writer sends them together (a window
    # update of the client's may add a write of its own).
    assert served[0].writes - before <= 2 < CALLS * PER_CALL
    await c.aclose()


async def test_a_client_that_stops_reading_blocks_the_senders_after_the_high_water(
    nursery: trio.Nursery,
) -> None:
    """Windows far larger than anything sent, a server stream whose writes wait for the client to read
    (lockstep), the client's writes never wait: what is framed after the client stops reading stays within two high waters."""
    size = 1024
    fan = Fan(1, size=size, pause=True)
    to_server_send, to_server_receive = trio.testing.memory_stream_one_way_pair()
    to_client_send, to_client_receive = trio.testing.lockstep_stream_one_way_pair()
    server_side = trio.StapledStream(to_client_send, to_server_receive)
    client_side = trio.StapledStream(to_server_send, to_client_receive)
    conn = GrpcConnection(server_side, "test", fan.services(), Limits(max_message_bytes=1 << 20))
    nursery.start_soon(conn.serve, b"")
    c = GrpcTestClient(client_side)  # type: ignore[arg-type]
    c.conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 30}
    )
    c.conn.initiate_connection()
    c.conn.increment_flow_control_window(1 << 30)

    sid = c.start(FAN)
    await c.send_body(sid, ask(1 << 30), end=False)  # all the client sends, before it reads: one sender
    with trio.fail_after(10):
        async with trio.open_nursery() as reading:
            reading.start_soon(_read_forever, c)
            await fan.all_open.wait()
            fan.go.set()
            while fan.emitted < 100:
                await trio.sleep(0)
            reading.cancel_scope.cancel()  # the client reads no more
        at_stop = fan.emitted
        await trio.testing.wait_all_tasks_blocked()
    message = len(_message(1, 1, b"x" * size).SerializeToString())
    assert message > size
    assert (fan.emitted - at_stop) * message <= 2 * (HIGH_WATER + message)
    assert fan.emitted < 1 << 20  # the handler is blocked, not just slow
    await client_side.aclose()  # the server's last writes fail at once instead of waiting for a reader
