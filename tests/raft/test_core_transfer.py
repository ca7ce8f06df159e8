"""Leader transfer (etcd's move-leader): catch the target up, TIMEOUT_NOW, abort after an election timeout."""

from __future__ import annotations

from typing import Any

import pytest

from tests.raft.test_core_pump import Cluster
from trikv.actors.raft import ProposalDropped, StateType
from trikv.api.raftpb import MessageType

MT = MessageType


def settled(**cfg: Any) -> Cluster:
    c = Cluster([1, 2, 3], **cfg)
    c.stabilize()
    c.elect(1)
    return c


def test_transfer_to_up_to_date_follower() -> None:
    c = settled()
    term = c.term(1)
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    assert c.leaders() == [3]
    assert c.term(3) == term + 1
    assert any(m.type == MT.TIMEOUT_NOW and m.to == 3 for m in c.sent)
    c.nodes[3].propose(b"after")
    c.stabilize()
    assert all(c.sm[i] == [b"after"] for i in c.ids)


def test_transfer_catches_lagging_target_up_first() -> None:
    c = settled()
    c.isolate(3)
    for k in range(10):
        c.nodes[1].propose(b"%d" % k)
    c.stabilize()
    assert c.last(3) < c.last(1)
    c.heal()
    c.sent.clear()
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    assert c.leaders() == [3]
    kinds = [m.type for m in c.sent if m.frm == 1 and m.to == 3]
    assert MT.APP in kinds and MT.TIMEOUT_NOW in kinds
    assert kinds.index(MT.APP) < kinds.index(MT.TIMEOUT_NOW)
    assert c.sm[3] == [b"%d" % k for k in range(10)]


def test_transfer_aborts_after_election_timeout_and_proposals_resume() -> None:
    c = settled(election_tick=10)
    c.isolate(3)
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    assert c.nodes[1].status().lead_transferee == 3
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"during")
    c.tick(10, only=[1, 2])
    assert c.nodes[1].status().lead_transferee == 0
    assert c.leaders() == [1]
    c.nodes[1].propose(b"after-abort")
    c.stabilize()
    assert c.sm[2] == [b"after-abort"]


def test_transfer_requested_on_follower_is_forwarded() -> None:
    c = settled()
    c.nodes[2].transfer_leader(2)
    c.stabilize()
    assert c.leaders() == [2]


def test_transfer_to_self_is_ignored() -> None:
    c = settled()
    c.nodes[1].transfer_leader(1)
    c.stabilize()
    assert c.leaders() == [1] and c.nodes[1].status().lead_transferee == 0


def test_timeout_now_starts_election_without_prevote() -> None:
    c = settled()
    c.sent.clear()
    c.nodes[1].transfer_leader(2)
    c.stabilize()
    from_2 = [m.type for m in c.sent if m.frm == 2]
    assert MT.VOTE in from_2 and MT.PRE_VOTE not in from_2
    assert all(m.context == b"transfer" for m in c.sent if m.type == MT.VOTE)
    assert c.role(1) == StateType.FOLLOWER
