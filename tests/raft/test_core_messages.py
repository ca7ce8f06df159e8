"""Ready contract: message classification, local types refused, restart from storage, status."""

from __future__ import annotations

import random

import pytest

from tests.raft.test_core_pump import Cluster
from trikv.actors.raft import Config, MemoryStorage, RaftError, RawNode, StateType, decode_conf_change
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import HardState

MT = MessageType
AFTER_ONLY = {MT.APP_RESP, MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE_RESP, MT.HEARTBEAT_RESP, MT.READ_INDEX_RESP}


def busy_cluster() -> Cluster:
    c = Cluster([1, 2, 3], seed=3)
    c.stabilize()
    c.tick(30)
    lead = c.leaders()[0]
    for k in range(20):
        c.nodes[lead].propose(b"%d" % k)
    c.nodes[lead].read_index(b"r")
    c.stabilize()
    c.nodes[lead].transfer_leader(1 if lead != 1 else 2)
    c.stabilize()
    c.tick(5)
    return c


def test_votes_and_responses_only_after_persist() -> None:
    c = busy_cluster()
    seen_after: set[MT] = set()
    seen_now: set[MT] = set()
    for i in c.ids:
        for rd in c.readies[i]:
            seen_now |= {m.type for m in rd.messages}
            seen_after |= {m.type for m in rd.messages_after_persist}
    assert not (seen_now & AFTER_ONLY), seen_now & AFTER_ONLY
    assert {MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE_RESP, MT.APP_RESP, MT.HEARTBEAT_RESP} <= seen_after
    assert {MT.APP, MT.HEARTBEAT, MT.PRE_VOTE, MT.TIMEOUT_NOW} <= seen_now


def test_everything_after_term_or_vote_change_waits_for_persist() -> None:
    c = busy_cluster()
    for i in c.ids:
        prev: HardState | None = None
        for rd in c.readies[i]:
            hs = rd.hard_state
            if hs is not None and prev is not None and (hs.term, hs.vote) != (prev.term, prev.vote):
                assert rd.messages == [], rd
            if hs is not None:
                prev = hs


def test_leader_append_may_go_before_its_own_persist() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    c.nodes[1].propose(b"x")
    rd = c.nodes[1].ready()
    assert rd.entries and [m.type for m in rd.messages] == [MT.APP, MT.APP]


def test_local_message_types_are_refused() -> None:
    c = Cluster([1, 2, 3])
    for t in (MT.HUP, MT.BEAT, MT.CHECK_QUORUM, MT.UNREACHABLE, MT.SNAP_STATUS, MT.STORAGE_APPEND_RESP):
        with pytest.raises(RaftError):
            c.nodes[1].step(Message(t, 1, 2))


def test_restart_keeps_term_vote_commit_and_log() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(2)
    for k in range(5):
        c.nodes[2].propose(b"%d" % k)
    c.stabilize()
    before = c.nodes[3].status()
    node = c.restart(3)
    st = node.status()
    assert (st.term, st.vote, st.commit) == (before.term, before.vote, before.commit)
    assert st.role == StateType.FOLLOWER and st.lead == 0
    c.stabilize()  # re-applies the committed log from the last snapshot (none: from the start)
    assert c.sm[3] == [b"%d" % k for k in range(5)]
    assert c.conf[3].voters == (1, 2, 3)


def test_bootstrap_needs_empty_storage() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    node = RawNode(Config(id=1, rng=random.Random(0)), c.storages[1])
    with pytest.raises(RaftError):
        node.bootstrap([1, 2, 3])


def test_bootstrap_first_ready_persists_and_applies_conf_changes() -> None:
    st = MemoryStorage()
    node = RawNode(Config(id=1, rng=random.Random(0)), st)
    node.bootstrap([1, 2, 3], {2: b"ctx2"})
    rd = node.ready()
    assert [e.index for e in rd.entries] == [1, 2, 3] and all(e.term == 1 for e in rd.entries)
    assert rd.committed_entries == rd.entries
    assert rd.hard_state == HardState(term=1, vote=0, commit=3)
    assert decode_conf_change(rd.committed_entries[1]).context == b"ctx2"


def test_status_reports_leader_progress() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    c.stabilize()
    st = c.nodes[1].status()
    assert st.role == StateType.LEADER and st.lead == 1
    assert set(st.progress) == {1, 2, 3}
    assert all(p.match == c.last(1) for p in st.progress.values())
    assert c.nodes[2].status().progress == {}


def test_restart_with_applied_index_keeps_membership_from_log() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    c.nodes[1].propose(b"x")
    c.stabilize()
    applied = c.nodes[3].raft.log.applied
    node = RawNode(Config(id=3, rng=random.Random(9), applied=applied), c.storages[3])
    assert node.status().conf_state.voters == (1, 2, 3)
    assert node.status().applied == applied
    rd = node.ready()
    assert rd.committed_entries == []  # nothing is handed back twice
    assert node.raft.promotable()
