"""Acceptance: a prefix watcher on a real 3-member cluster sees every event of a write workload (puts,
deletes, multi-key txns from several clients) across a SIGKILL of the leader and of its own member; the
checker asserts ordered, unique, atomic, reliable and resumable, compares the state the events build with
a range at the final revision, and each acknowledged write's revision with its event's."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

import trikv
from tests.cluster.test_cluster import find_leader
from trikv.api import errors, rpc
from trikv.api.watch import Event, EventType
from trikv.tools.localcluster import Cluster
from trikv.watches import WatchCompactedError

pytestmark = pytest.mark.slow

PREFIX = b"acc/"
WRITES = 10_000
WRITERS = 8
KEYS = 64


@dataclass
class Acked:
    """What the writers were told: (key, revision, value) of acknowledged puts, (key, revision) of deletes
    that deleted something."""

    puts: list[tuple[bytes, int, bytes]] = field(default_factory=list)
    deletes: list[tuple[bytes, int]] = field(default_factory=list)
    done: int = 0
    in_doubt: int = 0


async def writer(endpoints: list[str], n: int, seed: int, acked: Acked) -> None:
    rng = random.Random(seed)
    async with trikv.connect(endpoints, request_timeout=10) as cl:
        for i in range(n):
            k = PREFIX + b"%02d" % rng.randrange(KEYS)
            try:
                r = rng.random()
                if r < 0.15:
                    resp = await cl.delete(k)
                    if resp.deleted:
                        acked.deletes.append((k, resp.header.revision))
                elif r < 0.3:
                    k2 = PREFIX + b"t%02d" % rng.randrange(KEYS)
                    v = b"txn-%d-%d" % (seed, i)
                    txn = await cl.txn().then(rpc.PutRequest(k, v), rpc.PutRequest(k2, v)).commit()
                    acked.puts += [(k, txn.header.revision, v), (k2, txn.header.revision, v)]
                else:
                    v = b"v-%d-%d" % (seed, i)
                    put = await cl.put(k, v)
                    acked.puts.append((k, put.header.revision, v))
            except (errors.TrikvError, trio.TooSlowError):
                acked.in_doubt += 1
                await trio.sleep(0.05)
            acked.done += 1


def check(events: list[Event], final: rpc.RangeResponse, acked: Acked, first_rev: int) -> list[str]:
    problems: list[str] = []
    keys = [(ev.kv.mod_revision, ev.kv.key) for ev in events]
    if keys != sorted(keys):
        problems.append("ordered: events out of revision order")
    if len(set(keys)) != len(keys):
        problems.append("unique: an event delivered twice")
    revs = sorted({ev.kv.mod_revision for ev in events})
    want_revs = list(range(first_rev, final.header.revision + 1))
    if revs != want_revs:  # every write is under the prefix: no revision may be missing
        missing = sorted(set(want_revs) - set(revs))[:10]
        problems.append(f"reliable: revisions missing {missing} (of {len(want_revs)})")
    state: dict[bytes, rpc.KeyValue] = {}
    for ev in events:
        if ev.type == EventType.PUT:
            state[ev.kv.key] = ev.kv
        else:
            state.pop(ev.kv.key, None)
    if sorted(state.values(), key=lambda kv: kv.key) != list(final.kvs):
        problems.append(
            "reliable: the state built from the events differs from a range at the final revision"
        )
    seen = {(ev.kv.key, ev.kv.mod_revision): ev for ev in events}
    for key, rev, value in acked.puts:
        ev = seen.get((key, rev))
        if ev is None or ev.type != EventType.PUT or ev.kv.value != value:
            problems.append(f"acknowledged put {key!r} at {rev} has no matching event")
            break
    for key, rev in acked.deletes:
        ev = seen.get((key, rev))
        if ev is None or ev.type != EventType.DELETE:
            problems.append(f"acknowledged delete {key!r} at {rev} has no matching event")
            break
    return problems


async def test_a_prefix_watcher_sees_every_event_across_sigkills(cluster: Cluster) -> None:
    leader = await find_leader(cluster)
    mine = next(i for i in range(3) if i != leader)  # the watcher's member, a follower
    order = [mine] + [i for i in range(3) if i != mine]
    endpoints = [cluster.members[i].endpoint for i in order]
    acked = Acked()
    events: list[Event] = []
    async with trikv.connect(endpoints) as cl, trio.open_nursery() as nursery:
        async with cl.watch(PREFIX, prefix=True, start_revision=1) as stream:

            async def consume() -> None:
                async for ev in stream:
                    events.append(ev)

            nursery.start_soon(consume)
            async with trio.open_nursery() as writers:
                for w in range(WRITERS):
                    writers.start_soon(writer, cluster.endpoints, WRITES // WRITERS, w, acked)
                with trio.fail_after(120):
                    while acked.done < WRITES // 3:
                        await trio.sleep(0.05)
                    cluster.members[leader].kill()  # the leader dies
                    await trio.sleep(1.0)
                    cluster.members[leader].start()
                    await trio.to_thread.run_sync(cluster.members[leader].wait_ready)
                    while acked.done < 2 * WRITES // 3:
                        await trio.sleep(0.05)
                    cluster.members[mine].kill()  # the watcher's own member dies
                    await trio.sleep(1.0)
                    cluster.members[mine].start()
                    await trio.to_thread.run_sync(cluster.members[mine].wait_ready)
            final = await cl.get(PREFIX, prefix=True)
            with trio.fail_after(30):
                while not events or events[-1].kv.mod_revision < final.header.revision:
                    await trio.sleep(0.05)
            assert stream.resumes >= 1, "the watcher never had to resume"
            assert stream.split_revisions == 0, "atomic: a revision split across responses"
            nursery.cancel_scope.cancel()
    assert acked.in_doubt < WRITES // 10
    assert check(events, final, acked, 2) == []


async def test_compacted_start_raises_the_typed_error(cluster: Cluster) -> None:
    async with trikv.connect(cluster.endpoints) as cl:
        for i in range(5):
            await cl.put(b"c/%d" % i, b"v")
        rev = (await cl.put(b"c/last", b"v")).header.revision
        await cl.compact(rev - 2)
        # compact() returns once the member that served it applied the compaction; a watch served by a
        # member that has not applied it yet rightly streams revision 2 on (etcd's rule too): wait for all
        for ep in cluster.endpoints:
            async with trikv.connect([ep]) as one:
                with trio.fail_after(10):
                    while True:
                        try:
                            await one.get(b"c/0", revision=1, serializable=True)
                        except errors.CompactedError:
                            break
                        await trio.sleep(0.01)
        with pytest.raises(WatchCompactedError) as info:
            async with cl.watch(b"c/", prefix=True, start_revision=2) as stream:
                with trio.fail_after(10):
                    async for _ in stream:
                        pass
        assert info.value.compact_revision == rev - 2
        assert str(info.value) == "etcdserver: mvcc: required revision has been compacted"


async def test_gateway_watch_serves_curl_and_etcd3gw(cluster: Cluster) -> None:
    import etcd3gw

    member = cluster.members[0]
    curl = subprocess.Popen(
        [
            "curl",
            "-s",
            "-N",
            "-X",
            "POST",
            f"http://{member.endpoint}/v3/watch",
            "-d",
            '{"create_request":{"key":"Zm9v"}}',
        ],
        stdout=subprocess.PIPE,
    )
    gw = etcd3gw.client(host="127.0.0.1", port=member.client_port, timeout=10)
    events_iter, cancel = await trio.to_thread.run_sync(lambda: gw.watch_prefix("fo"))
    try:
        await trio.sleep(1.0)  # both watches are created
        async with trikv.connect(cluster.endpoints) as cl:
            put = await cl.put("foo", "viawatch")
        got = await trio.to_thread.run_sync(lambda: next(events_iter))
        assert (got["kv"]["key"], got["kv"]["value"]) == (b"foo", b"viawatch")
        assert int(got["kv"]["mod_revision"]) == put.header.revision
        await trio.sleep(0.5)
    finally:
        cancel()
        curl.terminate()
    out, _ = curl.communicate(timeout=10)
    lines = out.decode().splitlines()
    created, event = (json.loads(line)["result"] for line in lines[:2])
    assert created["created"] is True and created["header"]["revision"] == str(put.header.revision - 1)
    assert event["events"] == [
        {
            "kv": {
                "key": "Zm9v",
                "create_revision": event["events"][0]["kv"]["create_revision"],
                "mod_revision": str(put.header.revision),
                "version": "1",
                "value": "dmlhd2F0Y2g=",
            }
        }
    ]
    # etcd 3.4 also serves the gateway under /v3beta/, and /version names an etcd 3.4 API
    async with trikv.connect([member.endpoint]) as cl:
        await cl.put("bar", "x")
    out = subprocess.run(
        ["curl", "-s", "-X", "POST", f"http://{member.endpoint}/v3beta/kv/range", "-d", '{"key":"YmFy"}'],
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(out)["kvs"][0]["value"] == "eA=="
    version = json.loads(
        subprocess.run(["curl", "-s", f"http://{member.endpoint}/version"], capture_output=True).stdout
    )
    assert version["etcdserver"].startswith("3.4.") and "trikv" in version


FIXTURE = Path(__file__).parent.parent / "fixtures" / "etcdctl_watch.md"


def _section(name: str) -> str:
    text = FIXTURE.read_text()
    body = text.split(f"## {name}\n```\n", 1)[1]
    return body.split("```", 1)[0]


def _normalize_json(line: str, base: int) -> dict[str, object]:
    """A watch JSON line with ids dropped and revisions made relative to the first put's."""
    obj = json.loads(line)
    obj["Header"] = {"revision": obj["Header"]["revision"] - base}
    for ev in obj["Events"]:
        for kv in (ev["kv"], ev.get("prev_kv") or {}):
            for name in ("create_revision", "mod_revision"):
                if name in kv:
                    kv[name] -= base
    return obj


