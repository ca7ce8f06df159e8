"""ReadIndex: leadership confirmed by a heartbeat round; held until the term's no-op commits; forwarded."""

from __future__ import annotations

from typing import Any

from tests.raft.test_core_pump import Cluster
from trikv.actors.raft import ReadState, StateType
from trikv.api.raftpb import MessageType

MT = MessageType


def settled(**cfg: Any) -> Cluster:
    c = Cluster([1, 2, 3], **cfg)
    c.stabilize()
    c.elect(1)
    c.nodes[1].propose(b"a")
    c.stabilize()
    return c


def test_read_index_waits_for_heartbeat_quorum() -> None:
    c = settled()
    c.isolate(1)
    c.nodes[1].read_index(b"r1")
    c.stabilize()
    assert c.reads[1] == []  # no quorum has confirmed leadership yet
    c.heal()
    c.tick(1, only=[1])  # the next heartbeat carries the pending read context
    assert c.reads[1] == [ReadState(c.commit(1), b"r1")]


def test_read_index_heartbeat_carries_context() -> None:
    c = settled()
    c.sent.clear()
    c.nodes[1].read_index(b"ctx-7")
    c.stabilize()
    beats = [m for m in c.sent if m.type == MT.HEARTBEAT]
    assert {m.to for m in beats} == {2, 3} and all(m.context == b"ctx-7" for m in beats)
    assert c.reads[1] == [ReadState(c.commit(1), b"ctx-7")]


def test_deposed_leader_cannot_serve_reads() -> None:
    c = settled()
    c.isolate(1)
    c.tick(30, only=[2, 3])
    new = c.leaders()
    assert 1 in new and len(new) == 2  # old leader has not noticed yet (no tick on it)
    c.nodes[1].read_index(b"stale?")
    c.stabilize()
    assert c.reads[1] == []


def test_breakage_readindex_no_heartbeat_serves_stale_read() -> None:
    # The planted bug answers without confirming leadership: an isolated old leader serves a read at an
    # index that misses writes the new leader has committed.
    c = settled(breakages=frozenset({"readindex_no_heartbeat"}))
    c.isolate(1)
    c.tick(30, only=[2, 3])
    lead = next(i for i in c.leaders() if i != 1)
    c.nodes[lead].propose(b"newer")
    c.stabilize()
    c.nodes[1].read_index(b"stale")
    c.stabilize()
    assert len(c.reads[1]) == 1
    assert c.reads[1][0].index < c.commit(lead)


def test_read_right_after_election_is_held_until_noop_commits() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.drop = lambda m: m.type == MT.APP_RESP  # the no-op cannot commit yet
    c.nodes[1].campaign()
    c.stabilize()
    assert c.role(1) == StateType.LEADER
    noop_index = c.last(1)
    assert c.commit(1) < noop_index
    c.nodes[1].read_index(b"early")
    c.stabilize()
    assert c.reads[1] == []  # held, not answered with a stale commit index
    assert len(c.nodes[1].raft.pending_read_index) == 1
    c.heal()
    c.tick(2, only=[1])
    assert c.commit(1) >= noop_index
    assert c.reads[1] == [ReadState(c.commit(1), b"early")]


def test_follower_read_index_is_forwarded_to_leader() -> None:
    c = settled()
    c.sent.clear()
    c.nodes[3].read_index(b"f")
    c.stabilize()
    assert [m.type for m in c.sent if m.frm == 3 and m.to == 1][:1] == [MT.READ_INDEX]
    assert any(m.type == MT.READ_INDEX_RESP and m.to == 3 for m in c.sent)
    assert c.reads[3] == [ReadState(c.commit(1), b"f")]
    assert c.reads[1] == []


def test_follower_read_index_answered_after_held_on_new_leader() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.drop = lambda m: m.type == MT.APP_RESP
    c.nodes[1].campaign()
    c.stabilize()
    c.nodes[2].read_index(b"held")
    c.stabilize()
    assert c.reads[2] == []
    c.heal()
    c.tick(2, only=[1])
    assert c.reads[2] == [ReadState(c.commit(1), b"held")]


def test_single_node_read_is_answered_at_once() -> None:
    c = Cluster([1])
    c.stabilize()
    c.elect(1)
    c.sent.clear()
    c.nodes[1].read_index(b"solo")
    assert c.nodes[1].has_ready()
    rd = c.nodes[1].ready()
    assert rd.read_states == [ReadState(c.commit(1), b"solo")]
    assert rd.messages == [] and rd.messages_after_persist == []
