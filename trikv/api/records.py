"""Record shapes shared by the Raft core, the WAL and the page file.

These are the durable vocabulary of the system: what the WAL stores and what the Raft core hands out in a
Ready. They are plain frozen attrs classes so they hash, compare and encode through the one codec
(`trikv.api.codec`) without any glue.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs


def as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """attrs converter: sequences decode as lists or tuples; records hold tuples (hashable, immutable)."""
    return value if type(value) is tuple else tuple(value)


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1
    NOOP = 2


@attrs.frozen(slots=True)
class Entry:
    """One Raft log entry. A NORMAL entry's data is one encoded client request."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@attrs.frozen(slots=True)
class HardState:
    """What Raft must have on disk before it may speak: the term, its vote in it, the commit index."""

    term: int = 0
    vote: int = 0
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == 0 and self.commit == 0


EMPTY_HARD_STATE = HardState()


@attrs.frozen(slots=True)
class ConfState:
    """The membership the log has applied: voters and learners, as sorted tuples of member ids."""

    voters: tuple[int, ...] = attrs.field(default=(), converter=as_tuple)
    learners: tuple[int, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(slots=True)
class SnapshotMeta:
    """Where a snapshot stands in the log and which membership it carries."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = ConfState()


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0
    ADD_LEARNER = 1
    REMOVE_NODE = 2
    UPDATE_NODE = 3
    PROMOTE_LEARNER = 4


@attrs.frozen(slots=True)
class ConfChange:
    """A membership change. `context` carries the member record (name, URLs) for the apply path."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""
    id: int = 0


@attrs.frozen(slots=True)
class WalMetadata:
    """Identity stamped at the head of every WAL segment: a WAL belongs to one member of one cluster."""

    cluster_id: int
    member_id: int
