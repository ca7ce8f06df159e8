"""Acceptance: members configured the ways etcd 3.4 is, as real processes on 127.0.0.1 free ports.

- only by `ETCD_*` environment variables (no flags, no file);
- by exporting what `trikvctl member add` prints (plus listen/advertise URLs and a data dir): it joins;
- from etcd 3.4's own etcd.conf.yml.sample (paths and URLs rewritten), naming every ignored key;
- refusals that must happen before anything touches the disk: one line, exit 1, no traceback.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from trikv.actors.config import CONFIG_FILE_LOADED, load_config
from trikv.tools.localcluster import CONFIGS, ROOT, Cluster, free_port, free_ports, wait_port

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ETCD_SAMPLE = FIXTURES / "etcd.conf.yml.sample"  # etcd-io/etcd v3.4.23, verbatim


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ETCD_* / TRIKV_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "TRIKV_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class Proc:
    """One `python -m trikv.actors.main` process, its output in a log file."""

    def __init__(
        self, cwd: Path, env: dict[str, str], argv: tuple[str, ...] = (), tag: str = "member"
    ) -> None:
        self.log = cwd / f"{tag}.log"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trikv.actors.main", *argv],
                cwd=str(cwd),
                env=env,
                stdout=logf,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_port(self, port: int) -> None:
        try:
            wait_port(port, 20, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{self.text()[-4000:]}") from None

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def member_list(port: int, timeout: float = 15.0) -> dict[str, Any]:
    """POST /v3/cluster/member/list on the JSON gateway (etcd's grpc-gateway shape)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v3/cluster/member/list", data=b"{}", method="POST")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def started_members(port: int, count: int, timeout: float = 20.0) -> dict[str, Any]:
    """The member list once `count` members have published their name and client URLs (etcd's "started")."""
    deadline = time.monotonic() + timeout
    while True:
        body = member_list(port)
        # Before the first conf change is applied the list is empty, and etcd's JSON omits an empty list.
        if sum(bool(m.get("clientURLs")) for m in body.get("members", ())) >= count:
            return body
        assert time.monotonic() < deadline, f"members never started: {body}"
        time.sleep(0.1)


def ctl(*argv: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "trikv.tools.trikvctl", *argv],
        cwd=str(ROOT),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_a_member_configured_only_by_etcd_env_vars(tmp_path: Path, procs: list[Proc]) -> None:
    cport, pport = free_ports(2)
    etcd_env = {
        "ETCD_NAME": "envnode",
        "ETCD_DATA_DIR": str(tmp_path / "env-data"),
        "ETCD_LISTEN_CLIENT_URLS": f"http://127.0.0.1:{cport}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://127.0.0.1:{cport}",
        "ETCD_LISTEN_PEER_URLS": f"http://127.0.0.1:{pport}",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"http://127.0.0.1:{pport}",
        "ETCD_INITIAL_CLUSTER": f"envnode=http://127.0.0.1:{pport}",
        "ETCD_INITIAL_CLUSTER_TOKEN": "env-token",
        "TRIKV_HEARTBEAT_INTERVAL": "50",  # the alias prefix counts too
        "ETCD_ELECTION_TIMEOUT": "500",
        "ETCD_NOT_A_FLAG": "x",
    }
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    p = Proc(workdir, clean_env(**etcd_env))
    procs.append(p)
    p.wait_port(cport)

    body = started_members(cport, 1)
    expected_id = load_config([], etcd_env).member_id  # depends on the token and the peer URL
    assert [(m["name"], m["peerURLs"], m["clientURLs"]) for m in body["members"]] == [
        ("envnode", [f"http://127.0.0.1:{pport}"], [f"http://127.0.0.1:{cport}"])
    ]
    assert int(body["members"][0]["ID"]) == expected_id == int(body["header"]["member_id"])
    assert (tmp_path / "env-data" / "member" / "wal").is_dir()
    assert list(workdir.iterdir()) == [p.log]  # no default.trikv in the working directory

    logs = p.json_lines()
    used = {x["msg"] for x in logs if x["msg"].startswith("recognized and used environment variable")}
    assert "recognized and used environment variable ETCD_NAME=envnode" in used
    assert "recognized and used environment variable TRIKV_HEARTBEAT_INTERVAL=50" in used
    assert len(used) == len(etcd_env) - 1
    warned = [x["msg"] for x in logs if x["level"] == "warn"]
    assert "unrecognized environment variable ETCD_NOT_A_FLAG=x" in warned


def test_member_add_output_exported_starts_the_new_member(tmp_path: Path, procs: list[Proc]) -> None:
    # strict-reconfig-check stays on: like etcd 3.4 (IsReadyToAddVotingMember), a 1-member cluster may add a voter.
    seed = Cluster(tmp_path / "seed", config_files=[CONFIGS / "node0.yaml"], overrides={"log-level": "info"})
    seed.start()
    try:
        ep = seed.members[0].endpoint
        started_members(seed.members[0].client_port, 1)  # strict reconfig check: the seed must be started
        cport, pport = free_ports(2)
        code, out, err = ctl(
            f"--endpoints={ep}", "member", "add", "new", f"--peer-urls=http://127.0.0.1:{pport}"
        )
        assert (code, err) == (0, ""), out
        exported = dict(re.findall(r'^(ETCD_[A-Z_]+)="(.*)"$', out, flags=re.M))
        assert sorted(exported) == [
            "ETCD_INITIAL_ADVERTISE_PEER_URLS",
            "ETCD_INITIAL_CLUSTER",
            "ETCD_INITIAL_CLUSTER_STATE",
            "ETCD_NAME",
        ]
        exported.update(
            ETCD_LISTEN_PEER_URLS=f"http://127.0.0.1:{pport}",
            ETCD_LISTEN_CLIENT_URLS=f"http://127.0.0.1:{cport}",
            ETCD_ADVERTISE_CLIENT_URLS=f"http://127.0.0.1:{cport}",
            ETCD_DATA_DIR=str(tmp_path / "new-data"),
        )
        p = Proc(tmp_path, clean_env(**exported), tag="new")
        procs.append(p)
        p.wait_port(cport)

        deadline = time.monotonic() + 20
        while True:
            code, out, err = ctl(f"--endpoints={ep}", "member", "list", "-w", "json")
            members = {m.get("name", ""): m for m in json.loads(out)["members"]} if code == 0 else {}
            started = members.get("new", {}).get("clientURLs") == [f"http://127.0.0.1:{cport}"]
            if started:
                break
            assert time.monotonic() < deadline, f"new member never started: {out}{err}\n{p.text()[-3000:]}"
            time.sleep(0.2)
        assert sorted(members) == ["etcdnode0", "new"]
        assert members["new"]["peerURLs"] == [f"http://127.0.0.1:{pport}"]
        # the new member answers for the same cluster, and a write through the seed reaches it
        assert ctl(f"--endpoints={ep}", "put", "joined", "yes") == (0, "OK\n", "")
        deadline = time.monotonic() + 10
        while ctl(f"--endpoints=127.0.0.1:{cport}", "get", "joined", "--consistency=s")[1] != "joined\nyes\n":
            assert time.monotonic() < deadline, p.text()[-3000:]
            time.sleep(0.2)
        assert (
            json.loads(ctl(f"--endpoints=127.0.0.1:{cport}", "member", "list", "-w", "json")[1])["header"][
                "cluster_id"
            ]
            == json.loads(out)["header"]["cluster_id"]
        )
    finally:
        seed.stop()


def test_etcd_34_sample_config_starts_a_member(tmp_path: Path, procs: list[Proc]) -> None:
    cport, pport = free_ports(2)
    text = ETCD_SAMPLE.read_text(encoding="utf-8")
    rewritten = (
        text.replace("http://localhost:2380", f"http://127.0.0.1:{pport}")
        .replace("http://localhost:2379", f"http://127.0.0.1:{cport}")
        .replace("\ndata-dir:\n", f"\ndata-dir: {tmp_path / 'sample-data'}\n")
        .replace("\nwal-dir:\n", f"\nwal-dir: {tmp_path / 'sample-wal'}\n")
    )
    assert "localhost" not in rewritten
    keys = list(yaml.safe_load(text))
    assert list(yaml.safe_load(rewritten)) == keys  # every key of the sample is still there
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text(rewritten, encoding="utf-8")

    p = Proc(tmp_path, clean_env(ETCD_CONFIG_FILE=str(conf), ETCD_NAME="ignored"))
    procs.append(p)
    p.wait_port(cport)
    body = started_members(cport, 1)
    assert [(m["name"], m["peerURLs"]) for m in body["members"]] == [
        ("default", [f"http://127.0.0.1:{pport}"])
    ]
    assert (tmp_path / "sample-wal").is_dir() and (tmp_path / "sample-data" / "member" / "snap").is_dir()

    logs = p.json_lines()
    loaded = [x for x in logs if x["msg"] == CONFIG_FILE_LOADED]
    assert loaded and loaded[0]["level"] == "info" and loaded[0]["path"] == str(conf)
    [ignored] = [x["msg"] for x in logs if x["msg"].startswith("config keys accepted and ignored")]
    named = ignored.split(": ", 1)[1].split(", ")
    implemented = {
        "name", "data-dir", "wal-dir", "snapshot-count", "heartbeat-interval", "election-timeout",
        "listen-peer-urls", "listen-client-urls", "max-wals", "initial-advertise-peer-urls",
        "advertise-client-urls", "initial-cluster", "initial-cluster-token", "initial-cluster-state",
        "strict-reconfig-check", "logger", "log-outputs",
        "quota-backend-bytes", "auto-compaction-mode", "auto-compaction-retention",  # actors/quota.py, autocompact.py
    }  # fmt: skip
    assert sorted(named) == sorted(k for k in keys if k not in implemented)
    assert "discovery-fallback" in named  # etcd 3.4 reads it from the file too; trikv does not act on it
    assert any("ETCD_NAME" in x["msg"] for x in logs if x["level"] == "warn")  # env ignored, and said so


def _refusal(tmp_path: Path, argv: tuple[str, ...], env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "trikv.actors.main", *argv],
        cwd=str(tmp_path),
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=30,
    )
    errs = [line for line in proc.stderr.splitlines() if not line.startswith("{")]  # JSON log lines aside
    assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr, proc.stderr
    assert len(errs) == 1, proc.stderr
    return proc.returncode, errs[0]


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (
            (
                "--listen-peer-urls=https://127.0.0.1:{p}",
                "--initial-advertise-peer-urls=https://127.0.0.1:{p}",
                "--peer-auto-tls",
            ),
            {},
            "trikv: --peer-auto-tls is not supported: trikv does not implement TLS yet (use http:// URLs)",
        ),
        (
            ("--listen-client-urls=https://127.0.0.1:{p}", "--advertise-client-urls=https://127.0.0.1:{p}"),
            {},
            "trikv: TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:{p} "
            "with HTTPS scheme",
        ),
        (
            ("--name=flag",),
            {"ETCD_NAME": "env"},
            'trikv: conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag '
            "(either unset environment variable or disable flag)",
        ),
        (
            ("--data-dir=/sys/trikv-test/data",),  # /sys refuses mkdir even to root
            {},
            "trikv: cannot use --data-dir /sys/trikv-test/data: permission denied on /sys",
        ),
    ],
)
def test_refusals_are_one_line_and_exit_1(
    tmp_path: Path, argv: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    p = free_port()
    code, line = _refusal(tmp_path, tuple(a.format(p=p) for a in argv), env)
    assert code == 1
    assert line.startswith(expected.format(p=p)), line
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_taken_port_is_named_and_the_data_dir_left_alone(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port, peer = taken.getsockname()[1], free_port()
        code, line = _refusal(
            tmp_path,
            (
                f"--listen-client-urls=http://127.0.0.1:{port}",
                f"--advertise-client-urls=http://127.0.0.1:{port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            ),
        )
    assert code == 1
    assert line == (
        f"trikv: listen tcp 127.0.0.1:{port}: bind: address already in use "
        "(another process is listening there: stop it or choose another --listen-client-urls)"
    )
    assert list(tmp_path.iterdir()) == []
