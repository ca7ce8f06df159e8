"""Named fault hook points: where a test-only plugin may crash, stall or bend a member, and nothing else.

Production code calls a hook only behind ``if faults.ACTIVE is not None:``, so a member started without a
plugin pays one module-global check per hook site and behaves exactly as if the hooks were not there.
Production never sets `ACTIVE`: only a plugin does, loaded by ``trikv`` (actors/main.py) when the env
variable ``TRIKV_TEST_PLUGIN`` names its module (the shipped one is ``trikv.testing.plugin``).

The names below are the contract with the robustness harness (docs/ARCHITECTURE.md, "Fault hooks").
This module lives in storage/ (the bottom layer that has hook sites) so every layer above can reach it; it
imports nothing of the project.
"""

from __future__ import annotations

import math
from typing import Protocol

# Failpoints: `point(name)` is called where each happens.
FAILPOINTS = (
    "wal.before_fsync",  # storage/wal.py WAL.sync, with records buffered, before they are written + fsynced
    "wal.after_fsync",  # storage/wal.py WAL.sync, once they are durable (before Raft is told)
    "apply.before",  # actors/backend.py Backend.apply, before committed entries take effect
    "apply.after",  # actors/backend.py Backend.apply, after they did, before anyone is answered
    "snapshot.send",  # actors/peer.py, a snapshot about to go to a lagging peer
    "snapshot.install.before",  # actors/backend.py Backend.install, before the leader's page file replaces ours
    "snapshot.install.after",  # actors/backend.py Backend.install, once it did
    "backend.commit.before",  # actors/backend.py Backend.commit, before the open batch is committed
    "backend.commit.after",  # actors/backend.py Backend.commit, once it is durable
    "compact.step",  # actors/compactor.py, before each physical-compaction step
    "defrag.during",  # actors/maintenance.py, with the defrag copy made and not yet swapped in
)

# Planted bugs: `plant(name)` says whether one is switched on; each is one branch in production code.
PLANTS = (
    "put_ack_before_quorum_fsync",  # actors/raftnode.py: a leader applies (answers) its own appends at once
    "read_without_read_index",  # actors/kv.py: a linearizable range skips the ReadIndex round
    "reapply_after_restart",  # actors/apply.py: the last entries below the consistent index apply again
    "watch_skip_revision",  # actors/watch.py: every Nth revision's events never reach synced watchers
    "lease_early_expiry_after_leader_change",  # actors/lessor.py: promote spends a whole TTL, no extension
)

# Clocks a plugin may bend: the lessor's notion of now and the Raft ticker's.
CLOCKS = ("lessor", "ticker")

# What peer_out / peer_in return for a stalled link: hold the message and ask again (every HOLD_POLL s).
HOLD = math.inf
HOLD_POLL = 0.02


class FaultHooks(Protocol):
    def point(self, name: str) -> None:
        """A failpoint: may SIGKILL the process, block (a stall) or do nothing."""

    def plant(self, name: str) -> bool:
        """Whether the planted bug `name` is switched on."""

    def peer_out(self, to: str) -> float | None:
        """A message to member `to` (its name): None = drop, 0.0 = pass, > 0 = delay seconds, HOLD = stall."""

    def peer_in(self, frm: str) -> float | None:
        """A message from member `frm` (its name), as peer_out."""

    def clock(self, which: str, t: float) -> float:
        """`t` (a monotonic reading) as clock `which` ("lessor" | "ticker") should see it."""


ACTIVE: FaultHooks | None = None


__all__ = ["ACTIVE", "CLOCKS", "FAILPOINTS", "HOLD", "HOLD_POLL", "PLANTS", "FaultHooks"]
