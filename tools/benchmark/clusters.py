"""Fresh three-member clusters on loopback (trikv from configs/, etcd from a config written here) and the
server processes' CPU time, read from /proc/<pid>/stat.

etcd is Debian's etcd-server 3.4, a yardstick only: started as three `etcd --config-file` processes with
etcd's defaults for a local cluster (100 ms heartbeat, 1 s election, fsync on) and the JSON gateway on.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import trio
import yaml

from trikv.tools.benchmark.httpconn import HttpConn
from trikv.tools.localcluster import CONFIGS, Cluster

TICK = os.sysconf("SC_CLK_TCK")
ETCD_NAMES = ("etcdnode0", "etcdnode1", "etcdnode2")


class ClusterError(Exception):
    """The cluster could not be started or found."""


def _etcd_config(name: str) -> dict[str, object]:
    return {
        "name": name,
        "snapshot-count": 10000,
        "heartbeat-interval": 100,
        "election-timeout": 1000,
        "quota-backend-bytes": 0,
        "initial-cluster": ",".join(f"{n}=http://127.0.0.1:2380" for n in ETCD_NAMES),  # rewritten
        "initial-cluster-token": "bench-cluster",
        "initial-cluster-state": "new",
        "enable-grpc-gateway": True,
        "logger": "zap",
        "log-outputs": ["stderr"],
        "log-level": "warn",
    }


def new_cluster(target: str, workdir: Path) -> Cluster:
    if target == "etcd":
        if shutil.which("etcd") is None:
            raise ClusterError("no etcd binary on PATH (apt-get install etcd-server)")
        src = workdir / "configs"
        src.mkdir(parents=True, exist_ok=True)
        files = []
        for name in ETCD_NAMES:
            path = src / f"{name}.yml"
            path.write_text(yaml.safe_dump(_etcd_config(name)))
            files.append(path)
        return Cluster(workdir, config_files=files, command=("etcd",))
    return Cluster(
        workdir, config_files=[CONFIGS / f"node{i}.yaml" for i in range(3)], overrides={"log-level": "warn"}
    )


def start(target: str, workdir: Path, timeout: float = 60.0) -> Cluster:
    """Start a cluster and wait until every member names the same leader."""
    cluster = new_cluster(target, workdir)
    try:
        cluster.start()
        trio.run(wait_leader, cluster.endpoints, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


async def wait_leader(endpoints: list[str], timeout: float) -> None:
    with trio.move_on_after(timeout):
        while True:
            leaders = set()
            for ep in endpoints:
                try:
                    conn = await HttpConn.open(ep)
                    try:
                        leaders.add(
                            int(json.loads(await conn.post("/v3/maintenance/status", b"{}")).get("leader", 0))
                        )
                    finally:
                        await conn.aclose()
                except (OSError, ValueError, Exception):
                    leaders.add(0)
            if len(leaders) == 1 and 0 not in leaders:
                return
            await trio.sleep(0.1)
    raise ClusterError(f"no leader agreed on by {', '.join(endpoints)} within {timeout:.0f} s")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def listening_pids(endpoints: list[str]) -> list[int] | None:
    """The processes listening on the endpoints' ports on this machine (--endpoints given), or None."""
    ports = {int(ep.rsplit(":", 1)[1]) for ep in endpoints}
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) in ports:
                inodes.add(f"socket:[{f[9]}]")
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    pids.add(int(proc.name))
                    break
        except OSError:
            continue
    return sorted(pids) if len(pids) >= len(ports) else None
