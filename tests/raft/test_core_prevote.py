"""Pre-vote, check-quorum and the leader lease: a partitioned node coming back must not disrupt."""

from __future__ import annotations

from tests.raft.test_core_pump import Cluster
from trikv.actors.raft import StateType
from trikv.api.raftpb import Message, MessageType

MT = MessageType


def test_prevote_rejoining_partitioned_node_does_not_disrupt_leader() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    term = c.term(1)
    c.isolate(3)
    c.tick(100)
    # Pre-elections never win, so the isolated node never bumps its term.
    assert c.term(3) == term
    assert c.role(3) in (StateType.PRE_CANDIDATE, StateType.FOLLOWER)
    c.heal()
    c.tick(5)
    assert c.leaders() == [1]
    assert {c.term(i) for i in c.ids} == {term}
    assert c.role(3) == StateType.FOLLOWER and c.nodes[3].raft.lead == 1


def test_without_prevote_rejoining_node_forces_a_new_term() -> None:
    # The contrast: this is what pre-vote prevents.
    c = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    c.stabilize()
    c.elect(1)
    term = c.term(1)
    c.isolate(3)
    c.tick(100)
    assert c.term(3) > term
    c.heal()
    c.tick(30)
    assert c.term(1) > term  # the old leader was deposed by the term inflation


def test_check_quorum_isolated_leader_steps_down() -> None:
    c = Cluster([1, 2, 3], election_tick=10)
    c.stabilize()
    c.elect(1)
    c.isolate(1)
    c.tick(9, only=[1])
    assert c.role(1) == StateType.LEADER  # within the first election timeout it still leads
    c.tick(11, only=[1])
    assert c.role(1) == StateType.FOLLOWER
    assert c.nodes[1].raft.lead == 0


def test_check_quorum_leader_with_quorum_stays() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    c.isolate(3)
    c.tick(50, only=[1, 2])
    assert c.role(1) == StateType.LEADER


def test_leader_lease_ignores_vote_requests() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.stabilize()
    c.elect(1)
    c.tick(2)
    term = c.term(1)
    li, lt = c.last(1), c.nodes[1].raft.log.last_term()
    for i in (1, 2):
        c.nodes[i].step(Message(MT.VOTE, i, 3, term + 1, lt, li))
        rd = c.nodes[i].ready()
        assert not [m for m in rd.messages + rd.messages_after_persist if m.type == MT.VOTE_RESP]
        assert c.term(i) == term
    assert c.role(1) == StateType.LEADER


def test_vote_request_outside_lease_is_answered() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.stabilize()
    c.elect(1)
    c.isolate(1)
    c.tick(10, only=[2])  # node 2 has not heard from the leader for an election timeout
    term = c.term(2)
    li, lt = c.last(2), c.nodes[2].raft.log.last_term()
    c.nodes[2].step(Message(MT.VOTE, 2, 3, term + 1, lt, li))
    rd = c.nodes[2].ready()
    resp = [m for m in rd.messages_after_persist if m.type == MT.VOTE_RESP]
    assert len(resp) == 1 and not resp[0].reject


def test_transfer_campaign_bypasses_lease() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    term = c.term(1)
    li, lt = c.last(2), c.nodes[2].raft.log.last_term()
    c.nodes[2].step(Message(MT.VOTE, 2, 3, term + 1, lt, li, context=b"transfer"))
    rd = c.nodes[2].ready()
    resp = [m for m in rd.messages_after_persist if m.type == MT.VOTE_RESP]
    assert len(resp) == 1 and not resp[0].reject and c.term(2) == term + 1
