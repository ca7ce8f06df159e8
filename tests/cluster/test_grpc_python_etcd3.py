"""Acceptance: python-etcd3 (grpcio underneath) against three real trikv members, over gRPC.

The client runs in its own process with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python (its generated code
predates protobuf 4); the members never inherit that setting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from trikv.tools.localcluster import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module (tests/cluster/conftest.py's is per test)."""
    c = Cluster(tmp_path_factory.mktemp("etcd3"), overrides={"log-level": "info"})
    c.start()
    try:
        yield c
    finally:
        c.stop()


PRELUDE = """
import etcd3
host, port = {endpoint!r}.rsplit(":", 1)
c = etcd3.client(host=host, port=int(port), timeout=10)
"""


def wait_leader(cluster: Cluster, timeout: float = 20.0) -> None:
    """Every member's /health says true (it knows a leader)."""
    deadline = time.monotonic() + timeout
    for ep in cluster.endpoints:
        while True:
            try:
                with urllib.request.urlopen(f"http://{ep}/health", timeout=2) as resp:
                    if b'"true"' in resp.read():
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.1)


def run(cluster: Cluster, body: str) -> str:
    wait_leader(cluster)
    script = PRELUDE.format(endpoint=cluster.endpoints[1]) + textwrap.dedent(body)
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_python_etcd3_kv_txn_and_cluster(cluster: Cluster) -> None:
    out = run(
        cluster,
        """
        c.put("/app/a", "1")
        c.put("/app/b", "2")
        value, meta = c.get("/app/a")
        print(value, meta.key, meta.version)
        print(sorted((v, m.key) for v, m in c.get_prefix("/app/")))
        print(c.delete("/app/a"), c.delete("/app/a"), c.get("/app/a"))
        ok, _ = c.transaction(
            compare=[c.transactions.value("/app/b") == "2"],
            success=[c.transactions.put("/app/b", "3")],
            failure=[c.transactions.put("/app/b", "never")],
        )
        print(ok, c.get("/app/b")[0])
        ok, _ = c.transaction(compare=[c.transactions.version("/app/b") == 9], success=[], failure=[])
        print(ok)
        print(sorted(m.name for m in c.members), c.status().leader is not None)
        """,
    )
    assert out.splitlines() == [
        "b'1' b'/app/a' 1",
        "[(b'1', b'/app/a'), (b'2', b'/app/b')]",
        "True False (None, None)",
        "True b'3'",
        "False",
        "['etcdnode0', 'etcdnode1', 'etcdnode2'] True",
    ]


def test_python_etcd3_lease_and_lock(cluster: Cluster) -> None:
    out = run(
        cluster,
        """
        lease = c.lease(30)
        c.put("/l/k", "v", lease=lease)
        print(lease.remaining_ttl > 0, c.get("/l/k")[0])
        with c.lock("job", ttl=10) as lock:
            print(lock.is_acquired())
        """,
    )
    assert out.splitlines() == ["True b'v'", "True"]


def test_python_etcd3_watch(cluster: Cluster) -> None:
    out = run(
        cluster,
        """
        import threading
        events, cancel = c.watch("/w/k")
        threading.Timer(0.5, lambda: c.put("/w/k", "v")).start()
        for ev in events:
            print(ev.key, ev.value)
            cancel()
            break
        """,
    )
    assert out.splitlines() == ["b'/w/k' b'v'"]
