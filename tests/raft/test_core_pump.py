"""A tiny deterministic message pump for the Raft core scenario tests (not the randomized simulation).

Each node runs the contract's caller loop per Ready; messages go through one FIFO network queue that a
test can filter (partitions, drops) or hold back. Also holds a few sanity tests of the pump itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, cast

from tests.raft.broken import raw_node
from trikv.actors.raft import Config, MemoryStorage, RawNode, ReadState, Ready, StateType, decode_conf_change
from trikv.api.codec import decode, encode
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import ConfState, EntryType

MT = MessageType


def CS(voters: tuple[int, ...] = (), learners: tuple[int, ...] = ()) -> ConfState:
    """ConfState without mypy tripping over the attrs tuple converter."""
    return ConfState(cast(Any, voters), cast(Any, learners))


class Cluster:
    def __init__(
        self,
        ids: Iterable[int],
        *,
        seed: int = 1,
        bootstrap: bool = True,
        breakages: frozenset[str] = frozenset(),
        **cfg: Any,
    ) -> None:
        self.ids = list(ids)
        self.cfg = cfg
        self.breakages = breakages  # planted core bugs (tests/raft/broken.py)
        self.seed = seed
        self.nodes: dict[int, RawNode] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.sm: dict[int, list[bytes]] = {}  # applied NORMAL payloads per node (the "state machine")
        self.reads: dict[int, list[ReadState]] = {}
        self.conf: dict[int, ConfState] = {}
        self.readies: dict[int, list[Ready]] = {}
        self.net: list[Message] = []
        self.sent: list[Message] = []  # every message ever sent (for assertions)
        self.down: set[int] = set()  # crashed / fully isolated nodes
        self.cuts: set[tuple[int, int]] = set()  # directed links that drop
        self.drop: Callable[[Message], bool] | None = None
        self.mutate: Callable[[Message], Message] | None = None  # rewrite a message in flight
        self.snap_index: dict[int, int] = {}
        for i in self.ids:
            self.add_node(i, bootstrap_voters=self.ids if bootstrap else None)

    def config(self, i: int) -> Config:
        return Config(id=i, rng=random.Random(self.seed * 1000 + i), **self.cfg)

    def add_node(self, i: int, bootstrap_voters: list[int] | None = None) -> RawNode:
        st = MemoryStorage()
        node = raw_node(self.config(i), st, self.breakages)
        if bootstrap_voters is not None:
            node.bootstrap(bootstrap_voters)
        self.nodes[i] = node
        self.storages[i] = st
        self.sm[i] = []
        self.reads[i] = []
        self.readies[i] = []
        self.conf[i] = ConfState()
        if i not in self.ids:
            self.ids.append(i)
        return node

    # ------------------------------------------------------------------ the caller loop
    def handle_ready(self, i: int) -> bool:
        node = self.nodes[i]
        if not node.has_ready():
            return False
        st = self.storages[i]
        rd = node.ready()
        self.readies[i].append(rd)
        self.send(rd.messages)
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
            self.sm[i] = list(decode(rd.snapshot.data)) if rd.snapshot.data else []
            self.conf[i] = rd.snapshot.meta.conf_state
        if rd.entries:
            st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        if rd.entries:
            node.ack_persisted(rd.entries[-1].term, rd.entries[-1].index)
        self.send(rd.messages_after_persist)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                self.conf[i] = node.apply_conf_change(decode_conf_change(e))
            elif e.type == EntryType.NORMAL:
                self.sm[i].append(e.data)
        self.reads[i].extend(rd.read_states)
        node.advance(rd)
        return True

    def send(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.sent.append(m)
            self.net.append(m)

    def deliverable(self, m: Message) -> bool:
        if m.frm in self.down or m.to in self.down or m.to not in self.nodes:
            return False
        if (m.frm, m.to) in self.cuts:
            return False
        return not (self.drop is not None and self.drop(m))

    def deliver(self) -> int:
        msgs, self.net = self.net, []
        n = 0
        for m in msgs:
            if self.deliverable(m):
                if self.mutate is not None:
                    m = self.mutate(m)
                self.nodes[m.to].step(m)
                n += 1
        return n

    def stabilize(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            busy = False
            for i in self.ids:
                if i not in self.down and self.handle_ready(i):
                    busy = True
            if self.deliver():
                busy = True
            if not busy and not self.net:
                return
        raise AssertionError("cluster did not stabilize")

    def tick(self, n: int = 1, only: Iterable[int] | None = None) -> None:
        who = list(only) if only is not None else self.ids
        for _ in range(n):
            for i in who:
                if i not in self.down:
                    self.nodes[i].tick()
            self.stabilize()

    def restart(self, i: int) -> RawNode:
        """Crash and restart node i from its storage (what the WAL would replay); volatile state is lost."""
        st = self.storages[i]
        snap = st.snapshot()
        node = raw_node(self.config(i), st, self.breakages)
        self.nodes[i] = node
        self.sm[i] = list(decode(snap.data)) if snap.data else []
        self.conf[i] = snap.meta.conf_state
        self.net = [m for m in self.net if m.to != i and m.frm != i]
        return node

    # ------------------------------------------------------------------ helpers
    def isolate(self, i: int) -> None:
        for j in self.ids:
            if j != i:
                self.cuts.add((i, j))
                self.cuts.add((j, i))

    def heal(self) -> None:
        self.cuts.clear()
        self.drop = None
        self.mutate = None

    def elect(self, i: int) -> None:
        self.nodes[i].campaign()
        self.stabilize()
        assert self.role(i) == StateType.LEADER, f"{i} is {self.role(i)!r}"

    def role(self, i: int) -> StateType:
        return self.nodes[i].raft.state

    def leaders(self) -> list[int]:
        return [i for i in self.ids if i not in self.down and self.role(i) == StateType.LEADER]

    def term(self, i: int) -> int:
        return self.nodes[i].raft.term

    def commit(self, i: int) -> int:
        return self.nodes[i].raft.log.committed

    def last(self, i: int) -> int:
        return self.nodes[i].raft.log.last_index()

    def snapshot_and_compact(self, i: int, index: int) -> None:
        """The caller's compaction: snapshot the state machine at an applied index and drop the log."""
        st = self.storages[i]
        applied = self.nodes[i].raft.log.applied
        assert index <= applied
        st.create_snapshot(index, self.conf[i], encode(self.sm[i]))
        st.compact(index)


def test_pump_three_nodes_elect_and_replicate() -> None:
    c = Cluster([1, 2, 3])
    c.stabilize()
    # Bootstrap conf changes are handed out committed by the first Ready and applied everywhere.
    assert all(c.conf[i].voters == (1, 2, 3) for i in c.ids)
    c.elect(1)
    assert [c.role(i) for i in (2, 3)] == [StateType.FOLLOWER, StateType.FOLLOWER]
    for k in range(5):
        c.nodes[1].propose(b"v%d" % k)
    c.stabilize()
    assert all(c.sm[i] == [b"v0", b"v1", b"v2", b"v3", b"v4"] for i in c.ids)
    assert c.commit(1) == c.commit(2) == c.commit(3) == c.last(1)


def test_pump_election_by_timeout_with_seeded_rng() -> None:
    c = Cluster([1, 2, 3], seed=7)
    c.stabilize()
    c.tick(30)
    assert len(c.leaders()) == 1
    lead = c.leaders()[0]
    assert all(c.nodes[i].raft.lead == lead for i in c.ids)
