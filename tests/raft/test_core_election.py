"""Roles, terms, votes, randomized election timeouts, heartbeats, the no-op of a new term."""

from __future__ import annotations

import random

import pytest

from tests.raft.test_core_pump import Cluster
from trikv.actors.raft import Config, MemoryStorage, ProposalDropped, RawNode, StateType
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import EntryType

MT = MessageType


def ticks_until_campaign(seed: int, election_tick: int) -> int:
    c = Cluster([1, 2, 3], seed=seed, election_tick=election_tick)
    c.handle_ready(1)  # apply the bootstrap conf changes (no campaign while conf changes are unapplied)
    node = c.nodes[1]
    for n in range(1, 10 * election_tick):
        node.tick()
        if node.raft.state != StateType.FOLLOWER:
            return n
    raise AssertionError("never campaigned")


def test_election_timeout_is_randomized_in_t_to_2t() -> None:
    t = 10
    seen = {ticks_until_campaign(seed, t) for seed in range(40)}
    assert all(t <= n < 2 * t for n in seen), seen
    assert len(seen) >= 4  # really randomized, not a constant


def test_election_timeout_comes_from_config_rng_only() -> None:
    assert ticks_until_campaign(5, 10) == ticks_until_campaign(5, 10)


def test_leader_sends_heartbeats_every_h_ticks() -> None:
    c = Cluster([1, 2, 3], heartbeat_tick=3)
    c.stabilize()
    c.elect(1)
    c.sent.clear()
    c.tick(9, only=[1])
    beats = [m for m in c.sent if m.type == MT.HEARTBEAT and m.to == 2]
    assert len(beats) == 3
    assert all(m.term == c.term(1) for m in beats)


def test_election_elects_one_leader_and_bumps_term_once() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    before = c.term(1)
    c.elect(2)
    assert c.leaders() == [2]
    assert {c.term(i) for i in c.ids} == {before + 1}
    assert all(c.nodes[i].raft.lead == 2 for i in c.ids)


def test_new_leader_appends_noop_of_its_term() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(3)
    log = c.nodes[3].raft.log
    last = log.slice(log.last_index(), log.last_index() + 1)[0]
    assert last.type == EntryType.NOOP and last.term == c.term(3)
    assert c.commit(1) == last.index  # committed everywhere once replicated


def fresh_follower(pre_vote: bool = False) -> RawNode:
    st = MemoryStorage()
    node = RawNode(Config(id=1, rng=random.Random(1), pre_vote=pre_vote), st)
    node.bootstrap([1, 2, 3])
    rd = node.ready()
    st.append(rd.entries)
    assert rd.hard_state is not None
    st.set_hard_state(rd.hard_state)
    node.ack_persisted(rd.entries[-1].term, rd.entries[-1].index)
    node.advance(rd)
    return node


def replies(node: RawNode) -> list[Message]:
    rd = node.ready()
    return rd.messages + rd.messages_after_persist


def test_votes_at_most_once_per_term() -> None:
    node = fresh_follower()
    li, lt = node.raft.log.last_index(), node.raft.log.last_term()
    node.step(Message(MT.VOTE, 1, 2, 5, lt, li))
    node.step(Message(MT.VOTE, 1, 3, 5, lt, li))
    out = replies(node)
    assert [(m.to, m.reject) for m in out] == [(2, False), (3, True)]
    assert node.raft.vote == 2 and node.raft.term == 5
    # The same candidate asking again (a retransmission) gets the vote again.
    node.step(Message(MT.VOTE, 1, 2, 5, lt, li))
    assert [(m.to, m.reject) for m in replies(node)] == [(2, False)]


def test_vote_refused_to_candidate_with_stale_log() -> None:
    node = fresh_follower()
    li, lt = node.raft.log.last_index(), node.raft.log.last_term()
    node.step(Message(MT.VOTE, 1, 2, 5, lt, li - 1))  # same last term, shorter log
    node.step(Message(MT.VOTE, 1, 3, 6, lt - 1, li + 10))  # older last term, longer log
    out = replies(node)
    assert [(m.to, m.reject) for m in out] == [(2, True), (3, True)]
    assert node.raft.vote == 0


def test_higher_term_message_turns_leader_into_follower() -> None:
    c = Cluster([1, 2, 3], check_quorum=False)
    c.stabilize()
    c.elect(1)
    t = c.term(1)
    c.nodes[1].step(Message(MT.APP_RESP, 1, 2, t + 3, index=0))
    assert c.role(1) == StateType.FOLLOWER and c.term(1) == t + 3


def test_candidate_becomes_follower_on_append_from_leader_of_its_term() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.stabilize()
    c.isolate(3)
    c.nodes[3].campaign()
    c.stabilize()
    assert c.role(3) == StateType.CANDIDATE
    t = c.term(3)
    c.nodes[3].step(Message(MT.APP, 3, 2, t, c.nodes[3].raft.log.last_term(), c.last(3)))
    assert c.role(3) == StateType.FOLLOWER and c.nodes[3].raft.lead == 2


def test_proposal_without_leader_is_dropped() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"x")


def test_follower_forwards_proposals_to_leader() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    c.nodes[3].propose(b"via-follower")
    c.stabilize()
    assert all(c.sm[i] == [b"via-follower"] for i in c.ids)


def test_single_node_cluster_elects_itself_and_commits() -> None:
    c = Cluster([1])
    c.stabilize()
    c.tick(25)
    assert c.role(1) == StateType.LEADER
    c.nodes[1].propose(b"solo")
    c.stabilize()
    assert c.sm[1] == [b"solo"]


def test_stale_candidate_learns_higher_term_from_vote_rejection() -> None:
    # A voter whose term ran ahead (it campaigned alone, no pre-vote) must not stay invisible to candidates
    # of lower terms: it rejects them with its term, they adopt it and can then win its vote.
    c = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    c.stabilize()
    c.isolate(1)
    for _ in range(5):
        c.nodes[1].campaign()
        c.stabilize()
    high = c.term(1)
    assert high > c.term(2)
    c.heal()
    c.nodes[2].campaign()
    c.stabilize()
    assert c.term(2) >= high
    replies_to_2 = [m for m in c.sent if m.type == MT.VOTE_RESP and m.frm == 1 and m.to == 2]
    assert replies_to_2 and replies_to_2[0].reject and replies_to_2[0].term == high
    c.nodes[2].campaign()
    c.stabilize()
    assert c.leaders() == [2]
