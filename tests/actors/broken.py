"""A planted exactly-once bug, kept in test code: the exactly-once tests must catch it."""

from __future__ import annotations

from trikv.actors.apply import Applier
from trikv.storage.mvcc import KVStore

REAPPLIED = 5


class ReapplyAfterRestart(Applier):
    """After every (re)start, the last `REAPPLIED` entries at or below the page file's consistent index are
    applied once more when the WAL replays them: the bug etcd's consistent index exists to prevent."""

    def __init__(self, kv: KVStore, self_id: int) -> None:
        super().__init__(kv, self_id)
        ci = kv.consistent_index
        self._window = range(max(1, ci - REAPPLIED + 1), ci + 1) if ci else range(0)
        self._reapplied: set[int] = set()

    def already_applied(self, index: int, consistent_index: int) -> bool:
        if index in self._window and index not in self._reapplied:
            self._reapplied.add(index)
            return False
        return super().already_applied(index, consistent_index)


__all__ = ["REAPPLIED", "ReapplyAfterRestart"]
