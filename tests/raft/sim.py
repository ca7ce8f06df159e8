"""Deterministic simulation of a Raft cluster built on the pure core (actors.raft).

Why: the core is pure, so a whole cluster (nodes, a hostile network, crashes, clients) fits in one process and
one seeded `random.Random`. Every run is exactly replayable from its seed: nothing here iterates a set or a dict
in an order that affects behaviour, and nothing reads a clock.

Each node is a RawNode + MemoryStorage (lost on crash) and a `Durable` record (what it persisted: hard state,
snapshot, entries, and the state machine, persisted together with each apply). The caller loop per Ready is the
contract's one; a crash may be injected before the persist step, between persist and the after-persist messages,
or in the middle of applying committed entries; opt-in (`Scenario.p_leader_dies_mid_send`), a leader dies
after a Ready that replicates or commits entries, of which only some messages went out.

Checkers run inline (they fail the run with `SimulationFailure` at the first violation):
- election safety: at most one leader per term;
- log matching: one (index, term) names one entry, on every node and at any time; logs agree on every index
  before their last common (index, term) (checked periodically and at the end);
- leader completeness: a new leader of term T holds every entry known committed in a term < T;
- state machine safety: no two applies (any node, any incarnation, via snapshots too) differ at one index;
- durability: a node's commit never exceeds what it persisted; committed entries survive crashes (the above);
- durability of promises: votes and append acks only in Ready.messages_after_persist;
- a node applies exactly the entries it persisted, contiguously;
- linearizable ReadIndex: a read started when index w was already applied somewhere gets a read index >= w,
  and what it sees (the serving node's state machine up to the read index) holds every write committed at or
  below w -- a superset of the writes acknowledged to clients before the read began;
- liveness: after the final heal with every member up, a leader emerges and a fresh proposal commits on every
  member within `LIVENESS_TICKS`.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable
from typing import Any

import attrs
import cbor2

from tests.raft.broken import raw_node
from trikv.actors.raft import Config, MemoryStorage, ProposalDropped, RawNode, Ready, StateType
from trikv.api.codec import decode
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState

ELECTION_TICK = 10
LIVENESS_TICKS = 20 * ELECTION_TICK  # 10 maximal (2T) election timeouts
MAX_ROUNDS_PER_TICK = 200

CRASH_POINTS = ("now", "before_persist", "after_persist", "mid_apply")


MIN_ACCEPTED_PROPOSALS = 100  # per run (the issue: >= 100 proposals, >= 2,000 ticks)


class SimulationFailure(AssertionError):
    """A checker found a violation; the message names the seed and how to replay it."""


@attrs.define
class Scenario:
    """Knobs of one run, drawn from its seed (or set by a test to shape the run)."""

    seed: int
    voters: int = 3
    learners: int = 0  # learners added by conf change early in the run
    ticks: int = 2000
    pre_vote: bool = True
    check_quorum: bool = True
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_uncommitted_entries_size: int = 0
    breakages: frozenset[str] = frozenset()  # planted core bugs (tests/raft/broken.py)
    lose_vote_on_crash: bool = False  # harness breakage: the vote is not durable
    lose_tail_on_crash: bool = False  # harness breakage: the last Ready's entries were acked but not fsynced
    p_propose: float = 0.08
    p_read: float = 0.05
    p_event: float = 1 / 120
    p_drop: float = 0.02
    p_dup: float = 0.01
    p_delay: float = 0.05
    max_delay: int = 3
    p_crash_after_vote: float = 0.0  # crash a voter right after its vote went out (then restart quickly)
    restart_delay: tuple[int, int] = (5, 150)
    p_crash_new_leader: float = 0.0  # a fresh leader crashes within `crash_leader_after` ticks
    crash_leader_after: tuple[int, int] = (1, 6)
    # a leader dies right after a Ready that replicates or commits entries, having sent only some of its
    # messages (each kept with `keep_on_death`): entries end up on arbitrary minorities (Figure 8 shapes)
    p_leader_dies_mid_send: float = 0.0
    keep_on_death: float = 0.5
    membership: bool = False
    removed_stop_delay: int = ELECTION_TICK  # ticks a removed member keeps running (etcd: stopWithDelay)
    compaction: bool = False
    transfers: bool = True
    # forced events: (tick, kind) - guarantee every run sees a partition and a crash
    forced: list[tuple[int, str]] = attrs.Factory(list)
    event_weights: dict[str, int] = attrs.Factory(dict)
    replay: str = ""

    @classmethod
    def from_seed(cls, seed: int, replay: str = "") -> Scenario:
        r = random.Random(seed * 7919 + 17)
        sc = cls(seed=seed, replay=replay)
        sc.voters = r.choice((1, 3, 3, 3, 3, 5, 5))
        sc.learners = r.choice((0, 0, 0, 1))
        sc.pre_vote = r.random() < 0.85
        sc.check_quorum = r.random() < 0.85
        sc.max_size_per_msg = r.choice((1 << 20, 1 << 20, 1, 300))
        sc.max_inflight_msgs = r.choice((256, 256, 4, 1))
        sc.max_uncommitted_entries_size = r.choice((0, 0, 0, 40))
        sc.p_drop = r.choice((0.0, 0.01, 0.05, 0.15))
        sc.p_dup = r.choice((0.0, 0.01, 0.05))
        sc.p_delay = r.choice((0.0, 0.05, 0.2))
        sc.p_crash_after_vote = r.choice((0.0, 0.0, 0.05))
        sc.p_crash_new_leader = r.choice((0.0, 0.0, 0.0, 0.2))
        sc.membership = r.random() < 0.3
        sc.removed_stop_delay = r.choice((1, ELECTION_TICK, ELECTION_TICK))
        sc.compaction = r.random() < 0.4
        sc.transfers = r.random() < 0.6
        sc.forced = [(r.randrange(150, 900), "partition"), (r.randrange(900, 1700), "crash")]
        if sc.voters == 1:
            sc.forced = [(r.randrange(300, 1700), "crash")]
        return sc


@attrs.define(eq=False)
class Durable:
    """What a node has persisted; survives crashes. The state machine is persisted with each apply."""

    hard_state: HardState = HardState()
    snapshot: Snapshot | None = None
    entries: list[Entry] = attrs.Factory(list)  # contiguous, after the snapshot index
    sm_index: int = 0
    sm: list[tuple[int, bytes]] = attrs.Factory(list)  # (index, data) of applied NORMAL entries

    def snap_index(self) -> int:
        return self.snapshot.meta.index if self.snapshot is not None else 0

    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.snap_index()

    def append(self, ents: list[Entry]) -> None:
        first = ents[0].index
        base = self.snap_index() + 1
        if first < base:
            ents = [e for e in ents if e.index >= base]
            if not ents:
                return
            first = ents[0].index
        cut = first - base
        if cut > len(self.entries):
            raise ValueError(f"gap in persisted log: have ..{self.last_index()}, got {first}..")
        del self.entries[cut:]
        self.entries.extend(ents)


@attrs.define(eq=False)
class SimNode:
    id: int
    durable: Durable
    bootstrap_voters: tuple[int, ...]  # () for nodes added by a conf change (they start empty)
    rn: RawNode | None = None
    storage: MemoryStorage | None = None
    alive: bool = False
    removed: bool = False
    incarnation: int = 0
    applied: int = 0
    conf_state: ConfState = ConfState()
    role: StateType = StateType.FOLLOWER
    crash_point: str = ""
    restart_at: int = -1
    crash_at: int = -1
    last_batch: int = 0  # first index of the entries persisted by the latest Ready (0: none)
    stop_at: int = -1  # removed from the membership: stops (and is cut off) at this tick
    pending_reads: dict[bytes, int] = attrs.Factory(dict)  # ctx -> max applied index when the read began
    waiting_reads: list[tuple[int, bytes, int]] = attrs.Factory(list)  # (read index, ctx, floor)


def _index(item: tuple[int, bytes]) -> int:
    return item[0]


def encode_sm(sm: list[tuple[int, bytes]], upto: int) -> bytes:
    return cbor2.dumps([[i, d] for i, d in sm if i <= upto])


def decode_sm(data: bytes) -> list[tuple[int, bytes]]:
    return [(int(i), bytes(d)) for i, d in cbor2.loads(data)] if data else []


class Sim:
    """One seeded run. `run()` raises SimulationFailure on the first violation."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.now = 0
        self.nodes: dict[int, SimNode] = {}
        self.ids: list[int] = []  # sorted ids of every node ever created
        self.net: list[
            tuple[int, int, Message, int, int]
        ] = []  # heap of (due, seq, msg, sender incarnation, -)
        self.seq = 0
        self.blocked: set[tuple[int, int]] = set()
        self.drop = sc.p_drop
        # global knowledge for the checkers
        self.leader_of_term: dict[int, int] = {}
        self.by_index_term: dict[tuple[int, int], Entry] = {}
        self.committed: dict[int, tuple[int, int, bytes]] = {}  # index -> (term, type, data)
        self.commit_term_bound: dict[int, int] = {}  # index -> upper bound of the term it was committed in
        self.conf_at: dict[int, ConfState] = {}
        self.max_applied = 0
        self.writes: list[int] = []  # indexes of committed client writes, ascending
        self.members = ConfState()
        self.members_index = 0
        # stats
        self.proposed = 0
        self.dropped_proposals = 0
        self.reads_started = 0
        self.reads_served = 0
        self.crashes = 0
        self.partitions = 0
        self.conf_changes = 0
        self.snapshots_sent = 0
        self.snapshots_applied = 0
        self.transfers = 0
        self.transfers_done = 0
        self.transfer_target = (0, 0)  # (target, tick asked)
        self.elections = 0
        self.next_payload = 0
        self.next_ctx = 0
        self.next_cc_id = 0
        self.events: list[str] = []
        self.chaos = True
        voters = tuple(range(1, sc.voters + 1))
        for i in voters:
            self._new_node(i, voters)
        self.next_id = sc.voters + 1
        self.forced = sorted(sc.forced + [(30 + 10 * j, "add_learner") for j in range(sc.learners)])

    # ------------------------------------------------------------------ lifecycle

    def fail(self, msg: str) -> None:
        tail = "\n  ".join(self.events[-25:])
        raise SimulationFailure(
            f"seed {self.sc.seed} tick {self.now}: {msg}\n"
            f"replay: {self.sc.replay or f'run_seed({self.sc.seed})'}\n"
            f"last events:\n  {tail}"
        )

    def log(self, what: str) -> None:
        self.events.append(f"t{self.now} {what}")
        if len(self.events) > 400:
            del self.events[:200]

    def _new_node(self, nid: int, voters: tuple[int, ...]) -> SimNode:
        node = SimNode(nid, Durable(), voters)
        self.nodes[nid] = node
        self.ids.append(nid)
        self.ids.sort()
        self.start(node)
        return node

    def config(self, nid: int, applied: int) -> Config:
        sc = self.sc
        return Config(
            id=nid,
            election_tick=ELECTION_TICK,
            heartbeat_tick=1,
            rng=random.Random(self.rng.getrandbits(64)),
            max_size_per_msg=sc.max_size_per_msg,
            max_inflight_msgs=sc.max_inflight_msgs,
            max_uncommitted_entries_size=sc.max_uncommitted_entries_size,
            check_quorum=sc.check_quorum,
            pre_vote=sc.pre_vote,
            applied=applied,
        )

    def start(self, node: SimNode) -> None:
        d = node.durable
        st = MemoryStorage()
        if d.snapshot is not None:
            st.apply_snapshot(d.snapshot)
        if d.entries:
            st.append(d.entries)
        st.set_hard_state(d.hard_state)
        applied = d.snap_index()
        node.storage = st
        node.rn = raw_node(self.config(node.id, applied), st, self.sc.breakages)
        node.applied = applied
        node.conf_state = st.initial_state()[1]
        if d.snapshot is None and not d.entries and node.bootstrap_voters:
            node.rn.bootstrap(node.bootstrap_voters)
        node.alive = True
        node.incarnation += 1
        node.role = StateType.FOLLOWER
        node.crash_point = ""
        node.restart_at = -1
        node.crash_at = -1
        node.pending_reads.clear()
        node.waiting_reads.clear()
        if d.sm_index < applied:
            self.fail(f"n{node.id}: state machine at {d.sm_index} behind its snapshot {applied}")

    def crash(self, node: SimNode, why: str) -> None:
        if not node.alive:
            return
        self.crashes += 1
        self.log(f"crash n{node.id} ({why})")
        node.alive = False
        node.rn = None
        node.storage = None
        node.pending_reads.clear()
        node.waiting_reads.clear()
        d = node.durable
        if self.sc.lose_vote_on_crash:
            hs = d.hard_state
            d.hard_state = HardState(hs.term, 0, hs.commit)
        if self.sc.lose_tail_on_crash and node.last_batch > d.snap_index():
            del d.entries[node.last_batch - d.snap_index() - 1 :]
            hs = d.hard_state
            d.hard_state = HardState(hs.term, hs.vote, min(hs.commit, d.last_index()))
            if d.sm_index > d.last_index():  # what was applied is gone too (it was in the same page cache)
                d.sm = [(i, data) for i, data in d.sm if i <= d.last_index()]
                d.sm_index = d.last_index()
        node.last_batch = 0
        lo, hi = self.sc.restart_delay
        node.restart_at = self.now + self.rng.randint(lo, hi)

    def remove(self, node: SimNode) -> None:
        if node.removed:
            return
        self.log(f"removed n{node.id}")
        node.removed = True
        node.alive = False
        node.rn = None
        node.storage = None

    # ------------------------------------------------------------------ network

    def send(self, frm: SimNode, msgs: list[Message]) -> None:
        rng = self.rng
        for m in msgs:
            if m.frm != frm.id:
                self.fail(f"n{frm.id} sent a message claiming to be from {m.frm}: {m.type.name}")
            if m.type in _LOCAL:
                self.fail(f"n{frm.id} emitted a local message type {m.type.name}")
            delay = 0
            if self.chaos and self.sc.p_delay and rng.random() < self.sc.p_delay:
                delay = rng.randint(1, self.sc.max_delay)
            self.seq += 1
            heapq.heappush(self.net, (self.now + delay, self.seq, m, frm.incarnation, 0))
            if self.chaos and self.sc.p_dup and rng.random() < self.sc.p_dup:
                self.seq += 1
                heapq.heappush(self.net, (self.now + rng.randint(0, self.sc.max_delay), self.seq, m, -1, 0))

    def deliver_due(self) -> bool:
        """Deliver every message due now; False if there was none."""
        net = self.net
        if not net or net[0][0] > self.now:
            return False
        batch = []
        while net and net[0][0] <= self.now:
            batch.append(heapq.heappop(net))
        nodes = self.nodes
        for _due, _seq, m, inc, _ in batch:
            dst = nodes.get(m.to)
            src = nodes.get(m.frm)
            if src is None:
                self.fail(f"message from unknown node {m.frm}: {m}")
                return False
            lost = (
                dst is None
                or not dst.alive
                or dst.removed
                or src.removed
                or (m.frm, m.to) in self.blocked
                or (self.chaos and self.drop and self.rng.random() < self.drop)
            )
            if m.type == MessageType.SNAP and inc == src.incarnation and src.alive and inc > 0:
                self.snapshots_sent += 1
                assert src.rn is not None
                src.rn.report_snapshot(m.to, not lost)
                if lost:
                    src.rn.report_unreachable(m.to)
            if lost:
                continue
            assert dst is not None and dst.rn is not None
            try:
                dst.rn.step(m)
            except ProposalDropped:
                pass  # a forwarded proposal that found no leader: the client would retry
            except SimulationFailure:
                raise
            except Exception as exc:
                self.fail(f"n{dst.id}.step({m.type.name} from {m.frm}) raised {exc!r}")
        return True

    # ------------------------------------------------------------------ the Ready loop

    def pump(self) -> None:
        for nid in self.ids:
            node = self.nodes[nid]
            if node.alive and node.rn is not None and node.rn.has_ready():
                self.handle_ready(node)

    def handle_ready(self, node: SimNode) -> None:
        rn = node.rn
        st = node.storage
        assert rn is not None and st is not None
        d = node.durable
        rd: Ready = rn.ready()
        if (
            self.sc.p_leader_dies_mid_send
            and self.chaos
            and (rd.soft_state.role if rd.soft_state is not None else node.role) == StateType.LEADER
            and (rd.entries or rd.committed_entries)
            and rd.messages
            and self.rng.random() < self.sc.p_leader_dies_mid_send
        ):
            keep = self.sc.keep_on_death
            rd.messages = [m for m in rd.messages if self.rng.random() < keep]
            node.crash_point = node.crash_point or "now"  # persists and applies this Ready, then dies
            self.log(f"n{node.id} dies after sending {[m.to for m in rd.messages]}")
        if rd.messages:
            for m in rd.messages:
                if m.type in _AFTER_PERSIST:
                    self.fail(
                        f"n{node.id}: {m.type.name} to n{m.to} in Ready.messages (must wait for persist)"
                    )
            self.send(node, rd.messages)
        if node.crash_point == "before_persist":
            self.crash(node, "before persist")
            return
        # ---- persist (one fsync): snapshot, entries, hard state
        if rd.snapshot is not None:
            self.persist_snapshot(node, rd.snapshot)
        if rd.entries:
            for e in rd.entries:
                key = (e.index, e.term)
                seen = self.by_index_term.get(key)
                if seen is None:
                    self.by_index_term[key] = e
                elif seen != e:
                    self.fail(f"log matching: two entries at (index {e.index}, term {e.term}): {seen} vs {e}")
            d.append(rd.entries)
            node.last_batch = rd.entries[0].index
        if rd.hard_state is not None:
            hs = rd.hard_state
            old = d.hard_state
            if hs.term < old.term:
                self.fail(f"n{node.id}: term went back {old.term} -> {hs.term}")
            if hs.term == old.term and old.vote != 0 and hs.vote != old.vote:
                self.fail(f"n{node.id}: changed its vote in term {hs.term}: {old.vote} -> {hs.vote}")
            if (
                self.chaos
                and hs.vote not in (0, node.id, old.vote if old.term == hs.term else -1)
                and self.sc.p_crash_after_vote
                and self.rng.random() < self.sc.p_crash_after_vote
            ):
                node.crash_point = "now"
                self.log(f"n{node.id} voted n{hs.vote} in term {hs.term}; will crash")
            d.hard_state = hs
        if d.hard_state.commit > d.last_index():
            self.fail(f"n{node.id}: commit {d.hard_state.commit} beyond its persisted log {d.last_index()}")
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        if rd.entries:
            st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        if rd.entries:
            last = rd.entries[-1]
            rn.ack_persisted(last.term, last.index)
        if rd.soft_state is not None:
            self.on_soft_state(node, rd)
        if node.crash_point == "after_persist":
            self.crash(node, "after persist, before sending")
            return
        if rd.messages_after_persist:
            self.send(node, rd.messages_after_persist)
        # ---- apply
        for k, e in enumerate(rd.committed_entries):
            if node.crash_point == "mid_apply" and k * 2 >= len(rd.committed_entries):
                self.crash(node, f"mid apply at {e.index}")
                return
            self.apply(node, e)
            if not node.alive:
                return
        for rs in rd.read_states:
            floor = node.pending_reads.pop(rs.ctx, None)
            if floor is not None:
                node.waiting_reads.append((rs.index, rs.ctx, floor))
        rn.advance(rd)
        if node.waiting_reads:
            self.serve_reads(node)
        if node.crash_point == "now":
            self.crash(node, "after ready")

    def persist_snapshot(self, node: SimNode, snap: Snapshot) -> None:
        d = node.durable
        meta = snap.meta
        if meta.index <= d.snap_index():
            self.fail(f"n{node.id}: handed an older snapshot {meta.index} <= {d.snap_index()}")
        known = self.committed.get(meta.index)
        if known is not None and known[0] != meta.term:
            self.fail(f"n{node.id}: snapshot at {meta.index} has term {meta.term}, committed {known[0]}")
        sm = decode_sm(snap.data)
        for i, data in sm:
            c = self.committed.get(i)
            if c is None or c[2] != data:
                self.fail(f"n{node.id}: snapshot carries {i}:{data!r}, committed {c}")
        d.snapshot = snap
        d.entries = []
        d.sm = sm
        d.sm_index = meta.index
        node.applied = meta.index
        node.conf_state = meta.conf_state
        self.snapshots_applied += 1
        self.log(f"n{node.id} restored snapshot {meta.index}/{meta.term}")

    def on_soft_state(self, node: SimNode, rd: Ready) -> None:
        ss = rd.soft_state
        assert ss is not None
        node.role = ss.role
        if ss.role != StateType.LEADER:
            return
        term = node.durable.hard_state.term
        self.elections += 1
        self.log(f"n{node.id} leader of term {term}")
        target, asked = self.transfer_target
        if target == node.id and self.now - asked <= 2 * ELECTION_TICK:
            self.transfers_done += 1
            self.transfer_target = (0, 0)
        other = self.leader_of_term.setdefault(term, node.id)
        if other != node.id:
            self.fail(f"election safety: n{other} and n{node.id} both leader of term {term}")
        if node.id not in node.conf_state.voters:
            self.fail(f"n{node.id} became leader but is not a voter in {node.conf_state}")
        if self.chaos and self.sc.p_crash_new_leader and self.rng.random() < self.sc.p_crash_new_leader:
            node.crash_at = self.now + self.rng.randint(*self.sc.crash_leader_after)
        # leader completeness: every entry committed in an earlier term is in this leader's log
        st = node.storage
        assert st is not None
        first = st.first_index()
        last = st.last_index()
        for i, bound in self.commit_term_bound.items():
            if bound >= term:
                continue
            if i > last:
                self.fail(
                    f"leader completeness: n{node.id} (term {term}) log ends at {last}, {i} is committed"
                )
            if i >= first and st.term(i) != self.committed[i][0]:
                self.fail(
                    f"leader completeness: n{node.id} (term {term}) has term {st.term(i)} at {i}, "
                    f"committed term {self.committed[i][0]}"
                )

    def apply(self, node: SimNode, e: Entry) -> None:
        d = node.durable
        if e.index != node.applied + 1:
            self.fail(f"n{node.id}: applies {e.index} after {node.applied}")
        if e.index > d.last_index():
            self.fail(f"n{node.id}: applies {e.index} it never persisted")
        pos = e.index - d.snap_index() - 1
        if pos >= 0 and d.entries[pos] != e:
            self.fail(f"n{node.id}: applies {e} but persisted {d.entries[pos]} at {e.index}")
        rec = (e.term, int(e.type), e.data)
        known = self.committed.get(e.index)
        if known is None:
            self.committed[e.index] = rec
            self.commit_term_bound[e.index] = d.hard_state.term
            if e.type == EntryType.NORMAL and e.data:
                # first applies happen in index order (each node applies contiguously), so this stays sorted
                self.writes.append(e.index)
        elif known != rec:
            self.fail(f"state machine safety: n{node.id} applies {e} at {e.index}, another applied {known}")
        elif d.hard_state.term < self.commit_term_bound[e.index]:
            self.commit_term_bound[e.index] = d.hard_state.term
        node.applied = e.index
        if e.index > self.max_applied:
            self.max_applied = e.index
        if e.index > d.sm_index:
            if e.type == EntryType.NORMAL and e.data:
                d.sm.append((e.index, e.data))
            d.sm_index = e.index
        if e.type == EntryType.CONF_CHANGE:
            cc = decode(e.data)
            if not isinstance(cc, ConfChange):
                self.fail(f"conf change entry {e.index} does not decode to a ConfChange: {cc!r}")
            assert node.rn is not None
            cs = node.rn.apply_conf_change(cc)
            node.conf_state = cs
            # bootstrap entries are applied inside bootstrap() and again by the caller, so the state after
            # them depends on the incarnation; every later conf change must yield one state everywhere
            prev = self.conf_at.setdefault(e.index, cs)
            if e.index > self.sc.voters and prev != cs:
                self.fail(f"n{node.id}: conf state after {e.index} is {cs}, another node got {prev}")
            if e.index > self.members_index:
                self.members_index = e.index
                self.members = cs
                self.log(f"members after {e.index}: {cs.voters} learners {cs.learners}")
            if cc.type == ConfChangeType.REMOVE_NODE:
                victim = self.nodes.get(cc.node_id)
                if victim is not None and victim.id not in cs.voters and victim.id not in cs.learners:
                    # like etcd's stopWithDelay: a removed leader first tells the others its commit index
                    if victim.stop_at < 0 and not victim.removed:
                        victim.stop_at = self.now + max(1, self.sc.removed_stop_delay)
                        self.log(f"n{victim.id} removed at {e.index}, stops at t{victim.stop_at}")

    def serve_reads(self, node: SimNode) -> None:
        keep = []
        for idx, ctx, floor in node.waiting_reads:
            if node.applied < idx:
                keep.append((idx, ctx, floor))
                continue
            if idx < floor:
                self.fail(
                    f"linearizability: read {ctx!r} on n{node.id} got read index {idx}, but {floor} was "
                    f"applied before the read began"
                )
            # what the read sees: the node's state machine up to the read index; it must hold every write
            # known committed when the read began (those at indexes <= floor)
            must = bisect.bisect_right(self.writes, floor)
            saw = bisect.bisect_right(node.durable.sm, idx, key=_index)
            seen_before_floor = bisect.bisect_right(node.durable.sm, floor, key=_index)
            if seen_before_floor != must or saw < must:
                self.fail(
                    f"linearizability: read {ctx!r} on n{node.id} (read index {idx}) sees {seen_before_floor} "
                    f"of the {must} writes committed before it began"
                )
            self.reads_served += 1
        node.waiting_reads = keep

    # ------------------------------------------------------------------ clients and nemesis

    def live(self) -> list[SimNode]:
        return [self.nodes[i] for i in self.ids if self.nodes[i].alive]

    def leader(self) -> SimNode | None:
        best = None
        for n in self.live():
            if n.role == StateType.LEADER and (
                best is None or n.durable.hard_state.term > best.durable.hard_state.term
            ):
                best = n
        return best

    def propose(self, node: SimNode, n: int = 1) -> int:
        assert node.rn is not None
        ok = 0
        for _ in range(n):
            self.next_payload += 1
            try:
                node.rn.propose(b"w%d" % self.next_payload)
                ok += 1
                self.proposed += 1
            except ProposalDropped:
                self.dropped_proposals += 1
        return ok

    def clients(self) -> None:
        rng = self.rng
        sc = self.sc
        if rng.random() < sc.p_propose:
            live = self.live()
            if live:
                node = rng.choice(live)
                self.propose(node, rng.choice((1, 1, 1, 2, 5)))
        if rng.random() < sc.p_read:
            live = self.live()
            if live:
                node = rng.choice(live)
                assert node.rn is not None
                self.next_ctx += 1
                ctx = b"r%d" % self.next_ctx
                node.pending_reads[ctx] = self.max_applied
                self.reads_started += 1
                node.rn.read_index(ctx)

    def heal(self) -> None:
        if self.blocked:
            self.log("heal")
        self.blocked.clear()

    def partition(self, kind: str = "") -> None:
        rng = self.rng
        ids = [i for i in self.ids if not self.nodes[i].removed]
        if len(ids) < 2:
            return
        self.partitions += 1
        kind = kind or rng.choice(("split", "split", "isolate_leader", "one_way", "bridge"))
        self.blocked.clear()
        if kind == "isolate_leader":
            ld = self.leader()
            victim = ld.id if ld is not None else rng.choice(ids)
            side = {victim}
        elif kind == "one_way":
            a, b = rng.sample(ids, 2)
            self.blocked.add((a, b))
            self.log(f"partition one-way n{a} -/-> n{b}")
            return
        elif kind == "bridge" and len(ids) >= 3:
            # two halves that only one node can talk to both of
            bridge = rng.choice(ids)
            rest = [i for i in ids if i != bridge]
            rng.shuffle(rest)
            left = rest[: len(rest) // 2]
            right = rest[len(rest) // 2 :]
            for x in left:
                for y in right:
                    self.blocked.add((x, y))
                    self.blocked.add((y, x))
            self.log(f"partition bridge n{bridge}: {sorted(left)} | {sorted(right)}")
            return
        else:
            k = rng.randint(1, len(ids) - 1)
            side = set(rng.sample(ids, k))
        for x in ids:
            for y in ids:
                if (x in side) != (y in side):
                    self.blocked.add((x, y))
        self.log(f"partition {sorted(side)} | {[i for i in ids if i not in side]}")

    def crash_some(self, prefer_leader: bool | None = None) -> None:
        rng = self.rng
        live = self.live()
        if not live:
            return
        ld = self.leader()
        if prefer_leader is None:
            prefer_leader = rng.random() < 0.5
        node = ld if (prefer_leader and ld is not None) else rng.choice(live)
        point = rng.choice(CRASH_POINTS)
        if point == "now":
            self.crash(node, "between readies")
        else:
            node.crash_point = point
            self.log(f"n{node.id} will crash at {point}")

    def transfer(self) -> None:
        ld = self.leader()
        if ld is None or ld.rn is None:
            return
        targets = [v for v in ld.conf_state.voters if v != ld.id]
        if not targets:
            return
        t = self.rng.choice(sorted(targets))
        self.transfers += 1
        self.transfer_target = (t, self.now)
        self.log(f"transfer n{ld.id} -> n{t}")
        ld.rn.transfer_leader(t)

    def compact(self) -> None:
        live = [n for n in self.live() if n.storage is not None]
        if not live:
            return
        node = self.rng.choice(live)
        st = node.storage
        assert st is not None
        idx = node.applied
        if idx - st.first_index() < 8 or node.durable.sm_index < idx:
            return
        snap = st.create_snapshot(idx, node.conf_state, encode_sm(node.durable.sm, idx))
        st.compact(idx)
        d = node.durable
        d.snapshot = snap
        d.entries = [e for e in d.entries if e.index > idx]
        self.log(f"n{node.id} compacted to {idx}")

    def conf_change(self, want: str = "") -> bool:
        ld = self.leader()
        if ld is None or ld.rn is None:
            return False
        rng = self.rng
        cs = ld.conf_state
        options = []
        active = [i for i in self.ids if not self.nodes[i].removed]
        if len(active) < 7:
            options += ["add_learner", "add_voter"]
        if cs.learners:
            options += ["promote", "promote", "remove_learner"]
        if len(cs.voters) >= 4:
            options += ["remove_voter", "remove_voter"]
        if want:
            options = [want]
        if not options:
            return False
        kind = rng.choice(options)
        fresh = None
        if kind in ("add_learner", "add_voter"):
            nid = self.next_id
            self.next_id += 1
            fresh = self._new_node(nid, ())
            cc = ConfChange(
                ConfChangeType.ADD_LEARNER if kind == "add_learner" else ConfChangeType.ADD_NODE, nid
            )
        elif kind == "promote":
            cc = ConfChange(ConfChangeType.PROMOTE_LEARNER, rng.choice(sorted(cs.learners)))
        elif kind == "remove_learner":
            cc = ConfChange(ConfChangeType.REMOVE_NODE, rng.choice(sorted(cs.learners)))
        else:
            cc = ConfChange(ConfChangeType.REMOVE_NODE, rng.choice(sorted(cs.voters)))
        self.next_cc_id += 1
        cc = attrs.evolve(cc, id=self.next_cc_id)
        try:
            ld.rn.propose_conf_change(cc)
            self.conf_changes += 1
            self.log(f"propose {cc.type.name} n{cc.node_id} at n{ld.id}")
            return True
        except ProposalDropped:
            if fresh is not None:
                self.remove(fresh)
            return False

    def nemesis(self) -> None:
        rng = self.rng
        for nid in self.ids:
            node = self.nodes[nid]
            if not node.alive and not node.removed and node.restart_at == self.now:
                self.log(f"restart n{nid}")
                self.start(node)
            elif node.alive and node.crash_at == self.now:
                self.crash(node, "fresh leader")
        while self.forced and self.forced[0][0] <= self.now:
            _, kind = self.forced.pop(0)
            if kind == "partition":
                self.partition()
            elif kind == "crash":
                self.crash_some()
            elif kind == "add_learner" and not self.conf_change("add_learner"):
                self.forced.append((self.now + 10, kind))
                self.forced.sort()
        if rng.random() >= self.sc.p_event:
            return
        sc = self.sc
        kinds = ["partition", "heal", "heal", "crash", "drop"]
        if sc.transfers:
            kinds.append("transfer")
        if sc.compaction:
            kinds += ["compact", "compact"]
        if sc.membership:
            kinds += ["conf", "conf"]
        for k, w in sorted(sc.event_weights.items()):
            kinds += [k] * w
        kind = rng.choice(kinds)
        if kind == "partition":
            self.partition()
        elif kind == "heal":
            self.heal()
        elif kind == "crash":
            self.crash_some()
        elif kind == "drop":
            self.drop = rng.choice((0.0, sc.p_drop, 0.3))
        elif kind == "transfer":
            self.transfer()
        elif kind == "compact":
            self.compact()
        elif kind == "conf":
            self.conf_change()

    # ------------------------------------------------------------------ driving

    def step_tick(self) -> None:
        self.now += 1
        for nid in self.ids:
            node = self.nodes[nid]
            if node.stop_at == self.now:
                self.remove(node)
        if self.chaos:
            self.nemesis()
            if self.sc.compaction and self.now % 50 == 0:
                self.compact()
        self.clients()
        for nid in self.ids:
            node = self.nodes[nid]
            if node.alive and node.rn is not None:
                node.rn.tick()
        self.pump()
        for _ in range(MAX_ROUNDS_PER_TICK):
            if not self.deliver_due():
                break
            self.pump()
        if self.now % 250 == 0:
            self.check_logs()

    def check_logs(self) -> None:
        """Log matching across pairs: below the last common (index, term), logs agree everywhere."""
        logs: list[tuple[int, dict[int, int]]] = []
        for n in self.live():
            st = n.storage
            assert st is not None
            first, last = st.first_index(), st.last_index()
            logs.append((n.id, {i: st.term(i) for i in range(first, last + 1)}))
        for a in range(len(logs)):
            for b in range(a + 1, len(logs)):
                ida, la = logs[a]
                idb, lb = logs[b]
                common = sorted(i for i in la if i in lb)
                match = [i for i in common if la[i] == lb[i]]
                if not match:
                    continue
                top = match[-1]
                for i in common:
                    if i > top:
                        break
                    if la[i] != lb[i]:
                        self.fail(f"log matching: n{ida}/n{idb} agree at {top} but differ at {i}")

    def run(self) -> Sim:
        try:
            return self._run()
        except SimulationFailure:
            raise
        except Exception as exc:
            self.fail(f"harness/core raised {exc!r}")
            raise

    def _run(self) -> Sim:
        for _ in range(self.sc.ticks):
            self.step_tick()
        # A run that spent its chaos without a leader long enough to take 100 proposals goes on (still
        # under chaos, bounded) until it has: every run must exercise at least that much replication.
        extra = 0
        while self.proposed < MIN_ACCEPTED_PROPOSALS and extra < self.sc.ticks:
            self.step_tick()
            extra += 1
        self.check_logs()
        self.finish()
        return self

    def finish(self) -> None:
        """Heal everything, restart every member, then demand a leader and a commit everywhere."""
        self.chaos = False
        self.heal()
        self.drop = 0.0
        self.log("final heal")
        for nid in self.ids:
            node = self.nodes[nid]
            node.crash_point = ""
            if not node.alive and not node.removed:
                self.log(f"restart n{nid}")
                self.start(node)
        start = self.now
        markers: list[bytes] = []
        last_try = -(10**9)
        while self.now - start < LIVENESS_TICKS:
            self.step_tick()
            if any(self.converged(m) for m in markers):
                self.check_logs()
                return
            ld = self.leader()
            if ld is None or ld.rn is None or self.now - last_try < 2 * ELECTION_TICK:
                continue
            # a stale leader may take the proposal and lose it, or refuse it until its no-op commits: retry
            self.next_payload += 1
            marker = b"final%d" % self.next_payload
            try:
                ld.rn.propose(marker)
                markers.append(marker)
                last_try = self.now
                self.log(f"final proposal at n{ld.id}")
            except ProposalDropped:
                pass
        ld = self.leader()
        self.fail(
            f"liveness: no leader/commit within {LIVENESS_TICKS} ticks of the final heal "
            f"(leader={ld.id if ld else None}, markers {len(markers)}, members {self.members}, "
            f"applied {[(n.id, n.role.name, n.applied) for n in self.live()]})"
        )

    def converged(self, marker: bytes) -> bool:
        idx = next((i for i, rec in self.committed.items() if rec[2] == marker), None)
        if idx is None:
            return False
        members = list(self.members.voters) + list(self.members.learners)
        for nid in members:
            node = self.nodes.get(nid)
            if node is None or not node.alive or node.applied < idx:
                return False
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.sc.seed,
            "ticks": self.now,
            "proposed": self.proposed,
            "dropped": self.dropped_proposals,
            "committed": len(self.committed),
            "reads": self.reads_served,
            "crashes": self.crashes,
            "partitions": self.partitions,
            "elections": self.elections,
            "conf_changes": self.conf_changes,
            "snapshots_applied": self.snapshots_applied,
            "transfers": self.transfers,
            "transfers_done": self.transfers_done,
        }


# Votes and acks promise something about durable state: never sent before the persist step.
_AFTER_PERSIST = frozenset({MessageType.VOTE_RESP, MessageType.APP_RESP})

_LOCAL = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
        MessageType.STORAGE_APPEND_RESP,
    }
)


def run_seed(seed: int, replay: str = "", shape: Callable[[Scenario], None] | None = None) -> Sim:
    sc = Scenario.from_seed(seed, replay)
    if shape is not None:
        shape(sc)
    return Sim(sc).run()


__all__ = ["Durable", "Scenario", "Sim", "SimNode", "SimulationFailure", "run_seed"]
