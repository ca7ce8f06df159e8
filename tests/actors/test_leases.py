"""The LeaseManager's rules on whole in-process members under MockClock (etcd's lessor as the model):
expiry only on the leader, promotion extends every lease by the election timeout, checkpoints bound what a
leader change gives back, at most 500 revokes per 500 ms, apply-time lease checks, and the lease table
rebuilt after a restart and after a snapshot install."""

from __future__ import annotations

import math

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import ELECTION_MS, Cluster, cluster, get, put, wait_until
from trikv.actors.events import Pending, Propose
from trikv.actors.lease import MAX_REVOKES_IN_FLIGHT, REVOKE_WINDOW, REVOKE_WINDOW_LIMIT
from trikv.actors.lessor import FOREVER
from trikv.actors.node import Node
from trikv.api import errors, protocol, rpc
from trikv.api.internal import RaftRequest
from trikv.api.lease import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseLeasesRequest,
    LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
)

ELECTION = ELECTION_MS / 1000.0


async def grant(node: Node, ttl: int, lease_id: int = 0) -> int:
    resp = await node.handlers.handle(LeaseGrantRequest(ttl, lease_id))
    assert isinstance(resp, LeaseGrantResponse)
    return resp.id


async def put_leased(node: Node, key: bytes, lease_id: int) -> rpc.PutResponse:
    resp = await node.handlers.handle(rpc.PutRequest(key, b"v", lease=lease_id))
    assert isinstance(resp, rpc.PutResponse)
    return resp


async def exists_everywhere(c: Cluster, key: bytes) -> list[bool]:
    return [bool((await get(n, key)).kvs) for n in c.running()]


