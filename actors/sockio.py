"""Socket reads and writes that go straight to the descriptor when the kernel is ready.

trio's `SocketStream.receive_some` / `send_all` pass through the scheduler twice per call even when the
data is already there (a cancellation check, then a yield after the system call): on a request/response
connection that is two or three extra scheduler rounds per request, each an epoll call and a pass over
the run queue. A `FastSocket` tries the system call first and waits (a real checkpoint) only when the
kernel says it would block. So that a connection whose data is always ready cannot starve the other tasks,
it yields once every `YIELD_EVERY` operations that did not wait.
"""

from __future__ import annotations

import os

import trio

YIELD_EVERY = 16


class FastSocket:
    """Reads and writes of one stream (one reader and one writer at a time, as the stream's); a stream that
    is not a SocketStream (a test's memory stream) is used as it is."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._sock = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._unwaited = 0
        # The last read returned less than asked: the kernel's buffer is most likely empty, so the next read
        # waits first instead of trying (nginx's "ready" flag): on a request/response link the speculative
        # read of the next message failed every time, an exception and a system call per message.
        self._drained = False

    async def _maybe_yield(self) -> None:
        self._unwaited += 1
        if self._unwaited >= YIELD_EVERY:
            self._unwaited = 0
            await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int) -> bytes | bytearray:
        """Like SocketStream.receive_some: b"" at end of stream; BrokenResourceError / ClosedResourceError."""
        if self._sock is None:
            return await self.stream.receive_some(max_bytes)
        fd = self._sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            if not self._drained:
                try:
                    data = os.read(fd, max_bytes)
                except BlockingIOError:
                    pass
                else:
                    self._drained = len(data) < max_bytes
                    await self._maybe_yield()
                    return data
            self._unwaited = 0
            while True:
                await trio.lowlevel.wait_readable(fd)
                if self._sock.fileno() < 0:  # closed by another task while we waited
                    raise trio.ClosedResourceError("the socket was closed") from None
                try:
                    data = os.read(fd, max_bytes)
                except BlockingIOError:
                    continue  # a spurious wakeup
                self._drained = len(data) < max_bytes
                return data
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc) or type(exc).__name__) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Like SocketStream.send_all: what the kernel takes now goes at once, the rest through the stream."""
        if self._sock is None:
            await self.stream.send_all(data)
            return
        fd = self._sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc) or type(exc).__name__) from exc
        if n < len(data):
            self._unwaited = 0
            await self.stream.send_all(memoryview(data)[n:])
        else:
            await self._maybe_yield()


__all__ = ["YIELD_EVERY", "FastSocket"]
