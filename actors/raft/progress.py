"""The leader's view of one follower: how far it matches, what to send next, and the flow-control state.

PROBE: one append at a time until the follower's log position is found (after a reject or a restart).
REPLICATE: stream appends optimistically, bounded by the in-flight window.
SNAPSHOT: a snapshot is on its way; nothing else is sent until it is reported.
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


_PROBE = ProgressState.PROBE
_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT


class Inflights:
    """Last indexes of appends sent but not yet acknowledged, bounded in count (the sliding window)."""

    __slots__ = ("_q", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._q: deque[int] = deque()

    def add(self, last: int) -> None:
        self._q.append(last)

    def full(self) -> bool:
        return len(self._q) >= self.cap

    def count(self) -> int:
        return len(self._q)

    def free_le(self, to: int) -> None:
        q = self._q
        while q and q[0] <= to:
            q.popleft()

    def free_first_one(self) -> None:
        if self._q:
            self._q.popleft()

    def reset(self) -> None:
        self._q.clear()


class Progress:
    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "state",
    )

    def __init__(self, next_: int, max_inflight: int, *, match: int = 0, is_learner: bool = False) -> None:
        self.match = match
        self.next = next_
        self.state = _PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.probe_sent = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner

    def _reset(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == _SNAPSHOT:
            pending = self.pending_snapshot
            self._reset(_PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(_PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(_REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(_SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """An acknowledgement up to n: returns whether match moved."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of the append at `rejected`; returns False if it is stale."""
        if self.state == _REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        st = self.state
        if st == _REPLICATE:
            return len(self.inflights._q) >= self.inflights.cap
        if st == _PROBE:
            return self.probe_sent
        return True

    def sent_entries(self, last: int | None) -> None:
        """An append was sent; last is its last entry index (None if it carried no entries)."""
        if self.state == _REPLICATE:
            if last is not None:
                self.next = last + 1
                self.inflights.add(last)
        elif self.state == _PROBE:
            self.probe_sent = True
