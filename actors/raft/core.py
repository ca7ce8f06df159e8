"""The Raft state machine: the rules per role (follower, pre-candidate, candidate, leader).

Pure: messages in (`step`), time in (`tick`), messages and log changes out (collected for RawNode's Ready).
Durability is the caller's: the leader counts its own log toward commit only through `ack_persisted`.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from trikv.actors.raft.log import RaftLog
from trikv.actors.raft.progress import Progress, ProgressState
from trikv.actors.raft.quorum import VoteResult, committed_index, has_quorum, quorum, vote_result
from trikv.actors.raft.readonly import ReadOnly
from trikv.actors.raft.storage import LogCompactedError, MemoryStorage, RaftError
from trikv.api.codec import decode
from trikv.api.errors import TrikvError
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import ConfChange, ConfChangeType, ConfState, Entry, EntryType

MT = MessageType


def _tuple(items: Iterable[Any]) -> Any:
    """tuple(), typed Any: mypy's attrs plugin mis-types fields with a `tuple` converter (Message.entries,
    ConfState.voters) as a bare generic in some runs, so arguments to them are passed untyped."""
    return tuple(items)


class StateType(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


class ProposalDropped(TrikvError):
    """The proposal was not appended: no leader, leader transfer in progress, removed node, too much
    uncommitted data, or a conf change while another is pending / before the term's no-op committed."""


@attrs.define
class Config:
    id: int
    rng: random.Random
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_uncommitted_entries_size: int = 0
    check_quorum: bool = True
    pre_vote: bool = True
    applied: int = 0


@attrs.frozen
class ReadState:
    index: int
    ctx: bytes


CAMPAIGN_TRANSFER = b"transfer"

# Messages that must wait until the hard state / entries of their Ready are durable.
AFTER_PERSIST_TYPES = frozenset(
    {MT.APP_RESP, MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE_RESP, MT.HEARTBEAT_RESP, MT.READ_INDEX_RESP}
)
LOCAL_TYPES = frozenset(
    {MT.HUP, MT.BEAT, MT.UNREACHABLE, MT.SNAP_STATUS, MT.CHECK_QUORUM, MT.STORAGE_APPEND_RESP}
)


# Enum members as module constants: attribute access on an Enum class costs ~150ns, and these are
# compared on every message.
_APP = MT.APP
_APP_RESP = MT.APP_RESP
_BEAT = MT.BEAT
_CHECK_QUORUM = MT.CHECK_QUORUM
_HEARTBEAT = MT.HEARTBEAT
_HEARTBEAT_RESP = MT.HEARTBEAT_RESP
_HUP = MT.HUP
_PRE_VOTE = MT.PRE_VOTE
_PRE_VOTE_RESP = MT.PRE_VOTE_RESP
_PROP = MT.PROP
_READ_INDEX = MT.READ_INDEX
_READ_INDEX_RESP = MT.READ_INDEX_RESP
_SNAP = MT.SNAP
_SNAP_STATUS = MT.SNAP_STATUS
_TIMEOUT_NOW = MT.TIMEOUT_NOW
_TRANSFER_LEADER = MT.TRANSFER_LEADER
_UNREACHABLE = MT.UNREACHABLE
_VOTE = MT.VOTE
_VOTE_RESP = MT.VOTE_RESP
_CANDIDATE = StateType.CANDIDATE
_FOLLOWER = StateType.FOLLOWER
_LEADER = StateType.LEADER
_PRE_CANDIDATE = StateType.PRE_CANDIDATE
_PROBE = ProgressState.PROBE
_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT
_E_CONF_CHANGE = EntryType.CONF_CHANGE
_E_NOOP = EntryType.NOOP


