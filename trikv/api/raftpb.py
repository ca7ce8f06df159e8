"""Raft's wire vocabulary (etcd's `raftpb.Message`), shared by the pure core and the peer transport."""

from __future__ import annotations

import enum

import attrs

from trikv.api.codec import register
from trikv.api.records import Entry, SnapshotMeta, as_tuple


class MessageType(enum.IntEnum):
    HUP = 0  # local: start an election
    BEAT = 1  # local: leader sends heartbeats
    PROP = 2  # proposal (a follower forwards it to the leader)
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10  # local
    SNAP_STATUS = 11  # local
    CHECK_QUORUM = 12  # local
    TRANSFER_LEADER = 13
    TIMEOUT_NOW = 14
    READ_INDEX = 15
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18
    STORAGE_APPEND_RESP = 19  # local: the caller persisted entries up to (log_term, index)


@register(20)
@attrs.frozen(slots=True)
class Snapshot:
    """A snapshot in flight: its metadata and the opaque state-machine payload."""

    meta: SnapshotMeta = SnapshotMeta()
    data: bytes = b""


@register(21)
@attrs.frozen(slots=True)
class Message:
    type: MessageType
    to: int = 0
    frm: int = 0
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = attrs.field(default=(), converter=as_tuple)
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: Snapshot | None = None
    # An append that only carries the commit index to a follower the leader knows is in step (replicating):
    # accepted, it gets no response (the one to the append that carried the entries says it all); a
    # rejection still answers. Not in etcd's raftpb: a follower's answer to every commit was one more
    # message, wakeup and Ready per write on two members.
    no_ack: bool = False
