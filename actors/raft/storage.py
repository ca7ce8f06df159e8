"""MemoryStorage: the stable part of the Raft log since the last snapshot, held in memory.

The caller fills it (WAL replay at start, then each Ready's entries/snapshot/hard state) so the core can
read what is durable without doing I/O itself. Index 0 of `_ents` is a dummy entry standing for the
snapshot point (its index and term), which makes term lookups at the snapshot boundary uniform.
"""

from __future__ import annotations

from collections.abc import Sequence

from trikv.api.errors import TrikvError
from trikv.api.raftpb import Snapshot
from trikv.api.records import ConfState, Entry, HardState, SnapshotMeta


class RaftError(TrikvError):
    """Misuse of the Raft core (a local message type stepped from the network, a bad bootstrap...)."""


class LogCompactedError(RaftError):
    """The requested index is at or before the snapshot point: those entries are gone."""


class LogUnavailableError(RaftError):
    """The requested index is beyond the last entry."""


class SnapshotOutOfDateError(RaftError):
    """A snapshot older than the one already held was offered."""


# Per-entry framing counted against size limits, so that even empty entries are not free.
ENTRY_OVERHEAD = 16


def limit_size(ents: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix of ents within max_size bytes, but always at least one entry (progress)."""
    if max_size is None or len(ents) <= 1:
        return ents
    if sum([len(e.data) for e in ents]) + ENTRY_OVERHEAD * len(ents) <= max_size:
        return ents  # the common case, without the per-entry Python loop below
    total = 0
    for i, e in enumerate(ents):
        total += len(e.data) + ENTRY_OVERHEAD
        if total > max_size and i > 0:
            return ents[:i]
    return ents


class MemoryStorage:
    """The durable log since the last snapshot plus the hard state; see the module docstring."""

    __slots__ = ("_ents", "_hard", "_snap")

    def __init__(self) -> None:
        self._hard = HardState()
        self._snap = Snapshot()
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    # ------------------------------------------------------------------ state
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard, self._snap.meta.conf_state

    def set_hard_state(self, hs: HardState) -> None:
        self._hard = hs

    def snapshot(self) -> Snapshot:
        return self._snap

    # ------------------------------------------------------------------ reads
    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, i: int) -> int:
        offset = self._ents[0].index
        if i < offset:
            raise LogCompactedError(f"index {i} compacted (snapshot at {offset})")
        if i - offset >= len(self._ents):
            raise LogUnavailableError(f"index {i} beyond last {self.last_index()}")
        return self._ents[i - offset].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi), limited to max_size bytes (at least one)."""
        offset = self._ents[0].index
        if lo <= offset:
            raise LogCompactedError(f"index {lo} compacted (snapshot at {offset})")
        if hi > self.last_index() + 1:
            raise LogUnavailableError(f"entries up to {hi} beyond last {self.last_index()}")
        if len(self._ents) == 1:
            return []
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    # ------------------------------------------------------------------ writes
    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by a snapshot (a follower caught up by SNAP, or a restart)."""
        if snap.meta.index < self._snap.meta.index:
            raise SnapshotOutOfDateError(f"snapshot {snap.meta.index} older than {self._snap.meta.index}")
        self._snap = snap
        self._ents = [Entry(term=snap.meta.term, index=snap.meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the applied state at index; the caller then compacts up to it."""
        if index <= self._snap.meta.index:
            raise SnapshotOutOfDateError(f"snapshot {index} not newer than {self._snap.meta.index}")
        if index > self.last_index():
            raise LogUnavailableError(f"snapshot {index} beyond last {self.last_index()}")
        self._snap = Snapshot(SnapshotMeta(index, self.term(index), conf_state), data)
        return self._snap

    def compact(self, index: int) -> None:
        """Drop entries up to and including index (index becomes the new dummy)."""
        offset = self._ents[0].index
        if index <= offset:
            raise LogCompactedError(f"index {index} already compacted (snapshot at {offset})")
        if index > self.last_index():
            raise LogUnavailableError(f"compact {index} beyond last {self.last_index()}")
        i = index - offset
        ents = [Entry(term=self._ents[i].term, index=index)]
        ents.extend(self._ents[i + 1 :])
        self._ents = ents

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries, replacing any conflicting suffix (entries must be contiguous)."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        pos = entries[0].index - self._ents[0].index
        n = len(self._ents)
        if pos < n:
            del self._ents[pos:]
            self._ents.extend(entries)
        elif pos == n:
            self._ents.extend(entries)
        else:
            raise LogUnavailableError(
                f"missing log entries: last {self.last_index()}, append at {entries[0].index}"
            )
