"""The field check of a Raft message that arrived on a peer link.

The codec builds a registered shape from any CBOR array of the right length without looking at the field
types (the peer path is hot, and our own members only ever send well-typed messages), so a peer frame with
a term of None or an index that is a list would reach the Raft core and fail there with a TypeError (found
by tests/fuzz). The peer server checks every message here first: a few type checks per message and per
entry, against a round trip of ~100 us.
"""

from __future__ import annotations

from typing import Any

from trikv.api.raftpb import Message, Snapshot
from trikv.api.records import ConfState, Entry, SnapshotMeta

_U64_END = 1 << 64


def _u64(v: Any) -> bool:
    return type(v) is int and 0 <= v < _U64_END


def well_typed(m: Message) -> bool:
    """Every field of `m` (its entries and snapshot too) of its declared type, integers within uint64."""
    if not (
        _u64(m.to)
        and _u64(m.frm)
        and _u64(m.term)
        and _u64(m.log_term)
        and _u64(m.index)
        and _u64(m.commit)
        and _u64(m.reject_hint)
        and type(m.reject) is bool
        and type(m.no_ack) is bool
        and type(m.context) is bytes
    ):
        return False
    for e in m.entries:
        if type(e) is not Entry or not (_u64(e.term) and _u64(e.index) and type(e.data) is bytes):
            return False
    s = m.snapshot
    if s is None:
        return True
    if type(s) is not Snapshot or type(s.data) is not bytes or type(s.meta) is not SnapshotMeta:
        return False
    cs = s.meta.conf_state
    return (
        _u64(s.meta.index)
        and _u64(s.meta.term)
        and type(cs) is ConfState
        and all(_u64(i) for i in cs.voters)
        and all(_u64(i) for i in cs.learners)
    )


__all__ = ["well_typed"]
