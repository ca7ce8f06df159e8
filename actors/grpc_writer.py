"""The one path by which an HTTP/2 connection's output reaches its socket: h2's buffer, sent under a lock.

Stream messages (watch responses, keep-alives) are only framed into h2's buffer and `queued`; a writer
task sends whatever the buffer holds once per scheduler turn, so the responses a put fans out to every
watch call on a connection leave in one socket write instead of one write (and one lock hand-off, one
scheduler pass) per message: issue 11, ~90 us of member CPU per message at 250 calls on a connection.
Everything else (unary answers with their trailers, control frames, window updates) still calls `flush`.

A slow reader stays bounded: once `HIGH_WATER` bytes are framed and not yet taken, `queued` flushes
itself, which waits behind a writer blocked on a full socket (the watch stream's stuck timer sees that
wait), and each call is still held to the peer's flow-control window by the framing code.
"""

from __future__ import annotations

import h2.connection
import trio

HIGH_WATER = 64 * 1024  # bytes framed but not yet taken from h2 before a stream message waits for the socket


class Writer:
    def __init__(self, stream: trio.abc.Stream, conn: h2.connection.H2Connection) -> None:
        self.stream, self.conn = stream, conn
        self._lock = trio.Lock()
        self._framed = 0  # bytes queued since h2's buffer was last taken
        self._wanted = trio.Event()

    async def flush(self) -> None:
        """Send what h2 has buffered, now (in order: every write takes the lock)."""
        async with self._lock:
            data = self.conn.data_to_send()
            self._framed = 0
            if data:
                await self.stream.send_all(data)

    async def queued(self, size: int) -> None:
        """`size` bytes of a stream message were framed: leave them to the writer unless too many wait."""
        self._framed += size
        if self._framed >= HIGH_WATER:
            await self.flush()
        else:
            self._wanted.set()

    async def run(self) -> None:
        """The writer task: after anything is queued, let the rest of this turn's senders frame theirs, then
        send it all in one write."""
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            await trio.lowlevel.checkpoint()
            await self.flush()


__all__ = ["HIGH_WATER", "Writer"]
