"""The one codec: round trips, and garbage always becomes CodecError (never another exception)."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trikv.api import codec, errors, rpc
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import ConfState, Entry, EntryType, HardState, SnapshotMeta


def test_records_round_trip() -> None:
    objs = [
        Entry(3, 7, EntryType.CONF_CHANGE, b"cc"),
        HardState(5, 2, 9),
        SnapshotMeta(10, 3, ConfState((1, 2, 3), (4,))),
        Message(
            MessageType.APP,
            to=2,
            frm=1,
            term=3,
            entries=[Entry(3, 8, data=b"x")],
            snapshot=Snapshot(SnapshotMeta(1, 1), b"data"),
        ),
    ]
    for obj in objs:
        back = codec.decode(codec.encode(obj))
        assert back == obj
        assert type(back) is type(obj)
    assert isinstance(codec.decode(codec.encode(Entry(1, 1))).type, EntryType)


def test_nested_txn_round_trip() -> None:
    txn = rpc.TxnRequest(
        compare=[rpc.Compare(rpc.CompareResult.LESS, rpc.CompareTarget.MOD, b"k", 5)],
        success=[rpc.PutRequest(b"k", b"v", prev_kv=True), rpc.TxnRequest(success=[rpc.RangeRequest(b"a")])],
        failure=[rpc.DeleteRangeRequest(b"a", b"b")],
    )
    assert codec.decode(codec.encode(txn)) == txn


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\xff",
        b"\x9f\x01",  # unterminated indefinite array
        cbor2.dumps(cbor2.CBORTag(codec.TAG_BASE, [1])),  # Entry with too few fields
        cbor2.dumps(cbor2.CBORTag(codec.TAG_BASE + 999, [1])),  # unknown tag
        cbor2.dumps(cbor2.CBORTag(codec.TAG_BASE, [1, 2, 99, b""])),  # bad enum value
    ],
)
def test_garbage_is_codec_error(blob: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(blob)


@given(st.binary(max_size=64))
def test_random_bytes_never_crash(blob: bytes) -> None:
    try:
        codec.decode(blob)
    except codec.CodecError:
        pass


def test_unregistered_type_is_refused() -> None:
    with pytest.raises(codec.CodecError):
        codec.encode(object())


def test_errors_round_trip_by_message() -> None:
    err = errors.from_wire(errors.to_wire(errors.CompactedError()))
    assert isinstance(err, errors.CompactedError)
    assert str(err) == "etcdserver: mvcc: required revision has been compacted"
    unknown = errors.from_wire({"code": 14, "message": "something new"})
    assert isinstance(unknown, errors.UnavailableError) and str(unknown) == "something new"
