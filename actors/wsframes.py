"""WebSocket frames after the opening handshake (RFC 6455 section 5), sans-I/O, for peer links.

A peer link carries a few small binary messages per put on every member. wsproto's general frame machinery
(a generator per frame, a Python loop per masked byte, an event object per message) was ~10 % of a
follower's CPU per put; this codec does the subset a link needs in a few C-level operations per frame:
whole binary/text messages (fragmented ones reassembled), ping/pong, close. No extension is ever
negotiated on a peer link, so every RSV bit must be clear. The handshake stays wsproto's (peerlink.py).

Rules a bad peer gets a close code for (`ProtocolError.code`): 1002 for a malformed frame (reserved bits or
opcodes, a control frame fragmented or over 125 bytes, a mask bit the wrong way round for the side, a
non-minimal length, a continuation without a start or a start inside a message, a bad close payload),
1007 for text or a close reason that is not UTF-8, 1009 for a message over the link's limit (refused from
the frame header, before its payload is buffered).
"""

from __future__ import annotations

import random
import struct

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPS = (OP_CONT, OP_TEXT, OP_BINARY)
_CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)
# Close codes an endpoint may send (RFC 6455 7.4.1 and the IANA registry); 1005/1006/1015 never travel.
_SENDABLE_BELOW_3000 = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_rng = random.Random()  # masking keys: unpredictable enough for a link between our own members


class ProtocolError(Exception):
    """The other side broke the framing rules; the link closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def mask(payload: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR with the 4-byte key, repeated (masking and unmasking are the same), as two big-int operations."""
    n = len(payload)
    if n == 0:
        return b""
    keys = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


def frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    """One final frame; a client's frames are masked (RFC 6455 5.3), a server's never."""
    n = len(payload)
    b0 = 0x80 | opcode
    m = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 0x10000:
        head = _H16.pack(b0, m | 126, n)
    else:
        head = _H64.pack(b0, m | 127, n)
    if not masked:
        return head + payload
    key = _rng.getrandbits(32).to_bytes(4, "little")
    return head + key + mask(payload, key)


def close_payload(code: int, reason: str | None) -> bytes:
    return _U16.pack(code) + (reason or "").encode()[:123]


def parse_close(payload: bytes) -> tuple[int, str | None]:
    """(code, reason) of a close frame's payload; an empty one is 1005 (no status), as RFC 6455 7.1.5."""
    if not payload:
        return 1005, None
    if len(payload) == 1:
        raise ProtocolError(1002, "close frame payload of 1 byte")
    (code,) = _U16.unpack_from(payload)
    if not (code in _SENDABLE_BELOW_3000 or 3000 <= code <= 4999):
        raise ProtocolError(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError(1007, "close reason is not valid UTF-8") from None
    return code, reason


class FrameReader:
    """Bytes in (`feed`), whole messages and control frames out (`next`).

    `next()` returns (opcode, payload): OP_BINARY with bytes, OP_TEXT with str (a fragmented message comes
    out once, whole, under its first frame's opcode), or a control frame's opcode with its raw payload; None
    when more bytes are needed. After a ProtocolError the reader is spent.
    """

    def __init__(self, *, masked: bool, max_message: int) -> None:
        self._masked = masked  # whether frames from the other side must be masked (we are the server)
        self._max = max_message
        self._buf = bytearray()
        self._pos = 0
        self._parts: list[bytes] = []
        self._part_bytes = 0
        self._part_op = -1  # opcode of the message being reassembled, -1 when none

    def feed(self, data: bytes | bytearray) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next(self) -> tuple[int, bytes | str] | None:
        while True:
            got = self._frame()
            if got is None:
                return None
            fin, op, payload = got
            if op >= 0x8:
                return op, payload
            if op == OP_CONT:
                if self._part_op < 0:
                    raise ProtocolError(1002, "continuation frame without a message to continue")
            elif self._part_op >= 0:
                raise ProtocolError(1002, "new data frame inside a fragmented message")
            elif fin:
                return op, self._text(payload) if op == OP_TEXT else payload
            else:
                self._part_op = op
            self._parts.append(payload)
            self._part_bytes += len(payload)
            if fin:
                op, whole = self._part_op, b"".join(self._parts)
                self._parts, self._part_bytes, self._part_op = [], 0, -1
                return op, self._text(whole) if op == OP_TEXT else whole

    @staticmethod
    def _text(payload: bytes) -> str:
        try:
            return payload.decode()
        except UnicodeDecodeError:
            raise ProtocolError(1007, "text message is not valid UTF-8") from None

    def _frame(self) -> tuple[bool, int, bytes] | None:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        if b0 & 0x70:
            raise ProtocolError(1002, "reserved bits set (no extension was negotiated)")
        fin, op = bool(b0 & 0x80), b0 & 0x0F
        if op not in _DATA_OPS and op not in _CONTROL_OPS:
            raise ProtocolError(1002, f"reserved opcode {op:#x}")
        if bool(b1 & 0x80) != self._masked:
            raise ProtocolError(1002, "frame masked the wrong way for this side")
        n = b1 & 0x7F
        head = 2
        if n == 126:
            if avail < 4:
                return None
            (n,) = _U16.unpack_from(buf, pos + 2)
            head = 4
            if n < 126:
                raise ProtocolError(1002, "payload length not minimally encoded")
        elif n == 127:
            if avail < 10:
                return None
            (n,) = _U64.unpack_from(buf, pos + 2)
            head = 10
            if n < 0x10000 or n >> 63:
                raise ProtocolError(1002, "payload length not minimally encoded")
        if op >= 0x8:
            if not fin:
                raise ProtocolError(1002, "fragmented control frame")
            if n > 125:
                raise ProtocolError(1002, "control frame payload over 125 bytes")
        elif self._part_bytes + n > self._max:
            raise ProtocolError(1009, f"message exceeds {self._max} bytes")
        if self._masked:
            head += 4
        if avail < head + n:
            return None
        start = pos + head
        if self._masked:
            payload = mask(buf[start : start + n], bytes(buf[start - 4 : start]))
        else:
            payload = bytes(buf[start : start + n])
        self._pos = start + n
        return fin, op, payload


__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "ProtocolError",
    "close_payload",
    "frame",
    "mask",
    "parse_close",
]
