"""RawNode: the caller's handle on the Raft state machine (Ready / ack_persisted / advance).

Caller loop per Ready: send rd.messages; persist rd.hard_state, rd.entries, rd.snapshot; put them into
MemoryStorage; ack_persisted(last entry); send rd.messages_after_persist; apply rd.committed_entries
(apply_conf_change for CONF_CHANGE entries); advance(rd).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from trikv.actors.raft.core import LOCAL_TYPES, Config, ProposalDropped, Raft, ReadState, StateType
from trikv.actors.raft.progress import ProgressState
from trikv.actors.raft.storage import MemoryStorage, RaftError
from trikv.api.codec import encode
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState

MT = MessageType
_LEADER = StateType.LEADER


@attrs.frozen
class SoftState:
    """Volatile state worth telling the caller about when it changes (who leads, our role)."""

    lead: int
    role: StateType


@attrs.define
class Ready:
    soft_state: SoftState | None
    hard_state: HardState | None
    read_states: list[ReadState]
    entries: list[Entry]
    snapshot: Snapshot | None
    committed_entries: list[Entry]
    messages: list[Message]
    messages_after_persist: list[Message]


@attrs.frozen
class ProgressStatus:
    match: int
    next: int
    state: ProgressState
    is_learner: bool


@attrs.frozen
class Status:
    id: int
    term: int
    vote: int
    commit: int
    applied: int
    lead: int
    role: StateType
    progress: dict[int, ProgressStatus]
    conf_state: ConfState
    lead_transferee: int


class RawNode:
    def __init__(self, config: Config, storage: MemoryStorage) -> None:
        self.raft = Raft(config, storage)
        self.storage = storage
        r = self.raft
        # What the caller was last told (soft state, hard state): a Ready carries them only on change.
        self._p_lead = r.lead
        self._p_role = r.state
        self._p_term = r.term
        self._p_vote = r.vote
        self._p_commit = r.log.committed

    # ------------------------------------------------------------------ inputs
    def bootstrap(self, voters: Sequence[int], contexts: Mapping[int, bytes] | None = None) -> None:
        """Start a fresh cluster: ADD_NODE entries at term 1, indexes 1..N, already committed."""
        r = self.raft
        hs, _ = self.storage.initial_state()
        if self.storage.last_index() != 0 or not hs.is_empty() or r.log.last_index() != 0:
            raise RaftError("bootstrap needs an empty storage")
        if not voters:
            raise RaftError("bootstrap needs at least one voter")
        contexts = contexts or {}
        r.become_follower(1, 0)
        ccs = [ConfChange(ConfChangeType.ADD_NODE, v, contexts.get(v, b"")) for v in voters]
        r.log.append([Entry(1, i + 1, EntryType.CONF_CHANGE, encode(cc)) for i, cc in enumerate(ccs)])
        r.log.committed = len(ccs)
        for cc in ccs:
            r.apply_conf_change(cc)

    def tick(self) -> None:
        self.raft.tick()

    def step(self, m: Message) -> None:
        """A message from the network. Local message types are refused; a forwarded proposal that cannot be
        accepted is dropped silently (its proposer times out)."""
        if m.type in LOCAL_TYPES:
            raise RaftError(f"local message type {m.type.name} cannot be stepped from the network")
        try:
            self.raft.step(m)
        except ProposalDropped:
            pass

    def campaign(self) -> None:
        """Start an election now (tests, and a single node that should not wait a timeout)."""
        self.raft.step(Message(MT.HUP, 0, self.raft.id))

    def propose(self, data: bytes) -> None:
        self.raft.propose_local(EntryType.NORMAL, data)

    def propose_conf_change(self, cc: ConfChange) -> None:
        self.raft.propose_local(EntryType.CONF_CHANGE, encode(cc))

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point; the answer comes as a ReadState(index, ctx) in a later Ready.
        ctx must be unique among outstanding requests."""
        self.raft.step(Message(MT.READ_INDEX, 0, self.raft.id, 0, context=ctx))

    def transfer_leader(self, target: int) -> None:
        self.raft.step(Message(MT.TRANSFER_LEADER, self.raft.id, target, 0))

    def report_unreachable(self, peer: int) -> None:
        self.raft.step(Message(MT.UNREACHABLE, self.raft.id, peer, 0))

    def report_snapshot(self, peer: int, ok: bool) -> None:
        self.raft.step(Message(MT.SNAP_STATUS, self.raft.id, peer, 0, reject=not ok))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    # ------------------------------------------------------------------ outputs
    def has_ready(self) -> bool:
        r = self.raft
        if r.need_bcast or r.msgs or r.msgs_after or r.read_states:
            return True
        log = r.log
        if (
            log.committed != self._p_commit
            or r.term != self._p_term
            or r.vote != self._p_vote
            or r.lead != self._p_lead
            or r.state is not self._p_role
        ):
            return True
        if log.unstable_snapshot is not None:
            return not log.snap_in_progress
        if log.committed > log.applying:
            return True
        return bool(log.unstable) and log.in_progress < log.offset + len(log.unstable) - 1

    def ready(self) -> Ready:
        r = self.raft
        if r.need_bcast:
            r.flush()
        log = r.log
        soft_state = None
        if r.lead != self._p_lead or r.state is not self._p_role:
            soft_state = SoftState(r.lead, r.state)
            self._p_lead = r.lead
            self._p_role = r.state
        hard_state = None
        vote_changed = False
        if log.committed != self._p_commit or r.term != self._p_term or r.vote != self._p_vote:
            hard_state = HardState(r.term, r.vote, log.committed)
            vote_changed = r.term != self._p_term or r.vote != self._p_vote
            self._p_term = r.term
            self._p_vote = r.vote
            self._p_commit = log.committed
        snapshot = None
        if log.has_snapshot_to_hand():
            snapshot = log.unstable_snapshot
            log.snap_in_progress = True
        entries = log.take_unstable()
        committed = log.take_committed()
        if committed:
            r.reduce_uncommitted(committed)
        msgs = r.msgs
        after = r.msgs_after
        r.msgs = []
        r.msgs_after = []
        if vote_changed and msgs:
            # Everything said after a term/vote change waits until that change is durable.
            after = msgs + after
            msgs = []
        read_states = r.read_states
        if read_states:
            r.read_states = []
        return Ready(soft_state, hard_state, read_states, entries, snapshot, committed, msgs, after)

    def ack_persisted(self, term: int, index: int) -> None:
        """Entries up to (term, index) are durable (and the Ready's hard state / snapshot)."""
        r = self.raft
        log = r.log
        log.stable_to(index, term)
        if r.state == _LEADER and log.match_term(index, term):
            r.ack_self(index)

    def advance(self, rd: Ready) -> None:
        """rd is fully handled: its entries are in storage and its committed entries applied."""
        r = self.raft
        log = r.log
        if rd.entries:
            last = rd.entries[-1]
            if log.offset <= last.index:
                self.ack_persisted(last.term, last.index)
        if rd.snapshot is not None:
            idx = rd.snapshot.meta.index
            log.stable_snap_to(idx)
            log.applied_to(idx)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)

    def status(self) -> Status:
        r = self.raft
        progress: dict[int, ProgressStatus] = {}
        if r.state == StateType.LEADER:
            progress = {
                pid: ProgressStatus(pr.match, pr.next, pr.state, pr.is_learner) for pid, pr in r.prs.items()
            }
        return Status(
            id=r.id,
            term=r.term,
            vote=r.vote,
            commit=r.log.committed,
            applied=r.log.applied,
            lead=r.lead,
            role=r.state,
            progress=progress,
            conf_state=r.conf_state(),
            lead_transferee=r.lead_transferee,
        )
