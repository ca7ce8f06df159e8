"""Commit-only appends held back for a moment, so that the next append carries the new commit index instead.

When the commit index moves, a leader sends every follower an append without entries only to tell it
(etcd's bcastAppend after maybeCommit); each answers it. Under steady writes the next append, a moment
later, carries that commit anyway: holding the commit-only message for at most `HOLD` seconds, and dropping
it when another append to the same follower leaves first (that one carries a commit at least as high),
halves the peer messages per write at one client and saves a Ready on every follower. Raft tolerates a lost
append; this only delays when a follower learns a commit, never what is committed.

Not held: appends with entries, appends to a follower that is not replicating (probes, snapshots), the
commit of an entry a follower forwarded to us (its client waits for that follower's own apply), and the
commit of a conf change (the Raft loop sends those at once: a member added is known everywhere). A follower's
linearizable read does not wait on this either: its ReadIndex round's heartbeats carry the commit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from trikv.api.raftpb import Message, MessageType

HOLD = 0.002  # seconds a commit-only append may wait for the next append to carry its commit

_APP = MessageType.APP


class CommitHold:
    """The leader's held commit-only appends (one per follower at most) and who awaits which commit."""

    def __init__(self, hold: float = HOLD) -> None:
        self.hold = hold
        self.due = math.inf  # when the held messages must go out
        self._held: dict[int, Message] = {}
        self._forwarded: dict[int, int] = {}  # follower -> last index of its forwarded proposals

    def forwarded(self, frm: int, last_index: int) -> None:
        """The leader appended a proposal `frm` forwarded; its entries end at `last_index`."""
        self._forwarded[frm] = last_index

    def filter(self, msgs: list[Message], now: float, replicating: Callable[[int], bool]) -> list[Message]:
        """The messages to send now; commit-only appends are kept back (see the module docstring)."""
        out: list[Message] = []
        held = self._held
        for m in msgs:
            if m.type == _APP:
                fwd = self._forwarded.get(m.to)
                if fwd is not None and fwd <= m.commit:
                    del self._forwarded[m.to]  # its proposer is waiting for this commit: send it now
                elif not m.entries and replicating(m.to):
                    if not held:
                        self.due = now + self.hold
                    held[m.to] = m
                    continue
                held.pop(m.to, None)  # this append carries a commit at least as high
            out.append(m)
        if not held:
            self.due = math.inf
        return out

    def take_due(self, now: float) -> list[Message]:
        """The held messages whose time has come (all of them: they were held since `due - hold`)."""
        if now < self.due:
            return []
        msgs = list(self._held.values())
        self._held.clear()
        self.due = math.inf
        return msgs

    def clear(self) -> None:
        """Leadership lost: nothing held is worth sending."""
        self._held.clear()
        self._forwarded.clear()
        self.due = math.inf


__all__ = ["HOLD", "CommitHold"]
