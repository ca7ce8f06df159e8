"""Linearizable reads: waiting readers share one ReadIndex round (owned by the Raft loop).

A round is issued only when none is in flight; readers arriving meanwhile join the next one. A round lost
with a leader change is re-issued after an election timeout; with no leader, waiting readers fail at once.
Once a round's read state arrives, its readers wait in the backend until `applied >= index`.
"""

from __future__ import annotations

from collections.abc import Callable

from trikv.actors.events import Pending
from trikv.actors.raft import ReadState
from trikv.api import errors


class ReadRounds:
    def __init__(self, new_ctx: Callable[[], bytes], retry_after: float) -> None:
        self._new_ctx = new_ctx  # unique across members and restarts
        self._retry_after = retry_after
        self._waiting: list[Pending] = []
        self._inflight: dict[bytes, list[Pending]] = {}
        self._issued_at = 0.0

    def add(self, pending: Pending) -> None:
        self._waiting.append(pending)

    def issue(self, now: float, lead: int, read_index: Callable[[bytes], None]) -> None:
        if self._inflight and now - self._issued_at > self._retry_after:
            for waiters in self._inflight.values():
                self._waiting.extend(w for w in waiters if not w.done.is_set())
            self._inflight.clear()
        if not self._waiting or self._inflight:
            return
        if lead == 0:
            self.fail_waiting(errors.NoLeaderError())
            return
        ctx = self._new_ctx()
        self._inflight[ctx] = self._waiting
        self._waiting = []
        self._issued_at = now
        read_index(ctx)

    def fail_waiting(self, err: errors.EtcdError) -> None:
        for w in self._waiting:
            w.resolve(err)
        self._waiting.clear()

    def leader_lost(self) -> None:
        for waiters in self._inflight.values():
            for w in waiters:
                w.resolve(errors.NoLeaderError())
        self._inflight.clear()

    def answered(self, states: list[ReadState]) -> list[tuple[int, Pending]]:
        out = []
        for rs in states:
            for w in self._inflight.pop(rs.ctx, ()):
                out.append((rs.index, w))
        return out


__all__ = ["ReadRounds"]
