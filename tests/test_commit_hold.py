"""The leader's commit-only appends wait at most HOLD for the next append to carry their commit; a
follower whose forwarded proposal they commit, and a follower that is not replicating, get them at once
(actors/commithold.py; the whole-cluster behaviour is in tests/actors/test_commit_hold.py)."""

from __future__ import annotations

import math

from trikv.actors.commithold import HOLD, CommitHold
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import Entry

F1, F2 = 2, 3


def app(to: int, commit: int, *entries: int) -> Message:
    return Message(
        MessageType.APP, to, 1, 2, 2, 10, tuple(Entry(term=2, index=i) for i in entries), commit
    )


def everyone_replicates(to: int) -> bool:
    return True


def test_a_commit_only_append_is_held_until_due() -> None:
    hold = CommitHold()
    msgs = [app(F1, 11), app(F2, 11), Message(MessageType.HEARTBEAT, F1, 1, 2)]
    out = hold.filter(msgs, 5.0, everyone_replicates)
    assert [m.type for m in out] == [MessageType.HEARTBEAT]
    assert hold.due == 5.0 + HOLD
    assert hold.take_due(5.0 + HOLD / 2) == []
    assert hold.take_due(5.0 + HOLD) == [app(F1, 11), app(F2, 11)]
    assert hold.due == math.inf and hold.take_due(100.0) == []


def test_the_next_append_replaces_a_held_one() -> None:
    hold = CommitHold()
    hold.filter([app(F1, 11), app(F2, 11)], 5.0, everyone_replicates)
    out = hold.filter([app(F1, 11, 12)], 5.001, everyone_replicates)
    assert out == [app(F1, 11, 12)]
    assert hold.take_due(10.0) == [app(F2, 11)]  # F1's was dropped: the append carried commit 11


def test_a_follower_that_is_not_replicating_gets_it_at_once() -> None:
    hold = CommitHold()
    out = hold.filter([app(F1, 11), app(F2, 11)], 5.0, lambda to: to == F2)
    assert out == [app(F1, 11)]
    assert hold.take_due(10.0) == [app(F2, 11)]


def test_the_proposer_of_a_committed_entry_gets_it_at_once() -> None:
    hold = CommitHold()
    hold.forwarded(F2, 12)
    assert hold.filter([app(F1, 11), app(F2, 11)], 5.0, everyone_replicates) == []  # 12 not committed yet
    out = hold.filter([app(F1, 12), app(F2, 12)], 5.001, everyone_replicates)
    assert out == [app(F2, 12)]
    assert hold.filter([app(F2, 13)], 5.002, everyone_replicates) == []  # answered once, then held again
    hold.clear()
    assert hold.due == math.inf and hold.take_due(10.0) == []
