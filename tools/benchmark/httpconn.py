"""A minimal HTTP/1.1 client for the JSON gateway: one keep-alive connection, one request at a time.

Raw sockets rather than h11: the generator's CPU per request is what the benchmark must keep small next to
the server's (a client here is one connection without pipelining, as the issue asks). Bodies are read by
Content-Length or chunked encoding; `stream` yields the newline-delimited JSON messages of a watch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

READ = 65536


class HttpError(Exception):
    """A non-200 answer or a broken response."""


class HttpConn:
    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self._stream = stream
        self._host = host
        self._buf = bytearray()

    @classmethod
    async def open(cls, endpoint: str) -> HttpConn:
        host, port = endpoint.rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        return cls(stream, endpoint)

    async def aclose(self) -> None:
        await self._stream.aclose()

    def _request(self, path: str, body: bytes) -> bytes:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def _fill(self) -> None:
        data = await self._stream.receive_some(READ)
        if not data:
            raise HttpError("connection closed by the server")
        self._buf += data

    async def _head(self) -> tuple[int, dict[bytes, bytes]]:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            await self._fill()
        lines = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def _exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def _chunk(self) -> bytes:
        """The next chunk of a chunked body; b"" at its end."""
        while (end := self._buf.find(b"\r\n")) < 0:
            await self._fill()
        size = int(bytes(self._buf[:end]).split(b";", 1)[0], 16)
        del self._buf[: end + 2]
        data = await self._exact(size + 2)
        if size == 0:  # no trailers are sent by either server
            return b""
        return data[:-2]

    async def _body(self, headers: dict[bytes, bytes]) -> bytes:
        if b"content-length" in headers:
            return await self._exact(int(headers[b"content-length"]))
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            out = bytearray()
            while chunk := await self._chunk():
                out += chunk
            return bytes(out)
        raise HttpError("response without a length")

    async def post(self, path: str, body: bytes) -> bytes:
        """POST and return the body of a 200 answer; HttpError otherwise."""
        await self._stream.send_all(self._request(path, body))
        status, headers = await self._head()
        data = await self._body(headers)
        if status != 200:
            raise HttpError(f"HTTP {status}: {data[:200]!r}")
        return data

    async def stream(self, path: str, body: bytes) -> AsyncIterator[bytes]:
        """POST and yield each newline-delimited message of the (chunked) streaming answer."""
        await self._stream.send_all(self._request(path, body))
        status, headers = await self._head()
        if status != 200:
            raise HttpError(f"HTTP {status}: {(await self._body(headers))[:200]!r}")
        pending = b""
        while chunk := await self._chunk():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield line
