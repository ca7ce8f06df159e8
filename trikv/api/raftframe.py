"""The peer link's frame of Raft messages: a fixed binary layout for what a write sends on every hop.

A frame is the Raft loop's messages for one member from one Ready. Appends, their answers and heartbeats
(every message without a snapshot, all integers within uint64) travel in the layout below; anything else
(a snapshot message, a value out of range) travels as the CBOR array of registered shapes that codec.py
writes. The first byte tells them apart: a CBOR array starts with 0x80-0x9f, this layout with 0x01.

    frame   = 0x01, count: u16, message * count
    message = type: u8, flags: u8 (1 reject, 2 no_ack), to, frm, term, log_term, index, commit,
              reject_hint: u64 each, context length: u32, entry count: u32, context, entry * count
    entry   = term, index: u64, type: u8, data length: u32, data

Little-endian. Decoding checks every length against the frame, so a short, long or garbled frame raises
CodecError; the values it yields are of their declared types by construction (the peer server's
field check is for the CBOR form). CBOR of attrs shapes built through Python hooks was ~10 us per message
each way; this is a struct call per message and per entry.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from trikv.api import codec
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import Entry, EntryType

BINARY = 0x01
_FRAME = struct.Struct("<BH")
_MSG = struct.Struct("<BBQQQQQQQII")
_ENTRY = struct.Struct("<QQBI")
_U64_END = 1 << 64
_REJECT, _NO_ACK = 1, 2
_TYPES = {int(t): t for t in MessageType}
_ENTRY_TYPES = {int(t): t for t in EntryType}
MAX_COUNT = 0xFFFF


def _binary(msgs: Sequence[Message]) -> bytes | None:
    """The binary form, or None when some message needs CBOR."""
    if len(msgs) > MAX_COUNT:
        return None
    parts = [_FRAME.pack(BINARY, len(msgs))]
    add = parts.append
    pack_msg, pack_entry = _MSG.pack, _ENTRY.pack
    for m in msgs:
        if m.snapshot is not None:
            return None
        ents = m.entries
        ctx = m.context
        flags = (_REJECT if m.reject else 0) | (_NO_ACK if m.no_ack else 0)
        add(
            pack_msg(
                m.type,
                flags,
                m.to,
                m.frm,
                m.term,
                m.log_term,
                m.index,
                m.commit,
                m.reject_hint,
                len(ctx),
                len(ents),
            )
        )
        if ctx:
            add(ctx)
        for e in ents:
            data = e.data
            add(pack_entry(e.term, e.index, e.type, len(data)))
            add(data)
    return b"".join(parts)


def encode(msgs: Sequence[Message]) -> bytes:
    """One frame for `msgs` (the binary layout when every message fits it, else CBOR)."""
    try:
        data = _binary(msgs)
    except (struct.error, TypeError):  # a value beyond uint64, a field of the wrong type: CBOR says it
        data = None
    return data if data is not None else codec.encode(list(msgs))


def decode(data: bytes) -> list[Message]:
    """The messages of a frame in either form; CodecError for anything else."""
    if not data or data[0] != BINARY:
        msgs = codec.decode(data)
        if not isinstance(msgs, (list, tuple)):
            raise codec.CodecError("peer frame is not an array of messages")
        return list(msgs)
    try:
        return _decode_binary(data)
    except (struct.error, KeyError, ValueError, TypeError) as exc:
        raise codec.CodecError(f"malformed Raft frame: {exc}") from None


def _decode_binary(data: bytes) -> list[Message]:
    view = memoryview(data)
    end = len(data)
    _, count = _FRAME.unpack_from(data, 0)
    pos = _FRAME.size
    unpack_msg, unpack_entry = _MSG.unpack_from, _ENTRY.unpack_from
    msize, esize = _MSG.size, _ENTRY.size
    types, entry_types = _TYPES, _ENTRY_TYPES
    out = []
    for _ in range(count):
        t, flags, to, frm, term, log_term, index, commit, hint, clen, n = unpack_msg(data, pos)
        pos += msize
        if flags & ~(_REJECT | _NO_ACK):
            raise ValueError(f"unknown message flags {flags}")
        if pos + clen > end:
            raise ValueError("context runs past the frame")
        ctx = bytes(view[pos : pos + clen]) if clen else b""
        pos += clen
        ents: list[Entry] = []
        for _ in range(n):
            et, ei, ety, dlen = unpack_entry(data, pos)
            pos += esize
            if pos + dlen > end:
                raise ValueError("entry data runs past the frame")
            ents.append(Entry(et, ei, entry_types[ety], bytes(view[pos : pos + dlen])))
            pos += dlen
        out.append(
            Message(
                types[t],
                to,
                frm,
                term,
                log_term,
                index,
                tuple(ents) if n else (),
                commit,
                bool(flags & _REJECT),
                hint,
                ctx,
                None,
                bool(flags & _NO_ACK),
            )
        )
    if pos != end:
        raise ValueError(f"{end - pos} bytes after the last message")
    return out


__all__ = ["BINARY", "decode", "encode"]
