"""Acceptance: real member processes on 127.0.0.1 form a cluster from configs/node*.yaml, survive SIGKILL,
keep clusters with different tokens apart, and refuse bad input without falling over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
import trio_websocket
import yaml

import trikv
from trikv.api import codec, errors, protocol, rpc
from trikv.tools.localcluster import CONFIGS, ROOT, Cluster, free_ports, wait_port

pytestmark = pytest.mark.slow


async def find_leader(c: Cluster, timeout: float = 10.0) -> int:
    """Index of the member that reports itself leader (every live member agreeing)."""
    deadline = trio.current_time() + timeout
    while trio.current_time() < deadline:
        leaders = set()
        ids: dict[int, int] = {}
        for i, m in enumerate(c.members):
            if not m.alive:
                continue
            try:
                async with trikv.connect([m.endpoint], dial_timeout=1) as cl:
                    with trio.fail_after(1):
                        st = await cl.status()
            except (OSError, errors.TrikvError, trio.TooSlowError):
                continue
            ids[st.header.member_id] = i
            leaders.add(st.leader)
        if len(leaders) == 1 and 0 not in leaders and next(iter(leaders)) in ids:
            return ids[next(iter(leaders))]
        await trio.sleep(0.1)
    raise AssertionError(f"no leader within {timeout}s\n{c.logs()}")


async def test_three_members_replicate_and_read_linearizably(cluster: Cluster) -> None:
    leader = await find_leader(cluster)
    followers = [i for i in range(3) if i != leader]
    # A put through a follower is read back at once through the other follower and the leader.
    async with trikv.connect([cluster.members[followers[0]].endpoint]) as c0:
        resp = await c0.put("k1", "v1")
        assert resp.header.revision >= 2
    for i in (followers[1], leader, followers[0]):
        async with trikv.connect([cluster.members[i].endpoint]) as c:
            got = await c.get("k1")
            assert [(kv.key, kv.value) for kv in got.kvs] == [(b"k1", b"v1")], f"member {i}"
            assert got.header.revision == resp.header.revision
    # Each write immediately visible through a different member (linearizable reads).
    for n in range(10):
        async with trikv.connect([cluster.members[n % 3].endpoint]) as w:
            await w.put(f"seq{n}", str(n))
        async with trikv.connect([cluster.members[(n + 1) % 3].endpoint]) as r:
            got = await r.get(f"seq{n}")
            assert got.kvs and got.kvs[0].value == str(n).encode()

    # Two of three down: the survivor has no quorum. Linearizable reads fail, serializable ones answer.
    survivor = followers[0]
    for i in range(3):
        if i != survivor:
            cluster.members[i].kill()
    async with trikv.connect([cluster.members[survivor].endpoint], dial_timeout=2) as c:
        with pytest.raises((errors.NoLeaderError, errors.TimeoutError_, errors.UnavailableError)):
            with trio.fail_after(30):
                await c.get("k1")
        got = await c.get("k1", serializable=True)
        assert got.kvs[0].value == b"v1"


async def put_with_retry(endpoints: list[str], key: str, value: str, deadline: float) -> None:
    while True:
        try:
            async with trikv.connect(endpoints, dial_timeout=0.5) as c:
                with trio.fail_after(2):
                    await c.put(key, value)
            return
        except (OSError, errors.TrikvError, trio.TooSlowError):
            if trio.current_time() > deadline:
                raise
            await trio.sleep(0.05)


async def test_leader_sigkill_failover_and_catch_up(cluster: Cluster) -> None:
    leader = await find_leader(cluster)
    async with trikv.connect(cluster.endpoints) as c:
        for n in range(20):
            await c.put(f"before{n}", "x")
    survivors = [m.endpoint for i, m in enumerate(cluster.members) if i != leader]
    cluster.members[leader].kill()
    killed_at = trio.current_time()
    await put_with_retry(survivors, "after-failover", "yes", killed_at + 30)
    took = trio.current_time() - killed_at
    print(f"failover: first acknowledged put {took:.2f} s after SIGKILL of the leader")
    assert took < 5.0, f"failover took {took:.2f}s"

    # The killed member restarts and catches up (serializable read on it sees the new write).
    cluster.members[leader].start()
    cluster.members[leader].wait_ready()
    async with trikv.connect([cluster.members[leader].endpoint]) as c:
        with trio.fail_after(15):
            while True:
                got = await c.get("after-failover", serializable=True)
                if got.kvs:
                    break
                await trio.sleep(0.1)
        assert got.kvs[0].value == b"yes"
        assert (await c.get("before", prefix=True, count_only=True, serializable=True)).count == 20


async def test_sigkill_all_members_during_writes_loses_nothing_acknowledged(cluster: Cluster) -> None:
    await find_leader(cluster)
    acked: dict[str, str] = {}

    async def writer(w: int) -> None:
        endpoint = cluster.members[w % 3].endpoint
        n = 0
        try:
            async with trikv.connect([endpoint], dial_timeout=1) as c:
                while True:
                    key, value = f"w{w}/{n:06d}", f"v{w}-{n}"
                    await c.put(key, value)
                    acked[key] = value
                    n += 1
        except (OSError, errors.TrikvError, trio_websocket.ConnectionClosed, trio.TooSlowError):
            return

    async with trio.open_nursery() as nursery:
        for w in range(6):
            nursery.start_soon(writer, w)
        await trio.sleep(2.0)
        for m in cluster.members:  # all three, as fast as possible, while writes are in flight
            m.kill()
    assert len(acked) > 20, "the writers should have had acknowledgements before the kill"
    cluster.start()
    await find_leader(cluster, timeout=20)
    async with trikv.connect(cluster.endpoints) as c:
        got = await c.get("w", prefix=True)
    stored = {kv.key.decode(): kv.value.decode() for kv in got.kvs}
    missing = {k: v for k, v in acked.items() if stored.get(k) != v}
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"


async def test_cluster_with_another_token_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    await find_leader(cluster)
    # Cluster B: one new member whose initial-cluster names cluster A's peers, built with another token.
    b_client, b_peer = free_ports(2)
    names = {m.name: m.peer_port for m in cluster.members}
    cfg = {
        "name": "intruder",
        "data-dir": str(tmp_path / "intruder" / "data"),
        "listen-client-urls": f"http://127.0.0.1:{b_client}",
        "advertise-client-urls": f"http://127.0.0.1:{b_client}",
        "listen-peer-urls": f"http://127.0.0.1:{b_peer}",
        "initial-advertise-peer-urls": f"http://127.0.0.1:{b_peer}",
        "initial-cluster": ",".join(
            [f"intruder=http://127.0.0.1:{b_peer}"] + [f"{n}=http://127.0.0.1:{p}" for n, p in names.items()]
        ),
        "initial-cluster-state": "new",
        "initial-cluster-token": "cluster-b",
    }
    path = tmp_path / "intruder.yaml"
    path.write_text(yaml.safe_dump(cfg))
    logf = tmp_path / "intruder.log"
    with open(logf, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trikv.actors.main", "--config-file", str(path)],
            cwd=str(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        wait_port(b_client)
        await trio.sleep(4.0)  # several election timeouts
        async with trikv.connect([f"127.0.0.1:{b_client}"]) as c:
            st = await c.status()
            assert st.leader == 0, "the intruder must never get a leader"
        async with trikv.connect(cluster.endpoints) as c:
            members = await c.member_list()
            assert len(members.members) == 3
            assert (await c.put("still", "fine")).header.revision > 0
    finally:
        proc.kill()
        proc.wait()
    intruder_log = logf.read_text()
    a_logs = "\n".join(m.log_text() for m in cluster.members)
    assert "cluster ID mismatch" in a_logs, "cluster A must log the refusal"
    assert "refused our connection" in intruder_log and "cluster ID mismatch" in intruder_log


async def test_bad_client_frames_get_errors_and_node_keeps_serving(cluster: Cluster) -> None:
    await find_leader(cluster)
    url = f"ws://{cluster.members[0].endpoint}{protocol.WS_PATH}"
    async with trio_websocket.open_websocket_url(url, max_message_size=8 << 20) as ws:
        await ws.send_message(b"\xff\x00garbage")
        reply = protocol.decode_frame(await _binary(ws))
        assert reply[0][0] == 0 and reply[0][1] == protocol.ERR
        await ws.send_message(codec.encode([[7, "no_such_op", rpc.PutRequest(b"k")]]))
        reply = protocol.decode_frame(await _binary(ws))
        assert reply[0][:2] == [7, protocol.ERR]
        big = rpc.PutRequest(b"big", b"a" * 1_600_000)
        await ws.send_message(protocol.encode_frame([[8, "put", big]]))
        reply = protocol.decode_frame(await _binary(ws))
        assert reply[0][:2] == [8, protocol.ERR]
        assert reply[0][2]["message"] == "etcdserver: request is too large"
        ok = rpc.PutRequest(b"big", b"a" * 1_500_000)
        await ws.send_message(protocol.encode_frame([[9, "put", ok]]))
        reply = protocol.decode_frame(await _binary(ws))
        assert reply[0][:2] == [9, protocol.OK]
    async with trikv.connect(cluster.endpoints) as c:
        got = await c.get("big")
        assert len(got.kvs[0].value) == 1_500_000
    assert all(m.alive for m in cluster.members)


async def _binary(ws: trio_websocket.WebSocketConnection) -> bytes:
    msg = await ws.get_message()
    assert isinstance(msg, bytes), "the server answers in binary frames"
    return msg


def _run(args: list[str], cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: [unclosed\n", "yaml"),
        ('name: x\nlog-outputs:- "stderr"\n', "yaml"),
        ("name: x\nno-such-key: 1\n", "no-such-key"),
        ("name: x\nlisten-client-urls: 'htp://127.0.0.1:1'\n", "listen-client-urls"),
        ("name: x\ninitial-cluster: 'y=http://127.0.0.1:2380'\n", '"x"'),
        ("name: x\nheartbeat-interval: 100\nelection-timeout: 200\n", "election-timeout"),
    ],
)
def test_bad_config_file_is_one_clear_line_and_exit_1(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    res = _run(["-m", "trikv.actors.main", "--config-file", str(path)], tmp_path)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert needle.lower() in lines[0].lower()
    assert "Traceback" not in res.stderr


def test_unreadable_config_file(tmp_path: Path) -> None:
    res = _run(["-m", "trikv.actors.main", "--config-file", str(tmp_path / "missing.yaml")], tmp_path)
    assert res.returncode == 1 and "missing.yaml" in res.stderr and "Traceback" not in res.stderr


def test_seed_configs_parse_but_are_never_started() -> None:
    from trikv.actors.config import config_from_file

    for f in sorted(CONFIGS.glob("node*.yaml")):
        cfg = config_from_file(f)
        assert all("127.0.0.1" in u for u in cfg.listen_client_urls)


def test_default_single_node_as_in_readme(tmp_path: Path) -> None:
    """`trikv` with no flags, then `trikvctl put foo bar` and `trikvctl get foo` (the README's first steps)."""
    for port in (2379, 2380):
        import socket

        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                # etcd's default ports taken by something else: only a developer's machine may skip this.
                if os.environ.get("CI") == "true":
                    pytest.fail(f"port {port} is in use on the CI machine")
                pytest.skip(f"port {port} is in use on this machine")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trikv.actors.main"],
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "default.log", "wb"),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_port(2379)
        deadline = time.monotonic() + 15
        while True:
            res = _run(["-m", "trikv.tools.trikvctl", "put", "foo", "bar"], tmp_path)
            if res.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert res.returncode == 0, res.stderr
        assert res.stdout == "OK\n"
        res = _run(["-m", "trikv.tools.trikvctl", "get", "foo"], tmp_path)
        assert (res.returncode, res.stdout) == (0, "foo\nbar\n")
        assert (tmp_path / "default.trikv" / "member" / "snap" / "db").exists()
        assert (tmp_path / "default.trikv" / "member" / "wal").is_dir()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C in the README's terminal
        assert proc.wait(20) == 0
    assert "Traceback" not in (tmp_path / "default.log").read_text()


