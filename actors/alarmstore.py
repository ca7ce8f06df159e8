"""The alarms a member has applied (etcd's alarm store), and what they refuse at apply.

Alarms change only through committed `AlarmRequest` entries, so every member holds the same set; they live
in the page file's "alarm" bucket, written in the same transaction as the entry's consistent index, so they
survive restarts and travel with snapshots. The Applier owns one store (rebuilt from the page file when a
snapshot replaces it) and asks it, before applying a request, whether an active alarm refuses it:

- NOSPACE (etcd's applierV3Capped): puts, txns holding a put on either branch and lease grants fail with
  "etcdserver: mvcc: database space exceeded"; reads, deletes, compaction, lease revokes still apply.
- CORRUPT (etcd's applierV3Corrupt, which wraps the capped one): every write fails with
  "etcdserver: corrupt cluster".
"""

from __future__ import annotations

from typing import Any

from trikv.api import errors, rpc
from trikv.api.maintenance import AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType
from trikv.storage.mvcc import ApplyBatch, KVStore

ALARM_BUCKET = b"alarm"

# Requests refused while an alarm is active, by type name (the lease shapes live with the lease service).
_NOSPACE_REFUSED = frozenset({"PutRequest", "LeaseGrantRequest"})
_CORRUPT_REFUSED = frozenset(
    {
        "PutRequest",
        "DeleteRangeRequest",
        "TxnRequest",
        "CompactionRequest",
        "LeaseGrantRequest",
        "LeaseRevokeRequest",
    }
)


def _key(m: AlarmMember) -> bytes:
    return m.member_id.to_bytes(8, "big") + bytes([int(m.alarm)])


def txn_has_put(req: rpc.TxnRequest) -> bool:
    """etcd's quota cost of a txn is > 0 exactly when a branch (or a nested txn) holds a put."""
    for op in (*req.success, *req.failure):
        if isinstance(op, rpc.PutRequest):
            return True
        if isinstance(op, rpc.TxnRequest) and txn_has_put(op):
            return True
    return False


def needs_space(payload: Any) -> bool:
    """Whether a request adds data: what NOSPACE refuses and the quota is checked for."""
    if isinstance(payload, rpc.TxnRequest):
        return txn_has_put(payload)
    return type(payload).__name__ in _NOSPACE_REFUSED


class AlarmStore:
    """Active alarms of the cluster, in (member id, type) order."""

    def __init__(self, active: list[AlarmMember] | None = None) -> None:
        self._active: dict[tuple[int, int], AlarmMember] = {
            (m.member_id, int(m.alarm)): m for m in active or ()
        }

    @classmethod
    def load(cls, kv: KVStore) -> AlarmStore:
        with kv.write() as batch:  # read-only: left without commit, it rolls back
            rows = batch.bucket_range(ALARM_BUCKET)
        active = []
        for k, _ in rows:
            try:
                active.append(AlarmMember(int.from_bytes(k[:8], "big"), AlarmType(k[8])))
            except (IndexError, ValueError):
                continue  # a type this version does not know: not ours to enforce
        return cls(active)

    def list(self, alarm: AlarmType = AlarmType.NONE) -> list[AlarmMember]:
        """Active alarms of one type, or of every type for NONE (etcd's alarmStore.Get)."""
        return [m for k, m in sorted(self._active.items()) if alarm == AlarmType.NONE or m.alarm == alarm]

    def has(self, alarm: AlarmType) -> bool:
        if not self._active:  # the common case, asked once or twice per request
            return False
        return any(m.alarm == alarm for m in self._active.values())

    def refuse(self, payload: Any) -> errors.EtcdError | None:
        """The error an active alarm answers this request with at apply, or None."""
        if not self._active:
            return None
        name = type(payload).__name__
        if self.has(AlarmType.CORRUPT) and name in _CORRUPT_REFUSED:
            return errors.CorruptError()
        if self.has(AlarmType.NOSPACE) and needs_space(payload):
            return errors.NoSpaceError()
        return None

    def apply(self, batch: ApplyBatch, req: AlarmRequest) -> AlarmResponse:
        """A committed ACTIVATE/DEACTIVATE (GET never enters the log); answers what changed."""
        m = AlarmMember(req.member_id, req.alarm)
        k = (m.member_id, int(m.alarm))
        if req.action == AlarmAction.ACTIVATE:
            if m.alarm == AlarmType.NONE:
                return AlarmResponse()
            if k not in self._active:
                self._active[k] = m
                batch.bucket_put(ALARM_BUCKET, _key(m), b"")
            return AlarmResponse(alarms=(m,))
        if req.action == AlarmAction.DEACTIVATE:
            if self._active.pop(k, None) is None:
                return AlarmResponse()
            batch.bucket_delete(ALARM_BUCKET, _key(m))
            return AlarmResponse(alarms=(m,))
        return AlarmResponse(alarms=tuple(self.list(req.alarm)))


def alarm_errors(store: AlarmStore) -> tuple[str, ...]:
    """Status.errors as etcd fills it: one "memberID:<id> alarm:<TYPE> " per active alarm."""
    return tuple(m.describe() for m in store.list())


def health_problem(store: AlarmStore) -> str:
    """etcd's /health reason for the first active alarm ("" when none)."""
    for m in store.list():
        return f"ALARM {m.alarm.name}" if m.alarm != AlarmType.NONE else "ALARM UNKNOWN"
    return ""


__all__ = ["ALARM_BUCKET", "AlarmStore", "alarm_errors", "health_problem", "needs_space", "txn_has_put"]
