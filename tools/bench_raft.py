"""Committed entries per second through the pure Raft core: 3 nodes, in memory, a perfect network.

Why: the core is pure Python and sits on every write; this tells whether it could bound a node. No trio, no
disk: each round the leader takes one batch of proposals, every message is delivered, every Ready is handled
exactly as the contract's caller loop does (persist = append to MemoryStorage, then ack_persisted).

    .venv/bin/python -m trikv.tools.bench_raft --seconds 5 [--batch 1 --batch 256] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time

from trikv.actors.raft import Config, MemoryStorage, RawNode, StateType
from trikv.api.codec import decode
from trikv.api.raftpb import Message
from trikv.api.records import EntryType

PAYLOAD = b"x" * 64


class Cluster:
    """Three RawNodes wired directly to each other, no faults."""

    def __init__(self, n: int = 3, seed: int = 1) -> None:
        ids = list(range(1, n + 1))
        self.ids = ids
        self.storages = {i: MemoryStorage() for i in ids}
        self.nodes = {
            i: RawNode(Config(id=i, rng=random.Random(seed * 100 + i)), self.storages[i]) for i in ids
        }
        for i in ids:
            self.nodes[i].bootstrap(ids)
        self.inbox: list[Message] = []
        self.committed = 0  # entries applied on the leader
        self.leader = 0
        self.pump()
        for _ in range(200):
            for i in ids:
                self.nodes[i].tick()
            self.pump()
            lead = [i for i in ids if self.nodes[i].status().role == StateType.LEADER]
            if lead:
                self.leader = lead[0]
                break
        if not self.leader:
            raise RuntimeError("no leader elected")
        # let the leader's no-op commit
        for _ in range(5):
            self.pump()

    def handle(self, i: int) -> None:
        rn = self.nodes[i]
        st = self.storages[i]
        rd = rn.ready()
        self.inbox.extend(rd.messages)
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        if rd.entries:
            st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        if rd.entries:
            last = rd.entries[-1]
            rn.ack_persisted(last.term, last.index)
        self.inbox.extend(rd.messages_after_persist)
        if i == self.leader:
            self.committed += len(rd.committed_entries)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:  # the bootstrap members
                rn.apply_conf_change(decode(e.data))
        rn.advance(rd)

    def pump(self) -> None:
        """Handle readies and deliver messages until the cluster is quiet."""
        nodes = self.nodes
        for _ in range(50):
            for i in self.ids:
                if nodes[i].has_ready():
                    self.handle(i)
            if not self.inbox:
                return
            msgs, self.inbox = self.inbox, []
            for m in msgs:
                nodes[m.to].step(m)

    def round(self, batch: int) -> None:
        """One batch in, then one delivery round per hop (the batch commits within this round)."""
        rn = self.nodes[self.leader]
        for _ in range(batch):
            rn.propose(PAYLOAD)
        self.pump()


def bench(batch: int, seconds: float) -> float:
    c = Cluster()
    start_committed = c.committed
    t0 = time.perf_counter()
    rounds = 0
    while True:
        c.round(batch)
        rounds += 1
        if rounds % 8 == 0:
            for i in c.ids:
                c.nodes[i].tick()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    return (c.committed - start_committed) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, action="append", help="batch size (repeatable); default 1 and 256")
    ap.add_argument("--profile", action="store_true", help="print the cProfile top 25 for each batch size")
    args = ap.parse_args()
    for batch in args.batch or [1, 256]:
        if args.profile:
            prof = cProfile.Profile()
            rate = prof.runcall(bench, batch, args.seconds)
            print(f"batch {batch:4d}: {rate:12,.0f} committed entries/s (under cProfile)")
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        else:
            rate = bench(batch, args.seconds)
            print(f"batch {batch:4d}: {rate:12,.0f} committed entries/s")


if __name__ == "__main__":
    main()
