"""Acceptance: `python -m trikv.tools.trikvctl` as an operator runs it, against three real member processes.

The unit tests (tests/test_trikvctl.py) pin etcdctl's exact output against a fake server; this checks the
same command lines against the real cluster API: membership changes go through Raft, leadership moves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from trikv.tools import trikvctl
from trikv.tools.localcluster import ROOT, Cluster, free_port

pytestmark = pytest.mark.slow


def ctl(*argv: str, timeout: float = 30, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "trikv.tools.trikvctl", *argv],
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def wait_leader(c: Cluster, expect: int | None = None, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Poll `endpoint status` until every member names the same leader (`expect`, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        code, out, _ = ctl(
            f"--endpoints={','.join(c.endpoints)}", "--command-timeout=1s", "endpoint", "status", "-w", "json"
        )
        if code == 0:
            st = [entry["Status"] for entry in json.loads(out)]
            leaders = {s.get("leader", 0) for s in st}
            ids = {s["header"]["member_id"] for s in st}
            if len(leaders) == 1 and leaders <= ids and (expect is None or leaders == {expect}):
                return st
        assert time.monotonic() < deadline, f"no agreed leader within {timeout}s:\n{out}\n{c.logs()}"
        time.sleep(0.2)


def test_trikvctl_against_a_real_cluster(cluster: Cluster) -> None:
    st = wait_leader(cluster)
    eps = f"--endpoints={','.join(cluster.endpoints)}"
    ids = [s["header"]["member_id"] for s in st]
    cluster_id = st[0]["header"]["cluster_id"]
    leader = st[0]["leader"]
    follower = next(i for i in ids if i != leader)
    follower_ep = cluster.endpoints[ids.index(follower)]

    # KV through one member, read back linearizably through another.
    assert ctl(f"--endpoints={cluster.endpoints[0]}", "put", "foo", "bar") == (0, "OK\n", "")
    assert ctl(f"--endpoints={cluster.endpoints[2]}", "get", "foo") == (0, "foo\nbar\n", "")
    # etcdctl's environment alone: ETCDCTL_ENDPOINTS reaches the cluster, ETCDCTL_WRITE_OUT picks JSON.
    env = {"ETCDCTL_ENDPOINTS": ",".join(cluster.endpoints), "ETCDCTL_WRITE_OUT": "json"}
    code, out, err = ctl("get", "foo", env=env)
    assert (code, err) == (0, "") and json.loads(out)["kvs"][0]["value"] == "YmFy"
    assert ctl("get", "foo", "--hex", "-w", "simple", env=env) == (
        0,
        "\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n",
        "",
    )
    txn = 'value("foo") = "bar"\n\nput foo baz\n\nget foo\n\n'
    proc = subprocess.run(
        [sys.executable, "-m", "trikv.tools.trikvctl", "txn", "-w", "simple"],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        input=txn.encode(),
        capture_output=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"SUCCESS\n\nOK\n", b"")

    # member list -w table: etcdctl's table, rows sorted by id.
    def row(i: int) -> list[str]:
        m = cluster.members[i]
        peer, client = f"http://127.0.0.1:{m.peer_port}", f"http://127.0.0.1:{m.client_port}"
        return [f"{ids[i]:x}", "started", m.name, peer, client, "false"]

    header = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"]
    table = trikvctl.render_table(header, sorted((row(i) for i in range(3)), key=lambda r: int(r[0], 16)))
    assert ctl(eps, "member", "list", "-w", "table") == (0, "\n".join(table) + "\n", "")

    # member add: the new member is in the list, unstarted, until removed again.
    new_url = f"http://127.0.0.1:{free_port()}"
    code, out, err = ctl(eps, "member", "add", "etcdnode3", f"--peer-urls={new_url}")
    assert (code, err) == (0, "")
    match = re.fullmatch(
        r"Member ([ 0-9a-f]{16}) added to cluster ([ 0-9a-f]{16})\n\n"
        r'ETCD_NAME="etcdnode3"\nETCD_INITIAL_CLUSTER="([^"]*)"\n'
        r'ETCD_INITIAL_ADVERTISE_PEER_URLS="([^"]*)"\nETCD_INITIAL_CLUSTER_STATE="existing"\n',
        out,
    )
    assert match is not None, out
    new_id = int(match.group(1), 16)
    assert int(match.group(2), 16) == cluster_id and match.group(4) == new_url
    named = {ids[i]: f"{m.name}=http://127.0.0.1:{m.peer_port}" for i, m in enumerate(cluster.members)}
    named[new_id] = f"etcdnode3={new_url}"
    assert match.group(3) == ",".join(named[i] for i in sorted(named))
    code, out, _ = ctl(eps, "member", "list")
    assert code == 0 and f"{new_id:x}, unstarted, , {new_url}, , false" in out.splitlines()
    assert ctl(eps, "member", "remove", f"{new_id:x}") == (
        0,
        f"Member {new_id:16x} removed from cluster {cluster_id:16x}\n",
        "",
    )
    code, out, _ = ctl(eps, "member", "list")
    assert code == 0 and sorted(int(line.split(",")[0], 16) for line in out.splitlines()) == sorted(ids)
    assert ctl(eps, "member", "remove", f"{new_id:x}") == (1, "", "Error: etcdserver: member not found\n")

    # move-leader: refused without the leader among the endpoints, then moved to a follower.
    assert ctl(f"--endpoints={follower_ep}", "move-leader", f"{follower:x}") == (
        128,
        "",
        f"Error: no leader endpoint given at [{follower_ep}]\n",
    )
    assert ctl(eps, "move-leader", f"{follower:x}") == (
        0,
        f"Leadership transferred from {leader:x} to {follower:x}\n",
        "",
    )
    wait_leader(cluster, expect=follower, timeout=5)
    code, out, err = ctl(
        f"--endpoints={cluster.endpoints[0]}", "endpoint", "status", "--cluster", "-w", "json"
    )
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert sorted(e["Endpoint"] for e in body) == sorted(f"http://{ep}" for ep in cluster.endpoints)
    for entry in body:
        s = entry["Status"]
        assert s["leader"] == follower and s["header"]["cluster_id"] == cluster_id
        assert s["raftIndex"] >= s["raftAppliedIndex"] > 0 and s["dbSize"] > 0
        assert entry["Endpoint"] == f"http://{cluster.endpoints[ids.index(s['header']['member_id'])]}"

    code, out, err = ctl(f"--endpoints={cluster.endpoints[1]}", "endpoint", "health", "--cluster")
    assert (code, err) == (0, "")
    assert sorted(re.sub(r" is healthy: .*", "", line) for line in out.splitlines()) == sorted(
        f"http://{ep}" for ep in cluster.endpoints
    )
    assert all(
        re.fullmatch(r"\S+ is healthy: successfully committed proposal: took = [0-9.]+(ns|µs|ms|s)", line)
        for line in out.splitlines()
    ), out
