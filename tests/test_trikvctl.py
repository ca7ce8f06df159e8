"""trikvctl's output formats and exit codes against the fake server (etcdctl 3.4 transcripts as oracle).

The CLI runs its own trio.run, so the fake servers run in a background thread with theirs.
"""

from __future__ import annotations

import io
import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from tools import trikvctl
from trikv.api import errors
from trikv.api.protocol import Member

from .fake_server import FakeServer, running


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            async with running(nursery, 3) as srvs:
                box.update(servers=srvs, token=trio.lowlevel.current_trio_token(), scope=nursery.cancel_scope)
                started.set()
                await trio.sleep_forever()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert started.wait(10)
    yield box["servers"]
    trio.from_thread.run_sync(box["scope"].cancel, trio_token=box["token"])
    thread.join(10)


def run(
    capsys: pytest.CaptureFixture[str],
    srv: FakeServer,
    *argv: str,
    stdin: bytes = b"",
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    mp = monkeypatch or pytest.MonkeyPatch()
    mp.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        code = trikvctl.main([f"--endpoints={srv.endpoint}", *argv])
    finally:
        if monkeypatch is None:
            mp.undo()
    out, err = capsys.readouterr()
    return code, out, err


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# --------------------------------------------------------------------------- pure formatting


def test_table_matches_etcdctl_member_list_byte_for_byte() -> None:
    expected = """\
+------------------+-----------+-----------+------------------------+------------------------+------------+
|        ID        |  STATUS   |   NAME    |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
+------------------+-----------+-----------+------------------------+------------------------+------------+
| 5db4da297496c0d3 | unstarted |           | http://127.0.0.1:32380 |                        |      false |
| 9e737febb6b99eee |   started | etcdnode2 | http://127.0.0.1:22380 | http://127.0.0.1:22379 |      false |
| b71f75320dc06a6c |   started | etcdnode0 |  http://127.0.0.1:2380 |  http://127.0.0.1:2379 |      false |
+------------------+-----------+-----------+------------------------+------------------------+------------+"""
    members = [
        Member(0x5DB4DA297496C0D3, "", ("http://127.0.0.1:32380",), ()),
        Member(0x9E737FEBB6B99EEE, "etcdnode2", ("http://127.0.0.1:22380",), ("http://127.0.0.1:22379",)),
        Member(0xB71F75320DC06A6C, "etcdnode0", ("http://127.0.0.1:2380",), ("http://127.0.0.1:2379",)),
    ]
    header = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"]
    rows = [trikvctl._member_row(m) for m in members]
    assert "\n".join(trikvctl.render_table(header, rows)) == expected


def test_go_formats() -> None:
    assert trikvctl.go_duration(0.001411027) == "1.411027ms"
    assert trikvctl.go_duration(0.002) == "2ms"
    assert trikvctl.go_duration(0.0000015) == "1.5µs"
    assert trikvctl.go_duration(2.5) == "2.5s"
    assert trikvctl.go_duration(60.5) == "1m0.5s"
    assert trikvctl.parse_go_duration("5s") == 5.0
    assert trikvctl.parse_go_duration("1m30s") == 90.0
    assert trikvctl.parse_go_duration("1ms") == 0.001
    with pytest.raises(ValueError):
        trikvctl.parse_go_duration("5")
    assert trikvctl.humanize_bytes(20480) == "20 kB"
    assert trikvctl.humanize_bytes(126_000_000) == "126 MB"
    assert trikvctl.humanize_bytes(5) == "5 B"
    assert trikvctl.humanize_bytes(1500) == "1.5 kB"
    assert trikvctl.go_quote(b'a"b\n\x01\xff') == '"a\\"b\\n\\x01\\xff"'


# --------------------------------------------------------------------------- KV commands


def test_put_get_simple_and_json(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    assert run(capsys, srv, "put", "foo", "bar") == (0, "OK\n", "")
    assert run(capsys, srv, "get", "foo") == (0, "foo\nbar\n", "")
    code, out, _ = run(capsys, srv, "get", "foo", "-w", "json")
    assert code == 0
    assert out == (
        '{"header":{"cluster_id":193,"member_id":4369,"revision":2,"raft_term":2},'
        '"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}\n'
    )
    code, out, _ = run(capsys, srv, "get", "nosuchkey", "-w", "json")
    assert out == '{"header":{"cluster_id":193,"member_id":4369,"revision":2,"raft_term":2}}\n'
    assert run(capsys, srv, "get", "nosuchkey") == (0, "", "")
    assert run(capsys, srv, "put", "foo", "bar2", "--prev-kv") == (0, "OK\nfoo\nbar\n", "")
    code, out, _ = run(capsys, srv, "put", "foo", "bar3", "--prev-kv", "-w", "json")
    assert json.loads(out)["prev_kv"] == {
        "key": "Zm9v",
        "create_revision": 2,
        "mod_revision": 3,
        "version": 2,
        "value": "YmFyMg==",
    }
    assert run(capsys, srv, "get", "foo", "--print-value-only") == (0, "bar3\n", "")
    assert run(capsys, srv, "get", "foo", "--keys-only") == (0, "foo\n\n", "")
    code, out, _ = run(capsys, srv, "get", "foo", "-w", "fields")
    assert out.splitlines()[4:] == [
        '"Key" : "foo"',
        '"CreateRevision" : 2',
        '"ModRevision" : 4',
        '"Version" : 3',
        '"Value" : "bar3"',
        '"Lease" : 0',
        '"More" : false',
        '"Count" : 1',
    ]


def test_ranges_and_delete(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    for k, v in (("foo", "bar3"), ("foo1", "v1"), ("foo2", "v2"), ("foo3", "v3"), ("fop", "x"), ("zoo", "z")):
        assert run(capsys, srv, "put", k, v)[0] == 0
    assert run(capsys, srv, "get", "foo", "--prefix", "--limit=2")[1] == "foo\nbar3\nfoo1\nv1\n"
    assert run(capsys, srv, "get", "foo", "foo3")[1] == "foo\nbar3\nfoo1\nv1\nfoo2\nv2\n"
    assert run(capsys, srv, "get", "foo2", "--from-key")[1] == "foo2\nv2\nfoo3\nv3\nfop\nx\nzoo\nz\n"
    assert run(capsys, srv, "get", "--from-key", "", "--keys-only")[1] == (
        "foo\n\nfoo1\n\nfoo2\n\nfoo3\n\nfop\n\nzoo\n\n"
    )
    assert run(capsys, srv, "get", "user1", "--prefix=false")[0] == 0
    code, out, _ = run(capsys, srv, "get", "foo", "--prefix", "--count-only", "-w", "fields")
    assert code == 0 and out.splitlines()[-1] == '"Count" : 4' and '"Key"' not in out
    assert run(capsys, srv, "del", "zoo") == (0, "1\n", "")
    assert run(capsys, srv, "del", "zoo") == (0, "0\n", "")
    assert run(capsys, srv, "del", "fop", "--prev-kv") == (0, "1\nfop\nx\n", "")
    code, out, _ = run(capsys, srv, "del", "foo1", "-w", "json", "--prev-kv")
    body = json.loads(out)
    assert body["deleted"] == 1 and body["prev_kvs"][0]["key"] == "Zm9vMQ=="
    assert run(capsys, srv, "del", "foo", "--prefix") == (0, "3\n", "")
    assert run(capsys, srv, "compaction", "3") == (0, "compacted revision 3\n", "")


def test_put_value_from_stdin(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    assert run(capsys, srv, "put", "k", stdin=b"from stdin") == (0, "OK\n", "")
    assert run(capsys, srv, "get", "k", "--print-value-only")[1] == "from stdin\n"


def test_argument_errors_and_exit_codes(
    servers: list[FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    srv = servers[0]
    needs = "Error: put command needs 1 argument and input from stdin or 2 arguments\n"
    assert run(capsys, srv, "put") == (128, "", needs)
    assert run(capsys, srv, "put", "foo") == (128, "", needs)
    assert run(capsys, srv, "get") == (
        128,
        "",
        "Error: get command needs one argument as key and an optional argument as range_end\n",
    )
    assert run(capsys, srv, "del")[0] == 128
    assert run(capsys, srv, "get", "a", "--prefix", "--from-key")[0] == 128
    code, _, err = run(capsys, srv, "get", "foo", "--count-only")
    assert (code, err) == (128, "Error: --count-only is only for `--write-out=fields`\n")
    code, _, err = run(capsys, srv, "put", "k", "v", "--lease=zz")
    assert code == 128 and err.startswith("Error: bad lease ID (")
    assert run(capsys, srv, "get", "foo", "--consistency=x")[0] == 4
    assert run(capsys, srv, "get", "foo", "-w", "protobuf")[0] == 4
    code, _, err = run(capsys, srv, "get", "foo", "--nosuchflag")
    assert (code, err) == (1, "Error: unknown flag: --nosuchflag\n")
    code, _, err = run(capsys, srv, "nosuchcommand")
    assert (code, err) == (
        1,
        'Error: unknown command "nosuchcommand" for "trikvctl"\nRun \'trikvctl --help\' for usage.\n',
    )
    code, _, err = run(capsys, srv, "--dial-timeout=xyz", "get", "foo")
    assert (code, err) == (
        1,
        'Error: invalid argument "xyz" for "--dial-timeout" flag: time: invalid duration "xyz"\n',
    )


def test_server_errors(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    assert run(capsys, srv, "put", "", "v") == (1, "", "Error: etcdserver: key is not provided\n")
    assert run(capsys, srv, "get", "foo", "--rev=9999") == (
        1,
        "",
        "Error: etcdserver: mvcc: required revision is a future revision\n",
    )
    assert run(capsys, srv, "put", "foo4", "--ignore-value") == (1, "", "Error: etcdserver: key not found\n")
    srv.inject("put", errors.NoSpaceError())
    assert run(capsys, srv, "put", "a", "b")[2] == "Error: etcdserver: mvcc: database space exceeded\n"
    code, _, err = run(capsys, srv, "put", "big", stdin=b"a" * 2097152)
    assert code == 1
    assert re.fullmatch(
        r"Error: rpc error: code = ResourceExhausted desc = trying to send message larger than max "
        r"\(\d+ vs\. 2097152\)\n",
        err,
    )
    assert srv.requests("put") == 3


def test_failover_across_endpoints(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    run(capsys, srv, "put", "foo", "i1")
    code, out, _ = run(
        capsys, srv, f"--endpoints={dead_endpoint()},{srv.endpoint}", "get", "foo", "--print-value-only"
    )
    assert (code, out) == (0, "i1\n")


# --------------------------------------------------------------------------- cluster commands


def test_member_list_formats(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    code, out, _ = run(capsys, srv, "member", "list")
    assert code == 0
    assert out.splitlines() == [
        f"{s.member_id:x}, started, {s.name}, http://127.0.0.1:{s.port + 1}, {s.url}, false" for s in servers
    ]
    code, out, _ = run(capsys, srv, "member", "list", "-w", "json")
    body = json.loads(out)
    assert body["header"] == {"cluster_id": 193, "member_id": 4369, "raft_term": 2}
    assert body["members"][0] == {
        "ID": 4369,
        "name": "fake0",
        "peerURLs": [f"http://127.0.0.1:{srv.port + 1}"],
        "clientURLs": [srv.url],
    }
    code, out, _ = run(capsys, srv, "member", "list", "-w", "table")
    lines = out.splitlines()
    assert len(lines) == 4 + len(servers)
    assert re.fullmatch(r"\|\s+ID\s+\|\s+STATUS\s+\|\s+NAME\s+\|.*\| IS LEARNER \|", lines[1])


def test_endpoint_status_formats(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    code, out, err = run(capsys, srv, "endpoint", "status")
    assert (code, err) == (0, "")
    assert out == f"{srv.endpoint}, 1111, 3.4.23, 20 kB, true, false, 2, 8, 8, \n"
    code, out, _ = run(capsys, srv, "endpoint", "status", "--cluster", "-w", "json")
    body = json.loads(out)
    assert [e["Endpoint"] for e in body] == [s.url for s in servers]
    assert body[1]["Status"] == {
        "header": {"cluster_id": 193, "member_id": 0x2222, "revision": 1, "raft_term": 2},
        "version": "3.4.23",
        "dbSize": 20480,
        "leader": 0x1111,
        "raftIndex": 8,
        "raftTerm": 2,
        "raftAppliedIndex": 8,
        "dbSizeInUse": 16384,
    }
    code, out, _ = run(capsys, srv, "endpoint", "status", "--cluster", "-w", "table")
    lines = out.splitlines()
    assert [c.strip() for c in lines[1].split("|")[1:-1]] == trikvctl.STATUS_HEADER
    assert [c.strip() for c in lines[4].split("|")[1:-1]] == [
        servers[1].url,
        "2222",
        "3.4.23",
        "20 kB",
        "false",
        "false",
        "2",
        "8",
        "8",
        "",
    ]


def test_endpoint_status_of_unreachable_endpoint(
    servers: list[FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    dead = dead_endpoint()
    code, out, err = run(
        capsys,
        servers[0],
        f"--endpoints={dead}",
        "--dial-timeout=100ms",
        "--command-timeout=300ms",
        "endpoint",
        "status",
        "-w",
        "table",
    )
    assert code == 1
    assert err == f"Failed to get the status of endpoint {dead} (context deadline exceeded)\n"
    assert len(out.splitlines()) == 4  # header only, like etcdctl


def test_endpoint_health(servers: list[FakeServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    code, out, err = run(capsys, srv, "endpoint", "health")
    assert code == 0 and err == ""
    assert re.fullmatch(
        rf"{re.escape(srv.endpoint)} is healthy: successfully committed proposal: took = [\d.]+(ms|µs|s)\n",
        out,
    )
    code, out, _ = run(capsys, srv, "endpoint", "health", "--cluster", "-w", "json")
    body = json.loads(out)
    assert [(h["endpoint"], h["health"]) for h in body] == [(s.url, True) for s in servers]
    assert all(set(h) == {"endpoint", "health", "took"} for h in body)
    code, out, _ = run(capsys, srv, "endpoint", "health", "--cluster", "-w", "table")
    assert [c.strip() for c in out.splitlines()[1].split("|")[1:-1]] == [
        "ENDPOINT",
        "HEALTH",
        "TOOK",
        "ERROR",
    ]
    assert srv.requests("range") >= 3

    dead = dead_endpoint()
    code, out, err = run(
        capsys,
        srv,
        f"--endpoints={dead},{srv.endpoint}",
        "--command-timeout=300ms",
        "--dial-timeout=100ms",
        "endpoint",
        "health",
    )
    assert code == 1
    assert out.startswith(f"{srv.endpoint} is healthy")
    assert err == (
        f"{dead} is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n"
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert trikvctl.main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "API version: 3.4"
    assert out.startswith("trikvctl version: ")
