"""Log replication: log matching, fast back-off, flow control, batching, and the Figure 8 commit rule."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from tests.raft.test_core_pump import Cluster
from trikv.actors.raft import ProgressState, ProposalDropped, StateType
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import Entry

MT = MessageType


def settled(**cfg: Any) -> Cluster:
    c = Cluster([1, 2, 3], **cfg)
    c.stabilize()
    c.elect(1)
    return c


def test_burst_of_proposals_goes_out_as_one_append_per_follower() -> None:
    c = settled()
    for k in range(256):
        c.nodes[1].propose(b"p%d" % k)
    rd = c.nodes[1].ready()
    apps = [m for m in rd.messages if m.type == MT.APP]
    assert sorted(m.to for m in apps) == [2, 3]
    assert all(len(m.entries) == 256 for m in apps)
    assert len(rd.entries) == 256


def test_leader_commits_only_with_quorum() -> None:
    c = settled()
    c.isolate(2)
    c.isolate(3)
    before = c.commit(1)
    c.nodes[1].propose(b"lonely")
    c.stabilize()
    assert c.commit(1) == before and c.sm[1] == []
    c.heal()
    c.tick(1, only=[1])
    assert c.sm[1] == c.sm[2] == [b"lonely"]


def test_leader_counts_own_log_only_after_ack_persisted() -> None:
    c = settled()
    c.isolate(3)
    c.nodes[1].propose(b"x")
    rd = c.nodes[1].ready()
    st = c.storages[1]
    c.send(rd.messages)
    c.deliver()  # node 2 appends ...
    c.handle_ready(2)
    c.deliver()  # ... and acks: 2 of 3 would be a quorum only with the leader's own durable copy
    assert c.commit(1) < rd.entries[-1].index
    st.append(rd.entries)
    c.nodes[1].ack_persisted(rd.entries[-1].term, rd.entries[-1].index)
    assert c.commit(1) == rd.entries[-1].index
    c.nodes[1].advance(rd)


def test_fast_backoff_skips_a_whole_conflicting_term() -> None:
    c = settled(check_quorum=False, pre_vote=False)
    c.nodes[1].propose(b"base")
    c.stabilize()
    # Node 1 leads on alone and appends 50 entries nobody else gets (they will be overwritten).
    c.isolate(1)
    for k in range(50):
        c.nodes[1].propose(b"lost%d" % k)
    c.stabilize()
    c.tick(40, only=[2, 3])
    new = next(i for i in c.leaders() if i != 1)
    other = 5 - new
    for k in range(5):
        c.nodes[new].propose(b"won%d" % k)
    c.stabilize()
    # A fresh leader of a later term probes node 1 from its own last index, deep in the stale run.
    c.nodes[new].transfer_leader(other)
    c.stabilize()
    assert c.role(other) == StateType.LEADER
    c.heal()
    c.sent.clear()
    c.tick(3)
    rejects = [m for m in c.sent if m.type == MT.APP_RESP and m.frm == 1 and m.reject]
    assert len(rejects) == 1  # one hint jumps over the whole stale term instead of 6 one-by-one probes
    assert c.sm[1] == c.sm[other]
    assert c.sm[1][-5:] == [b"won%d" % k for k in range(5)]
    assert not [d for d in c.sm[1] if d.startswith(b"lost")]


def test_reject_hint_points_at_last_entry_not_above_leader_term() -> None:
    c = settled()
    f = c.nodes[2]
    li = f.raft.log.last_index()
    lt = f.raft.log.last_term()
    # A leader of a later term probes far beyond our log.
    f.step(Message(MT.APP, 2, 1, lt, lt, li + 20, (), 0))
    rd = f.ready()
    (resp,) = [m for m in rd.messages_after_persist if m.type == MT.APP_RESP]
    assert resp.reject and resp.reject_hint == li and resp.log_term == lt


def test_max_size_per_msg_splits_appends() -> None:
    c = settled(max_size_per_msg=1000)
    c.sent.clear()
    for k in range(10):
        c.nodes[1].propose(bytes([k]) * 300)
    c.stabilize()
    apps = [m for m in c.sent if m.type == MT.APP and m.to == 2 and m.entries]
    assert len(apps) >= 3
    assert all(sum(len(e.data) for e in m.entries) <= 1000 or len(m.entries) == 1 for m in apps)
    assert c.sm[2] == [bytes([k]) * 300 for k in range(10)]


def test_max_inflight_bounds_unacknowledged_appends() -> None:
    c = settled(max_size_per_msg=1, max_inflight_msgs=3)
    c.drop = lambda m: m.type == MT.APP_RESP and m.frm == 2  # node 2's acks are lost
    c.sent.clear()
    for k in range(10):
        c.nodes[1].propose(b"%d" % k)
        c.stabilize()
    to2 = [m for m in c.sent if m.type == MT.APP and m.to == 2 and m.entries]
    assert len(to2) == 3
    pr = c.nodes[1].raft.prs[2]
    assert pr.state == ProgressState.REPLICATE and pr.is_paused()
    c.heal()
    c.tick(3, only=[1])
    assert c.sm[2] == [b"%d" % k for k in range(10)]


def test_probe_state_sends_one_append_until_answered() -> None:
    c = settled()
    c.nodes[1].report_unreachable(2)
    assert c.nodes[1].raft.prs[2].state == ProgressState.PROBE
    c.drop = lambda m: m.frm == 2  # no answers from 2
    c.sent.clear()
    for k in range(5):
        c.nodes[1].propose(b"%d" % k)
        c.stabilize()
    assert len([m for m in c.sent if m.type == MT.APP and m.to == 2]) == 1
    c.heal()
    c.tick(2, only=[1])
    assert c.nodes[1].raft.prs[2].state == ProgressState.REPLICATE
    assert c.sm[2] == [b"%d" % k for k in range(5)]


# ---------------------------------------------------------------------------------------------- Figure 8


def figure8(breakages: frozenset[str]) -> Cluster:
    """Raft paper, Figure 8, up to (c): S1 (leader of term 4) has replicated its term-2 entry to a majority,
    while its own term-4 entry is on no majority. Returns the cluster at that point."""
    c = Cluster([1, 2, 3, 4, 5], check_quorum=False, pre_vote=False, breakages=breakages, max_size_per_msg=1)
    c.stabilize()
    # (a) S1 leads term 2 and replicates entry "a" only to S2.
    c.elect(1)
    assert c.term(1) == 2
    c.cuts = {(1, 3), (1, 4), (1, 5)}
    c.nodes[1].propose(b"a")
    c.stabilize()
    a_index = c.last(1)
    assert c.last(2) == a_index and c.commit(1) < a_index
    # (b) S1 crashes; S5 wins term 3 with S3, S4 and appends at the same index, then crashes too.
    c.down = {1}
    c.cuts = set()
    c.drop = lambda m: m.type == MT.APP and m.frm == 5
    c.nodes[5].campaign()
    c.stabilize()
    assert c.role(5) == StateType.LEADER and c.term(5) == 3
    c.nodes[5].propose(b"b")
    c.stabilize()
    assert c.last(5) >= a_index and c.nodes[5].raft.log.term(a_index) == 3
    # (c) S5 down, S1 back: S1 wins term 4 and gets its term-2 entry onto S3 (and knows S2 has it), but
    # none of its term-4 entries leave it.
    c.down = {5}
    c.drop = None
    c.restart(1)
    c.mutate = lambda m: (
        attrs.evolve(m, entries=tuple(e for e in m.entries if e.term < 4))
        if m.type == MT.APP and m.frm == 1
        else m
    )
    c.stabilize()  # S1 re-applies its committed log (conf changes) before it may campaign
    c.nodes[1].campaign()  # term 3: S3 and S4 already voted for S5
    c.stabilize()
    c.nodes[1].campaign()  # term 4
    c.stabilize()
    assert c.role(1) == StateType.LEADER and c.term(1) == 4
    assert sum(1 for i in (1, 2, 3, 4) if c.nodes[i].raft.log.match_term(a_index, 2)) >= 3
    return c


def test_figure8_old_term_entry_not_committed_by_counting_replicas() -> None:
    c = figure8(frozenset())
    a_index = c.nodes[2].raft.log.last_index()
    assert c.commit(1) < a_index  # on a majority, but from an old term: not committed
    assert b"a" not in c.sm[1]
    # Once an entry of term 4 reaches a majority, "a" commits with it, and S5 can never win again.
    c.mutate = None
    c.tick(1, only=[1])
    assert c.commit(1) > a_index and c.sm[1] == [b"a"]
    c.down = {1}
    c.restart(5)
    c.stabilize()
    for _ in range(3):
        c.nodes[5].campaign()
        c.stabilize()
        assert c.role(5) != StateType.LEADER  # S2..S4 hold a term-4 entry: S5's log is behind


def test_figure8_breakage_commits_an_entry_that_a_later_leader_overwrites() -> None:
    c = figure8(frozenset({"figure8"}))
    a_index = c.nodes[2].raft.log.last_index()
    assert c.commit(1) >= a_index and c.sm[1] == [b"a"]  # the planted bug commits by counting replicas
    # (d) S1 crashes; S5 (last term 3) wins with S2, S3, S4 (last term 2) although "a" was committed.
    c.down = {1}
    c.mutate = None
    c.drop = lambda m: m.type == MT.APP  # stop before S5 overwrites followers (they would panic)
    c.restart(5)
    c.stabilize()
    for _ in range(3):
        if c.role(5) == StateType.LEADER:
            break
        c.nodes[5].campaign()
        c.stabilize()
    assert c.role(5) == StateType.LEADER
    # Leader completeness is violated: the new leader's log lacks a committed entry.
    assert not c.nodes[5].raft.log.match_term(a_index, 2)


def test_follower_never_overwrites_committed_entries() -> None:
    c = settled()
    c.nodes[1].propose(b"x")
    c.stabilize()
    f = c.nodes[2].raft
    commit = f.log.committed
    bad = Entry(f.term + 1, commit, data=b"evil")
    # An append that would replace a committed entry is answered with the commit index instead.
    c.nodes[2].step(Message(MT.APP, 2, 1, f.term, 0, commit - 1, (bad,), commit))
    rd = c.nodes[2].ready()
    (resp,) = [m for m in rd.messages_after_persist if m.type == MT.APP_RESP]
    assert not resp.reject and resp.index == commit
    assert f.log.match_term(commit, c.nodes[1].raft.log.term(commit))


def test_max_uncommitted_entries_size_drops_proposals_until_commit() -> None:
    c = settled(max_uncommitted_entries_size=1000)
    c.isolate(2)
    c.isolate(3)
    c.nodes[1].propose(b"x" * 600)
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"y" * 600)
    c.heal()
    c.tick(1, only=[1])
    assert c.sm[2] == [b"x" * 600]
    c.nodes[1].propose(b"y" * 600)  # the committed one no longer counts
    c.stabilize()
    assert c.sm[2][-1] == b"y" * 600


def test_forwarded_proposal_dropped_silently_during_transfer() -> None:
    c = settled()
    c.isolate(3)
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    c.nodes[2].propose(b"fwd")  # forwarded to 1, which refuses it without raising into step()
    c.stabilize()
    assert b"fwd" not in c.sm[1]


def test_commit_notice_to_a_replicating_follower_wants_no_answer() -> None:
    # After a commit the leader tells each follower in step the new commit with an empty append flagged
    # no_ack; the follower commits and answers nothing (one message, wakeup and Ready fewer per write).
    c = settled()
    c.nodes[1].propose(b"x")
    c.stabilize()
    notices = [m for m in c.sent if m.type == MT.APP and not m.entries and m.no_ack]
    assert sorted({m.to for m in notices}) == [2, 3]
    assert c.sm[2] == c.sm[3] == [b"x"] and c.commit(2) == c.commit(1)
    answered = {(m.frm, m.index) for m in c.sent if m.type == MT.APP_RESP}
    last = c.last(1)
    c.sent.clear()
    c.nodes[1].propose(b"y")
    c.stabilize()
    resps = [m for m in c.sent if m.type == MT.APP_RESP]
    # one answer per follower, to the append that carried "y"; none to its commit notice
    assert sorted(m.frm for m in resps) == [2, 3] and all(m.index == last + 1 for m in resps)
    assert (2, last) in answered or (3, last) in answered


def test_a_commit_notice_that_does_not_match_is_still_rejected() -> None:
    # A follower whose log lacks the notice's index answers with a rejection, so the leader backs off.
    c = settled()
    commit = c.commit(1)
    term = c.term(1)
    notice = Message(MT.APP, 2, 1, term, log_term=term, index=c.last(2) + 5, commit=commit, no_ack=True)
    c.nodes[2].step(notice)
    rd = c.nodes[2].ready()
    rejects = [m for m in rd.messages + rd.messages_after_persist if m.type == MT.APP_RESP]
    assert len(rejects) == 1 and rejects[0].reject


def test_a_probing_follower_gets_an_ordinary_empty_append() -> None:
    # Only a follower the leader knows is replicating may skip its answer; a probe needs one.
    c = settled()
    r = c.nodes[1].raft
    r.prs[2].become_probe()
    r.msgs.clear()
    r.bcast_append()
    to = {m.to: m for m in r.msgs if m.type == MT.APP}
    assert not to[2].entries and not to[2].no_ack
    assert not to[3].entries and to[3].no_ack
    c.send(r.msgs)
    r.msgs.clear()
    c.sent.clear()
    c.stabilize()
    assert [m.frm for m in c.sent if m.type == MT.APP_RESP] == [2]  # the probe answered, the notice not
