"""Real trikv member processes on 127.0.0.1, for acceptance tests and benchmarks.

Configs come from configs/node*.yaml with hosts, ports and directories rewritten: random free loopback
ports, a temp directory per test. Members are real `python -m trikv.actors.main` processes, killed with SIGKILL
or stopped with SIGTERM like an operator would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports: all held at once, since a port released by one pick may be the next
    pick (seen on a loaded machine: two members given the same peer port)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


@attrs.define
class Member:
    name: str
    config_path: Path
    client_port: int
    peer_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    command: tuple[str, ...] = (sys.executable, "-m", "trikv.actors.main")  # e.g. ("etcd",) for the yardstick
    env: dict[str, str] = attrs.Factory(dict)  # added to the child's environment (e.g. the test plugin's)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.command, "--config-file", str(self.config_path)],
            cwd=str(self.config_path.parent),
            stdout=logf,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
        )
        logf.close()

    def wait_ready(self, timeout: float = 20.0) -> None:
        try:
            wait_port(self.client_port, timeout, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{self.name}: {exc}\n{self.log_text()[-4000:]}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def rewrite_config(
    src: dict[str, Any], name_ports: dict[str, tuple[int, int]], workdir: Path, token: str | None = None
) -> dict[str, Any]:
    """Point a config at loopback, the given ports and a directory under workdir (nothing else changes)."""
    cfg = dict(src)
    name = cfg["name"]
    cport, pport = name_ports[name]
    cfg["listen-client-urls"] = f"http://127.0.0.1:{cport}"
    cfg["advertise-client-urls"] = f"http://127.0.0.1:{cport}"
    cfg["listen-peer-urls"] = f"http://127.0.0.1:{pport}"
    cfg["initial-advertise-peer-urls"] = f"http://127.0.0.1:{pport}"
    cfg["initial-cluster"] = ",".join(
        f"{n}=http://127.0.0.1:{p}" for n, (_, p) in name_ports.items() if n in _cluster_names(src)
    )
    cfg["data-dir"] = str(workdir / name / "data")
    cfg["wal-dir"] = str(workdir / name / "wal")
    cfg["log-outputs"] = ["stderr"]
    if token is not None:
        cfg["initial-cluster-token"] = token
    return cfg


def _cluster_names(cfg: dict[str, Any]) -> list[str]:
    return [part.split("=", 1)[0] for part in re.split(r"\s*,\s*", str(cfg["initial-cluster"]).strip())]


class Cluster:
    """Members built from configs/node0..2.yaml (or any list of config files) in one temp directory."""

    def __init__(
        self,
        workdir: Path,
        config_files: list[Path] | None = None,
        token: str | None = None,
        overrides: dict[str, Any] | None = None,
        command: tuple[str, ...] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        files = config_files or [CONFIGS / f"node{i}.yaml" for i in range(3)]
        srcs = [yaml.safe_load(f.read_text()) for f in files]
        picked = iter(free_ports(2 * len(srcs)))
        ports = {s["name"]: (next(picked), next(picked)) for s in srcs}
        self.members: list[Member] = []
        for src in srcs:
            cfg = rewrite_config(src, ports, workdir, token)
            cfg.update(overrides or {})
            cfg.update(overrides or {})
            path = workdir / f"{cfg['name']}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            cport, pport = ports[cfg["name"]]
            member = Member(cfg["name"], path, cport, pport, workdir / f"{cfg['name']}.log")
            if command is not None:
                member.command = command
            self.members.append(member)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self) -> None:
        for m in self.members:
            m.start()
        for m in self.members:
            m.wait_ready()

    def stop(self) -> None:
        for m in self.members:
            m.kill()

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def logs(self) -> str:
        return "\n".join(f"===== {m.name}\n{m.log_text()[-6000:]}" for m in self.members)


def main(argv: list[str] | None = None) -> int:
    """`python -m trikv.tools.localcluster [DIR]`: run configs/node0..2.yaml on free loopback ports until Ctrl-C."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("dir", nargs="?", help="work directory (default: a new temp dir)")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="trikv-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir, overrides={"log-level": args.log_level})
    cluster.start()
    print(",".join(cluster.endpoints), flush=True)
    print(f"data and logs in {workdir}", file=sys.stderr, flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        for m in cluster:
            if m.alive:
                m.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
