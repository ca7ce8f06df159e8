"""The peer link's Raft frame (trikv/api/raftframe.py): the binary layout round-trips every message without a
snapshot, everything else travels as CBOR, either form decodes, and no byte string makes the decoder raise
anything but CodecError or yield an ill-typed message."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trikv.actors import peercheck
from trikv.api import codec, raftframe
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import ConfState, Entry, EntryType, SnapshotMeta

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

entries = st.builds(Entry, U64, U64, st.sampled_from(list(EntryType)), st.binary(max_size=300))
messages = st.builds(
    Message,
    st.sampled_from(list(MessageType)),
    U64,
    U64,
    U64,
    U64,
    U64,
    st.lists(entries, max_size=4).map(tuple),
    U64,
    st.booleans(),
    U64,
    st.binary(max_size=40),
    st.none(),
    st.booleans(),
)


@given(st.lists(messages, max_size=5))
def test_messages_without_snapshots_travel_in_the_binary_layout_and_come_back_equal(msgs: list[Message]) -> None:
    frame = raftframe.encode(msgs)
    assert frame[0] == raftframe.BINARY
    back = raftframe.decode(frame)
    assert back == msgs
    assert all(peercheck.well_typed(m) for m in back)


def test_a_snapshot_or_a_value_beyond_uint64_travels_as_cbor_and_decodes_the_same() -> None:
    snap = Snapshot(SnapshotMeta(7, 2, ConfState(voters=(1, 2, 3))), b"page file")
    with_snapshot = [Message(MessageType.APP, 2, 1, 3), Message(MessageType.SNAP, 2, 1, 3, snapshot=snap)]
    frame = raftframe.encode(with_snapshot)
    assert frame == codec.encode(with_snapshot)
    assert raftframe.decode(frame) == with_snapshot
    huge = [Message(MessageType.HEARTBEAT, 2, 1, 1 << 64)]
    frame = raftframe.encode(huge)
    assert frame[0] != raftframe.BINARY and raftframe.decode(frame) == huge
    assert not peercheck.well_typed(raftframe.decode(frame)[0])  # the peer server refuses it


def test_an_append_is_a_fraction_of_the_cbor_work_and_its_entries_keep_their_bytes() -> None:
    data = b"\x8a" * 300
    app = Message(MessageType.APP, 2, 1, 5, 5, 1000, (Entry(5, 1001, EntryType.NORMAL, data),), 1000)
    frame = raftframe.encode([app])
    assert len(frame) == struct.calcsize("<BH") + struct.calcsize("<BBQQQQQQQII") + struct.calcsize("<QQBI") + 300
    (back,) = raftframe.decode(frame)
    assert back.entries[0].data == data and type(back.entries[0].data) is bytes
    assert back.type is MessageType.APP and back.entries[0].type is EntryType.NORMAL


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f[:-1],  # short
        lambda f: f + b"\x00",  # trailing bytes
        lambda f: f[:3] + bytes([200]) + f[4:],  # unknown message type
        lambda f: f[:4] + bytes([4]) + f[5:],  # unknown flag
        lambda f: f[:1] + struct.pack("<H", 2) + f[3:],  # one message more than the frame holds
    ],
)
def test_a_damaged_binary_frame_is_a_codec_error(mutate) -> None:
    frame = raftframe.encode([Message(MessageType.APP, 2, 1, 5, 5, 9, (Entry(5, 10, EntryType.NORMAL, b"x"),), 9)])
    with pytest.raises(codec.CodecError):
        raftframe.decode(mutate(frame))


@given(st.binary(max_size=200))
def test_any_bytes_after_the_binary_marker_decode_to_typed_messages_or_a_codec_error(tail: bytes) -> None:
    try:
        msgs = raftframe.decode(bytes([raftframe.BINARY]) + tail)
    except codec.CodecError:
        return
    assert all(type(m) is Message and peercheck.well_typed(m) for m in msgs)


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_list_or_a_codec_error(data: bytes) -> None:
    try:
        msgs = raftframe.decode(data)
    except codec.CodecError:
        return
    assert isinstance(msgs, list)
