"""The LeaseManager actor: owns the lease table (actors/lessor.py) and runs the leader's lease duties.

| duty | where | how |
|---|---|---|
| grant / revoke / checkpoint / attach | every member, at apply | the apply path calls the Lessor (lease_apply.py) |
| expiry | the leader only | expired leases are revoked through Raft (the Proposer clients use), <= 500 per 500 ms |
| promote / demote | on leadership change | every lease: now + (checkpointed remaining, else TTL) + election timeout |
| checkpoints | the leader, every `checkpoint_interval` | remaining TTLs proposed through Raft, 1,000 per entry |
| keep-alive, TimeToLive | the leader | followers forward them over a peer link; never proposed |

Leadership is read from the Raft loop's published status each tick (etcd's lessor learns it the same way, from
the server loop): a lease never expires on a member that is not the leader.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trikv.actors.events import RaftStatus
from trikv.actors.kv import Proposer
from trikv.actors.lessor import LEASE_REVOKE_RATE, Lease, Lessor
from trikv.api import errors, rpc
from trikv.api.lease import LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest
from trikv.storage.mvcc import KVStore

log = logging.getLogger("trikv.lease")

# etcd revokes at most 500 expired leases per 500 ms. Here in small rounds: 45 every 50 ms (any 500 ms holds
# at most 11 rounds, 495 revokes), so a mass expiry never stalls the writes behind one 500-entry burst.
REVOKE_WINDOW = 0.5
REVOKE_WINDOW_LIMIT = LEASE_REVOKE_RATE // 2
REVOKE_INTERVAL = 0.05  # seconds between expiry rounds
REVOKE_LIMIT = 45  # revokes proposed per round
# ... and no more than this many revokes wait to be applied: when applies lag (a slow disk, a busy member),
# expiry slows down to what the cluster does instead of queueing ahead of every client write.
MAX_REVOKES_IN_FLIGHT = 90
CHECKPOINT_BATCH = 1000  # etcd's maxLeaseCheckpointBatchSize
DEFAULT_CHECKPOINT_INTERVAL = 300.0  # etcd's default lease checkpoint interval (5 min)


def min_lease_ttl(election_timeout_ms: int) -> int:
    """etcd's minimum TTL: ceil(1.5 x election timeout) in seconds; shorter grants are raised to it."""
    return math.ceil(1.5 * election_timeout_ms / 1000.0)