async def test_follower_far_behind_catches_up_from_a_snapshot(tmp_path: Path) -> None:
    """With a small snapshot-count the leader compacts its log; a restarted follower gets the page file."""
    c = Cluster(tmp_path, overrides={"snapshot-count": 100, "log-level": "info"})
    c.start()
    try:
        leader = await find_leader(c)
        follower = (leader + 1) % 3
        c.members[follower].kill()
        live = [m.endpoint for i, m in enumerate(c.members) if i != follower]
        async with trikv.connect(live) as cl:

            async def fill(lo: int) -> None:
                for k in range(lo, 600, 16):
                    await cl.put(f"snap/{k:04d}", str(k))

            async with trio.open_nursery() as nursery:
                for lo in range(16):
                    nursery.start_soon(fill, lo)
        c.members[follower].start()
        c.members[follower].wait_ready()
        async with trikv.connect([c.members[follower].endpoint]) as cl:
            with trio.fail_after(20):
                while True:
                    got = await cl.get("snap/", prefix=True, count_only=True, serializable=True)
                    if got.count == 600:
                        break
                    await trio.sleep(0.2)
            got = await cl.get("snap/0599", serializable=True)
            assert got.kvs[0].value == b"599"
        assert "installing snapshot" in c.members[follower].log_text()
        assert "saved snapshot" in c.members[leader].log_text()
    finally:
        c.stop()


