"""trikvctl's output formats and exit codes against the real client server over in-memory members
(tests/member_server.py), etcdctl 3.4 transcripts as oracle.

The CLI runs its own trio.run, so the members run in a background thread with theirs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from trikv.api import codec, errors, protocol, rpc
from trikv.api.protocol import Member
from trikv.blocking import BlockingClient, wire_form
from trikv.client import DeadlineExceededError
from trikv.tools import ctl_print, trikvctl
from trikv.tools.localcluster import ROOT

from .member_server import DROP, HANG, MemberServer, running


@pytest.fixture
def servers() -> Iterator[list[MemberServer]]:
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
    srv: MemberServer,
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


def test_put_get_simple_and_json(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
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


def test_ranges_and_delete(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
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


def test_put_value_from_stdin(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    assert run(capsys, srv, "put", "k", stdin=b"from stdin") == (0, "OK\n", "")
    assert run(capsys, srv, "get", "k", "--print-value-only")[1] == "from stdin\n"


def test_argument_errors_and_exit_codes(
    servers: list[MemberServer], capsys: pytest.CaptureFixture[str]
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
    assert run(capsys, srv, "get", "foo", "-w", "table") == (
        4,
        "",
        "Error: table not supported as output format\n",
    )
    assert run(capsys, srv, "get", "foo", "-w", "xml") == (4, "", "Error: unsupported output format\n")
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


def test_server_errors(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
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


def test_failover_across_endpoints(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    run(capsys, srv, "put", "foo", "i1")
    code, out, _ = run(
        capsys, srv, f"--endpoints={dead_endpoint()},{srv.endpoint}", "get", "foo", "--print-value-only"
    )
    assert (code, out) == (0, "i1\n")


# --------------------------------------------------------------------------- cluster commands


def test_member_list_formats(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
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


def test_endpoint_status_formats(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
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
    servers: list[MemberServer], capsys: pytest.CaptureFixture[str]
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


def test_endpoint_health(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
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


# --------------------------------------------------------------------------- membership and leadership


def fake_member_id(*urls: str) -> int:
    """The id the test members give a member added with these peer URLs."""
    return int.from_bytes(hashlib.sha1(",".join(urls).encode()).digest()[:8], "big")


def test_parse_uint64_hex_is_go_strconv() -> None:
    assert trikvctl.parse_uint64_hex("b71f75320dc06a6c") == 0xB71F75320DC06A6C
    assert trikvctl.parse_uint64_hex("FFFFFFFFFFFFFFFF") == 2**64 - 1
    for text in ("", "0x10", "+1", "-1", "1_0", "zz", " 1"):
        with pytest.raises(ValueError, match=r"invalid syntax$"):
            trikvctl.parse_uint64_hex(text)
    with pytest.raises(ValueError) as info:
        trikvctl.parse_uint64_hex("10000000000000000z")
    assert str(info.value) == 'strconv.ParseUint: parsing "10000000000000000z": value out of range'


def test_member_add_update_promote_remove(
    servers: list[MemberServer], capsys: pytest.CaptureFixture[str]
) -> None:
    srv = servers[0]
    url = "http://127.0.0.1:32380"
    new = fake_member_id(url)
    code, out, err = run(capsys, srv, "member", "add", "newnode", f"--peer-urls={url}")
    assert (code, err) == (0, "")
    names = {s.member_id: s.name for s in servers} | {new: "newnode"}
    peers = {s.member_id: f"http://127.0.0.1:{s.port + 1}" for s in servers} | {new: url}
    initial = ",".join(f"{names[i]}={peers[i]}" for i in sorted(names))
    # %16x pads with spaces, as etcdctl's "added to cluster  74de06e38ff30a0".
    assert out == (
        f"Member {new:16x} added to cluster               c1\n"
        "\n"
        'ETCD_NAME="newnode"\n'
        f'ETCD_INITIAL_CLUSTER="{initial}"\n'
        f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{url}"\n'
        'ETCD_INITIAL_CLUSTER_STATE="existing"\n'
    )
    code, out, _ = run(capsys, srv, "member", "list")
    assert f"{new:x}, unstarted, , {url}, , false" in out.splitlines()
    assert run(capsys, srv, "member", "add", "again", f"--peer-urls={url}") == (
        1,
        "",
        "Error: etcdserver: Peer URLs already exists\n",
    )
    assert run(capsys, srv, "member", "add", "bad", "--peer-urls=127.0.0.1:9") == (
        1,
        "",
        "Error: etcdserver: given member URLs are invalid\n",
    )

    # A learner, added with -w json: pb.MemberAddResponse through Go's encoding/json.
    lurl = "http://127.0.0.1:52380"
    learner = fake_member_id(lurl)
    code, out, _ = run(capsys, srv, "member", "add", "l1", "--learner", f"--peer-urls={lurl}", "-w", "json")
    assert code == 0
    body = json.loads(out)
    assert list(body) == ["header", "member", "members"]
    assert body["header"] == {"cluster_id": 193, "member_id": 0x1111, "raft_term": 2}
    assert body["member"] == {"ID": learner, "peerURLs": [lurl], "isLearner": True}
    assert [m["ID"] for m in body["members"]] == sorted([*names, learner])
    assert out.startswith('{"header":{"cluster_id":193,') and out.endswith("}\n") and " " not in out

    assert run(capsys, srv, "member", "promote", f"{learner:x}") == (
        0,
        f"Member {learner:16x} promoted in cluster               c1\n",
        "",
    )
    assert run(capsys, srv, "member", "promote", f"{learner:x}") == (
        1,
        "",
        "Error: etcdserver: can only promote a learner member\n",
    )
    assert run(capsys, srv, "member", "update", f"{learner:x}", "--peer-urls=http://localhost:52380") == (
        0,
        f"Member {learner:16x} updated in cluster               c1\n",
        "",
    )
    assert "http://localhost:52380" in run(capsys, srv, "member", "list")[1]
    assert run(capsys, srv, "member", "update", f"{learner:x}", f"--peer-urls={url}") == (
        1,
        "",
        "Error: etcdserver: Peer URLs already exists\n",
    )
    assert run(capsys, srv, "member", "update", "1234", "--peer-urls=http://127.0.0.1:9") == (
        1,
        "",
        "Error: etcdserver: member not found\n",
    )

    # Short ids are padded with spaces, exactly like etcdctl's %16x.
    assert run(capsys, servers[1], "member", "remove", "1111") == (
        0,
        "Member             1111 removed from cluster               c1\n",
        "",
    )
    assert run(capsys, srv, "member", "remove", "1111") == (1, "", "Error: etcdserver: member not found\n")
    code, out, _ = run(capsys, srv, "member", "remove", f"{new:x}", "-w", "json")
    body = json.loads(out)
    assert code == 0 and list(body) == ["header", "members"]
    assert [m["ID"] for m in body["members"]] == sorted([0x2222, 0x3333, learner])
    code, out, _ = run(capsys, srv, "member", "list", "-w", "table")
    rows = [line.split("|")[1].strip() for line in out.splitlines()[3:-1]]
    assert rows == [f"{i:x}" for i in sorted([0x2222, 0x3333, learner])]


def test_member_argument_errors(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    url = "--peer-urls=http://127.0.0.1:32380"
    cases = [
        (["member", "add", url], "member name not provided"),
        (["member", "add", "a"], "member peer urls not provided"),
        (
            ["member", "add", "a", "http://127.0.0.1:1", "HTTPS://x:2"],
            "too many arguments, did you mean --peer-urls=http://127.0.0.1:1"
            ", did you mean --peer-urls=HTTPS://x:2",
        ),
        (["member", "add", "a", "b", url], "too many arguments"),
        (["member", "remove"], "member ID is not provided"),
        (["member", "promote", "1", "2"], "member ID is not provided"),
        (
            ["member", "remove", "zz"],
            'bad member ID arg (strconv.ParseUint: parsing "zz": invalid syntax), expecting ID in Hex',
        ),
        (
            ["member", "promote", "0x12"],
            'bad member ID arg (strconv.ParseUint: parsing "0x12": invalid syntax), expecting ID in Hex',
        ),
        (
            ["member", "update", "1ffffffffffffffff", url],
            "bad member ID arg (strconv.ParseUint: parsing "
            '"1ffffffffffffffff": value out of range), expecting ID in Hex',
        ),
        (["member", "update", "1111"], "member peer urls not provided"),
    ]
    for argv, message in cases:
        assert run(capsys, srv, *argv) == (128, "", f"Error: {message}\n"), argv
    # etcdctl's printer refuses table and fields (exit 4); here before anything is changed.
    assert run(capsys, srv, "member", "remove", "2222", "-w", "table") == (
        4,
        "",
        "Error: table not supported as output format\n",
    )
    assert run(capsys, srv, "member", "add", "x", url, "-w", "fields") == (
        4,
        "",
        "Error: fields not supported as output format\n",
    )
    assert run(capsys, srv, "member", "add", "x", url, "-w", "xml") == (
        4,
        "",
        "Error: unsupported output format\n",
    )
    assert srv.requests("member_remove") == srv.requests("member_add") == 0
    assert len(run(capsys, srv, "member", "list")[1].splitlines()) == 3


def test_move_leader(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
    leader, f1, f2 = servers
    # Only followers among the endpoints: etcdctl refuses with exit 128 and lists what it was given.
    assert run(capsys, leader, f"--endpoints={f1.endpoint},{f2.endpoint}", "move-leader", "2222") == (
        128,
        "",
        f"Error: no leader endpoint given at [{f1.endpoint} {f2.endpoint}]\n",
    )
    assert (f1.requests("status"), f2.requests("status")) == (1, 1)
    assert f1.requests("move_leader") == f2.requests("move_leader") == 0
    eps = f"--endpoints={f1.endpoint},{leader.endpoint},{f2.endpoint}"
    assert run(capsys, leader, eps, "move-leader", "2222") == (
        0,
        "Leadership transferred from 1111 to 2222\n",
        "",
    )
    # Sent to the leader only, after asking the endpoints before it for their status.
    assert (f1.requests("status"), leader.requests("status"), f2.requests("status")) == (2, 1, 1)
    assert (f1.requests("move_leader"), leader.requests("move_leader")) == (0, 1)
    code, out, _ = run(capsys, leader, "endpoint", "status", "--cluster")
    assert code == 0
    assert [line.split(", ")[4] for line in out.splitlines()] == ["false", "true", "false"]

    code, out, _ = run(capsys, leader, eps, "move-leader", "3333", "-w", "json")
    assert (code, out) == (0, '{"header":{"cluster_id":193,"member_id":8738,"raft_term":2}}\n')
    assert run(capsys, leader, eps, "move-leader", "1234") == (
        1,
        "",
        "Error: etcdserver: bad leader transferee\n",
    )
    assert run(capsys, leader, eps, "move-leader", "zz") == (
        128,
        "",
        'Error: strconv.ParseUint: parsing "zz": invalid syntax\n',
    )
    assert run(capsys, leader, eps, "move-leader") == (
        128,
        "",
        "Error: move-leader command needs 1 argument\n",
    )
    assert run(capsys, leader, eps, "move-leader", "1111", "-w", "table") == (
        4,
        "",
        "Error: table not supported as output format\n",
    )
    # An endpoint that does not answer before the leader is found: etcdctl's status error, exit 1.
    dead = dead_endpoint()
    code, _, err = run(
        capsys,
        leader,
        f"--endpoints={dead},{f2.endpoint}",
        "--dial-timeout=100ms",
        "--command-timeout=300ms",
        "move-leader",
        "1111",
    )
    assert (code, err) == (1, "Error: context deadline exceeded\n")
    assert f2.leader == 0x3333


def test_outcome_unknown_shows_what_etcdctl_would() -> None:
    """A write in doubt prints the server's error or the deadline, as etcdctl does for the same failure."""

    def in_doubt(cause: BaseException) -> errors.OutcomeUnknownError:
        try:
            raise errors.OutcomeUnknownError("move_leader: in doubt") from cause
        except errors.OutcomeUnknownError as exc:
            return exc

    assert trikvctl.error_text(in_doubt(errors.TimeoutError_())) == "etcdserver: request timed out"
    assert trikvctl.error_text(in_doubt(DeadlineExceededError())) == "context deadline exceeded"
    assert trikvctl.error_text(in_doubt(OSError("reset"))) == "move_leader: in doubt"


