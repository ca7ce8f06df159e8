"""actors/sockio.py: reads and writes straight to the descriptor keep a SocketStream's contract (end of
stream, closed and broken sockets, partial writes finished through the stream) and never starve other
tasks when data is always ready."""

from __future__ import annotations

import trio
import trio.testing

from trikv.actors.sockio import YIELD_EVERY, FastSocket


def pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


async def read_waiting_for(fa: FastSocket, fb: FastSocket, data: bytes) -> bytes | bytearray:
    """What a read started before `data` is sent returns (the read waits for it)."""
    got: list[bytes | bytearray] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                got.append(await fb.receive_some(100))

            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            await fa.send_all(data)
    return got[0]


async def test_reads_and_writes_round_trip_and_end_of_stream() -> None:
    a, b = pair()
    fa, fb = FastSocket(a), FastSocket(b)
    await fa.send_all(b"hello")
    assert await fb.receive_some(100) == b"hello"
    assert await read_waiting_for(fa, fb, b"later") == b"later"  # a read with nothing there waits for the data
    with trio.fail_after(5):
        await a.aclose()
        assert await fb.receive_some(100) == b""


async def test_a_large_write_is_finished_through_the_stream() -> None:
    a, b = pair()
    data = bytes(range(256)) * 40_000  # ~10 MB: far more than the socket buffer takes at once
    received = bytearray()

    async def drain() -> None:
        while len(received) < len(data):
            chunk = await b.receive_some(1 << 16)
            assert chunk
            received.extend(chunk)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            await FastSocket(a).send_all(data)
    assert bytes(received) == data


async def test_closed_and_broken_sockets_raise_the_streams_errors() -> None:
    a, _b = pair()
    fa = FastSocket(a)
    await a.aclose()
    for op in (fa.receive_some(10), fa.send_all(b"x")):
        try:
            await op
        except trio.ClosedResourceError:
            pass
        else:
            raise AssertionError("no ClosedResourceError")
    c, d = pair()
    await d.aclose()
    fc = FastSocket(c)
    try:
        for _ in range(100):  # the peer is gone: EPIPE (or a reset) on write
            await fc.send_all(b"y" * 65536)
    except trio.BrokenResourceError:
        pass
    else:
        raise AssertionError("no BrokenResourceError")


async def test_a_reader_whose_data_is_always_ready_still_yields() -> None:
    a, b = pair()
    await a.send_all(b"z" * 4096)  # everything is there before the first read: no read ever waits
    fb = FastSocket(b)
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.sleep(0)  # `other` starts
        before = turns
        for _ in range(YIELD_EVERY * 8):
            assert await fb.receive_some(1) == b"z"
        # once per YIELD_EVERY reads (the last yield's turn may come after this line: 7 of 8)
        assert turns - before >= 7
        nursery.cancel_scope.cancel()


async def test_a_stream_that_is_not_a_socket_is_used_as_it_is() -> None:
    left, right = trio.testing.memory_stream_pair()
    fl, fr = FastSocket(left), FastSocket(right)
    await fl.send_all(b"mem")
    assert await fr.receive_some(10) == b"mem"


async def test_after_a_short_read_the_next_read_waits_instead_of_failing_a_system_call(monkeypatch) -> None:
    """A read that returned less than asked left the kernel's buffer empty: the next one waits for data
    first (no read that fails with EAGAIN); a read that filled its buffer is followed by a read at once."""
    import os

    from trikv.actors import sockio

    a, b = pair()
    fa, fb = FastSocket(a), FastSocket(b)
    calls: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        try:
            data = real_read(fd, n)
        except BlockingIOError:
            calls.append(-1)
            raise
        calls.append(len(data))
        return data

    monkeypatch.setattr(sockio.os, "read", counting_read)
    await fa.send_all(b"abc")
    assert await fb.receive_some(100) == b"abc"  # short
    assert await read_waiting_for(fa, fb, b"later") == b"later"
    assert calls == [3, 5]  # no failed read in between
    await fa.send_all(b"0123456789")
    assert await fb.receive_some(4) == b"0123"  # full: the next read goes at once
    assert await fb.receive_some(100) == b"456789"
    assert calls == [3, 5, 4, 6]
