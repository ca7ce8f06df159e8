"""Quota and alarms in-process: NOSPACE raised through Raft on every member, what it refuses and what it
lets through, persistence across a restart, disarm; CORRUPT refusing every write."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import get, wait_until
from tests.actors.upkeep_harness import upkeep_cluster
from trikv.actors.node import Node
from trikv.api import errors, protocol, rpc
from trikv.api.errors import GrpcCode
from trikv.api.lease import LeaseGrantRequest, LeaseRevokeRequest
from trikv.api.maintenance import AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType

NOSPACE = "etcdserver: mvcc: database space exceeded"
CORRUPT = "etcdserver: corrupt cluster"
VALUE = b"x" * 40_000


async def refused(node: Node, request: Any, message: str) -> errors.EtcdError:
    with pytest.raises(errors.EtcdError) as info:
        await node.handlers.handle(request)
    assert info.value.text == message
    return info.value


def alarms_of(node: Node) -> list[AlarmMember]:
    return node.backend.applier.alarms.list()


async def test_nospace_is_raised_cluster_wide_and_refuses_only_growth(autojump_clock: MockClock) -> None:
    async with upkeep_cluster(quota_backend_bytes=8 << 20) as c:
        lead = await c.settle()
        follower = c.followers(lead)[0]
        assert all(n.upkeep.quota.quota_bytes == 8 << 20 for n in c.running())
        room = lead.backend.pagefile.size() + 400_000
        for n in c.running():  # a small quota above what the page files hold now
            n.upkeep.quota.quota_bytes = room

        lease = await lead.handlers.handle(LeaseGrantRequest(60))
        acked: list[bytes] = []
        for i in range(100):
            try:
                await follower.handlers.handle(rpc.PutRequest(b"k%03d" % i, VALUE))
            except errors.NoSpaceError as exc:
                assert exc.text == NOSPACE and exc.code == GrpcCode.RESOURCE_EXHAUSTED
                break
            acked.append(b"k%03d" % i)
            await trio.sleep(0.2)  # the page file grows when the batch commits (every 100 ms, as etcd's)
        else:
            pytest.fail("the quota was never reached")
        assert 3 <= len(acked) < 20

        await wait_until(
            lambda: all(n.backend.applier.alarms.has(AlarmType.NOSPACE) for n in c.running()),
            "NOSPACE applied on every member",
        )
        await c.settle()
        raised = {m.member_id for m in alarms_of(lead)}
        assert raised and raised <= {n.id for n in c.running()}
        assert all(alarms_of(n) == alarms_of(lead) for n in c.running())

        for node in (lead, follower):
            await refused(node, rpc.PutRequest(b"new", b"v"), NOSPACE)
            await refused(node, rpc.TxnRequest(failure=(rpc.PutRequest(b"new", b"v"),)), NOSPACE)
            status = await node.handlers.handle(protocol.StatusRequest())
            assert status.errors == tuple(f"memberID:{mid} alarm:NOSPACE " for mid in sorted(raised))
            assert await node.handlers.health() == (False, "ALARM NOSPACE")
            got = await node.handlers.handle(AlarmRequest())
            assert got == AlarmResponse(alarms=tuple(alarms_of(lead)))

        # Quota lifted on the follower: its own check passes, the capped apply path still refuses.
        follower.upkeep.quota.quota_bytes = None
        await refused(follower, rpc.PutRequest(b"new", b"v"), NOSPACE)

        await refused(follower, LeaseGrantRequest(60), NOSPACE)
        # Reads, deletes, read-only txns, lease revokes and compaction still work.
        await follower.handlers.handle(LeaseRevokeRequest(lease.id))
        assert (await lead.handlers.handle(rpc.RangeRequest(b"k000"))).count == 1
        txn = await lead.handlers.handle(rpc.TxnRequest(success=(rpc.RangeRequest(b"k001"),)))
        assert txn.succeeded
        deleted = await follower.handlers.handle(rpc.DeleteRangeRequest(acked[-1]))
        assert deleted.deleted == 1
        acked.pop()
        await lead.handlers.handle(rpc.CompactionRequest(lead.backend.revision))

        # The alarm is in the page file: a restarted member still has it.
        name = c.name_of(follower)
        await c.stop(name)
        follower = await c.start(name)
        await c.settle()
        assert alarms_of(follower) == alarms_of(lead)
        await refused(follower, rpc.PutRequest(b"new", b"v"), NOSPACE)

        # Disarm (etcdctl: GET, then DEACTIVATE each): with room again, puts are accepted.
        for n in c.running():
            n.upkeep.quota.quota_bytes = None
        for m in alarms_of(lead):
            resp = await follower.handlers.handle(AlarmRequest(AlarmAction.DEACTIVATE, m.member_id, m.alarm))
            assert resp.alarms == (m,)
        again = await lead.handlers.handle(AlarmRequest(AlarmAction.DEACTIVATE, lead.id, AlarmType.NOSPACE))
        assert again.alarms == ()  # nothing left to deactivate
        await c.settle()
        assert all(alarms_of(n) == [] for n in c.running())
        assert await lead.handlers.health() == (True, "")
        await follower.handlers.handle(rpc.PutRequest(b"new", b"v"))
        await c.settle()
        for n in c.running():
            for key in (*acked, b"new"):
                assert (await get(n, key)).count == 1, (n.cfg.name, key)


async def test_nospace_at_apply_raises_the_alarm(autojump_clock: MockClock) -> None:
    """A put that passed the check before proposing but grows the page file past the quota at apply still
    applies (members must not diverge) and raises NOSPACE (etcd's quotaApplierV3)."""
    async with upkeep_cluster(quota_backend_bytes=8 << 20) as c:
        lead = await c.settle()
        for n in c.running():
            n.upkeep.quota.quota_bytes = n.backend.pagefile.size() + 100  # any put passes it
        lead.upkeep.quota.quota_bytes = None  # the proposer's own check lets it through
        await lead.handlers.handle(rpc.PutRequest(b"big", VALUE))  # answered OK by the leader
        await wait_until(
            lambda: all(n.backend.applier.alarms.has(AlarmType.NOSPACE) for n in c.running()),
            "NOSPACE raised by the members that applied past their quota",
        )
        await c.settle()
        assert lead.id not in {m.member_id for m in alarms_of(lead)}
        for n in c.running():
            assert (await get(n, b"big")).count == 1  # applied everywhere


async def test_corrupt_alarm_refuses_writes(autojump_clock: MockClock) -> None:
    async with upkeep_cluster() as c:
        lead = await c.settle()
        follower = c.followers(lead)[0]
        await follower.handlers.handle(rpc.PutRequest(b"a", b"1"))
        resp = await follower.handlers.handle(
            AlarmRequest(AlarmAction.ACTIVATE, follower.id, AlarmType.CORRUPT)
        )
        assert resp.alarms == (AlarmMember(follower.id, AlarmType.CORRUPT),)
        await c.settle()
        for node in (lead, follower):
            await refused(node, rpc.PutRequest(b"b", b"2"), CORRUPT)
            await refused(node, rpc.DeleteRangeRequest(b"a"), CORRUPT)
            await refused(node, rpc.TxnRequest(success=(rpc.RangeRequest(b"a"),)), CORRUPT)
            await refused(node, rpc.CompactionRequest(1), CORRUPT)
            assert (await node.handlers.handle(rpc.RangeRequest(b"a"))).kvs[0].value == b"1"
            assert await node.handlers.health() == (False, "ALARM CORRUPT")
        # Refused at apply too, whatever a member checked before proposing.
        follower.upkeep.quota.alarms = lambda: type(follower.backend.applier.alarms)()
        await refused(follower, rpc.PutRequest(b"b", b"2"), CORRUPT)
        await lead.handlers.handle(AlarmRequest(AlarmAction.DEACTIVATE, follower.id, AlarmType.CORRUPT))
        await c.settle()
        await follower.handlers.handle(rpc.PutRequest(b"b", b"2"))