async def test_sigterm_on_leader_hands_leadership_over(cluster: Cluster) -> None:
    leader = await find_leader(cluster)
    code = cluster.members[leader].terminate()
    assert code == 0
    log_text = cluster.members[leader].log_text()
    assert "leadership transfer starting" in log_text and "leadership transfer finished" in log_text
    assert "Traceback" not in log_text
    others = [m.endpoint for i, m in enumerate(cluster.members) if i != leader]
    t0 = trio.current_time()
    await put_with_retry(others, "after-sigterm", "ok", t0 + 10)
    # With a handover there is no election timeout to wait for.
    assert trio.current_time() - t0 < 3.0


async def test_compaction_through_raft_on_every_member(cluster: Cluster) -> None:
    await find_leader(cluster)
    async with trikv.connect(cluster.endpoints) as c:
        revs = [(await c.put("hist", f"v{i}")).header.revision for i in range(5)]
        await c.compact(revs[2])
        with pytest.raises(errors.CompactedError):
            await c.get("hist", revision=revs[1])
        at = await c.get("hist", revision=revs[2])
        assert at.kvs[0].value == b"v2"
        with pytest.raises(errors.FutureRevError):
            await c.get("hist", revision=revs[-1] + 100)
        with pytest.raises(errors.CompactedError):
            await c.compact(revs[1])
    for m in cluster.members:  # the compaction is a Raft entry: every member applied it
        async with trikv.connect([m.endpoint]) as c:
            with pytest.raises(errors.CompactedError):
                await c.get("hist", revision=revs[1], serializable=True)
            assert (await c.get("hist", serializable=True)).kvs[0].value == b"v4"


