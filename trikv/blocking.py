"""A blocking client transport: one plain socket, no trio, for short-lived callers such as trikvctl.

Why it exists: a command-line call pays for every import before it does anything, and importing trio
plus trio-websocket costs more than the whole budget of a unary command (etcdctl answers in a few ms).
This transport speaks exactly the client protocol of `trikv.client` -- the same WebSocket path, the
same CBOR frames of `[id, op, payload]` items (`trikv.api.protocol`, `trikv.api.codec`), the same typed
requests (`trikv.ops`) and the same retry rules -- one request at a time.

The WebSocket layer (RFC 6455, client side, no extensions) is written out here rather than taken from
wsproto: importing wsproto (and h11 with it) costs about 45 ms, more than half of the start-up budget.

Retry rules (as the Trio client, and etcd's client): reads are retried on the next endpoint until the
deadline; a write is retried elsewhere only when it provably never left (no connection could be made,
or the server refused it before proposing: no leader / not capable / learner); a write that may have
left raises `OutcomeUnknownError` with the cause chained.
"""

from __future__ import annotations

import binascii
import os
import socket
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import cbor2

from trikv.api import codec, errors, protocol, rpc
from trikv.ops import (
    DEFAULT_MAX_RECV_BYTES,
    DEFAULT_MAX_SEND_BYTES,
    SAFE_WRITE_RETRY,
    DeadlineExceededError,
    KeyLike,
    MessageTooLargeError,
    array_header,
    delete_op,
    get_op,
    put_op,
    split_endpoint,
)

try:  # the builtin module: hashlib would load OpenSSL for one digest of a handshake key
    from _sha1 import sha1
except ImportError:  # pragma: no cover - CPython always has it
    from hashlib import sha1

T = TypeVar("T")

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_MAX_HANDSHAKE_BYTES = 64 * 1024


class _NotSent(Exception):
    """Internal: no byte of the request left (no connection, refused handshake)."""


class _Lost(Exception):
    """Internal: the connection failed after the request was (maybe) sent."""


class _Timeout(Exception):
    """Internal: the deadline passed while waiting."""


def _mask(data: bytes, key: bytes) -> bytes:
    """RFC 6455 masking as one big-integer XOR (a byte loop would cost seconds for a 2 MiB value)."""
    n = len(data)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 0x10000:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class WebSocket:
    """A client WebSocket over a blocking socket; every operation takes an absolute monotonic deadline."""

    def __init__(self, sock: socket.socket, buffered: bytes, max_recv: int) -> None:
        self.sock = sock
        self._buf = bytearray(buffered)
        self.max_recv = max_recv

    @classmethod
    def open(cls, endpoint: str, deadline: float, max_recv: int) -> WebSocket:
        """Connect and upgrade; raises _NotSent (with the cause) on any failure, since nothing was sent."""
        scheme, host, port = split_endpoint(endpoint)
        sock: socket.socket | None = None
        try:
            sock = _connect(host, port, _remaining(deadline))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "wss":
                import ssl  # only TLS endpoints pay for it

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            rest = _handshake(sock, host_header, deadline)
            return cls(sock, rest, max_recv)
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, (OSError, ConnectionError, _Timeout)):
                raise _NotSent(exc) from exc
            raise

    def close(self) -> None:
        try:
            self.sock.settimeout(0.2)
            self.sock.sendall(_frame(_OP_CLOSE, (1000).to_bytes(2, "big")))
        except OSError:
            pass
        finally:
            self.sock.close()

    def send(self, data: bytes, deadline: float) -> None:
        self.sock.settimeout(_remaining(deadline))
        self.sock.sendall(_frame(_OP_BINARY, data))

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self.sock.settimeout(_remaining(deadline))
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def recv(self, deadline: float) -> bytes:
        """One whole binary message; pings are answered, a close frame ends the connection."""
        parts: list[bytes] = []
        size = 0
        first_opcode = -1
        while True:
            b0, b1 = self._read(2, deadline)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._read(2, deadline), "big")
            elif n == 127:
                n = int.from_bytes(self._read(8, deadline), "big")
            key = self._read(4, deadline) if b1 & 0x80 else b""
            if opcode >= _OP_CLOSE:
                if n > 125:
                    raise ConnectionError("bad WebSocket control frame")
                payload = self._read(n, deadline)
                payload = _mask(payload, key) if key else payload
                if opcode == _OP_PING:
                    self.sock.sendall(_frame(_OP_PONG, payload))
                elif opcode == _OP_CLOSE:
                    reason = payload[2:].decode("utf-8", "replace")
                    raise ConnectionError(f"connection closed by the server{': ' + reason if reason else ''}")
                continue
            if opcode not in (_OP_CONT, _OP_TEXT, _OP_BINARY):
                raise ConnectionError(f"unknown WebSocket opcode {opcode}")
            size += n
            if size > self.max_recv:
                raise ConnectionError(f"message larger than {self.max_recv} bytes")
            payload = self._read(n, deadline)
            parts.append(_mask(payload, key) if key else payload)
            if first_opcode < 0:
                first_opcode = opcode
            if b0 & 0x80:
                if first_opcode == _OP_TEXT:
                    raise codec.CodecError("text frame on a binary protocol")
                return b"".join(parts)


