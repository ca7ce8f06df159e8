"""The pure Raft consensus core (no trio, no I/O, no clock, randomness only from Config.rng).

Contract: /work/prompts/raft_api.md (names fixed). Additions to the contract, documented here:
- Config field order: `rng` follows `id` (dataclass rule: required fields first); pass it by keyword.
- RawNode.campaign(): start an election at once (tests; a fresh single-node cluster).
- Ready.committed_entries may include entries of the same Ready's `entries` (the caller persists before it
  applies, as in the caller loop); the leader still counts its own log toward commit only via ack_persisted.
- ReadIndex on a single-voter cluster is answered without a heartbeat round, but (as everywhere) only once
  an entry of the leader's term has committed: before that the commit index may be stale after a restart.
- Restart: membership comes from storage.initial_state()'s ConfState (the snapshot's) plus the conf-change
  entries in (snapshot, Config.applied], replayed at construction; later committed entries (conf changes
  included) are handed out again for the caller to apply.
- A snapshot whose ConfState does not list this node is still installed (a member added after the leader
  compacted); the entries after it add the node.
- Proposals on a leader are appended at once but the append to followers goes out at the next ready():
  a burst of propose() calls becomes one APP per follower.
- Errors: RaftError (misuse) and its storage subclasses LogCompactedError / LogUnavailableError /
  SnapshotOutOfDateError; ProposalDropped as in the contract.
- Status.progress maps id -> ProgressStatus(match, next, state, is_learner) on a leader, {} otherwise.
"""

from trikv.actors.raft.core import Config, ProposalDropped, Raft, ReadState, StateType, decode_conf_change
from trikv.actors.raft.progress import ProgressState
from trikv.actors.raft.rawnode import ProgressStatus, RawNode, Ready, SoftState, Status
from trikv.actors.raft.storage import (
    LogCompactedError,
    LogUnavailableError,
    MemoryStorage,
    RaftError,
    SnapshotOutOfDateError,
)

__all__ = [
    "Config",
    "LogCompactedError",
    "LogUnavailableError",
    "MemoryStorage",
    "ProgressState",
    "ProgressStatus",
    "ProposalDropped",
    "Raft",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "SnapshotOutOfDateError",
    "SoftState",
    "StateType",
    "Status",
    "decode_conf_change",
]