async def test_member_add_then_join_with_initial_cluster_state_existing(tmp_path: Path) -> None:
    """configs/node3.yaml (state `existing`) joins after `member add`; it learns the membership from a peer."""
    files = [CONFIGS / f"node{i}.yaml" for i in range(4)]
    c = Cluster(tmp_path, config_files=files, overrides={"log-level": "info"})
    founders, joiner = c.members[:3], c.members[3]
    for m in founders:
        m.start()
    for m in founders:
        m.wait_ready()
    try:
        c.members = founders
        await find_leader(c)
        async with trikv.connect([m.endpoint for m in founders]) as cl:
            await cl.put("before-join", "1")
            added = await cl.member_add([f"http://127.0.0.1:{joiner.peer_port}"])
            assert len(added.members) == 4
            assert added.member.name == "" and not added.member.client_urls  # not started yet
            with pytest.raises(errors.PeerURLExistError):
                await cl.member_add([f"http://127.0.0.1:{joiner.peer_port}"])
        joiner.start()
        joiner.wait_ready()
        c.members = [*founders, joiner]
        async with trikv.connect([joiner.endpoint]) as cl:
            with trio.fail_after(20):
                while not (await cl.get("before-join", serializable=True)).kvs:
                    await trio.sleep(0.1)
            # Published through Raft: every member sees the joiner's name and client URL.
            with trio.fail_after(10):
                while True:
                    members = {m.id: m for m in (await cl.member_list()).members}
                    me = members[added.member.id]
                    if me.name == joiner.name:
                        break
                    await trio.sleep(0.1)
            assert me.client_urls == (f"http://127.0.0.1:{joiner.client_port}",)
            # The joiner is a voter: a write through it commits and is read back linearizably.
            await cl.put("after-join", "2")
            assert (await cl.get("after-join")).kvs[0].value == b"2"
        # Remove it again: the removed member stops on its own, the others carry on with three.
        async with trikv.connect([m.endpoint for m in founders]) as cl:
            left = await cl.member_remove(added.member.id)
            assert len(left.members) == 3
            await cl.put("after-remove", "3")
        joiner.proc.wait(15)  # type: ignore[union-attr]
    finally:
        for m in [*founders, joiner]:
            m.kill()


