"""Acceptance (issue 12 part B), real member processes on 127.0.0.1:

- `trikvctl snapshot save` from a follower of a three-member cluster while writes go on -> `snapshot status`
  -> `snapshot restore` into a new single member -> it serves exactly the keys and revisions the cluster had
  at the snapshot's revision, under a new cluster id and membership; a flipped byte is refused;
- a follower stopped during ~20 MB of writes catches up by a streamed snapshot, with no election (the raft
  term is unchanged on every member); a soak variant moves ~200 MB;
- online defrag of every member (`trikvctl defrag --cluster`) shrinks the files after most keys were deleted
  and compacted; `trikvutl defrag` refuses a running member's data dir; the JSON gateway's defragment and
  snapshot answer as etcd's do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

import trikv
from trikv.api import rpc
from trikv.tools.localcluster import ROOT, Cluster, Member, free_ports

from .test_cluster import find_leader

pytestmark = pytest.mark.slow


def run_tool(tool: str, *argv: str, timeout: float = 120) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", f"trikv.tools.{tool}", *argv],
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def kv_tuples(resp: rpc.RangeResponse) -> list[tuple[bytes, bytes, int, int, int]]:
    return [(x.key, x.value, x.create_revision, x.mod_revision, x.version) for x in resp.kvs]


def restored_member(tmp_path: Path, data_dir: Path, name: str, cport: int, pport: int, token: str) -> Member:
    cfg = {
        "name": name,
        "data-dir": str(data_dir),
        "listen-client-urls": f"http://127.0.0.1:{cport}",
        "advertise-client-urls": f"http://127.0.0.1:{cport}",
        "listen-peer-urls": f"http://127.0.0.1:{pport}",
        "initial-advertise-peer-urls": f"http://127.0.0.1:{pport}",
        "initial-cluster": f"{name}=http://127.0.0.1:{pport}",
        "initial-cluster-token": token,
        "log-outputs": ["stderr"],
        "log-level": "info",
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Member(name, path, cport, pport, tmp_path / f"{name}.log")


async def test_save_from_a_follower_status_restore_serves_the_same_keys(
    cluster: Cluster, tmp_path: Path
) -> None:
    leader = await find_leader(cluster)
    follower = cluster.members[(leader + 1) % 3]
    snap = tmp_path / "backup.db"
    async with trikv.connect(cluster.endpoints) as cl:
        lease = await cl.grant(3600)  # a lease and its key travel in the snapshot too
        await cl.put("leased", "held", lease=lease.id)

        async def fill(lo: int) -> None:
            for i in range(lo, 400, 8):
                await cl.put(f"snap/{i:03d}", f"value-{i}" * 20)

        async with trio.open_nursery() as nursery:
            for lo in range(8):
                nursery.start_soon(fill, lo)
        for i in range(0, 400, 10):
            await cl.put(f"snap/{i:03d}", "updated")
        await cl.delete("snap/399")
        before = (await cl.get("snap/000")).header.revision

        # writes go on while the follower streams its snapshot
        stop = trio.Event()
        during = 0

        async def writer() -> None:
            nonlocal during
            while not stop.is_set():
                await cl.put(f"during/{during:05d}", "x" * 100)
                during += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            code, out, err = await trio.to_thread.run_sync(
                lambda: run_tool(
                    "trikvctl", f"--endpoints={follower.endpoint}", "snapshot", "save", str(snap)
                )
            )
            stop.set()
        assert (code, out) == (0, f"Snapshot saved at {snap}\n"), err
        assert during > 0 and not Path(f"{snap}.part").exists()
        assert snap.stat().st_size % 512 == 32  # the SHA-256 trailer

        code, out, err = run_tool("trikvctl", "snapshot", "status", str(snap), "-w", "json")
        assert code == 0, err
        status = json.loads(out)
        rev = status["revision"]
        assert rev >= before and status["totalSize"] == snap.stat().st_size - 32 and status["totalKey"] > 400
        code, out, _ = run_tool("trikvctl", "snapshot", "status", str(snap))
        assert out == f"{status['hash']:x}, {rev}, {status['totalKey']}, {out.split(', ')[3]}"
        want = await cl.get(b"\0", range_end=b"\0", revision=rev)
        original_cluster = want.header.cluster_id

    # a flipped byte is refused with etcd's hash error, and nothing is left behind
    bad = tmp_path / "bad.db"
    raw = bytearray(snap.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    bad.write_bytes(bytes(raw))
    cport, pport = free_ports(2)
    flags = [
        "--name=r1",
        f"--initial-cluster=r1=http://127.0.0.1:{pport}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{pport}",
        "--initial-cluster-token=restored",
    ]
    code, _, err = run_tool(
        "trikvctl", "snapshot", "restore", str(bad), f"--data-dir={tmp_path / 'bad'}", *flags
    )
    assert code == 1 and err.startswith("Error: expected sha256 ["), err
    assert not (tmp_path / "bad").exists()

    data = tmp_path / "restored"
    code, _, err = run_tool("trikvutl", "snapshot", "restore", str(snap), f"--data-dir={data}", *flags)
    assert code == 0, err
    member = restored_member(tmp_path, data, "r1", cport, pport, "restored")
    member.start()
    try:
        member.wait_ready()
        async with trikv.connect([member.endpoint]) as rl:
            with trio.fail_after(15):
                while (await rl.status()).leader == 0:
                    await trio.sleep(0.1)
            got = await rl.get(b"\0", range_end=b"\0")
            assert got.header.revision == rev
            assert kv_tuples(got) == kv_tuples(want)
            assert got.header.cluster_id != original_cluster
            members = (await rl.member_list()).members
            assert [(m.name, m.peer_urls) for m in members] == [("r1", (f"http://127.0.0.1:{pport}",))]
            ttl = await rl.time_to_live(lease.id, keys=True)
            assert ttl.ttl > 0 and ttl.granted_ttl == 3600 and ttl.keys == (b"leased",)
            assert lease.id in {x.id for x in (await rl.leases()).leases}
            # and it takes writes after the snapshot's revision
            put = await rl.put("after-restore", "yes")
            assert put.header.revision == rev + 1
    finally:
        member.kill()


async def _catch_up_by_streamed_snapshot(tmp_path: Path, keys: int, value_size: int) -> None:
    c = Cluster(tmp_path, overrides={"snapshot-count": 200, "log-level": "info"})
    c.start()
    try:
        leader = await find_leader(c)
        follower = (leader + 1) % 3
        terms: dict[int, int] = {}
        for i, m in enumerate(c.members):
            async with trikv.connect([m.endpoint]) as cl:
                terms[i] = (await cl.status()).raft_term
        c.members[follower].kill()
        live = [m.endpoint for i, m in enumerate(c.members) if i != follower]
        value = b"z" * value_size
        async with trikv.connect(live, request_timeout=30) as cl:

            async def fill(lo: int) -> None:
                for k in range(lo, keys, 8):
                    await cl.put(f"big/{k:06d}", value)

            async with trio.open_nursery() as nursery:
                for lo in range(8):
                    nursery.start_soon(fill, lo)
        c.members[follower].start()
        c.members[follower].wait_ready()
        async with trikv.connect([c.members[follower].endpoint]) as cl:
            with trio.fail_after(120):
                while (await cl.get("big/", prefix=True, count_only=True, serializable=True)).count != keys:
                    await trio.sleep(0.2)
        after: dict[int, int] = {}
        for i, m in enumerate(c.members):
            async with trikv.connect([m.endpoint]) as cl:
                after[i] = (await cl.status()).raft_term
        assert after == terms, f"an election happened: terms {terms} -> {after}"
        assert "streaming snapshot" in c.members[leader].log_text()
        assert "receiving snapshot" in c.members[follower].log_text()
        assert "installing snapshot" in c.members[follower].log_text()
    except BaseException:
        print(c.logs()[-20000:])
        raise
    finally:
        c.stop()


async def test_stopped_follower_catches_up_by_a_streamed_snapshot_without_an_election(tmp_path: Path) -> None:
    await _catch_up_by_streamed_snapshot(tmp_path, keys=400, value_size=50_000)  # ~20 MB


@pytest.mark.soak
async def test_streamed_snapshot_soak_200mb(tmp_path: Path) -> None:
    await _catch_up_by_streamed_snapshot(tmp_path, keys=2000, value_size=100_000)  # ~200 MB


async def test_online_defrag_of_every_member_and_the_gateway(cluster: Cluster) -> None:
    await find_leader(cluster)
    eps = f"--endpoints={cluster.endpoints[0]}"
    async with trikv.connect(cluster.endpoints) as cl:
        for i in range(300):
            await cl.put(f"frag/{i:03d}", b"f" * 2000)
        deleted = await cl.delete("frag/010", "frag/999")
        await cl.compact(deleted.header.revision, physical=True)
        await trio.sleep(1.0)  # every member's compactor and batches
        sizes = [(await cl.status(m.endpoint)).db_size for m in cluster.members]

    code, out, err = run_tool("trikvctl", eps, "defrag", "--cluster")
    assert code == 0, err
    assert sorted(out.splitlines()) == sorted(
        f"Finished defragmenting etcd member[http://{m.endpoint}]" for m in cluster.members
    )
    async with trikv.connect(cluster.endpoints) as cl:
        after = [(await cl.status(m.endpoint)).db_size for m in cluster.members]
        assert all(a < b / 2 for a, b in zip(after, sizes, strict=True)), (sizes, after)
        assert len((await cl.get("frag/", prefix=True)).kvs) == 10

    # the offline tool refuses a data dir a running member holds
    data_dir = yaml.safe_load(cluster.members[1].config_path.read_text())["data-dir"]
    code, out, _ = run_tool("trikvutl", "defrag", "--data-dir", data_dir)
    assert code == 1 and "in use by a running member" in out

    # etcd's JSON gateway: defragment, and the snapshot as newline-separated results
    port = cluster.members[0].client_port
    body = await trio.to_thread.run_sync(lambda: _post(port, "/v3/maintenance/defragment"))
    assert set(json.loads(body)) == {"header"}
    body = await trio.to_thread.run_sync(lambda: _post(port, "/v3/maintenance/snapshot"))
    results: list[dict[str, Any]] = [json.loads(line)["result"] for line in body.splitlines()]
    blobs = [base64.b64decode(r.get("blob", "")) for r in results]
    assert "remaining_bytes" not in results[-1] and len(blobs[-1]) == 32
    assert hashlib.sha256(b"".join(blobs[:-1])).digest() == blobs[-1]
    assert int(results[0]["remaining_bytes"]) == sum(map(len, blobs[1:]))


def _post(port: int, path: str) -> bytes:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=b"{}")
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        return resp.read()
    finally:
        conn.close()
