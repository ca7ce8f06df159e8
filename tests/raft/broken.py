"""Planted Raft bugs, kept in test code so the production core carries no test-only switches.

The breakage tests (test_breakages.py, test_core_read.py, test_core_replication.py) build their nodes with
`raw_node(config, storage, breakages)`: with no breakage it is the production RawNode untouched; with some, the
node's Raft is a `BrokenRaft` that overrides exactly the rule each named bug breaks. The checkers must catch each
of them, or their passing on the real core proves nothing.

Known breakages (harness-level ones -- a vote or acknowledged entries lost on crash -- live in sim.py):
- "figure8": commit an entry of an earlier term by counting replicas (Raft paper, Figure 8).
- "readindex_no_heartbeat": a leader answers ReadIndex at its commit index without confirming it still leads.
"""

from __future__ import annotations

from trikv.actors.raft import Config, MemoryStorage, Raft, RawNode
from trikv.actors.raft.quorum import committed_index
from trikv.api.raftpb import Message

BREAKAGES = frozenset({"figure8", "readindex_no_heartbeat"})


class BrokenRaft(Raft):
    """The production core with the rules named in `breakages` broken (set right after construction)."""

    breakages: frozenset[str] = frozenset()

    def maybe_commit(self) -> bool:
        if "figure8" not in self.breakages:
            return super().maybe_commit()
        # PLANTED BUG: the quorum's match index commits whatever term the entry there has.
        mci = committed_index(self.voters, {pid: pr.match for pid, pr in self.prs.items()})
        if mci <= self.log.committed:
            return False
        self.log.commit_to(mci)
        return True

    def start_read(self, m: Message) -> None:
        if "readindex_no_heartbeat" not in self.breakages:
            super().start_read(m)
            return
        self.answer_read(m, self.log.committed)  # PLANTED BUG: no leadership confirmation


def raw_node(config: Config, storage: MemoryStorage, breakages: frozenset[str] = frozenset()) -> RawNode:
    """A RawNode whose Raft has `breakages` planted (none: the production node, unchanged).

    The class is swapped after construction rather than building a second Raft, so the node consumes its
    config's rng exactly as the production one does: a seed runs the same history with and without a
    breakage until the broken rule first fires.
    """
    unknown = breakages - BREAKAGES
    if unknown:
        raise ValueError(f"unknown breakages {sorted(unknown)}; known: {sorted(BREAKAGES)}")
    node = RawNode(config, storage)
    if breakages:
        node.raft.__class__ = BrokenRaft
        assert isinstance(node.raft, BrokenRaft)
        node.raft.breakages = breakages
    return node
