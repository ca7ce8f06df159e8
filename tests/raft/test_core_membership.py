"""Membership: one change at a time, after the term's no-op commits; learners replicate but never vote."""

from __future__ import annotations

from typing import Any

import pytest

from tests.raft.test_core_pump import CS, Cluster
from trikv.actors.raft import ProposalDropped, StateType, decode_conf_change
from trikv.api.raftpb import MessageType
from trikv.api.records import ConfChange, ConfChangeType

MT = MessageType
CT = ConfChangeType


def settled(ids: list[int] | None = None, **cfg: Any) -> Cluster:
    c = Cluster(ids or [1, 2, 3], **cfg)
    c.stabilize()
    c.elect(1)
    c.nodes[1].propose(b"before")
    c.stabilize()
    return c


def change(c: Cluster, cc: ConfChange, via: int = 1) -> None:
    c.nodes[via].propose_conf_change(cc)
    c.stabilize()


def test_add_voter_catches_up_and_changes_quorum() -> None:
    c = settled()
    c.add_node(4)  # empty storage: learns everything from the leader
    change(c, ConfChange(CT.ADD_NODE, 4, b"node-4"))
    assert c.conf[1] == CS((1, 2, 3, 4), ())
    c.nodes[1].propose(b"x")
    c.stabilize()
    assert c.sm[4] == [b"before", b"x"]
    assert c.conf[4].voters == (1, 2, 3, 4)
    # 4 voters: quorum is 3, so the leader plus one follower can no longer commit.
    c.isolate(3)
    c.isolate(4)
    before = c.commit(1)
    c.nodes[1].propose(b"y")
    c.stabilize()
    assert c.commit(1) == before


def test_add_learner_replicates_but_does_not_count_or_campaign() -> None:
    c = settled()
    c.add_node(4)
    change(c, ConfChange(CT.ADD_LEARNER, 4))
    assert c.conf[1] == CS((1, 2, 3), (4,))
    c.nodes[1].propose(b"x")
    c.stabilize()
    assert c.sm[4] == [b"before", b"x"]
    assert c.nodes[4].raft.is_learner
    # Leader + learner are not a quorum of voters {1,2,3}.
    c.isolate(2)
    c.isolate(3)
    before = c.commit(1)
    c.nodes[1].propose(b"y")
    c.stabilize()
    assert c.last(4) > before and c.commit(1) == before
    # A learner never campaigns, however long it is cut off.
    c.heal()
    c.isolate(4)
    c.tick(100, only=[4])
    assert c.role(4) == StateType.FOLLOWER and c.term(4) == c.term(1)
    assert not [m for m in c.sent if m.frm == 4 and m.type in (MT.VOTE, MT.PRE_VOTE)]


def test_learner_is_not_asked_for_votes_nor_made_leader() -> None:
    c = settled()
    c.add_node(4)
    change(c, ConfChange(CT.ADD_LEARNER, 4))
    c.nodes[1].transfer_leader(4)
    c.stabilize()
    assert c.leaders() == [1] and c.nodes[1].status().lead_transferee == 0
    c.sent.clear()
    c.nodes[2].campaign()
    c.stabilize()
    assert not [m for m in c.sent if m.to == 4 and m.type in (MT.VOTE, MT.PRE_VOTE)]


def test_promote_learner_to_voter() -> None:
    c = settled()
    c.add_node(4)
    change(c, ConfChange(CT.ADD_LEARNER, 4))
    change(c, ConfChange(CT.PROMOTE_LEARNER, 4))
    assert c.conf[1] == CS((1, 2, 3, 4), ())
    assert not c.nodes[4].raft.is_learner
    assert c.nodes[4].raft.promotable()
    c.nodes[1].transfer_leader(4)  # a voter now: it can take over (a learner target is ignored)
    c.stabilize()
    assert c.leaders() == [4]


def test_remove_follower_shrinks_quorum() -> None:
    c = settled()
    change(c, ConfChange(CT.REMOVE_NODE, 3))
    assert c.conf[1] == CS((1, 2), ())
    c.isolate(3)
    c.nodes[1].propose(b"two-of-two")
    c.stabilize()
    assert c.sm[2][-1] == b"two-of-two"
    c.isolate(2)
    before = c.commit(1)
    c.nodes[1].propose(b"alone")
    c.stabilize()
    assert c.commit(1) == before  # quorum of {1, 2} is 2


def test_removed_leader_steps_down_after_commit() -> None:
    c = settled()
    change(c, ConfChange(CT.REMOVE_NODE, 1))
    assert c.role(1) == StateType.FOLLOWER
    assert c.conf[2] == CS((2, 3), ())
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"removed")
    c.tick(40, only=[2, 3])
    leaders = [i for i in c.leaders() if i != 1]
    assert len(leaders) == 1
    c.nodes[leaders[0]].propose(b"new era")
    c.stabilize()
    assert c.sm[2][-1] == c.sm[3][-1] == b"new era"
    assert c.role(1) != StateType.LEADER


def test_update_node_changes_nothing_for_raft_and_carries_context() -> None:
    c = settled()
    change(c, ConfChange(CT.UPDATE_NODE, 2, b"new-urls"))
    assert c.conf[1] == CS((1, 2, 3), ())
    log = c.nodes[3].raft.log
    ents = log.slice(1, log.last_index() + 1)
    ccs = [decode_conf_change(e) for e in ents if e.type == 1]
    assert ccs[-1] == ConfChange(CT.UPDATE_NODE, 2, b"new-urls")


def test_only_one_conf_change_at_a_time() -> None:
    c = settled()
    c.nodes[1].propose_conf_change(ConfChange(CT.ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose_conf_change(ConfChange(CT.ADD_LEARNER, 5))
    c.stabilize()  # the first one is applied: a new one is accepted again
    c.nodes[1].propose_conf_change(ConfChange(CT.ADD_LEARNER, 5))
    c.stabilize()
    assert c.conf[1].learners == (4, 5)


def test_conf_change_refused_before_noop_of_term_commits() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.drop = lambda m: m.type == MT.APP_RESP
    c.nodes[1].campaign()
    c.stabilize()
    assert c.role(1) == StateType.LEADER
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose_conf_change(ConfChange(CT.ADD_LEARNER, 4))
    c.heal()
    c.tick(2, only=[1])
    c.nodes[1].propose_conf_change(ConfChange(CT.ADD_LEARNER, 4))
    c.stabilize()
    assert c.conf[1].learners == (4,)