class LeaseManager:
    def __init__(
        self,
        lessor: Lessor,
        status: RaftStatus,
        proposer: Proposer,
        *,
        election_seconds: float,
        tick_seconds: float,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        read_lease_of: Callable[[bytes], Awaitable[int]] | None = None,
    ) -> None:
        self.lessor = lessor
        self.status = status
        self.proposer = proposer
        self.election_seconds = election_seconds
        self.tick_seconds = tick_seconds
        self.checkpoint_interval = checkpoint_interval
        self._read_lease_of = read_lease_of
        self._nursery: trio.Nursery | None = None
        self._primary_term = 0
        self.revokes_proposed = 0  # a metric (tests read it)
        self.revokes_in_flight = 0

    # ------------------------------------------------------------------ the actor

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            next_revoke = last_checkpoint = trio.current_time()
            while True:
                self._follow_leadership()
                now = trio.current_time()
                room = min(REVOKE_LIMIT, MAX_REVOKES_IN_FLIGHT - self.revokes_in_flight)
                if self.lessor.primary and now >= next_revoke and room > 0:
                    next_revoke = now + REVOKE_INTERVAL
                    for lease_id in self.lessor.expired(room):
                        self.revokes_in_flight += 1
                        nursery.start_soon(self._revoke_expired, lease_id)
                if not self.lessor.primary:
                    last_checkpoint = now  # a new leader checkpoints one interval after its promotion
                elif now - last_checkpoint >= self.checkpoint_interval:
                    last_checkpoint = now
                    nursery.start_soon(self._checkpoint_all)
                await trio.sleep(min(self.tick_seconds, REVOKE_INTERVAL))

    def _follow_leadership(self) -> None:
        st = self.status
        if st.is_leader and (not self.lessor.primary or self._primary_term != st.term):
            self._primary_term = st.term
            self.lessor.promote(self.election_seconds)
            log.info("lease manager promoted: %d leases, expiries extended", len(self.lessor.leases))
        elif not st.is_leader and self.lessor.primary:
            self.lessor.demote()

    async def _revoke_expired(self, lease_id: int) -> None:
        self.revokes_proposed += 1
        try:
            await self.proposer.propose(LeaseRevokeRequest(lease_id), op="lease_revoke")
        except errors.EtcdError as exc:  # retried after REVOKE_RETRY by the expiry heap
            log.warning("failed to revoke expired lease %016x: %s", lease_id, exc)
        finally:
            self.revokes_in_flight -= 1

    async def _checkpoint_all(self) -> None:
        due = self.lessor.due_checkpoints(self.checkpoint_interval)
        for i in range(0, len(due), CHECKPOINT_BATCH):
            await self._propose_checkpoints(due[i : i + CHECKPOINT_BATCH])

    async def _propose_checkpoints(self, items: list[tuple[int, int]]) -> None:
        req = LeaseCheckpointRequest(tuple(LeaseCheckpoint(i, r) for i, r in items))
        try:
            await self.proposer.propose(req, op="lease_checkpoint")
        except errors.EtcdError as exc:
            log.warning("lease checkpoint of %d leases failed: %s", len(items), exc)

    # ------------------------------------------------------------------ served by the leader

    async def _primary(self) -> None:
        """Wait (a few ticks at most) until this leader's table has been promoted; else NotLeader."""
        if self.lessor.primary and self.status.is_leader:
            return  # the common case costs no cancel scope
        with trio.move_on_after(self.election_seconds):
            while self.status.is_leader and not self.lessor.primary:
                await trio.sleep(self.tick_seconds / 4)
        self._follow_leadership()
        if not (self.status.is_leader and self.lessor.primary):
            raise errors.NotLeaderError()

    async def _ensure_leadership(self) -> None:
        """etcd's ensureLeadership (3.5+) before a renewal: a ReadIndex round confirms with a quorum that this
        member still leads, in the same term. A leader that was paused (or cut off) while another was elected
        would otherwise renew in its own table on waking and answer a keep-alive the real leader never sees:
        the lease then expires while its owner holds a fresh TTL (found by the robustness harness: seed 7,
        a keep-alive that waited out a SIGSTOP of the leader)."""
        term = self.status.term
        try:
            await self.proposer.read_index()
        except errors.EtcdError:
            raise errors.NotLeaderError() from None
        if not (self.status.is_leader and self.status.term == term and self.lessor.primary):
            raise errors.NotLeaderError()

    async def keep_alive(self, lease_id: int) -> int:
        """The renewed TTL; 0 for an unknown or expired lease (etcd's keep-alive answer)."""
        await self._primary()
        await self._ensure_leadership()
        try:
            ttl, cleared = self.lessor.renew(lease_id)
        except errors.LeaseNotFoundError:
            return 0
        if cleared and self._nursery is not None:  # a keep-alive clears the checkpointed remaining TTL
            self._nursery.start_soon(self._propose_checkpoints, [(lease_id, 0)])
        return ttl

    async def time_to_live(self, lease_id: int, keys: bool) -> tuple[int, int, tuple[bytes, ...]]:
        """(remaining TTL, granted TTL, keys); remaining -1 for an unknown or expired lease (etcd)."""
        await self._primary()
        lease = self.lessor.leases.get(lease_id)
        now = self.lessor.now()
        if lease is None or lease.remaining(now) <= 0:
            return -1, 0, ()
        found: tuple[bytes, ...] = ()
        if keys:
            found = await self._attached(lease)
        return int(lease.remaining(now)), lease.ttl, found

    async def _attached(self, lease: Lease) -> tuple[bytes, ...]:
        if self._read_lease_of is None:
            return tuple(sorted(lease.keys))
        current = {k: await self._read_lease_of(k) for k in list(lease.keys)}
        return tuple(Lessor.attached(lease, lambda k: current.get(k, 0)))

    def leases(self) -> list[int]:
        return sorted(self.lessor.leases, key=lambda i: (self.lessor.leases[i].expiry, i))

    def recover(self, kv: KVStore) -> None:
        """At open and after a snapshot install (etcd's lessor.Recover)."""
        self.lessor.recover(kv)
        log.info("lease table recovered: %d leases", len(self.lessor.leases))


def lease_reader(
    range_: Callable[[rpc.RangeRequest], Awaitable[rpc.RangeResponse]],
) -> Callable[[bytes], Awaitable[int]]:
    """A key's current lease, read the way clients' serializable ranges are (the Backend's open batch)."""

    async def lease_of(key: bytes) -> int:
        resp = await range_(rpc.RangeRequest(key, keys_only=True, serializable=True))
        return resp.kvs[0].lease if resp.kvs else 0

    return lease_of


Forward = Callable[[int, Any], Awaitable[Any]]

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "MAX_REVOKES_IN_FLIGHT",
    "REVOKE_INTERVAL",
    "REVOKE_LIMIT",
    "REVOKE_WINDOW",
    "REVOKE_WINDOW_LIMIT",
    "Forward",
    "LeaseManager",
    "lease_reader",
    "min_lease_ttl",
]