async def test_grant_attach_revoke_at_one_revision(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        lid = await grant(lead, 60)
        assert lid > 0
        for k in (b"a", b"b", b"c"):
            await put_leased(lead, k, lid)
        await put(lead, b"free", b"v")
        await put_leased(lead, b"c", 0)  # moved off the lease
        before = (await get(lead, b"free")).header.revision
        resp = await lead.handlers.handle(LeaseRevokeRequest(lid))
        assert resp.header.revision == before + 1  # both attached keys at one revision
        await c.settle()
        for n in c.running():
            assert not (await get(n, b"a")).kvs and not (await get(n, b"b")).kvs
            assert (await get(n, b"c")).kvs and (await get(n, b"free")).kvs
            assert not n.leases.lessor.exists(lid)
        ttl = await lead.handlers.handle(LeaseTimeToLiveRequest(lid))
        assert ttl.ttl == -1
        ka = await lead.handlers.handle(LeaseKeepAliveRequest(lid))
        assert ka.ttl == 0
        with pytest.raises(errors.LeaseNotFoundError):
            await lead.handlers.handle(LeaseRevokeRequest(lid))


async def test_grant_rules(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        resp = await lead.handlers.handle(LeaseGrantRequest(1, 77))
        assert (resp.id, resp.ttl) == (77, math.ceil(1.5 * ELECTION))  # raised to the minimum
        with pytest.raises(errors.LeaseExistError):
            await lead.handlers.handle(LeaseGrantRequest(10, 77))
        with pytest.raises(errors.LeaseTTLTooLargeError):
            await lead.handlers.handle(LeaseGrantRequest(9_000_000_001))
        ttl = await lead.handlers.handle(LeaseTimeToLiveRequest(77))
        assert ttl.granted_ttl == 2 and 0 <= ttl.ttl <= 2
        listed = await c.followers(lead)[0].handlers.handle(LeaseLeasesRequest())
        assert [s.id for s in listed.leases] == [77]


async def test_put_with_unknown_lease_writes_nothing(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        rev = (await get(lead, b"x")).header.revision
        with pytest.raises(errors.LeaseNotFoundError):
            await lead.handlers.handle(rpc.PutRequest(b"x", b"v", lease=0x1234))
        taken = rpc.TxnRequest(success=(rpc.PutRequest(b"x", b"v", lease=0x1234),))
        with pytest.raises(errors.LeaseNotFoundError):
            await lead.handlers.handle(taken)
        untaken = rpc.TxnRequest(
            compare=(rpc.Compare(rpc.CompareResult.EQUAL, rpc.CompareTarget.VERSION, b"x", 5),),
            success=(rpc.PutRequest(b"x", b"v", lease=0x1234),),
        )
        assert not (await lead.handlers.handle(untaken)).succeeded
        await c.settle()
        for n in c.running():
            resp = await get(n, b"x")
            assert not resp.kvs and resp.header.revision == rev


async def test_revoke_and_put_committed_back_to_back(autojump_clock: MockClock) -> None:
    """Both proposals enter the Raft log in one append, the revoke first: the put fails at apply."""
    async with cluster() as c:
        lead = await c.settle()
        lid = await grant(lead, 60)
        rev = (await get(lead, b"k")).header.revision
        answers = []
        for payload in (LeaseRevokeRequest(lid), rpc.PutRequest(b"k", b"v", lease=lid)):
            req_id = lead.ids.next()
            pending = Pending()
            lead.waiters.requests[req_id] = pending
            lead.inbox.request(Propose(RaftRequest(lead.id, req_id, "x", payload), pending))
            answers.append(pending)
        with trio.fail_after(10):
            await answers[0].wait()
            with pytest.raises(errors.LeaseNotFoundError):
                await answers[1].wait()
        await c.settle()
        for n in c.running():
            resp = await get(n, b"k")
            assert not resp.kvs and resp.header.revision == rev


async def test_expiry_only_on_the_leader_and_promotion_extends(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        lid = await grant(lead, 5)
        await put_leased(lead, b"k", lid)
        await c.settle()
        for f in c.followers(lead):
            assert f.leases.lessor.leases[lid].expiry == FOREVER  # a follower never expires a lease
        granted = trio.current_time()
        await trio.sleep(3)
        old = c.name_of(lead)
        await c.stop(old)
        lead = await c.leader()
        elected = trio.current_time()
        # the new leader gives the lease its full TTL + election timeout from its promotion
        deadline = elected + 5 + ELECTION
        while trio.current_time() < deadline - 0.2:
            assert all(await exists_everywhere(c, b"k")), trio.current_time() - elected
            await trio.sleep(0.1)
        assert trio.current_time() > granted + 5  # it outlived its TTL since grant: extension at work
        await wait_until(lambda: not lead.leases.lessor.exists(lid), "the new leader revokes the lease", 3)
        await c.settle()
        assert not any(await exists_everywhere(c, b"k"))


async def test_keepalive_keeps_and_checkpoints_bound_leader_changes(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        for n in c.running():
            n.leases.checkpoint_interval = 2.0
        kept = await grant(lead, 4)
        long = await grant(lead, 30)
        await put_leased(lead, b"kept", kept)
        for _ in range(20):  # 10 s of keep-alives every second
            assert (await lead.handlers.handle(LeaseKeepAliveRequest(kept))).ttl == 4
            await trio.sleep(0.5)
        assert (await get(lead, b"kept")).kvs
        await trio.sleep(10)  # `long` has ~10 s left; checkpoints recorded that on every member
        for f in c.followers(lead):
            assert 8 <= f.leases.lessor.leases[long].remaining_ttl <= 15
        await c.stop(c.name_of(lead))
        lead = await c.leader()
        elected = trio.current_time()
        await wait_until(lambda: not lead.leases.lessor.exists(long), "the checkpointed lease expires", 30)
        # checkpointed remaining (<= 15 s) + election, not the full 30 s TTL again
        assert trio.current_time() - elected <= 15 + ELECTION + 1


async def test_at_most_500_revokes_per_500_ms(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        n = REVOKE_WINDOW_LIMIT + 100
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(grant, lead, 2, i + 1)
        counts: list[tuple[float, int]] = []
        with trio.move_on_after(20):
            while lead.leases.lessor.leases:
                counts.append((trio.current_time(), lead.leases.revokes_proposed))
                assert lead.leases.revokes_in_flight <= MAX_REVOKES_IN_FLIGHT
                await trio.sleep(0.025)
        assert not lead.leases.lessor.leases, "every lease expired"
        assert (REVOKE_WINDOW, REVOKE_WINDOW_LIMIT) == (0.5, 500)  # etcd's rate
        for t, k in counts:
            window = [k2 for t2, k2 in counts if t < t2 <= t + REVOKE_WINDOW]
            assert not window or window[-1] - k <= REVOKE_WINDOW_LIMIT
        first = next(t for t, k in counts if k > 0)
        assert counts[-1][0] - first >= REVOKE_WINDOW  # 600 leases: more than one window


async def test_leases_survive_a_restart_of_every_member(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        lid = await grant(lead, 600)
        await put_leased(lead, b"a", lid)
        await put_leased(lead, b"b", lid)
        await c.settle()
        await c.stop_all()
        await c.start_all()
        lead = await c.settle()
        for n in c.running():
            assert n.leases.lessor.leases[lid].keys == {b"a", b"b"}
        ttl = await lead.handlers.handle(LeaseTimeToLiveRequest(lid, keys=True))
        assert ttl.keys == (b"a", b"b") and ttl.granted_ttl == 600
        await lead.handlers.handle(LeaseRevokeRequest(lid))
        await c.settle()
        assert not any(await exists_everywhere(c, b"a"))


async def test_recovered_after_snapshot_install_then_revoked_as_leader(autojump_clock: MockClock) -> None:
    async with cluster(snapshot_count=10) as c:
        lead = await c.settle()
        victim = c.name_of(c.followers(lead)[0])
        behind = c.nodes[victim].raft.storage.last_index()
        await c.stop(victim)
        lid = await grant(lead, 600)
        await put_leased(lead, b"leased1", lid)
        await put_leased(lead, b"leased2", lid)
        for i in range(40):
            await put(lead, b"other%d" % i, b"v")
        await wait_until(
            lambda: all(n.raft.storage.first_index() > behind + 1 for n in c.running()),
            "the others compacted their logs past the stopped member",
        )
        node = await c.start(victim)
        await c.settle()
        assert node.raft.storage.snapshot().meta.index > behind, "no snapshot install"
        assert node.leases.lessor.leases[lid].keys == {b"leased1", b"leased2"}
        lead = await c.leader()
        await lead.handlers.handle(protocol.MoveLeaderRequest(node.id))
        await wait_until(lambda: node.status.is_leader, "the installed member leads")
        before = (await get(node, b"other0")).header.revision
        resp = await node.handlers.handle(LeaseRevokeRequest(lid))
        assert resp.header.revision == before + 1
        await c.settle()
        for n in c.running():
            assert not (await get(n, b"leased1")).kvs and not (await get(n, b"leased2")).kvs
            assert (
                len((await n.handlers.handle(rpc.RangeRequest(b"other", b"othes", serializable=True))).kvs)
                == 40
            )


async def test_ignore_lease_keeps_and_txn_puts_attach(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        first, second = await grant(lead, 60), await grant(lead, 60)
        await put_leased(lead, b"kept", first)
        await lead.handlers.handle(rpc.PutRequest(b"kept", b"v2", ignore_lease=True))
        txn = rpc.TxnRequest(success=(rpc.PutRequest(b"t1", b"v", lease=second), rpc.PutRequest(b"t2", b"v")))
        assert (await lead.handlers.handle(txn)).succeeded
        await lead.handlers.handle(LeaseRevokeRequest(first))
        await c.settle()
        assert not (await get(lead, b"kept")).kvs  # still on `first`: ignore_lease kept it there
        ttl = await lead.handlers.handle(LeaseTimeToLiveRequest(second, keys=True))
        assert ttl.keys == (b"t1",)


async def test_a_cut_off_leader_does_not_renew_a_keep_alive(autojump_clock: MockClock) -> None:
    # etcd's ensureLeadership: a leader that cannot confirm its leadership with a quorum (here cut off;
    # in the robustness run that found it, SIGSTOPped while another was elected) must not renew in its
    # own table and answer a TTL the real leader never granted.
    async with cluster() as c:
        lead = await c.settle()
        lid = await grant(lead, 60)
        before = lead.leases.lessor.leases[lid].expiry
        others = [n for n in c.running() if n is not lead]
        c.net.cut |= {frozenset((lead.id, o.id)) for o in others}
        await trio.sleep(ELECTION / 4)  # still the leader in its own eyes (check-quorum takes an election timeout)
        assert lead.raft.status.is_leader
        with pytest.raises(errors.EtcdError):
            await lead.handlers.handle(LeaseKeepAliveRequest(lid))
        assert lead.leases.lessor.leases[lid].expiry == before  # nothing renewed in its table
        c.net.cut.clear()
        new = await c.settle()
        ka = await new.handlers.handle(LeaseKeepAliveRequest(lid))
        assert ka.ttl == 60