class Raft:
    def __init__(self, config: Config, storage: MemoryStorage) -> None:
        if config.id == 0:
            raise RaftError("node id must be non-zero")
        self.id = config.id
        self.rng = config.rng
        self.log = RaftLog(storage, config.applied)
        self.max_msg_size = config.max_size_per_msg
        self.max_inflight = config.max_inflight_msgs
        self.max_uncommitted_size = config.max_uncommitted_entries_size
        self.uncommitted_size = 0
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick

        self.term = 0
        self.vote = 0
        self.lead = 0
        self.state = _FOLLOWER
        self.lead_transferee = 0
        self.pending_conf_index = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        self.votes: dict[int, bool] = {}
        self.prs: dict[int, Progress] = {}
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.is_learner = False
        self.read_only = ReadOnly()
        self.pending_read_index: list[Message] = []
        self.read_states: list[ReadState] = []
        self.msgs: list[Message] = []
        self.msgs_after: list[Message] = []
        self.need_bcast = False

        hs, cs = storage.initial_state()
        self._set_conf(cs)
        if not hs.is_empty():
            last = self.log.last_index()
            if hs.commit > last:
                raise RaftError(f"hard state commit {hs.commit} beyond the last log entry {last}")
            # A snapshot newer than the persisted commit is committed by definition.
            self.log.committed = max(hs.commit, self.log.committed)
            self.term = hs.term
            self.vote = hs.vote
        if config.applied > 0:
            snap_index = self.log.first_index() - 1
            applied = min(config.applied, self.log.committed)
            self.log.applied_to(applied)
            # Conf changes the caller will not hand back (<= applied, after the snapshot) still shape the
            # membership: replay them here so a restart keeps its voters.
            if applied > snap_index:
                for e in storage.entries(snap_index + 1, applied + 1):
                    if e.type == _E_CONF_CHANGE:
                        self.apply_conf_change(decode_conf_change(e))
        self.become_follower(self.term, 0)

    # ================================================================== membership
    def _set_conf(self, cs: ConfState) -> None:
        self.voters = set(cs.voters)
        self.learners = set(cs.learners)
        nxt = self.log.last_index() + 1
        self.prs = {}
        for v in cs.voters:
            self.prs[v] = Progress(nxt, self.max_inflight)
        for v in cs.learners:
            self.prs[v] = Progress(nxt, self.max_inflight, is_learner=True)
        self.is_learner = self.id in self.learners

    def conf_state(self) -> ConfState:
        return ConfState(_tuple(sorted(self.voters)), _tuple(sorted(self.learners)))

    def promotable(self) -> bool:
        return self.id in self.voters and not self.log.pending_snapshot()

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        nid = cc.node_id
        t = cc.type
        last = self.log.last_index()
        if t == ConfChangeType.ADD_NODE:
            self.learners.discard(nid)
            self.voters.add(nid)
            pr = self.prs.get(nid)
            if pr is None:
                pr = self.prs[nid] = Progress(last + 1, self.max_inflight)
                pr.recent_active = True
            pr.is_learner = False
        elif t == ConfChangeType.ADD_LEARNER:
            if nid not in self.voters and nid not in self.learners:
                self.learners.add(nid)
                pr = self.prs[nid] = Progress(last + 1, self.max_inflight, is_learner=True)
                pr.recent_active = True
        elif t == ConfChangeType.PROMOTE_LEARNER:
            if nid in self.learners:
                self.learners.discard(nid)
                self.voters.add(nid)
                self.prs[nid].is_learner = False
        elif t == ConfChangeType.REMOVE_NODE:
            self.voters.discard(nid)
            self.learners.discard(nid)
            self.prs.pop(nid, None)
        # UPDATE_NODE: nothing for Raft; the context is for the caller.
        self.is_learner = self.id in self.learners
        if self.state == _LEADER:
            if self.id not in self.voters:
                # A removed leader steps down once its removal is committed (it is being applied), after
                # telling followers the commit index so one of them can take over promptly.
                self.bcast_append()
                self.become_follower(self.term, 0)
            else:
                if self.lead_transferee and self.lead_transferee not in self.voters:
                    self.abort_leader_transfer()
                if self.maybe_commit():
                    self.need_bcast = True
        return self.conf_state()

    # ================================================================== sending
    def send(self, m: Message) -> None:
        if m.type in AFTER_PERSIST_TYPES:
            self.msgs_after.append(m)
        else:
            self.msgs.append(m)

    def send_append(self, to: int, send_if_empty: bool = True, commit_notice: bool = False) -> bool:
        """Send the next append (or a snapshot) to `to` if flow control allows; returns whether sent.
        commit_notice: an empty one to a replicating follower only tells it the commit (no answer wanted)."""
        pr = self.prs[to]
        if pr.is_paused():
            return False
        log = self.log
        prev = pr.next - 1
        try:
            prev_term = log.term(prev)
            ents = log.slice(pr.next, log.last_index() + 1, self.max_msg_size)
        except LogCompactedError:
            return self.send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        notice = not ents and commit_notice and pr.state == _REPLICATE
        self.msgs.append(
            Message(_APP, to, self.id, self.term, prev_term, prev, _tuple(ents), log.committed, no_ack=notice)
        )
        pr.sent_entries(ents[-1].index if ents else None)
        return True

    def send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        snap = self.log.snapshot()
        if snap.meta.index == 0:
            return False
        pr.become_snapshot(snap.meta.index)
        self.msgs.append(Message(_SNAP, to, self.id, self.term, snapshot=snap))
        return True

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        pr = self.prs[to]
        commit = min(pr.match, self.log.committed)
        self.msgs.append(Message(_HEARTBEAT, to, self.id, self.term, commit=commit, context=ctx))

    def bcast_append(self) -> None:
        self.need_bcast = False
        for pid in self.prs:
            if pid != self.id:
                self.send_append(pid, commit_notice=True)

    def bcast_heartbeat(self, ctx: bytes | None = None) -> None:
        if ctx is None:
            ctx = self.read_only.last_pending_ctx()
        for pid in self.prs:
            if pid != self.id:
                self.send_heartbeat(pid, ctx)

    def flush(self) -> None:
        """Send what was deferred so that a burst of proposals goes out as one append per follower."""
        if self.need_bcast:
            if self.state == _LEADER:
                me = self.prs.get(self.id)
                if me is not None:
                    me.next = self.log.last_index() + 1
                self.bcast_append()
            self.need_bcast = False

    # ================================================================== role changes
    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = 0
        self.lead = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(self.election_timeout)
        self.abort_leader_transfer()
        self.votes = {}
        last = self.log.last_index()
        persisted = self.log.offset - 1
        for pid, pr in list(self.prs.items()):
            npr = Progress(last + 1, self.max_inflight, is_learner=pr.is_learner)
            if pid == self.id:
                npr.match = min(persisted, last)
            self.prs[pid] = npr
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.need_bcast = False

    def become_follower(self, term: int, lead: int) -> None:
        self.reset(term)
        self.lead = lead
        self.state = _FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.state == _LEADER:
            raise RaftError("invalid transition leader -> pre-candidate")
        # Neither term nor vote change: a pre-election must not disturb anybody.
        self.votes = {}
        self.lead = 0
        self.state = _PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.state == _LEADER:
            raise RaftError("invalid transition leader -> candidate")
        self.reset(self.term + 1)
        self.vote = self.id
        self.state = _CANDIDATE

    def become_leader(self) -> None:
        if self.state == _FOLLOWER:
            raise RaftError("invalid transition follower -> leader")
        self.reset(self.term)
        self.lead = self.id
        self.state = _LEADER
        pr = self.prs[self.id]
        pr.become_replicate()
        pr.match = min(self.log.offset - 1, self.log.last_index())
        pr.recent_active = True
        # No conf change until everything before this term's no-op is applied.
        self.pending_conf_index = self.log.last_index()
        self.append_entries([Entry(self.term, 0, _E_NOOP)], force=True)

    # ================================================================== time
    def tick(self) -> None:
        if self.state == _LEADER:
            self.tick_heartbeat()
        else:
            self.election_elapsed += 1
            if self.election_elapsed >= self.randomized_election_timeout and self.promotable():
                self.election_elapsed = 0
                self.hup(False)

    def tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.check_quorum_active()
            if self.state == _LEADER and self.lead_transferee:
                self.abort_leader_transfer()
        if self.state != _LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.bcast_heartbeat()

    def check_quorum_active(self) -> None:
        active = [pid for pid, pr in self.prs.items() if pid == self.id or pr.recent_active]
        if not has_quorum(self.voters, active):
            self.become_follower(self.term, 0)
            return
        for pid, pr in self.prs.items():
            if pid != self.id:
                pr.recent_active = False

    # ================================================================== elections
    def hup(self, transfer: bool) -> None:
        if self.state == _LEADER:
            return
        if not self.promotable():
            return
        if self.has_unapplied_conf_change():
            return
        if transfer or not self.pre_vote:
            self.campaign(False, transfer)
        else:
            self.campaign(True, False)

    def has_unapplied_conf_change(self) -> bool:
        log = self.log
        if log.applied >= log.committed:
            return False
        try:
            ents = log.slice(log.applied + 1, log.committed + 1)
        except LogCompactedError:
            return False
        return any(e.type == _E_CONF_CHANGE for e in ents)

    def campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self.become_pre_candidate()
            vote_type = _PRE_VOTE
            term = self.term + 1
        else:
            self.become_candidate()
            vote_type = _VOTE
            term = self.term
        self.votes[self.id] = True
        res = vote_result(self.voters, self.votes)
        if res == VoteResult.WON:
            if pre:
                self.campaign(False, transfer)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        li = self.log.last_index()
        lt = self.log.last_term()
        for pid in sorted(self.voters):
            if pid != self.id:
                self.send(Message(vote_type, pid, self.id, term, lt, li, context=ctx))

    # ================================================================== step
    def step(self, m: Message) -> None:
        t = m.type
        if m.term == 0:
            pass  # local message or a forwarded proposal / read
        elif m.term > self.term:
            if t == _VOTE or t == _PRE_VOTE:
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum and self.lead != 0 and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    return  # leader lease: a healthy leader exists, ignore the disruptor
            if t == _PRE_VOTE:
                pass  # a pre-vote never changes our term
            elif t == _PRE_VOTE_RESP and not m.reject:
                pass  # our own future term, granted: the term moves when we win
            elif t == _APP or t == _HEARTBEAT or t == _SNAP:
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, 0)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and (t == _HEARTBEAT or t == _APP):
                # Tell a stale leader (e.g. back from a partition) about the newer term.
                self.send(Message(_APP_RESP, m.frm, self.id, self.term))
            elif t == _PRE_VOTE:
                self.send(Message(_PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            elif t == _VOTE:
                # The paper's rule (etcd stays silent): tell a stale candidate our term, so that a voter whose
                # term ran ahead (no pre-vote, stale config) can be outvoted by candidates that catch up.
                self.send(Message(_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return

        if t == _HUP:
            self.hup(m.context == CAMPAIGN_TRANSFER)
        elif t == _VOTE or t == _PRE_VOTE:
            can_vote = (
                self.vote == m.frm
                or (self.vote == 0 and self.lead == 0)
                or (t == _PRE_VOTE and m.term > self.term)
            )
            resp = _VOTE_RESP if t == _VOTE else _PRE_VOTE_RESP
            if can_vote and self.log.is_up_to_date(m.index, m.log_term):
                self.send(Message(resp, m.frm, self.id, m.term))
                if t == _VOTE:
                    self.election_elapsed = 0
                    self.vote = m.frm
            else:
                self.send(Message(resp, m.frm, self.id, self.term, reject=True))
        elif self.state == _LEADER:
            self.step_leader(m)
        elif self.state == _FOLLOWER:
            self.step_follower(m)
        else:
            self.step_candidate(m)

    # ------------------------------------------------------------------ leader
    def step_leader(self, m: Message) -> None:
        t = m.type
        if t == _BEAT:
            self.bcast_heartbeat()
            return
        if t == _CHECK_QUORUM:
            self.check_quorum_active()
            return
        if t == _PROP:
            self.leader_propose(m)
            return
        if t == _READ_INDEX:
            self.leader_read_index(m)
            return

        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if t == _APP_RESP:
            self.handle_append_response(m, pr)
        elif t == _HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == _REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index() or pr.state == _PROBE:
                self.send_append(m.frm)
            if m.context:
                acks = self.read_only.recv_ack(m.frm, m.context)
                if acks is not None and has_quorum(self.voters, acks):
                    for rs in self.read_only.advance(m.context):
                        self.answer_read(rs.req, rs.index)
        elif t == _SNAP_STATUS:
            if pr.state != _SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for a heartbeat response before probing again.
            pr.probe_sent = True
        elif t == _UNREACHABLE:
            if pr.state == _REPLICATE:
                pr.become_probe()
        elif t == _TRANSFER_LEADER:
            self.leader_transfer(m.frm, pr)

    def leader_propose(self, m: Message) -> None:
        if not m.entries:
            raise RaftError("empty proposal")
        if self.id not in self.prs:
            raise ProposalDropped("this node was removed from the cluster")
        if self.lead_transferee:
            raise ProposalDropped(f"leader transfer to {self.lead_transferee} in progress")
        ents = list(m.entries)
        for i, e in enumerate(ents):
            if e.type == _E_CONF_CHANGE:
                reason = self.conf_change_refusal()
                if reason:
                    if m.frm == self.id or m.frm == 0:
                        raise ProposalDropped(reason)
                    ents[i] = Entry(e.term, e.index, _E_NOOP)  # forwarded: drop it, keep the batch
                else:
                    self.pending_conf_index = self.log.last_index() + i + 1
        if not self.append_entries(ents):
            raise ProposalDropped("too much uncommitted data")
        self.need_bcast = True

    def propose_local(self, typ: EntryType, data: bytes) -> None:
        """A proposal from this node's caller: appended at once on a leader (the append goes out with the
        next Ready, batched with every other proposal made before it), forwarded otherwise.

        This is the hot path of every write, hence the inlined append: a leader never has a pending
        snapshot, and with no unstable entries `offset` is last_index + 1."""
        if self.state is not _LEADER:
            self.step(Message(_PROP, 0, self.id, 0, entries=_tuple([Entry(0, 0, typ, data)])))
            return
        if self.lead_transferee:
            raise ProposalDropped(f"leader transfer to {self.lead_transferee} in progress")
        if self.id not in self.prs:
            raise ProposalDropped("this node was removed from the cluster")
        log = self.log
        unstable = log.unstable
        idx = log.offset + len(unstable)
        if typ is _E_CONF_CHANGE:
            reason = self.conf_change_refusal()
            if reason:
                raise ProposalDropped(reason)
            self.pending_conf_index = idx
        if self.max_uncommitted_size:
            size = len(data)
            if (
                self.uncommitted_size > 0
                and size > 0
                and self.uncommitted_size + size > self.max_uncommitted_size
            ):
                raise ProposalDropped("too much uncommitted data")
            self.uncommitted_size += size
        unstable.append(Entry(self.term, idx, typ, data))
        self.need_bcast = True

    def reduce_uncommitted(self, ents: Sequence[Entry]) -> None:
        if self.max_uncommitted_size and self.state == _LEADER:
            self.uncommitted_size = max(0, self.uncommitted_size - sum([len(e.data) for e in ents]))

    def conf_change_refusal(self) -> str:
        if self.pending_conf_index > self.log.applied:
            return "a configuration change is already pending"
        if not self.committed_entry_in_current_term():
            return "the leader has not committed an entry of its term yet"
        return ""

    def committed_entry_in_current_term(self) -> bool:
        try:
            return self.log.term(self.log.committed) == self.term
        except LogCompactedError:
            return False

    def append_entries(self, ents: Sequence[Entry], force: bool = False) -> bool:
        log = self.log
        li = log.last_index()
        term = self.term
        if self.max_uncommitted_size and not force:
            size = sum([len(e.data) for e in ents])
            if (
                self.uncommitted_size > 0
                and size > 0
                and self.uncommitted_size + size > self.max_uncommitted_size
            ):
                return False
            self.uncommitted_size += size
        out = [Entry(term, li + i + 1, e.type, e.data) for i, e in enumerate(ents)]
        log.append(out)
        pr = self.prs[self.id]
        pr.next = li + len(out) + 1
        return True

    def maybe_commit(self) -> bool:
        matches = {pid: pr.match for pid, pr in self.prs.items()}
        mci = committed_index(self.voters, matches)
        log = self.log
        if mci <= log.committed:
            return False
        # Figure 8: only an entry of the current term is committed by counting replicas.
        try:
            if log.term(mci) != self.term:
                return False
        except LogCompactedError:
            return False
        log.commit_to(mci)
        return True

    def on_commit_advanced(self) -> None:
        self.release_pending_reads()
        self.need_bcast = True

    def handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state == _REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == _PROBE:
            pr.become_replicate()
        elif pr.state == _SNAPSHOT:
            if pr.match + 1 >= self.log.first_index():
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self.maybe_commit():
            self.on_commit_advanced()
        elif old_paused:
            self.send_append(m.frm)
        while self.send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self.send_timeout_now(m.frm)

    def ack_self(self, index: int) -> None:
        """The leader's own log is durable up to index: it now counts toward commit."""
        pr = self.prs.get(self.id)
        if pr is not None and pr.maybe_update(index) and self.maybe_commit():
            self.on_commit_advanced()

    # ------------------------------------------------------------------ reads
    def leader_read_index(self, m: Message) -> None:
        if not self.committed_entry_in_current_term():
            # A new leader does not know the commit index until its no-op commits: hold, do not drop.
            self.pending_read_index.append(m)
            return
        self.start_read(m)

    def start_read(self, m: Message) -> None:
        if len(self.voters) == 1 and self.id in self.voters:
            self.answer_read(m, self.log.committed)
            return
        self.read_only.add_request(self.log.committed, m)
        acks = self.read_only.recv_ack(self.id, m.context)
        if acks is not None and has_quorum(self.voters, acks):
            for rs in self.read_only.advance(m.context):
                self.answer_read(rs.req, rs.index)
            return
        self.bcast_heartbeat(m.context)

    def answer_read(self, req: Message, index: int) -> None:
        if req.frm == 0 or req.frm == self.id:
            self.read_states.append(ReadState(index, req.context))
        else:
            self.send(
                Message(_READ_INDEX_RESP, req.frm, self.id, self.term, index=index, context=req.context)
            )

    def release_pending_reads(self) -> None:
        if not self.pending_read_index or not self.committed_entry_in_current_term():
            return
        held = self.pending_read_index
        self.pending_read_index = []
        for m in held:
            self.start_read(m)

    # ------------------------------------------------------------------ transfer
    def leader_transfer(self, target: int, pr: Progress) -> None:
        if pr.is_learner:
            return
        if self.lead_transferee:
            if self.lead_transferee == target:
                return
            self.abort_leader_transfer()
        if target == self.id:
            return
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        self.lead_transferee = target
        if pr.match == self.log.last_index():
            self.send_timeout_now(target)
        else:
            self.send_append(target)

    def send_timeout_now(self, to: int) -> None:
        self.msgs.append(Message(_TIMEOUT_NOW, to, self.id, self.term))

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = 0

    # ------------------------------------------------------------------ candidate
    def step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = _PRE_VOTE_RESP if self.state == _PRE_CANDIDATE else _VOTE_RESP
        if t == _PROP:
            raise ProposalDropped("no leader")
        if t == _APP:
            self.become_follower(m.term, m.frm)
            self.handle_append(m)
        elif t == _HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self.handle_heartbeat(m)
        elif t == _SNAP:
            self.become_follower(m.term, m.frm)
            self.handle_snapshot(m)
        elif t == my_resp:
            self.votes.setdefault(m.frm, not m.reject)
            res = vote_result(self.voters, self.votes)
            if res == VoteResult.WON:
                if self.state == _PRE_CANDIDATE:
                    self.campaign(False, False)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res == VoteResult.LOST:
                self.become_follower(self.term, 0)

    # ------------------------------------------------------------------ follower
    def step_follower(self, m: Message) -> None:
        t = m.type
        if t == _PROP:
            if self.lead == 0:
                raise ProposalDropped("no leader")
            if self.id not in self.prs and self.prs:
                raise ProposalDropped("this node was removed from the cluster")
            self.msgs.append(Message(_PROP, self.lead, self.id, 0, entries=_tuple(m.entries)))
        elif t == _APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_append(m)
        elif t == _HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_heartbeat(m)
        elif t == _SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_snapshot(m)
        elif t == _TRANSFER_LEADER:
            if self.lead:
                self.msgs.append(Message(_TRANSFER_LEADER, self.lead, m.frm, self.term))
        elif t == _TIMEOUT_NOW:
            self.hup(True)
        elif t == _READ_INDEX:
            if self.lead:
                self.msgs.append(Message(_READ_INDEX, self.lead, self.id, 0, context=m.context))
        elif t == _READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self.send(Message(_APP_RESP, m.frm, self.id, self.term, index=log.committed))
            return
        lastnewi = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if lastnewi >= 0:
            if not (m.no_ack and not m.entries):  # an accepted commit notice needs no answer
                self.send(Message(_APP_RESP, m.frm, self.id, self.term, index=lastnewi))
            return
        hint_index, hint_term = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
        self.send(
            Message(
                _APP_RESP,
                m.frm,
                self.id,
                self.term,
                log_term=hint_term,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
            )
        )

    def handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self.send(Message(_HEARTBEAT_RESP, m.frm, self.id, self.term, context=m.context))

    def handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is not None and self.restore(snap):
            idx = self.log.last_index()
        else:
            idx = self.log.committed
        self.send(Message(_APP_RESP, m.frm, self.id, self.term, index=idx))

    def restore(self, snap: Snapshot) -> bool:
        meta = snap.meta
        if meta.index <= self.log.committed:
            return False
        if self.state != _FOLLOWER:
            return False
        cs = meta.conf_state
        # A snapshot that predates our membership is accepted too: the entries after it (which add us) come
        # next. (etcd refuses it, but its server builds snapshots on demand; ours are made ahead of time.)
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # we already have it: fast-forward the commit index only
            return False
        self.log.restore(snap)
        self._set_conf(cs)
        return True


def decode_conf_change(e: Entry) -> ConfChange:
    cc = decode(e.data)
    if not isinstance(cc, ConfChange):
        raise RaftError(f"entry {e.index} is not a conf change")
    return cc


__all__ = [
    "LOCAL_TYPES",
    "Config",
    "ProposalDropped",
    "Raft",
    "ReadState",
    "StateType",
    "decode_conf_change",
    "quorum",
]
