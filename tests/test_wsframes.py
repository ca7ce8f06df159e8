"""The peer links' WebSocket frame codec (actors/wsframes.py) against wsproto, the general implementation it
replaced after the handshake: each side reads what the other writes, split anywhere; every framing rule
wsproto enforces is refused here with the close code RFC 6455 names; arbitrary bytes never raise anything
but ProtocolError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from trikv.actors import wsframes
from trikv.actors.wsframes import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, FrameReader, ProtocolError

MAX = 1 << 20


def read_all(reader: FrameReader, data: bytes, cuts: list[int]) -> list[tuple[int, bytes | str]]:
    """Feed `data` in pieces cut at `cuts`, collecting every frame the reader returns."""
    out: list[tuple[int, bytes | str]] = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        reader.feed(data[last:cut])
        last = max(last, cut)
        while (got := reader.next()) is not None:
            out.append(got)
    return out


messages = st.lists(st.one_of(st.binary(max_size=70_000), st.text(max_size=300)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=messages, cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=8))
@example(msgs=[b"", b"x" * 125, b"y" * 126, b"z" * 65535, b"w" * 65536], cuts=[1, 2, 3])
def test_wsproto_client_frames_read_by_a_server_reader(msgs: list[bytes | str], cuts: list[int]) -> None:
    client = Connection(ConnectionType.CLIENT)  # masks, as a peer dialing out does
    data = b""
    for m in msgs:
        if isinstance(m, str):
            data += client.send(TextMessage(data=m))
        else:
            # a binary message in two fragments when it is long enough: the reader reassembles it
            half = len(m) // 2
            if half:
                data += client.send(BytesMessage(data=m[:half], message_finished=False))
                data += client.send(BytesMessage(data=m[half:], message_finished=True))
            else:
                data += client.send(BytesMessage(data=m))
    data += client.send(Ping(payload=b"hi"))
    got = read_all(FrameReader(masked=True, max_message=MAX), data, cuts)
    want: list[tuple[int, bytes | str]] = [(OP_TEXT if isinstance(m, str) else OP_BINARY, m) for m in msgs]
    assert got == [*want, (OP_PING, b"hi")]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=st.lists(st.binary(max_size=70_000), min_size=1, max_size=6), masked=st.booleans())
def test_our_frames_read_by_wsproto(msgs: list[bytes], masked: bool) -> None:
    # Our client frames (masked) are what a wsproto server reads, our server frames what a client reads.
    peer = Connection(ConnectionType.SERVER if masked else ConnectionType.CLIENT)
    for m in msgs:
        peer.receive_data(wsframes.frame(OP_BINARY, m, masked=masked))
    got = b"".join(bytes(e.data) for e in peer.events() if isinstance(e, BytesMessage))
    assert got == b"".join(msgs)
    peer.receive_data(wsframes.frame(OP_CLOSE, wsframes.close_payload(1000, "bye"), masked=masked))
    closes = [e for e in peer.events() if isinstance(e, CloseConnection)]
    assert [(c.code, c.reason) for c in closes] == [(1000, "bye")]


def test_masking_is_its_own_inverse() -> None:
    payload = bytes(range(256)) * 3 + b"abc"
    key = b"\x01\x80\xff\x10"
    masked = wsframes.mask(payload, key)
    assert masked != payload
    assert wsframes.mask(masked, key) == payload
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def head(b0: int, b1: int, *rest: bytes) -> bytes:
    return bytes((b0, b1)) + b"".join(rest)


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (head(0x82 | 0x40, 0x80, b"\0\0\0\0"), 1002, "reserved bits"),
        (head(0x83, 0x80, b"\0\0\0\0"), 1002, "reserved opcode"),
        (head(0x82, 0x00), 1002, "masked the wrong way"),  # a server reader gets an unmasked frame
        (head(0x09, 0x80, b"\0\0\0\0"), 1002, "fragmented control"),
        (head(0x89, 0x80 | 126, struct.pack("!H", 126), b"\0" * 4), 1002, "over 125"),
        (head(0x82, 0x80 | 126, struct.pack("!H", 5)), 1002, "minimally"),
        (head(0x82, 0x80 | 127, struct.pack("!Q", 1000)), 1002, "minimally"),
        (head(0x80, 0x80, b"\0\0\0\0"), 1002, "continuation frame without"),
        (head(0x02, 0x80, b"\0\0\0\0") + head(0x82, 0x80, b"\0\0\0\0"), 1002, "inside a fragmented"),
        (head(0x82, 0x80 | 127, struct.pack("!Q", MAX + 1)), 1009, "exceeds"),
        (head(0x81, 0x82, b"\0\0\0\0", b"\xff\xfe"), 1007, "UTF-8"),
    ],
)
def test_bad_frames_are_refused_with_their_close_code(data: bytes, code: int, words: str) -> None:
    reader = FrameReader(masked=True, max_message=MAX)
    reader.feed(data)
    with pytest.raises(ProtocolError) as info:
        while reader.next() is not None:
            pass
    assert info.value.code == code and words in info.value.reason


def test_an_oversized_message_is_refused_from_its_header() -> None:
    # 1009 as soon as the header names the size: the payload is never waited for nor buffered
    reader = FrameReader(masked=False, max_message=1000)
    reader.feed(head(0x02, 126, struct.pack("!H", 600)) + b"x" * 600)
    assert reader.next() is None  # a first fragment of 600 bytes is fine
    reader.feed(head(0x80, 126, struct.pack("!H", 401)))
    with pytest.raises(ProtocolError) as info:
        reader.next()
    assert info.value.code == 1009


@pytest.mark.parametrize(
    ("payload", "expect"),
    [
        (b"", (1005, None)),
        (struct.pack("!H", 1000) + b"done", (1000, "done")),
        (struct.pack("!H", 4000), (4000, "")),
        (b"\x03", ProtocolError(1002, "")),
        (struct.pack("!H", 1005), ProtocolError(1002, "")),
        (struct.pack("!H", 999), ProtocolError(1002, "")),
        (struct.pack("!H", 1000) + b"\xff", ProtocolError(1007, "")),
    ],
)
def test_close_payloads(payload: bytes, expect: object) -> None:
    if isinstance(expect, ProtocolError):
        with pytest.raises(ProtocolError) as info:
            wsframes.parse_close(payload)
        assert info.value.code == expect.code
    else:
        assert wsframes.parse_close(payload) == expect


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.binary(max_size=300), masked=st.booleans(), cuts=st.lists(st.integers(0, 300), max_size=4))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes, masked: bool, cuts: list[int]) -> None:
    reader = FrameReader(masked=masked, max_message=100)
    try:
        for op, payload in read_all(reader, data, cuts):
            assert op in (0x1, 0x2, 0x8, 0x9, 0xA)
            assert isinstance(payload, str if op == OP_TEXT else bytes)
            if op == OP_CLOSE:
                wsframes.parse_close(payload)  # type: ignore[arg-type]
    except ProtocolError as exc:
        assert exc.code in (1002, 1007, 1009)
