"""The backend quota (etcd's quota-backend-bytes): a member whose page file would grow past it raises NOSPACE.

Checked twice, as etcd does. Before proposing (in the handlers path): the page file's size plus the
request's cost must stay below the quota, else the member raises a NOSPACE alarm and refuses the request
with "etcdserver: mvcc: database space exceeded". Again at apply, on every member: an entry that adds data
while its page file is past the quota still applies (members must not diverge), but if no NOSPACE alarm is
active yet the member raises one and, if it proposed the entry, answers with the same error (etcd's
quotaApplierV3). Once the alarm is committed, the apply path refuses data-adding requests everywhere (see
actors/alarmstore.py) until `alarm disarm`.

Costs are etcd's backendQuota.Cost: a put is 256 bytes of overhead + key + value; a txn the larger of its two
branches' puts; a lease grant 64 bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from trikv.actors.alarmstore import AlarmStore, needs_space
from trikv.actors.apply import ApplyOutcome
from trikv.api import errors, rpc
from trikv.api.maintenance import AlarmType

log = logging.getLogger("trikv.quota")

KV_OVERHEAD = 256  # etcd's kvOverhead
LEASE_OVERHEAD = 64  # etcd's leaseOverhead

Handler = Callable[[Any], Awaitable[Any]]


def _txn_cost(ops: tuple[Any, ...]) -> int:
    total = 0
    for op in ops:
        if isinstance(op, rpc.PutRequest):
            total += KV_OVERHEAD + len(op.key) + len(op.value)
        elif isinstance(op, rpc.TxnRequest):
            total += cost(op)
    return total


def cost(payload: Any) -> int:
    """Bytes a request may add to the backend (etcd's quota cost)."""
    if isinstance(payload, rpc.PutRequest):
        return KV_OVERHEAD + len(payload.key) + len(payload.value)
    if isinstance(payload, rpc.TxnRequest):
        return max(_txn_cost(payload.success), _txn_cost(payload.failure))
    if type(payload).__name__ == "LeaseGrantRequest":
        return LEASE_OVERHEAD
    return 0


class Quota:
    """The quota of one member: `size()` is its page file's size, `alarms()` the applied alarm store."""

    def __init__(
        self,
        quota_bytes: int | None,
        size: Callable[[], int],
        alarms: Callable[[], AlarmStore],
        raise_alarm: Callable[[AlarmType], None],
    ) -> None:
        self.quota_bytes = quota_bytes  # None: no quota (a negative quota-backend-bytes)
        self.size = size
        self.alarms = alarms
        self.raise_alarm = raise_alarm

    def available(self, payload: Any) -> bool:
        """etcd's backendQuota.Available: size + cost must stay below the quota."""
        if self.quota_bytes is None:
            return True
        return self.size() + cost(payload) < self.quota_bytes

    def check(self, payload: Any) -> None:
        """Before proposing: refuse what an active CORRUPT alarm would refuse, and what passes the quota."""
        store = self.alarms()
        if store.has(AlarmType.CORRUPT):
            refused = store.refuse(payload)
            if isinstance(refused, errors.CorruptError):
                raise refused
        if needs_space(payload) and not self.available(payload):
            log.warning(
                "request exceeds the backend quota (size %d + cost %d >= quota %s); raising NOSPACE",
                self.size(),
                cost(payload),
                self.quota_bytes,
            )
            self.raise_alarm(AlarmType.NOSPACE)
            raise errors.NoSpaceError()

    def guard(self, handler: Handler) -> Handler:
        """`handler` behind the checks above (for the handlers table)."""

        async def guarded(request: Any) -> Any:
            self.check(request)
            return await handler(request)

        return guarded

    def after_apply(self, outcome: ApplyOutcome) -> None:
        """At apply (Backend.after_apply): an entry that grew the page file past the quota raises NOSPACE."""
        if self.quota_bytes is None:
            return
        for a in outcome.applied:
            if isinstance(a.response, BaseException) or not needs_space(a.request.payload):
                continue
            if self.available(a.request.payload) or self.alarms().has(AlarmType.NOSPACE):
                continue
            log.warning("applied entry exceeded the backend quota %d; raising NOSPACE", self.quota_bytes)
            a.response = errors.NoSpaceError()
            self.raise_alarm(AlarmType.NOSPACE)


__all__ = ["KV_OVERHEAD", "LEASE_OVERHEAD", "Quota", "cost"]
