"""Streams on the CBOR WebSocket surface (the shape etcd's Watch, LeaseKeepAlive and Snapshot use), end to end:
the real client server and the real Trio client over loopback, with a small stream backend."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import trikv
from trikv.actors import wsession
from trikv.actors.server import serve_clients
from trikv.api import errors, protocol, rpc
from trikv.client import StreamLost

HOST = "127.0.0.1"


class EchoBackend:
    """Stream "echo": answers the opening request and each later item with a RangeResponse counting
    them; a key b"fail" ends the stream with an etcd error; b"stop" ends it normally."""

    def __init__(self) -> None:
        self.closed_by_client = 0
        self.running = 0

    async def handle(self, request: Any) -> Any:
        return rpc.RangeResponse(rpc.ResponseHeader(revision=1))

    async def health(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> dict[str, str]:
        return {"etcdserver": "3.4.0", "etcdcluster": "3.4.0"}

    async def stream(self, first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: wsession.Emit) -> None:
        self.running += 1
        try:
            n = 1
            await emit(rpc.RangeResponse(rpc.ResponseHeader(revision=n), count=len(first.key)))
            async for item in inbound:
                if item.key == b"fail":
                    raise errors.CompactedError()
                if item.key == b"stop":
                    return
                n += 1
                await emit(rpc.RangeResponse(rpc.ResponseHeader(revision=n), count=len(item.key)))
            self.closed_by_client += 1
        finally:
            self.running -= 1


@pytest.fixture
def echo_op(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(protocol.STREAM_OPS, "echo", (rpc.RangeRequest,))
    return "echo"


async def _serve(nursery: trio.Nursery, backend: EchoBackend) -> str:
    port = await nursery.start(serve_clients, backend, HOST, 0)
    return f"{HOST}:{port}"


async def test_stream_items_both_ways_and_close_from_the_client(nursery: trio.Nursery, echo_op: str) -> None:
    backend = EchoBackend()
    ep = await _serve(nursery, backend)
    async with trikv.connect([ep]) as cl:
        async with cl.stream(echo_op, rpc.RangeRequest(b"abc")) as st:
            first = await st.receive()
            assert (first.header.revision, first.count) == (1, 3)
            for i in range(1, 6):
                await st.send(rpc.RangeRequest(b"x" * i))
            got = [await st.receive() for _ in range(5)]
            assert [(r.header.revision, r.count) for r in got] == [(i + 1, i) for i in range(1, 6)]
            # unary requests still flow on the same connection while the stream is open
            assert isinstance(await cl.get("k"), rpc.RangeResponse)
        with trio.fail_after(2):
            while backend.closed_by_client != 1:
                await trio.sleep(0.01)
        assert backend.running == 0


async def test_stream_ends_with_ok_or_with_the_servers_error(nursery: trio.Nursery, echo_op: str) -> None:
    ep = await _serve(nursery, EchoBackend())
    async with trikv.connect([ep]) as cl:
        async with cl.stream(echo_op, rpc.RangeRequest(b"a")) as st:
            await st.receive()
            await st.send(rpc.RangeRequest(b"stop"))
            assert [r async for r in st] == []  # the normal end: iteration stops
        async with cl.stream(echo_op, rpc.RangeRequest(b"a")) as st:
            await st.receive()
            await st.send(rpc.RangeRequest(b"fail"))
            with pytest.raises(errors.CompactedError):
                await st.receive()


async def test_a_wrong_item_shape_is_refused_and_the_stream_goes_on(nursery: trio.Nursery, echo_op: str) -> None:
    ep = await _serve(nursery, EchoBackend())
    async with trikv.connect([ep]) as cl:
        async with cl.stream(echo_op, rpc.RangeRequest(b"a")) as st:
            await st.receive()
            await st.send(rpc.PutRequest(b"k", b"v"))  # not an item of this stream
            await st.send(rpc.RangeRequest(b"bb"))
            assert (await st.receive()).count == 2


async def test_streams_per_connection_are_bounded(
    nursery: trio.Nursery, echo_op: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wsession, "MAX_STREAMS", 3)
    ep = await _serve(nursery, EchoBackend())
    async with trikv.connect([ep]) as cl:
        async with cl.stream(echo_op, rpc.RangeRequest(b"a")) as s1, cl.stream(
            echo_op, rpc.RangeRequest(b"a")
        ) as s2, cl.stream(echo_op, rpc.RangeRequest(b"a")) as s3:
            for s in (s1, s2, s3):
                await s.receive()
            async with cl.stream(echo_op, rpc.RangeRequest(b"a")) as s4:
                with pytest.raises(errors.TooManyRequestsError):
                    await s4.receive()


async def test_connection_loss_is_stream_lost(echo_op: str) -> None:
    backend = EchoBackend()
    async with trio.open_nursery() as server_nursery:
        ep = await _serve(server_nursery, backend)
        async with trikv.connect([ep]) as cl:
            async with cl.stream(echo_op, rpc.RangeRequest(b"a")) as st:
                await st.receive()
                server_nursery.cancel_scope.cancel()  # the server goes away mid-stream
                with trio.fail_after(5), pytest.raises(StreamLost):
                    while True:
                        await st.receive()
