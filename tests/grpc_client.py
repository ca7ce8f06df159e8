"""A minimal gRPC-over-HTTP/2 test client (h2 client side on a Trio socket): FOR TESTS ONLY.

It speaks the wire directly so tests can send what real clients never would: bad lengths, garbage frames,
reset bursts, early pings. Every frame the server sends is turned into per-stream results.
"""

from __future__ import annotations

from typing import Any

import attrs
import h2.config
import h2.connection
import h2.events
import trio

from trikv.actors.grpc_status import percent_decode

HOST = "127.0.0.1"


@attrs.define
class Result:
    headers: dict[str, str] = attrs.Factory(dict)
    trailers: dict[str, str] = attrs.Factory(dict)
    data: bytearray = attrs.Factory(bytearray)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        meta = self.trailers or self.headers
        return int(meta["grpc-status"])

    @property
    def message(self) -> str:
        meta = self.trailers or self.headers
        return percent_decode(meta.get("grpc-message", ""))

    def messages(self) -> list[bytes]:
        out, buf = [], bytes(self.data)
        while buf:
            n = int.from_bytes(buf[1:5], "big")
            out.append(buf[5 : 5 + n])
            buf = buf[5 + n :]
        return out


def frame(payload: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(payload).to_bytes(4, "big") + payload


class GrpcTestClient:
    def __init__(self, stream: trio.SocketStream, *, auto_ack: bool = True) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.results: dict[int, Result] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.remote_settings: dict[int, int] = {}
        self.closed = False
        self.auto_ack = auto_ack

    @classmethod
    async def connect(cls, port: int, **kw: Any) -> GrpcTestClient:
        client = cls(await trio.open_tcp_stream(HOST, port), **kw)
        client.conn.initiate_connection()
        await client.flush()
        return client

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    def start(self, path: str, metadata: list[tuple[str, str]] = ()) -> int:  # type: ignore[assignment]
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"localhost"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            *((k.encode(), v.encode()) for k, v in metadata),
        ]
        self.conn.send_headers(sid, headers)
        self.results[sid] = Result()
        return sid

    async def call(
        self,
        path: str,
        body: bytes,
        metadata: list[tuple[str, str]] = (),
        timeout: float = 5.0,  # type: ignore[assignment]
    ) -> Result:
        sid = self.start(path, metadata)
        await self.send_body(sid, body)
        return await self.wait(sid, timeout)

    async def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        view = memoryview(body)
        while True:
            size = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size, len(view))
            if size > 0 or not view:
                self.conn.send_data(sid, bytes(view[:size]), end_stream=end and size == len(view))
                view = view[size:]
                await self.flush()
                if not view:
                    return
            else:
                await self.read_once()

    async def wait(self, sid: int, timeout: float = 5.0) -> Result:
        with trio.fail_after(timeout):
            while not (self.results[sid].ended or self.results[sid].reset is not None):
                if self.closed:
                    raise ConnectionError("connection closed")
                await self.read_once()
        return self.results[sid]

    async def read_until_closed(self, timeout: float = 5.0) -> None:
        with trio.fail_after(timeout):
            while not self.closed:
                await self.read_once()

    async def read_once(self) -> None:
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._event(event)
        await self.flush()

    def _event(self, event: Any) -> None:
        sid = getattr(event, "stream_id", None)
        result = self.results.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and result is not None:
            result.headers = _meta(event.headers)
        elif isinstance(event, h2.events.TrailersReceived) and result is not None:
            result.trailers = _meta(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            if result is not None:
                result.data += event.data
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and result is not None:
            result.ended = True
        elif isinstance(event, h2.events.StreamReset) and result is not None:
            result.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.remote_settings.update({int(k): v.new_value for k, v in event.changed_settings.items()})

    async def aclose(self) -> None:
        await self.stream.aclose()


def _meta(headers: Any) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in headers}


__all__ = ["GrpcTestClient", "Result", "frame"]