async def test_member_killed_before_its_bootstrap_was_persisted_restarts(tmp_path: Path) -> None:
    """SIGKILL between creating the WAL and persisting the bootstrap entries must not leave a member
    that cannot start: a WAL holding only its metadata is bootstrapped again with the same ids."""
    from trikv.actors.config import config_from_file
    from trikv.api.records import WalMetadata
    from trikv.storage.files import OsFileSystem
    from trikv.storage.wal import WAL

    m = Cluster(tmp_path, config_files=[CONFIGS / "node0.yaml"]).members[0]  # a one-member cluster
    cfg = config_from_file(m.config_path)
    fs = OsFileSystem()
    fs.makedirs(str(cfg.wal_dir.parent))
    WAL.create(fs, str(cfg.wal_dir), WalMetadata(cfg.cluster_id, cfg.member_id)).close()
    m.start()
    try:
        m.wait_ready()
        async with trikv.connect([m.endpoint]) as cl:
            with trio.fail_after(10):
                while True:
                    try:
                        await cl.put("alive", "yes")
                        break
                    except errors.UnavailableError:
                        await trio.sleep(0.1)
            assert (await cl.get("alive")).kvs[0].value == b"yes"
            st = await cl.status()
            assert st.header.member_id == cfg.member_id and st.header.cluster_id == cfg.cluster_id
    finally:
        m.kill()


async def test_page_file_of_another_cluster_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    import shutil

    from trikv.actors.config import config_from_file

    a = Cluster(tmp_path / "a", config_files=[CONFIGS / "node0.yaml"]).members[0]
    b = Cluster(tmp_path / "b", config_files=[CONFIGS / "node0.yaml"], token="another-token").members[0]
    for m in (a, b):
        m.start()
        m.wait_ready()
        async with trikv.connect([m.endpoint]) as cl:
            with trio.fail_after(10):
                while True:
                    try:
                        await cl.put("k", m.name)
                        break
                    except errors.UnavailableError:
                        await trio.sleep(0.1)
        assert m.terminate() == 0
    db_a, db_b = config_from_file(a.config_path).db_path, config_from_file(b.config_path).db_path
    shutil.copyfile(db_b, db_a)
    a.start()
    assert a.proc is not None and a.proc.wait(20) == 1
    lines = [ln for ln in a.log_text().splitlines() if ln.startswith("trikv:")]
    assert lines and "belongs to cluster" in lines[-1] and str(db_a) in lines[-1]


def test_taken_client_port_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    m = Cluster(tmp_path, config_files=[CONFIGS / "node0.yaml"]).members[0]
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", m.client_port))
        s.listen()
        m.start()
        assert m.proc is not None and m.proc.wait(20) == 1
    text = m.log_text()
    assert "Traceback" not in text
    line = [ln for ln in text.splitlines() if ln.startswith("trikv:")][-1]
    assert f"127.0.0.1:{m.client_port}" in line and "address already in use" in line, line
    import yaml

    data_dir = m.config_path.parent / yaml.safe_load(m.config_path.read_text())["data-dir"]
    assert not data_dir.exists(), "a refused start must leave no half-initialised data dir"