# --------------------------------------------------------------------------- ETCDCTL_*, --hex, formats


def test_etcdctl_env_sets_global_flags_and_the_command_line_wins(
    servers: list[MemberServer], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = servers[0]
    run(capsys, srv, "put", "foo", "bar")
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", srv.endpoint)
    assert trikvctl.main(["get", "foo"]) == 0
    assert capsys.readouterr() == ("foo\nbar\n", "")
    monkeypatch.setenv("ETCDCTL_WRITE_OUT", "json")
    assert trikvctl.main(["get", "foo"]) == 0
    assert json.loads(capsys.readouterr().out)["kvs"][0]["value"] == "YmFy"
    assert trikvctl.main(["get", "foo", "-w", "simple"]) == 0  # the flag wins over ETCDCTL_WRITE_OUT
    assert capsys.readouterr().out == "foo\nbar\n"
    monkeypatch.delenv("ETCDCTL_WRITE_OUT")
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", dead_endpoint())
    assert trikvctl.main([f"--endpoints={srv.endpoint}", "get", "foo", "--print-value-only"]) == 0
    assert capsys.readouterr().out == "bar\n"
    # Command flags never come from the environment; an ETCDCTL_* that is no global flag is warned about.
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", srv.endpoint)
    monkeypatch.setenv("ETCDCTL_PREFIX", "true")
    run(capsys, srv, "put", "foo2", "x")
    assert trikvctl.main(["get", "foo"]) == 0
    out, err = capsys.readouterr()
    assert out == "foo\nbar\n"
    assert re.fullmatch(
        r"\S+ \S+ W \| pkg/flags: unrecognized environment variable ETCDCTL_PREFIX=true\n", err
    )
    monkeypatch.delenv("ETCDCTL_PREFIX")
    monkeypatch.setenv("ETCDCTL_COMMAND_TIMEOUT", "5")
    assert trikvctl.main(["get", "foo"]) == 1
    assert capsys.readouterr().err == (
        'Error: invalid value "5" for ETCDCTL_COMMAND_TIMEOUT: time: invalid duration "5"\n'
    )


def test_hex_output_matches_etcdctl(
    servers: list[MemberServer], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = servers[0]
    key, value = os.fsdecode(b"k\xff\x01"), os.fsdecode(b"A\n\xfe")
    assert run(capsys, srv, "put", key, value) == (0, "OK\n", "")
    # etcdctl's printKV with --hex: every byte as \x and two lowercase hex digits.
    assert run(capsys, srv, "--hex", "get", key) == (0, "\\x6b\\xff\\x01\n\\x41\\x0a\\xfe\n", "")
    assert run(capsys, srv, "put", key, "B", "--prev-kv", "--hex") == (
        0,
        "OK\n\\x6b\\xff\\x01\n\\x41\\x0a\\xfe\n",
        "",
    )
    monkeypatch.setenv("ETCDCTL_HEX", "true")
    assert run(capsys, srv, "get", key, "--print-value-only") == (0, "\\x42\n", "")
    assert run(capsys, srv, "get", key, "--print-value-only", "--hex=false") == (0, "B\n", "")
    assert run(capsys, srv, "del", key, "--prev-kv") == (0, "1\n\\x6b\\xff\\x01\n\\x42\n", "")


def test_non_utf8_arguments_are_bytes(
    servers: list[MemberServer], capsys: pytest.CaptureFixture[str]
) -> None:
    srv = servers[0]
    key = os.fsdecode(b"\xc3\x28key")  # not UTF-8: Python hands it over as surrogates
    assert run(capsys, srv, "put", key, os.fsdecode(b"v\xff"))[0] == 0
    code, out, _ = run(capsys, srv, "get", key, "-w", "json")
    kv = json.loads(out)["kvs"][0]
    assert (code, base64.b64decode(kv["key"]), base64.b64decode(kv["value"])) == (0, b"\xc3\x28key", b"v\xff")
    code, out, _ = run(capsys, srv, "get", os.fsdecode(b"\xc3"), "--prefix", "-w", "json")
    assert (code, json.loads(out)["count"]) == (0, 1)
    code, _, err = run(capsys, srv, "compaction", os.fsdecode(b"\xff"))
    assert code == 128 and err.startswith('Error: strconv.ParseInt: parsing "\\xff": invalid syntax')


def test_output_formats_per_command(
    servers: list[MemberServer], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """etcdctl 3.4's printers: what each command prints with each -w, and exit 4 where it has none."""
    srv = servers[0]

    def ctl(*argv: str) -> tuple[int, bytes, bytes]:
        code = trikvctl.main([f"--endpoints={srv.endpoint}", *argv])
        out, err = capsysbinary.readouterr()
        return code, out, err

    assert ctl("put", "foo", "bar")[0] == 0
    code, out, _ = ctl("get", "foo", "-w", "protobuf")
    # pb.RangeResponse{header{193, 4369, 2, 2}, kvs[{foo, 2, 2, 1, bar}], count 1}, no newline.
    expected = b'\n\n\x08\xc1\x01\x10\x91"\x18\x02 \x02\x12\x10\n\x03foo\x10\x02\x18\x02 \x01*\x03bar \x01'
    assert (code, out) == (0, expected)
    for argv in (
        ["get", "foo"],
        ["put", "a", "b"],
        ["del", "a"],
        ["member", "add", "m", "--peer-urls=http://h:1"],
    ):
        assert ctl(*argv, "-w", "table") == (4, b"", b"Error: table not supported as output format\n"), argv
    assert ctl("move-leader", "2222", "-w", "fields") == (
        4,
        b"",
        b"Error: fields not supported as output format\n",
    )
    assert ctl("endpoint", "status", "-w", "protobuf") == (
        4,
        b"",
        b"Error: protobuf not supported as output format\n",
    )
    assert ctl("endpoint", "health", "-w", "protobuf")[0] == 4
    assert ctl("member", "list", "-w", "yaml") == (4, b"", b"Error: unsupported output format\n")
    code, out, _ = ctl("member", "list", "-w", "fields")
    assert code == 0 and out.splitlines()[4:7] == [
        b'"ID" : 4369',
        b'"Name" : "fake0"',
        f'"PeerURL" : "http://127.0.0.1:{srv.port + 1}"'.encode(),
    ]
    code, out, _ = ctl("endpoint", "status", "-w", "fields")
    assert (
        code == 0
        and b'"Version" : "3.4.23"' in out
        and out.endswith(f'"Endpoint" : "{srv.endpoint}"\n\n'.encode())
    )
    code, out, _ = ctl("endpoint", "health", "-w", "fields")
    assert code == 0 and out.startswith(f'"Endpoint" : "{srv.endpoint}"\n"Health" : true\n'.encode())
    assert ctl("compaction", "1", "-w", "table") == (0, b"compacted revision 1\n", b"")


def test_protobuf_bytes_match_etcdctl() -> None:
    """`etcdctl get foo -w protobuf | od -c` from etcd 3.4.23, decoded: the same 47 bytes."""
    expected = (
        b"\n\x19\x08\x89\xe8\xf6\xf2\xf1\xb6\xc8\xc1\x16\x10\xec\xd4\x81\xee\xa0\xa6\xdd\x8f\xb7\x01\x18\x02 \x02"
        b"\x12\x10\n\x03foo\x10\x02\x18\x02 \x01*\x03bar \x01"
    )
    header = rpc.ResponseHeader(1622177361155699721, 13195394291058371180, 2, 2)
    resp = rpc.RangeResponse(header, (rpc.KeyValue(b"foo", 2, 2, 1, b"bar", 0),), False, 1)
    assert ctl_print.pb_response(resp) == expected


def test_global_flags_and_help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert trikvctl.main(["--discovery-srv=example.com", "get", "foo"]) == 4
    assert capsys.readouterr().err.startswith("Error: --discovery-srv is not supported by trikvctl")
    monkeypatch.setenv("ETCDCTL_DISCOVERY_SRV", "example.com")
    assert trikvctl.main(["member", "list"]) == 4
    assert capsys.readouterr().err.startswith("Error: --discovery-srv is not supported by trikvctl")
    monkeypatch.delenv("ETCDCTL_DISCOVERY_SRV")
    # etcdctl's TLS and auth flags exist, and say clearly that trikv has neither yet (exit 4).
    for argv in (["--cacert=ca.pem"], ["--insecure-transport=false"], ["--user=root:pw"]):
        assert trikvctl.main([*argv, "get", "foo"]) == 4
        assert re.fullmatch(
            r"Error: --[\w-]+(=false)?: (TLS|authentication) is not supported by trikv yet.*\n",
            capsys.readouterr().err,
        )
    assert trikvctl.main(["--keepalive-time=1s", "--keepalive-timeout=xs", "get", "foo"]) == 1
    assert capsys.readouterr().err == (
        'Error: invalid argument "xs" for "--keepalive-timeout" flag: time: invalid duration "xs"\n'
    )
    dead = dead_endpoint()
    assert trikvctl.main(["--debug", f"--endpoints={dead}", "--command-timeout=100ms", "get", "foo"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"ETCDCTL_ENDPOINTS=[{dead}]" in err and "ETCDCTL_COMMAND_TIMEOUT=100ms" in err
    assert err[-1] == "Error: context deadline exceeded"
    assert any(line.startswith(f"range via {dead} failed (ConnectionRefusedError") for line in err)
    for argv in (["get", "--help"], ["member", "add", "--help"], ["--help"]):
        with pytest.raises(SystemExit) as info:
            trikvctl.main(argv)
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "trikv endpoints" in out and "ETCDCTL_ENDPOINTS" in out
        assert "gRPC" not in out and not re.search(r"\betcd\b", out), out
    with pytest.raises(SystemExit):
        trikvctl.main(["get", "--help"])
    out = capsys.readouterr().out
    assert "Get keys with matching prefix" in out and "print byte strings as hex encoded strings" in out


# --------------------------------------------------------------------------- the real program, bad input


def ctl_process(
    *argv: str | bytes, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "trikv.tools.trikvctl", *argv],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        timeout=timeout,
    )


def assert_one_error(proc: subprocess.CompletedProcess[bytes], code: int, message: bytes) -> None:
    assert b"Traceback" not in proc.stderr
    assert (proc.returncode, proc.stderr) == (code, b"Error: " + message + b"\n")


def test_program_bad_input_exit_codes_and_no_traceback(servers: list[MemberServer]) -> None:
    srv = servers[0]
    env = {"ETCDCTL_ENDPOINTS": srv.endpoint}  # the only way the program learns where the server is
    proc = ctl_process("put", b"k\xff", b"v\xfe", env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"OK\n", b"")
    proc = ctl_process("get", b"k\xff", env={**env, "ETCDCTL_WRITE_OUT": "json"})
    assert proc.returncode == 0 and base64.b64decode(json.loads(proc.stdout)["kvs"][0]["value"]) == b"v\xfe"
    assert_one_error(ctl_process("get", "foo", "--x", env=env), 1, b"unknown flag: --x")
    assert_one_error(
        ctl_process("put", "k", "v", "--lease=zz", env=env),
        128,
        (b'bad lease ID (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex'),
    )
    assert_one_error(
        ctl_process("get", "foo", "-w", "table", env=env), 4, b"table not supported as output format"
    )
    unreachable = ctl_process(
        f"--endpoints={dead_endpoint()}", "--command-timeout=300ms", "get", "foo", env=env
    )
    assert_one_error(unreachable, 1, b"context deadline exceeded")


def test_program_dies_by_sigint_while_waiting() -> None:
    """Ctrl-C while the server never answers: killed by SIGINT (the shell's 130), no trace, no Error line."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(20)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trikv.tools.trikvctl",
                f"--endpoints=127.0.0.1:{listener.getsockname()[1]}",
                "--command-timeout=60s",
                "--dial-timeout=60s",
                "put",
                "k",
                "v",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            conn, _ = listener.accept()  # the client is now waiting on us
            with conn:
                conn.recv(4096)  # its WebSocket upgrade request, never answered
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == -signal.SIGINT
    assert (out, err) == (b"", b"")


# --------------------------------------------------------------------------- the blocking transport


def test_blocking_transport_retry_rules(servers: list[MemberServer]) -> None:
    """Reads fail over; a write moves on only when it provably never left; otherwise it is in doubt."""
    first, second = servers[0], servers[1]
    eps = [first.endpoint, second.endpoint]
    with BlockingClient([dead_endpoint(), *eps], dial_timeout=1, request_timeout=3) as c:
        c.put("k", "v")  # refused connection: nothing left, so even a write goes to the next endpoint
        assert first.requests("put") == 1
    first.inject("range", DROP)
    with BlockingClient(eps, dial_timeout=1, request_timeout=3) as c:
        assert c.get("k").kvs[0].value == b"v"  # dropped after sending: a read is retried elsewhere
        assert (first.requests("range"), second.requests("range")) == (1, 1)
    first.inject("put", DROP)
    with (
        BlockingClient(eps, dial_timeout=1, request_timeout=3) as c,
        pytest.raises(errors.OutcomeUnknownError),
    ):
        c.put("k", "v2")
    assert second.requests("put") == 0
    first.inject("put", errors.NoLeaderError())  # refused before proposing: safe to send elsewhere
    with BlockingClient(eps, dial_timeout=1, request_timeout=3) as c:
        c.put("k", "v3")
    assert second.requests("put") == 1
    first.inject("put", errors.TimeoutError_())  # proposed, then timed out: in doubt
    with (
        BlockingClient(eps, dial_timeout=1, request_timeout=3) as c,
        pytest.raises(errors.OutcomeUnknownError) as info,
    ):
        c.put("k", "v4")
    assert trikvctl.error_text(info.value) == "etcdserver: request timed out"
    first.inject("put", HANG)
    with (
        BlockingClient(eps, dial_timeout=1, request_timeout=0.3) as c,
        pytest.raises(errors.OutcomeUnknownError) as info,
    ):
        c.put("k", "v5")
    assert trikvctl.error_text(info.value) == "context deadline exceeded"
    assert second.requests("put") == 1


def test_unary_commands_never_import_trio(servers: list[MemberServer]) -> None:
    """Start-up is the cost of a CLI call: trio and the WebSocket stack stay out of unary commands."""
    code = (
        "import sys\n"
        "from trikv.tools import trikvctl\n"
        f"eps = '--endpoints={servers[0].endpoint}'\n"
        "for argv in (['put', 'k', 'v'], ['get', 'k'], ['member', 'list'], ['endpoint', 'health']):\n"
        "    assert trikvctl.main([eps, *argv]) == 0, argv\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'trio_websocket', 'wsproto', 'h11')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == b"[]"


def test_blocking_wire_form_encodes_exactly_as_the_codec() -> None:
    """The blocking transport pre-tags shapes (cheaper first encode); the bytes must be the codec's own."""
    compare = rpc.Compare(rpc.CompareResult.GREATER, rpc.CompareTarget.VERSION, b"k", 3, b"")
    requests = [
        rpc.RangeRequest(b"a", b"z", 5, 2, rpc.SortOrder.DESCEND, rpc.SortTarget.MOD, True, True),
        rpc.PutRequest(b"k\xff", b"v", 7, True),
        rpc.DeleteRangeRequest(b"a", b"\0", True),
        rpc.TxnRequest(
            [compare], [rpc.PutRequest(b"k", b"v")], [rpc.RangeRequest(b"k"), rpc.DeleteRangeRequest(b"k")]
        ),
        rpc.CompactionRequest(9, True),
        protocol.StatusRequest(),
        protocol.MemberListRequest(True),
        protocol.MemberAddRequest(("http://127.0.0.1:1", "http://127.0.0.1:2"), True),
        protocol.MoveLeaderRequest(0x1234),
    ]
    for request in requests:
        assert codec.encode(wire_form(request)) == codec.encode(request), request
        assert codec.decode(codec.encode(wire_form(request))) == request


# --------------------------------------------------------------------------- txn


def test_txn_as_etcdctl(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
    """etcdctl 3.4's txn: stdin sections each ended by an empty line; its output in every format."""
    srv = servers[0]
    run(capsys, srv, "put", "user1", "bad")
    run(capsys, srv, "put", "counter", "1")
    script = (
        'value("user1") = "bad"\nmod("user1") > "0"\nversion("counter") = "1"\n\n'
        "put user1 good\nput counter 2\nget user1\n\ndel user1\n"
    )
    # etcdctl 3.4 wants the last section ended by an empty line too: without it, nothing is sent.
    assert run(capsys, srv, "txn", stdin=script.encode()) == (3, "", "Error: EOF\n")
    assert srv.requests("txn") == 0
    assert run(capsys, srv, "txn", stdin=(script + "\n").encode()) == (
        0,
        "SUCCESS\n\nOK\n\nOK\n\nuser1\ngood\n",
        "",
    )
    failing = 'value("user1") = "bad"\n\nput user1 never\n\nput fail-branch yes\nget user1\n\n'
    assert run(capsys, srv, "txn", stdin=failing.encode()) == (0, "FAILURE\n\nOK\n\nuser1\ngood\n", "")
    code, out, _ = run(
        capsys, srv, "txn", "-w", "json", stdin=b'create("nonexistent") != "0"\n\nput x 1\n\nget counter\n\n'
    )
    body = json.loads(out)
    assert code == 0 and "succeeded" not in body  # false is omitted, as Go's omitempty
    assert list(body["responses"][0]["Response"]) == ["ResponseRange"]
    assert body["responses"][0]["Response"]["ResponseRange"]["kvs"][0]["value"] == "Mg=="
    code, out, _ = run(
        capsys, srv, "txn", "-w", "fields", stdin=b'value("user1") < "zzz"\n\ndel user1 --prev-kv\n\n\n'
    )
    assert code == 0
    assert out.splitlines()[4] == '"Succeeded" : true'
    assert out.splitlines()[-6:] == [
        '"PrevKey" : "user1"',
        '"PrevCreateRevision" : 2',
        '"PrevModRevision" : 4',
        '"PrevVersion" : 2',
        '"PrevValue" : "good"',
        '"PrevLease" : 0',
    ]
    assert run(capsys, srv, "txn", "-w", "table", stdin=b"\n\n\n") == (
        4,
        "",
        "Error: table not supported as output format\n",
    )
    bad = [
        (b"put lonely 1\n", 3, "malformed comparison: put lonely 1"),
        (b'value("a")="b"\n\n\n\n', 3, 'malformed comparison: value("a")="b"; got value("a") ="b" ""'),
        (b'value("a") == "b"\n\n\n\n', 3, 'malformed comparison: value("a") == "b" (unknown operator ==)'),
        (b'nope("a") = "b"\n\n\n\n', 3, 'malformed comparison: nope("a") = "b" (unknown target nope)'),
        (b'mod("a") > "x"\n\n\n\n', 3, 'invalid txn compare request: mod("a") > "x"'),
        (b"\nput a b --bogus\n\n\n", 3, "invalid txn request: put a b --bogus"),
        (b"\nwatch a\n\n\n", 3, "invalid txn request: watch a"),
        (b"\nput a\n\n\n", 128, "put command needs 1 argument and input from stdin or 2 arguments"),
    ]
    for stdin, code, message in bad:
        assert run(capsys, srv, "txn", stdin=stdin) == (code, "", f"Error: {message}\n"), stdin
    assert run(capsys, srv, "txn", "extra") == (128, "", "Error: txn command does not accept argument\n")


def test_txn_quoting_and_bytes(servers: list[MemberServer], capsys: pytest.CaptureFixture[str]) -> None:
    srv = servers[0]
    script = b'\nput "a b" \'c d\'\nput "k\\xff" `raw\\n`\n\n\n'
    assert run(capsys, srv, "txn", "-i", stdin=script) == (
        0,
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n\nOK\n",
        "",
    )
    assert run(capsys, srv, "get", "a b", "--print-value-only") == (0, "c d\n", "")
    code, out, _ = run(
        capsys, srv, "txn", "-w", "json", stdin=b'value("k\\xff") = "`raw\\\\n`"\n\nget "k\\xff"\n\n\n'
    )
    # argify leaves backquotes alone (only '...' and "..." are quotes there): the value kept them.
    assert code == 0 and json.loads(out)["succeeded"] is True
    assert trikvctl.go_unquote('"\\x41\\101\\u00e9\\"" rest') == (b'AA\xc3\xa9"', " rest")
    assert trikvctl.go_unquote('"\\q"') is None and trikvctl.go_unquote('"open') is None