def wire_form(obj: Any) -> Any:
    """`obj` with every registered shape already turned into the CBOR tag the codec gives it.

    `codec.encode` of the result is byte for byte `codec.encode(obj)` (a test holds them equal); the
    difference is cost: cbor2's encoder, meeting a class it has no encoder for, first imports every
    module behind its optional encoders (datetime, decimal, uuid, email, ...) to rule them out, about
    50 ms once per process -- half of a CLI call's budget. A CBORTag it encodes directly.
    """
    entry = codec._by_type.get(type(obj))
    if entry is not None:
        tag, names = entry
        return cbor2.CBORTag(tag, [wire_form(getattr(obj, name)) for name in names])
    if isinstance(obj, (list, tuple)):
        return [wire_form(item) for item in obj]
    return obj


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection; an IP literal (the usual endpoint) skips the resolver, which costs milliseconds."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection((host, port), timeout=timeout)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Timeout()
    return left


def _handshake(sock: socket.socket, host_header: str, deadline: float) -> bytes:
    """The HTTP/1.1 upgrade; returns bytes read past the response head (the start of the first frame)."""
    key = binascii.b2a_base64(os.urandom(16), newline=False)
    request = (
        f"GET {protocol.WS_PATH} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sock.settimeout(_remaining(deadline))
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > _MAX_HANDSHAKE_BYTES:
            raise ConnectionError("WebSocket handshake response too long")
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed during the WebSocket handshake")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        raise ConnectionError(f"WebSocket upgrade refused: {lines[0].decode('latin-1')}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    expected = binascii.b2a_base64(sha1(key + _WS_GUID).digest(), newline=False)
    if headers.get(b"sec-websocket-accept") != expected:
        raise ConnectionError("WebSocket handshake: bad Sec-WebSocket-Accept")
    return rest


class BlockingClient:
    """Unary requests over the given endpoints, one at a time, with the Trio client's failover rules."""

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        *,
        dial_timeout: float = 5.0,
        request_timeout: float = 5.0,
        max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
        max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """`log`, if given, hears about every failed attempt (what trikvctl --debug prints)."""
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        if not endpoints:
            raise errors.ConfigError("no endpoints given")
        self.endpoints: tuple[str, ...] = tuple(endpoints)
        for ep in self.endpoints:
            split_endpoint(ep)  # a bad endpoint fails here, before anything is sent
        self.dial_timeout = dial_timeout
        self.request_timeout = request_timeout
        self.max_send_bytes = max_send_bytes
        self.max_recv_bytes = max_recv_bytes
        self._log = log
        self._active = 0
        self._ws: WebSocket | None = None
        self._ws_endpoint = ""
        self._next_id = 1

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.sock.close()

    def _connect(self, endpoint: str, deadline: float) -> WebSocket:
        if self._ws is not None and self._ws_endpoint == endpoint:
            return self._ws
        self.close()
        ws = WebSocket.open(
            endpoint, min(deadline, time.monotonic() + self.dial_timeout), self.max_recv_bytes
        )
        self._ws, self._ws_endpoint = ws, endpoint
        return ws

    def _exchange(self, ws: WebSocket, tail: bytes, deadline: float) -> tuple[int, Any]:
        """Send one request item and wait for its answer.

        Raises _NotSent (deadline already passed: no byte left), _Lost or _Timeout (maybe sent).
        """
        request_id = self._next_id
        self._next_id += 1
        frame = array_header(1) + b"\x83" + codec.encode(request_id) + tail
        try:
            _remaining(deadline)
        except _Timeout as exc:
            raise _NotSent(DeadlineExceededError()) from exc
        try:
            ws.send(frame, deadline)
            while True:
                for rid, status, result in protocol.decode_frame(ws.recv(deadline)):
                    if rid == request_id or (rid == 0 and status == protocol.ERR):
                        return status, result
        except _Timeout:
            raise
        except (OSError, ConnectionError, codec.CodecError, ValueError) as exc:
            if isinstance(exc, TimeoutError):
                raise _Timeout() from exc
            raise _Lost(exc) from exc

    def call(
        self,
        op: str,
        payload: Any,
        expect: type[T],
        *,
        idempotent: bool,
        endpoint: str | None = None,
        timeout: float | None = None,
    ) -> T:
        tail = codec.encode(op) + codec.encode(wire_form(payload))
        size = len(tail) + 11  # + item header, the widest request id, the frame header
        if size > self.max_send_bytes:
            raise MessageTooLargeError(size, self.max_send_bytes)
        deadline = time.monotonic() + (self.request_timeout if timeout is None else timeout)
        targets = [endpoint] if endpoint is not None else list(self.endpoints)
        last: BaseException | None = None
        delay = 0.02
        failures = 0
        while time.monotonic() < deadline:
            idx = self._active % len(targets) if endpoint is None else 0
            target = targets[idx]
            try:
                ws = self._connect(target, deadline)
                status, result = self._exchange(ws, tail, deadline)
            except _NotSent as exc:
                last = exc.args[0] if exc.args else exc.__cause__
            except _Lost as exc:
                self._drop()
                cause = exc.__cause__
                if not idempotent:
                    raise errors.OutcomeUnknownError(
                        f"{op}: connection to {target} lost after the request was sent; "
                        "it may or may not have been applied"
                    ) from cause
                last = cause
            except _Timeout:
                self._drop()
                raise self._deadline(op, idempotent, last, sent=True)  # noqa: B904 - the cause is set
            else:
                if status == protocol.OK:
                    if not isinstance(result, expect):
                        raise errors.ClientError(
                            f"{op}: unexpected response {type(result).__name__} from {target}"
                        )
                    return result
                err = errors.from_wire(result if isinstance(result, dict) else {})
                if not isinstance(err, errors.UnavailableError):
                    raise err
                if not idempotent and not isinstance(err, SAFE_WRITE_RETRY):
                    raise errors.OutcomeUnknownError(
                        f"{op}: {err.text}; the request may or may not have been applied"
                    ) from err
                last = err
                self._drop()
            if self._log is not None:
                self._log(f"{op} via {target} failed ({last!r}); retrying until the deadline")
            if endpoint is None:
                self._active = (idx + 1) % len(targets)
            failures += 1
            if failures % len(targets) == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.5)
        raise self._deadline(op, idempotent, last, sent=False)

    @staticmethod
    def _deadline(op: str, idempotent: bool, last: BaseException | None, *, sent: bool) -> BaseException:
        """The error for a passed deadline: in doubt for a sent write, else the last cause or the deadline."""
        if sent and not idempotent:
            exc: BaseException = errors.OutcomeUnknownError(
                f"{op}: no answer before the deadline; it may or may not have been applied"
            )
            exc.__cause__ = DeadlineExceededError()
            return exc
        if isinstance(last, errors.EtcdError):
            return last
        exc = DeadlineExceededError()
        exc.__cause__ = last
        return exc

    # ----------------------------------------------------------------- the API trikvctl uses

    def put(
        self,
        key: KeyLike,
        value: KeyLike = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> rpc.PutResponse:
        req = put_op(
            key, value, lease=lease, prev_kv=prev_kv, ignore_value=ignore_value, ignore_lease=ignore_lease
        )
        return self.call("put", req, rpc.PutResponse, idempotent=False)

    def get(self, key: KeyLike, range_end: KeyLike | None = None, **options: Any) -> rpc.RangeResponse:
        return self.call("range", get_op(key, range_end, **options), rpc.RangeResponse, idempotent=True)

    def delete(
        self,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
    ) -> rpc.DeleteRangeResponse:
        req = delete_op(key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
        return self.call("delete_range", req, rpc.DeleteRangeResponse, idempotent=False)

    def txn(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        return self.call("txn", request, rpc.TxnResponse, idempotent=False)

    def compact(self, revision: int, physical: bool = False) -> rpc.CompactionResponse:
        req = rpc.CompactionRequest(revision, physical)
        return self.call("compact", req, rpc.CompactionResponse, idempotent=False)

    def status(self, endpoint: str | None = None) -> protocol.StatusResponse:
        """Status of the endpoint in use, or of `endpoint` (then no failover to another one)."""
        return self.call(
            "status", protocol.StatusRequest(), protocol.StatusResponse, idempotent=True, endpoint=endpoint
        )

    def member_list(self, *, linearizable: bool = False) -> protocol.MemberListResponse:
        req = protocol.MemberListRequest(linearizable)
        return self.call("member_list", req, protocol.MemberListResponse, idempotent=True)

    def member_add(self, peer_urls: list[str], *, is_learner: bool = False) -> protocol.MemberAddResponse:
        req = protocol.MemberAddRequest(tuple(peer_urls), is_learner)
        return self.call("member_add", req, protocol.MemberAddResponse, idempotent=False)

    def member_remove(self, member_id: int) -> protocol.MemberListResponse:
        req = protocol.MemberRemoveRequest(member_id)
        return self.call("member_remove", req, protocol.MemberListResponse, idempotent=False)

    def member_update(self, member_id: int, peer_urls: list[str]) -> protocol.MemberListResponse:
        req = protocol.MemberUpdateRequest(member_id, tuple(peer_urls))
        return self.call("member_update", req, protocol.MemberListResponse, idempotent=False)

    def member_promote(self, member_id: int) -> protocol.MemberListResponse:
        req = protocol.MemberPromoteRequest(member_id)
        return self.call("member_promote", req, protocol.MemberListResponse, idempotent=False)

    def move_leader(self, target_id: int) -> protocol.MoveLeaderResponse:
        req = protocol.MoveLeaderRequest(target_id)
        return self.call("move_leader", req, protocol.MoveLeaderResponse, idempotent=False)
