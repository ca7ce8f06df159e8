"""Acceptance (issue 10): leases on three real member processes on 127.0.0.1 — expiry, keep-alive, revoke at
one revision, leader SIGKILL, apply-time lease checks, restart of every member, snapshot install then
leadership, and the 20-way create-if-absent txn race through trikvctl processes and the Python client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

import trikv
from trikv.api import errors
from trikv.tools.localcluster import ROOT, Cluster

from .test_cluster import find_leader

pytestmark = pytest.mark.slow

ELECTION = 1.0  # the configs' election timeout (etcd's default 1000 ms)


def ctl_argv(endpoints: list[str], *argv: str) -> list[str]:
    return [sys.executable, "-m", "trikv.tools.trikvctl", f"--endpoints={','.join(endpoints)}", *argv]


def ctl(endpoints: list[str], *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        ctl_argv(endpoints, *argv),
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.returncode, proc.stdout, proc.stderr


async def actl(endpoints: list[str], *argv: str) -> tuple[int, str, str]:
    return await trio.to_thread.run_sync(lambda: ctl(endpoints, *argv))


async def exists(c: trikv.Client, key: str) -> bool:
    return bool((await c.get(key, serializable=True)).kvs)


async def test_expiry_keepalive_revoke_and_lease_checks(cluster: Cluster) -> None:
    await find_leader(cluster)
    eps = cluster.endpoints
    async with trikv.connect(eps) as c:

        async def short_lease_expires() -> None:
            granted = await c.grant(2)
            acked = trio.current_time()  # its last "keep-alive" is the grant
            assert granted.ttl == 2
            await c.put("short", "v", lease=granted.id)
            while trio.current_time() < acked + 2 - 0.3:
                assert await exists(c, "short")
                await trio.sleep(0.1)
            while await exists(c, "short"):
                assert trio.current_time() < acked + 2 + ELECTION + 2, "still there past TTL + election + 2 s"
                await trio.sleep(0.1)

        async def kept_lease_keeps_keys() -> None:
            async with c.lease(2) as lease:
                await c.put("kept", "v", lease=lease.id)
                end = trio.current_time() + 10
                while trio.current_time() < end:
                    assert await exists(c, "kept") and not lease.lost.is_set()
                    await trio.sleep(0.25)
                assert lease.keepalives >= 10
            assert not await exists(c, "kept")  # revoked on exit

        async with trio.open_nursery() as nursery:
            nursery.start_soon(short_lease_expires)
            nursery.start_soon(kept_lease_keeps_keys)

            # revoke deletes every attached key at one revision
            lid = (await c.grant(60)).id
            for k in ("r1", "r2", "r3"):
                await c.put(k, "v", lease=lid)
            await c.put("r4", "free")
            rev = (await c.get("r4")).header.revision
            revoked = await c.revoke(lid)
            assert revoked.header.revision == rev + 1
            got = await c.get("r", prefix=True)
            assert [kv.key for kv in got.kvs] == [b"r4"]
            assert (await c.time_to_live(lid)).ttl == -1

            # put --lease with an unknown lease: etcd's message, nothing written, revision unchanged
            rev = (await c.get("nope")).header.revision
            code, out, err = await actl(eps, "put", "nope", "v", f"--lease={lid:x}")
            assert (code, out) == (1, "") and err.strip().endswith(
                "Error: etcdserver: requested lease not found"
            )
            after = await c.get("nope")
            assert not after.kvs and after.header.revision == rev

            # a revoke and a put with its lease sent together, in either commit order: never a key left
            # on a revoked lease; a put committed after the revoke fails at apply
            failed = 0
            for i in range(8):
                lid = (await c.grant(60)).id
                results: dict[str, object] = {}
                async with trio.open_nursery() as pair:
                    pair.start_soon(_outcome, results, "revoke", lambda lid=lid: c.revoke(lid))
                    pair.start_soon(
                        _outcome, results, "put", lambda lid=lid, i=i: c.put(f"race{i}", "v", lease=lid)
                    )
                assert not isinstance(results["revoke"], Exception)
                if isinstance(results["put"], errors.LeaseNotFoundError):
                    failed += 1
                else:
                    assert results["put"].header.revision < results["revoke"].header.revision  # type: ignore[attr-defined]
                assert not await exists(c, f"race{i}")
            # and strictly after the revoke was applied, the put always fails
            with pytest.raises(errors.LeaseNotFoundError):
                await c.put("late", "v", lease=lid)
            print(f"revoke+put together: the put failed {failed}/8 times (committed after the revoke)")


async def _outcome(results: dict[str, object], name: str, fn: Callable[[], Awaitable[object]]) -> None:
    try:
        results[name] = await fn()
    except errors.LeaseNotFoundError as exc:
        results[name] = exc


async def test_leader_sigkill_while_a_lease_runs(cluster: Cluster) -> None:
    leader = await find_leader(cluster)
    survivors = [m.endpoint for i, m in enumerate(cluster.members) if i != leader]
    async with trikv.connect(cluster.endpoints) as c:
        granted = await c.grant(5)
        acked = trio.current_time()
        await c.put("ha", "v", lease=granted.id)
    # a lease kept alive by a client whose keep-alive stream runs on the leader: it fails over, and keeps it
    async with trikv.connect([cluster.members[leader].endpoint, *survivors]) as kc, kc.lease(5) as kept:
        await kc.put("kept", "v", lease=kept.id)
        await trio.sleep(1)
        cluster.members[leader].kill()
        await _watch_expiry(survivors, acked)
        assert not kept.lost.is_set(), "the kept lease was lost across the leader change"
        assert await exists(kc, "kept")


async def _watch_expiry(survivors: list[str], acked: float) -> None:
    async with trikv.connect(survivors) as s:
        elected = None
        while True:
            now = trio.current_time()
            if elected is None:
                leaders = set()
                for ep in survivors:
                    try:
                        with trio.fail_after(0.5):
                            leaders.add((await s.status(ep)).leader)
                    except (errors.TrikvError, trio.TooSlowError):
                        leaders.add(0)
                if len(leaders) == 1 and 0 not in leaders:
                    elected = trio.current_time()
            present = all([await exists_on(s, ep, "ha") for ep in survivors])
            if now < acked + 5:
                assert present, f"gone {now - acked:.2f} s after the grant's acknowledgement"
            if not present:
                break
            assert elected is None or now < elected + 5 + ELECTION + 3, (  # 3 s: a loaded CI box
                "not expired by the new leader in time"
            )
            assert now < acked + 30
            await trio.sleep(0.1)
        assert elected is not None
        print(
            f"lease of 5 s: leader killed, new leader after {elected - acked:.2f} s, key gone after "
            f"{trio.current_time() - acked:.2f} s"
        )


async def exists_on(c: trikv.Client, endpoint: str, key: str) -> bool:
    """A serializable read answered by exactly this member."""
    from trikv.api import rpc

    resp = await c._call(
        "range",
        rpc.RangeRequest(key.encode(), serializable=True),
        rpc.RangeResponse,
        idempotent=True,
        endpoint=endpoint,
    )
    return bool(resp.kvs)


async def test_leases_survive_restarts_and_snapshot_install_then_leadership(tmp_path: Path) -> None:
    c = Cluster(tmp_path, overrides={"snapshot-count": 50, "log-level": "info"})
    c.start()
    try:
        leader = await find_leader(c)
        async with trikv.connect(c.endpoints) as cl:
            before = (await cl.grant(600)).id
            await cl.put("a1", "v", lease=before)
            await cl.put("a2", "v", lease=before)
        c.stop()  # SIGKILL every member: the WAL replays what the page files lack
        c.start()
        await find_leader(c)
        async with trikv.connect(c.endpoints) as cl:
            ttl = await cl.time_to_live(before, keys=True)
            assert ttl.keys == (b"a1", b"a2") and ttl.granted_ttl == 600 and ttl.ttl > 500

        leader = await find_leader(c)
        follower = (leader + 1) % 3
        c.members[follower].kill()
        live = [m.endpoint for i, m in enumerate(c.members) if i != follower]
        async with trikv.connect(live) as cl:
            lid = (await cl.grant(600)).id
            await cl.put("b1", "v", lease=lid)
            await cl.put("b2", "v", lease=lid)
            await cl.put("b3", "v")

            async def fill(lo: int) -> None:
                for k in range(lo, 200, 10):
                    await cl.put(f"fill/{k}", "x")

            async with trio.open_nursery() as nursery:
                for lo in range(10):
                    nursery.start_soon(fill, lo)
        c.members[follower].start()
        c.members[follower].wait_ready()
        fol = c.members[follower].endpoint
        async with trikv.connect([fol]) as cl:
            with trio.fail_after(20):
                while (await cl.get("fill/", prefix=True, count_only=True, serializable=True)).count < 200:
                    await trio.sleep(0.2)
            assert "installing snapshot" in c.members[follower].log_text()
            fid = (await cl.status()).header.member_id
            code, _, err = await actl(c.endpoints, "move-leader", f"{fid:x}")
            assert code == 0, err
            with trio.fail_after(10):
                while (await cl.status()).leader != fid:
                    await trio.sleep(0.1)
            rev = (await cl.get("b3")).header.revision
            revoked = await cl.revoke(lid)
            assert revoked.header.revision == rev + 1
            left = await cl.get("", from_key=True, keys_only=True)
            keys = {kv.key for kv in left.kvs}
            assert {b"b3", b"a1", b"a2"} <= keys and not keys & {b"b1", b"b2"}
            assert len([k for k in keys if k.startswith(b"fill/")]) == 200
    finally:
        c.stop()


TXN = 'create("race") = "0"\n\nput race {who}\n\nget race\n\n'
PROMPTS = (
    "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"  # etcdctl txn -i
)


async def test_twenty_way_create_if_absent_race(cluster: Cluster) -> None:
    await find_leader(cluster)
    eps = cluster.endpoints
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            ctl_argv([eps[i % 3]], "txn", *(["-i"] if i % 2 else [])),  # half of them interactive
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(20)
    ]
    try:
        await trio.sleep(2.0)  # every process is up and blocked reading its stdin
        assert all(p.poll() is None for p in procs), "a txn process did not wait for its input"
        for i, p in enumerate(procs):  # released together: nothing to read until now
            assert p.stdin is not None
            p.stdin.write(TXN.format(who=f"p{i}"))
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        outs = []
        for p in procs:
            assert p.stdout is not None and p.stderr is not None
            out = await trio.to_thread.run_sync(p.stdout.read)
            err = await trio.to_thread.run_sync(p.stderr.read)
            code = await trio.to_thread.run_sync(lambda p=p: p.wait(30))
            if p.args[-1] == "-i":
                assert out.startswith(PROMPTS), out
                out = out.removeprefix(PROMPTS)
            outs.append((code, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(code == 0 for code, _, _ in outs), outs
    winners = [i for i, (_, out, _) in enumerate(outs) if out.startswith("SUCCESS\n")]
    losers = [out for _, out, _ in outs if out.startswith("FAILURE\n")]
    assert len(winners) == 1 and len(losers) == 19, outs
    assert outs[winners[0]][1] == "SUCCESS\n\nOK\n"
    assert all(out == f"FAILURE\n\nrace\np{winners[0]}\n" for out in losers)
    assert await actl(eps, "get", "race", "--print-value-only") == (0, f"p{winners[0]}\n", "")

    # the same race with 20 tasks of the Python client
    async with trikv.connect(eps) as c:
        wins: list[int] = []

        async def contend(i: int) -> None:
            t = c.txn().if_(trikv.create_revision("race2") == 0).then(trikv.put_op("race2", f"t{i}"))
            if (await t.else_(trikv.get_op("race2")).commit()).succeeded:
                wins.append(i)

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(contend, i)
        assert len(wins) == 1
        assert (await c.get("race2")).kvs[0].value == f"t{wins[0]}".encode()


async def test_trikvctl_lease_commands(cluster: Cluster) -> None:
    await find_leader(cluster)
    eps = cluster.endpoints
    code, out, _ = await actl(eps, "lease", "grant", "60")
    assert code == 0 and out.startswith("lease ") and out.endswith(" granted with TTL(60s)\n")
    lid = out.split()[1]
    assert (await actl(eps, "put", "lk", "v", f"--lease={lid}"))[:2] == (0, "OK\n")
    code, out, _ = await actl(eps, "lease", "timetolive", lid, "--keys")
    assert code == 0 and out.startswith(f"lease {lid} granted with TTL(60s), remaining(")
    assert out.endswith("s), attached keys([lk])\n")
    code, out, _ = await actl(eps, "lease", "list")
    assert out == f"found 1 leases\n{lid}\n"
    code, out, _ = await actl(eps, "lease", "keep-alive", "--once", lid)
    assert (code, out) == (0, f"lease {lid} keepalived with TTL(60)\n")
    code, out, _ = await actl(eps, "lease", "keep-alive", "--once", lid, "-w", "json")
    doc = json.loads(out)
    assert doc["ID"] == int(lid, 16) and doc["TTL"] == 60 and doc["raft_term"] >= 1
    assert (await actl(eps, "lease", "revoke", lid))[:2] == (0, f"lease {lid} revoked\n")
    assert (await actl(eps, "get", "lk"))[:2] == (0, "")
    assert (await actl(eps, "lease", "timetolive", lid))[:2] == (0, f"lease {lid} already expired\n")
    code, out, _ = await actl(eps, "lease", "timetolive", lid, "-w", "json")
    doc = json.loads(out)
    assert (doc["ttl"], doc["granted-ttl"], doc["keys"]) == (-1, 0, None)
    code, _, err = await actl(eps, "lease", "revoke", lid)
    assert code == 1 and err.strip().endswith(
        "Error: failed to revoke lease (etcdserver: requested lease not found)"
    )
    code, _, err = await actl(eps, "lease", "keep-alive", "--once", lid)
    assert code == 2 and err.strip().endswith("Error: etcdserver: requested lease not found")
    code, out, _ = await actl(eps, "lease", "keep-alive", lid)
    assert (code, out) == (0, f"lease {lid} expired or revoked.\n")
    code, out, _ = await actl(eps, "lease", "grant", "0")
    assert code == 0 and out.endswith(" granted with TTL(2s)\n")
    t0 = time.monotonic()
    code, _, err = await actl(eps, "put", "k", "v", "--lease=zzz")
    assert code == 128 and "bad lease ID" in err and time.monotonic() - t0 < 10