async def test_corrupt_wal_is_refused_with_file_and_offset(tmp_path: Path) -> None:
    from trikv.actors.config import config_from_file

    m = Cluster(tmp_path, config_files=[CONFIGS / "node0.yaml"]).members[0]
    m.start()
    m.wait_ready()
    async with trikv.connect([m.endpoint]) as cl:
        with trio.fail_after(10):
            while True:
                try:
                    await cl.put("k0", "v")
                    break
                except errors.UnavailableError:
                    await trio.sleep(0.1)
        for i in range(50):
            await cl.put(f"k{i}", "v" * 100)
    m.kill()
    wal_dir = config_from_file(m.config_path).wal_dir
    seg = sorted(p for p in wal_dir.iterdir() if p.suffix == ".wal")[0]
    data = bytearray(seg.read_bytes())
    used = len(data.rstrip(b"\0"))
    data[used // 2] ^= 0xFF  # a flipped byte in the middle, valid records after it
    seg.write_bytes(bytes(data))
    m.start()
    assert m.proc is not None and m.proc.wait(20) == 1
    line = [ln for ln in m.log_text().splitlines() if ln.startswith("trikv:")][-1]
    assert "corrupt" in line and seg.name in line


async def test_etcd_json_gateway_on_a_real_cluster(cluster: Cluster) -> None:
    """etcd's /v3 JSON gateway: a put through one member is read back through another, and the reference's
    load generator (etcd_load.py, standard library only) runs against the cluster without errors."""
    import base64
    import http.client
    import json

    await find_leader(cluster)

    def post(endpoint: str, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        host, port = endpoint.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", path, json.dumps(body))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())

    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    st, put = await trio.to_thread.run_sync(
        post, cluster.endpoints[0], "/v3/kv/put", {"key": b64(b"gw"), "value": b64(b"json")}
    )
    assert st == 200 and int(put["header"]["revision"]) >= 2  # type: ignore[index]
    st, got = await trio.to_thread.run_sync(post, cluster.endpoints[1], "/v3/kv/range", {"key": b64(b"gw")})
    assert st == 200 and got["count"] == "1"
    assert got["kvs"][0]["value"] == b64(b"json")  # type: ignore[index]
    st, err = await trio.to_thread.run_sync(post, cluster.endpoints[2], "/v3/kv/put", {"key": ""})
    assert st == 400 and err["message"] == "etcdserver: key is not provided" and err["code"] == 3

    load = ROOT / "tests" / "fixtures" / "etcd_load.py.txt"  # the reference's load tool, copied verbatim
    res = await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [
                sys.executable,
                str(load),
                "--endpoints",
                ",".join(cluster.endpoints),
                "--op",
                "put",
                "--procs",
                "1",
                "--clients",
                "4",
                "--duration",
                "2",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0 and summary["ops"] > 0


async def test_malformed_peer_input_never_stops_a_member(cluster: Cluster) -> None:
    """A peer link that passes the hello check but sends garbage frames, or a forwarded proposal whose
    entry is not a request, is dropped and logged; nothing malformed reaches the log, every member serves."""
    from trikv.actors.peerwire import PEER_PATH
    from trikv.api.internal import PeerHello, PeerHelloReply
    from trikv.api.raftpb import Message, MessageType
    from trikv.api.records import Entry

    leader = await find_leader(cluster)
    async with trikv.connect([cluster.members[leader].endpoint]) as c:
        st = await c.status()
        members = (await c.member_list()).members
    other = next(m.id for m in members if m.id != st.header.member_id)
    url = f"ws://127.0.0.1:{cluster.members[leader].peer_port}{PEER_PATH}"
    hello = PeerHello("stream", st.header.cluster_id, other, st.header.member_id)
    poison = Message(
        MessageType.PROP, to=st.header.member_id, frm=other, entries=(Entry(0, 0, data=b"\xffnot a request"),)
    )
    async with trio_websocket.open_websocket_url(url) as ws:
        await ws.send_message(codec.encode(hello))
        assert isinstance(codec.decode(await _binary(ws)), PeerHelloReply)
        await ws.send_message(codec.encode([poison]))
    async with trio_websocket.open_websocket_url(url) as ws:
        await ws.send_message(codec.encode(hello))
        await _binary(ws)
        await ws.send_message(b"\x9f\x01garbage")  # not CBOR of messages: the link is dropped
    await trio.sleep(0.5)
    async with trikv.connect(cluster.endpoints) as c:
        await c.put("after-poison", "ok")
        for m in cluster.members:
            async with trikv.connect([m.endpoint]) as one:
                assert (await one.get("after-poison")).kvs[0].value == b"ok"
    assert all(m.alive for m in cluster.members)
    text = cluster.members[leader].log_text()
    assert "dropping a malformed proposal" in text and "malformed frame" in text
