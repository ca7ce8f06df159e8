"""Compaction and snapshot catch-up: a follower behind the leader's first index gets a SNAP."""

from __future__ import annotations

import pytest

from tests.raft.test_core_pump import CS, Cluster
from trikv.actors.raft import LogCompactedError, MemoryStorage, ProgressState, SnapshotOutOfDateError
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import ConfChange, ConfChangeType, Entry, SnapshotMeta

MT = MessageType


def lagging(n: int = 20) -> Cluster:
    c = Cluster([1, 2, 3])
    c.stabilize()
    c.elect(1)
    c.isolate(3)
    for k in range(n):
        c.nodes[1].propose(b"k%d" % k)
    c.stabilize()
    applied = c.nodes[1].raft.log.applied
    c.snapshot_and_compact(1, applied)
    assert c.storages[1].first_index() > c.last(3) + 1
    return c


def test_lagging_follower_gets_snapshot_then_continues() -> None:
    c = lagging()
    c.heal()
    c.sent.clear()
    c.tick(1, only=[1])
    snaps = [m for m in c.sent if m.type == MT.SNAP and m.to == 3]
    assert len(snaps) == 1
    snap = snaps[0].snapshot
    assert snap is not None and snap.meta.conf_state == CS((1, 2, 3), ())
    # Node 3 restored its log and state from the snapshot (handed to it in a Ready).
    assert any(rd.snapshot is not None for rd in c.readies[3])
    assert c.sm[3] == [b"k%d" % k for k in range(20)]
    assert c.storages[3].first_index() == snap.meta.index + 1
    c.nodes[1].report_snapshot(3, True)
    c.nodes[1].propose(b"after")
    c.stabilize()
    c.tick(1, only=[1])
    assert c.sm[3] == c.sm[1] and c.sm[3][-1] == b"after"
    assert c.nodes[1].raft.prs[3].state == ProgressState.REPLICATE


def test_failed_snapshot_is_retried() -> None:
    c = lagging()
    c.heal()
    c.drop = lambda m: m.type == MT.SNAP
    c.tick(1, only=[1])
    assert c.nodes[1].raft.prs[3].state == ProgressState.SNAPSHOT
    c.nodes[1].report_snapshot(3, False)
    assert c.nodes[1].raft.prs[3].state == ProgressState.PROBE
    c.heal()
    c.tick(3, only=[1])
    assert c.sm[3] == c.sm[1]


def test_snapshot_older_than_commit_is_ignored() -> None:
    c = lagging()
    c.heal()
    c.tick(1, only=[1])
    snap = c.storages[1].snapshot()
    f = c.nodes[2]
    commit = f.raft.log.committed
    old = Snapshot(SnapshotMeta(commit - 1, 2, CS((1, 2, 3))), b"")
    f.step(Message(MT.SNAP, 2, 1, c.term(1), snapshot=old))
    rd = f.ready()
    assert rd.snapshot is None
    (resp,) = [m for m in rd.messages_after_persist if m.type == MT.APP_RESP]
    assert resp.index == commit
    assert snap.meta.index <= commit


def test_memory_storage_compaction_rules() -> None:
    st = MemoryStorage()
    st.append([Entry(1, i) for i in range(1, 11)])
    assert (st.first_index(), st.last_index()) == (1, 10)
    snap = st.create_snapshot(5, CS((1,)), b"state")
    assert snap.meta.index == 5 and snap.meta.term == 1
    st.compact(5)
    assert (st.first_index(), st.last_index()) == (6, 10)
    assert st.term(5) == 1  # the snapshot point keeps its term
    with pytest.raises(LogCompactedError):
        st.term(4)
    with pytest.raises(LogCompactedError):
        st.entries(5, 8)
    assert [e.index for e in st.entries(6, 11)] == [6, 7, 8, 9, 10]
    with pytest.raises(SnapshotOutOfDateError):
        st.create_snapshot(5, CS((1,)), b"")
    # Appending a conflicting suffix replaces it.
    st.append([Entry(2, 8), Entry(2, 9)])
    assert st.last_index() == 9 and st.term(8) == 2 and st.term(7) == 1
    assert [len(st.entries(6, 10, max_size=0))] == [1]  # at least one entry, whatever the limit


def test_member_added_after_compaction_catches_up_from_older_snapshot() -> None:
    # The snapshot predates node 4: it must still be accepted, the entries after it add node 4.
    c = lagging()
    c.heal()
    c.stabilize()
    c.add_node(4)
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    c.stabilize()
    c.tick(3, only=[1])
    assert any(rd.snapshot is not None for rd in c.readies[4])
    assert c.conf[4].voters == (1, 2, 3, 4)
    assert c.sm[4] == c.sm[1]
    assert c.nodes[1].raft.prs[4].match == c.last(1)
