"""The lease table (etcd's lessor): leases, their expiry heap and the keys attached to them.

Owned by the LeaseManager actor (actors/lease.py); the apply path (actors/lease_apply.py) calls it on every
member for grant / revoke / checkpoint / attach, in the Raft loop's task, so it needs no lock. Expiry is
tracked only while this member is primary (the leader): a follower's leases never expire (`FOREVER`), and
promotion gives every lease a fresh expiry (etcd's Promote).

Attachments are kept as candidate key sets: a put with a lease adds its key; overwrites and deletes do not
remove it. Whoever needs the exact set (revoke at apply, TimeToLive with keys) keeps the candidates whose
current value still names the lease, which every member decides identically from its own key space.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable

import attrs

from trikv.api import codec, errors
from trikv.api.lease import MAX_LEASE_TTL, LeaseRecord
from trikv.api.rpc import RangeRequest
from trikv.storage import faults
from trikv.storage.mvcc import ApplyBatch, KVStore

LEASE_BUCKET = b"lease"
FOREVER = math.inf
REVOKE_RETRY = 3.0  # seconds before an expired lease whose revoke did not apply is proposed again (etcd)
LEASE_REVOKE_RATE = 1000  # revokes per second at most (etcd's leaseRevokeRate)
HEAP_SLACK = 1024  # stale expiry-heap items tolerated beyond twice the lease count


@attrs.define(eq=False)
class Lease:
    id: int
    ttl: int
    remaining_ttl: int = 0  # the last checkpointed remaining TTL, 0 = none
    expiry: float = FOREVER
    keys: set[bytes] = attrs.Factory(set)  # candidates (see the module docstring)

    def remaining(self, now: float) -> float:
        return self.expiry - now

    def refresh(self, now: float, extend: float) -> None:
        base = self.remaining_ttl if self.remaining_ttl > 0 else self.ttl
        self.expiry = now + extend + base


def lease_key(lease_id: int) -> bytes:
    return lease_id.to_bytes(8, "big", signed=True)


class Lessor:
    """The lease table. `clock` is the member's monotonic clock (trio's, so MockClock drives tests)."""

    def __init__(self, min_ttl: int, clock: Callable[[], float]) -> None:
        self.min_ttl = min_ttl
        self.clock = clock
        self.leases: dict[int, Lease] = {}
        self.primary = False
        self._heap: list[tuple[float, int]] = []

    def now(self) -> float:
        """The lessor's clock; a test plugin may bend it (offset, rate) through the "lessor" clock hook."""
        if faults.ACTIVE is not None:
            return faults.ACTIVE.clock("lessor", self.clock())
        return self.clock()

    # ------------------------------------------------------------------ apply (every member)

    def grant(self, batch: ApplyBatch, lease_id: int, ttl: int) -> Lease:
        if ttl > MAX_LEASE_TTL:
            raise errors.LeaseTTLTooLargeError()
        if lease_id in self.leases:
            raise errors.LeaseExistError()
        lease = Lease(lease_id, max(ttl, self.min_ttl))
        self.leases[lease_id] = lease
        if self.primary:
            lease.refresh(self.now(), 0)
            self._schedule(lease)
        self._persist(batch, lease)
        return lease

    def revoke(self, batch: ApplyBatch, lease_id: int) -> list[bytes]:
        """Forget the lease and return the keys still attached to it (the caller deletes them)."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            raise errors.LeaseNotFoundError()
        batch.bucket_delete(LEASE_BUCKET, lease_key(lease_id))
        return self.attached(lease, lambda key: _lease_of(batch, key))

    def checkpoint(self, batch: ApplyBatch, lease_id: int, remaining_ttl: int) -> None:
        lease = self.leases.get(lease_id)
        if lease is None:
            return
        lease.remaining_ttl = remaining_ttl
        self._persist(batch, lease)
        if self.primary:
            lease.refresh(self.now(), 0)
            self._schedule(lease)

    def attach(self, lease_id: int, key: bytes) -> None:
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.keys.add(key)

    def exists(self, lease_id: int) -> bool:
        return lease_id in self.leases

    @staticmethod
    def attached(lease: Lease, lease_of: Callable[[bytes], int]) -> list[bytes]:
        """The candidates still attached (current value names the lease); stale candidates are dropped."""
        keys = sorted(k for k in lease.keys if lease_of(k) == lease.id)
        lease.keys = set(keys)
        return keys

    def _persist(self, batch: ApplyBatch, lease: Lease) -> None:
        record = LeaseRecord(lease.id, lease.ttl, lease.remaining_ttl)
        batch.bucket_put(LEASE_BUCKET, lease_key(lease.id), codec.encode(record))

    # ------------------------------------------------------------------ recovery

    def recover(self, kv: KVStore) -> None:
        """Rebuild from the page file: lease records, then every live key's lease field (lessor.Recover)."""
        old_primary = self.primary
        self.leases, self._heap, self.primary = {}, [], False
        with kv.write() as batch:  # read-only use; rolled back on exit
            for _, raw in batch.bucket_range(LEASE_BUCKET):  # a missing bucket is empty
                rec = codec.decode(raw)
                if isinstance(rec, LeaseRecord):
                    self.leases[rec.id] = Lease(rec.id, rec.ttl, rec.remaining_ttl)
        if self.leases:  # no lease record, no key to attach: skip reading every value (18 s at 1M keys)
            everything = kv.range(RangeRequest(b"\x00", b"\x00", keys_only=True, serializable=True))
            for item in everything.kvs:
                if item.lease:
                    self.attach(item.lease, item.key)
        if old_primary:
            self.promote(0.0)

    # ------------------------------------------------------------------ primary (the leader)

    def promote(self, extend: float) -> None:
        """On becoming leader: every lease expires at now + (checkpointed remaining, else TTL) + extend; with
        many leases, expiries are spread to at most 3/4 of the revoke rate per second (etcd's Promote)."""
        now = self.now()
        self.primary = True
        self._heap = []
        if faults.ACTIVE is not None and faults.ACTIVE.plant("lease_early_expiry_after_leader_change"):
            self._planted_early_promote(now)
            return
        for lease in self.leases.values():
            lease.refresh(now, extend)
        if len(self.leases) >= LEASE_REVOKE_RATE:
            self._spread(now, extend)
        self._heap = [(lease.expiry, lease.id) for lease in self.leases.values()]
        heapq.heapify(self._heap)

    def _planted_early_promote(self, now: float) -> None:
        """PLANTED BUG (test plugin only): the new leader counts a whole TTL as already spent under the old
        leader and drops the extension, so every lease, even one kept alive a moment ago, expires at once."""
        for lease in self.leases.values():
            lease.refresh(now, -float(lease.ttl))
        self._heap = [(lease.expiry, lease.id) for lease in self.leases.values()]
        heapq.heapify(self._heap)

    def _spread(self, now: float, extend: float) -> None:
        target = (3 * LEASE_REVOKE_RATE) // 4
        ordered = sorted(self.leases.values(), key=lambda lease: lease.expiry)
        base = ordered[0].remaining(now)
        window_end = base + 1.0
        count = 0
        for lease in ordered:
            remaining = lease.remaining(now)
            if remaining > window_end:
                base, window_end, count = remaining, remaining + 1.0, 1
                continue
            count += 1
            if count <= target:
                continue
            delay = count / target - (remaining - base)
            window_end = base + delay
            lease.expiry = now + (lease.remaining_ttl or lease.ttl) + extend + delay

    def demote(self) -> None:
        self.primary = False
        self._heap = []
        for lease in self.leases.values():
            lease.expiry = FOREVER

    def renew(self, lease_id: int) -> tuple[int, bool]:
        """Keep-alive on the leader: (TTL, whether a checkpointed remaining TTL was cleared). Unknown or
        already expired: LeaseNotFoundError."""
        lease = self.leases.get(lease_id)
        now = self.now()
        if lease is None or lease.remaining(now) <= 0:
            raise errors.LeaseNotFoundError()
        cleared = lease.remaining_ttl > 0
        lease.remaining_ttl = 0
        lease.refresh(now, 0)
        self._schedule(lease)
        return lease.ttl, cleared

    def expired(self, limit: int) -> list[int]:
        """Up to `limit` leases past their expiry; each is re-checked after REVOKE_RETRY if not revoked."""
        now = self.now()
        out: list[int] = []
        heap = self._heap
        while heap and len(out) < limit and heap[0][0] <= now:
            at, lease_id = heapq.heappop(heap)
            lease = self.leases.get(lease_id)
            if lease is None or lease.expiry > at:
                continue  # revoked meanwhile, or renewed (a newer heap item exists)
            out.append(lease_id)
            lease.expiry = now + REVOKE_RETRY  # not revoked by then: proposed again
            self._schedule(lease)
        return out

    def due_checkpoints(self, interval: float) -> list[tuple[int, int]]:
        """(id, remaining TTL) of the leases that outlive one checkpoint interval (etcd's rule)."""
        now = self.now()
        out = []
        for lease in self.leases.values():
            remaining = lease.remaining(now)
            if lease.ttl > interval and 0 < remaining < FOREVER:
                out.append((lease.id, math.ceil(remaining)))
        return out

    def _schedule(self, lease: Lease) -> None:
        if self.primary and lease.expiry < FOREVER:
            heapq.heappush(self._heap, (lease.expiry, lease.id))
            if len(self._heap) > 2 * len(self.leases) + HEAP_SLACK:
                # every renewal leaves its old item behind (skipped when popped): rebuild, O(n) amortized
                self._heap = [(x.expiry, x.id) for x in self.leases.values() if x.expiry < FOREVER]
                heapq.heapify(self._heap)

    def ids(self) -> Iterable[int]:
        return list(self.leases)


def _lease_of(batch: ApplyBatch, key: bytes) -> int:
    resp = batch.range(RangeRequest(key, keys_only=True))
    return resp.kvs[0].lease if resp.kvs else 0


__all__ = ["FOREVER", "LEASE_BUCKET", "LEASE_REVOKE_RATE", "REVOKE_RETRY", "Lease", "Lessor", "lease_key"]