async def test_trikvctl_watch_prints_like_etcdctl(cluster: Cluster) -> None:
    eps = ",".join(cluster.endpoints)
    async with trikv.connect(cluster.endpoints) as cl:
        start = (await cl.get("foo")).header.revision + 1  # whenever a watcher is up, it starts here
    ctl = [sys.executable, "-m", "trikv.tools.trikvctl", f"--endpoints={eps}", "watch", "foo", "--prefix"]
    ctl.append(f"--rev={start}")
    procs = [
        subprocess.Popen([*ctl, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for extra in ([], ["-w", "json"], ["--prev-kv"])
    ]
    try:
        await trio.sleep(1.0)
        async with trikv.connect(cluster.endpoints) as cl:
            first = (await cl.put("foo", "a")).header.revision
            await cl.put("foo/bar", "b")
            await cl.put("foo", "a2")
            await cl.put("other", "z")
            await cl.delete("foo")
            await cl.delete("foo", prefix=True)
        await trio.sleep(3.0)  # every watcher is up and has printed
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)  # Ctrl-C
    outs = [p.communicate(timeout=10) for p in procs]
    assert [p.returncode for p in procs] == [-signal.SIGINT] * 3  # died by SIGINT: the shell shows 130
    assert all(b"Traceback" not in err for _, err in outs), outs
    assert outs[0][0].decode() == _section("simple")
    assert outs[2][0].decode() == _section("prev-kv")
    # A watcher up late gets the history in one response (as etcdctl's does): compare the events and shapes.
    base = json.loads(_section("json").splitlines()[0])["Header"]["revision"]
    want = [_normalize_json(line, base) for line in _section("json").splitlines()]
    got = [_normalize_json(line, first) for line in outs[1][0].decode().splitlines()]
    assert [ev for r in got for ev in r["Events"]] == [ev for r in want for ev in r["Events"]]
    assert {tuple(r) for r in got} == {("Header", "Events", "CompactRevision", "Canceled", "Created")}
    assert all((r["CompactRevision"], r["Canceled"], r["Created"]) == (0, False, False) for r in got)
    # compacted: etcdctl's two lines and exit 5
    async with trikv.connect(cluster.endpoints) as cl:
        rev = (await cl.put("foo", "later")).header.revision
        await cl.compact(rev)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trikv.tools.trikvctl",
            f"--endpoints={eps}",
            "watch",
            "foo",
            f"--rev={first}",
        ],
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 5
    assert proc.stdout == b""
    assert proc.stderr.decode() == _section(
        "compacted (`watch foo --rev=10` after `compaction --physical 32`), exit 5"
    )
