"""The lease table's promotion rule (etcd's Promote), without a cluster: every lease gets now + (checkpointed
remaining, else TTL) + the extension, and with >= 1,000 leases expiring together the expiries are spread so
that at most 3/4 of the revoke rate (750/s) fall in any one-second window."""

from __future__ import annotations

import collections
import math

from trikv.actors.lessor import FOREVER, HEAP_SLACK, LEASE_REVOKE_RATE, Lease, Lessor

NOW = 100.0


def table(leases: list[Lease]) -> Lessor:
    lessor = Lessor(min_ttl=2, clock=lambda: NOW)
    for lease in leases:
        lessor.leases[lease.id] = lease
    return lessor


def test_promote_extends_by_remaining_or_ttl() -> None:
    lessor = table([Lease(1, 30), Lease(2, 30, remaining_ttl=7)])
    assert all(lease.expiry == FOREVER for lease in lessor.leases.values())
    lessor.promote(1.5)
    assert lessor.leases[1].expiry == NOW + 30 + 1.5
    assert lessor.leases[2].expiry == NOW + 7 + 1.5
    assert lessor.expired(10) == []
    lessor.demote()
    assert lessor.leases[1].expiry == FOREVER and lessor.expired(10) == []


def test_promote_spreads_many_simultaneous_expiries() -> None:
    n = 3 * LEASE_REVOKE_RATE
    lessor = table([Lease(i + 1, 10) for i in range(n)])
    lessor.promote(1.0)
    per_second = collections.Counter(math.floor(lease.expiry - NOW) for lease in lessor.leases.values())
    assert max(per_second.values()) <= (3 * LEASE_REVOKE_RATE) // 4 + 1, per_second
    # none earlier than TTL + extension
    assert min(lease.expiry for lease in lessor.leases.values()) == NOW + 11
    assert max(lease.expiry for lease in lessor.leases.values()) <= NOW + 11 + n / 750 + 1


def test_few_leases_are_not_spread() -> None:
    lessor = table([Lease(i + 1, 10) for i in range(LEASE_REVOKE_RATE - 1)])
    lessor.promote(1.0)
    assert {lease.expiry for lease in lessor.leases.values()} == {NOW + 11}


def test_renewals_do_not_grow_the_expiry_heap_without_bound() -> None:
    lessor = table([Lease(i + 1, 60) for i in range(100)])
    lessor.promote(1.0)
    for k in range(20_000):
        assert lessor.renew(k % 100 + 1) == (60, False)
    assert len(lessor._heap) <= 2 * 100 + HEAP_SLACK
    assert lessor.expired(1000) == []  # nothing due: every item still names a live expiry


def test_recover_reads_values_only_when_a_lease_exists() -> None:
    """Rebuilding the table attaches every leased key; with no lease record it never reads the values (a
    restart with 1,000,000 keys spent 14 s in that scan)."""
    from tests.storage.memory_pagefile import Backend, backend_kinds
    from trikv.api.rpc import DeleteRangeRequest, PutRequest

    store = Backend(backend_kinds()[0]).open()
    try:
        lessor = Lessor(min_ttl=2, clock=lambda: NOW)
        with store.write() as batch:
            batch.put(PutRequest(b"plain", b"v"))
            lessor.grant(batch, 7, 30)
            batch.put(PutRequest(b"leased", b"v", lease=7))
            batch.commit()
        reads = []
        range_ = store.range
        store.range = lambda req: reads.append(req) or range_(req)  # type: ignore[method-assign]
        fresh = Lessor(min_ttl=2, clock=lambda: NOW)
        fresh.recover(store)
        assert fresh.leases[7].keys == {b"leased"} and len(reads) == 1
        with store.write() as batch:
            batch.delete_range(DeleteRangeRequest(b"leased"))
            fresh.revoke(batch, 7)
            batch.commit()
        reads.clear()
        empty = Lessor(min_ttl=2, clock=lambda: NOW)
        empty.recover(store)
        assert empty.leases == {} and reads == []
    finally:
        store.close()
