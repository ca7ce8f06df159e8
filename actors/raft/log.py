"""RaftLog: stable storage plus the unstable tail (entries / snapshot not yet handed to or persisted by the
caller), the commit index and the apply cursors.

Entries live in `unstable` from index `offset` until the caller acknowledges them as durable
(`stable_to`); `in_progress` is the last index already handed out in a Ready, so a Ready never repeats
entries even if the caller steps messages before persisting.
"""

from __future__ import annotations

from collections.abc import Sequence

from trikv.actors.raft.storage import (
    LogCompactedError,
    LogUnavailableError,
    MemoryStorage,
    RaftError,
    limit_size,
)
from trikv.api.raftpb import Snapshot
from trikv.api.records import Entry


class RaftLog:
    __slots__ = (
        "applied",
        "applying",
        "committed",
        "in_progress",
        "offset",
        "snap_in_progress",
        "storage",
        "unstable",
        "unstable_snapshot",
    )

    def __init__(self, storage: MemoryStorage, applied: int = 0) -> None:
        self.storage = storage
        self.unstable: list[Entry] = []
        self.unstable_snapshot: Snapshot | None = None
        self.snap_in_progress = False
        self.offset = storage.last_index() + 1
        self.in_progress = self.offset - 1
        first = storage.first_index()
        self.committed = first - 1
        self.applied = max(applied, first - 1)
        self.applying = self.applied

    # ------------------------------------------------------------------ reads
    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index
        return self.storage.last_index()

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, i: int) -> int:
        """Term of entry i; 0 beyond the last entry; raises LogCompactedError before the snapshot point."""
        off = self.offset
        if i >= off and self.unstable:
            k = i - off
            if k < len(self.unstable):
                return self.unstable[k].term
            return 0
        snap = self.unstable_snapshot
        if snap is not None:
            if i == snap.meta.index:
                return snap.meta.term
            if i < snap.meta.index:
                raise LogCompactedError(f"index {i} before snapshot {snap.meta.index}")
            return 0
        try:
            return self.storage.term(i)
        except LogUnavailableError:
            return 0

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except LogCompactedError:
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        lt = self.last_term()
        return term > lt or (term == lt and lasti >= self.last_index())

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi) limited to max_size bytes; raises LogCompactedError if lo is compacted."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise LogCompactedError(f"index {lo} compacted")
        off = self.offset
        if lo >= off:
            return limit_size(self.unstable[lo - off : hi - off], max_size)
        ents = self.storage.entries(lo, min(hi, off), max_size)
        if hi > off and len(ents) == min(hi, off) - lo:
            more = self.unstable[: hi - off]
            if max_size is None:
                ents = ents + more
            else:
                ents = limit_size(ents + more, max_size)
        return ents

    def snapshot(self) -> Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """Index of the first entry of ents that is new or conflicts with the log (0 if all present)."""
        if not ents:
            return 0
        last = self.last_index()
        e0 = ents[0]
        if e0.index > last:
            return e0.index
        e = ents[-1]
        if e.index <= last and self.match_term(e.index, e.term):
            return 0  # log matching: the last one matches, so do all before it
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term: where a leader/follower logs may agree."""
        index = min(index, self.last_index())
        while index > 0:
            try:
                t = self.term(index)
            except LogCompactedError:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # ------------------------------------------------------------------ writes
    def maybe_append(self, index: int, log_term: int, committed: int, ents: Sequence[Entry]) -> int:
        """Follower append after the log-matching check; returns the last new index or -1 on mismatch."""
        if not self.match_term(index, log_term):
            return -1
        lastnewi = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise RaftError(f"entry {ci} conflicts with committed entry (committed {self.committed})")
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, lastnewi))
        return lastnewi

    def append(self, ents: Sequence[Entry]) -> None:
        if not ents:
            return
        frm = ents[0].index
        if frm - 1 < self.committed:
            raise RaftError(f"append at {frm} would overwrite committed {self.committed}")
        off = self.offset
        n = len(self.unstable)
        if frm == off + n:
            self.unstable.extend(ents)
        elif frm <= off:
            # Replaces entries the caller already holds: the new suffix starts from frm.
            self.unstable = list(ents)
            self.offset = frm
            self.in_progress = min(self.in_progress, frm - 1)
        else:
            del self.unstable[frm - off :]
            self.unstable.extend(ents)
            self.in_progress = min(self.in_progress, frm - 1)

    def commit_to(self, tocommit: int) -> None:
        if tocommit > self.committed:
            last = self.last_index()
            self.committed = min(tocommit, last)

    def applied_to(self, i: int) -> None:
        if i > self.applied:
            self.applied = i
        if i > self.applying:
            self.applying = i

    def stable_to(self, i: int, t: int) -> None:
        """The caller made entries up to (i, t) durable: drop them from the unstable tail."""
        off = self.offset
        if i < off or not self.unstable:
            return
        k = i - off
        if k >= len(self.unstable) or self.unstable[k].term != t:
            return
        del self.unstable[: k + 1]
        self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        snap = self.unstable_snapshot
        if snap is not None and snap.meta.index == i:
            self.unstable_snapshot = None
            self.snap_in_progress = False

    def restore(self, snap: Snapshot) -> None:
        """Reset the log to a snapshot received from the leader (applied by the caller via Ready)."""
        idx = snap.meta.index
        self.committed = idx
        self.unstable = []
        self.offset = idx + 1
        self.in_progress = idx
        self.unstable_snapshot = snap
        self.snap_in_progress = False

    # ------------------------------------------------------------------ Ready support
    def has_unstable_to_hand(self) -> bool:
        return bool(self.unstable) and self.in_progress < self.offset + len(self.unstable) - 1

    def take_unstable(self) -> list[Entry]:
        """Unstable entries not yet handed out; marks them handed out."""
        if not self.unstable:
            return []
        off = self.offset
        start = max(self.in_progress + 1 - off, 0)
        ents = self.unstable[start:]
        if ents:
            self.in_progress = ents[-1].index
        return ents

    def has_snapshot_to_hand(self) -> bool:
        return self.unstable_snapshot is not None and not self.snap_in_progress

    def pending_snapshot(self) -> bool:
        return self.unstable_snapshot is not None

    def has_next_committed(self) -> bool:
        if self.unstable_snapshot is not None:
            return False
        return self.committed > self.applying

    def take_committed(self) -> list[Entry]:
        """Committed entries not yet handed out for applying; marks them handed out."""
        if self.unstable_snapshot is not None or self.committed <= self.applying:
            return []
        lo = self.applying + 1
        hi = self.committed + 1
        ents = self.slice(lo, hi)
        if ents:
            self.applying = ents[-1].index
        return ents
