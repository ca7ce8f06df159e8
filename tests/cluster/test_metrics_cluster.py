"""Acceptance: /metrics of real members is what etcd's official mixin (alerts and dashboard) reads, with true
values: every metric name and label matcher of the vendored rendered mixin has a series of etcd's type on
each member; writes move the counters; a member cut off from its peers reports no leader; a leader kill
is a leader change on the survivors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from prometheus_client.parser import text_string_to_metric_families

import trikv
from tests.cluster.test_cluster import find_leader
from trikv.actors.identity import format_id
from trikv.api.watch import WatchCreateRequest, WatchRequest
from trikv.tools.localcluster import Cluster, free_port

pytestmark = pytest.mark.slow
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")  # zap's ISO8601 UTC with milliseconds

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "etcd_mixin"
TARGET_LABELS = {"job", "instance", "endpoint"}  # Prometheus' target labels, not the member's
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def mixin_selectors() -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(metric name, [(label, op, value)]) of every selector in the vendored alert rules and dashboard."""
    rules = yaml.safe_load((FIXTURES / "alerts.yaml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += [
        line
        for line in (FIXTURES / "dashboard_queries.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    out = []
    for expr in exprs:
        for name, body in SELECTOR.findall(expr):
            if name == "up":  # Prometheus' own series about the scrape
                continue
            matchers = [m for m in MATCHER.findall(body) if m[0] not in TARGET_LABELS]
            out.append((name, matchers))
    return out


def etcd_types() -> dict[str, str]:
    lines = (FIXTURES / "etcd_types.txt").read_text().splitlines()
    return dict(line.split() for line in lines if line and not line.startswith("#"))


def _matches(labels: dict[str, str], op: str, label: str, value: str) -> bool:
    got = labels.get(label)
    if op == "=":
        return got == value
    if op == "!=":
        return got != value
    hit = got is not None and re.fullmatch(value, got) is not None
    return hit if op == "=~" else not hit


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))
        self.family_of: dict[str, Any] = {}
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for fam in self.families:
            for s in fam.samples:
                self.family_of[s.name] = fam
                self.samples.setdefault(s.name, []).append((s.labels, s.value))

    def value(self, name: str, **labels: str) -> float:
        found = [v for ls, v in self.samples.get(name, []) if all(ls.get(k) == x for k, x in labels.items())]
        assert len(found) == 1, f"{name}{labels}: {len(found)} series"
        return found[0]

    def etcd_name(self, sample: str) -> str:
        fam = self.family_of[sample]
        return fam.name + "_total" if fam.type == "counter" else fam.name


def http_get(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode()


async def scrape(port: int) -> Scrape:
    return Scrape(await trio.to_thread.run_sync(http_get, port))


@pytest.fixture
def metrics_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, list[int]]]:
    """Three members, each also serving /metrics on its own listen-metrics-urls port."""
    c = Cluster(tmp_path, overrides={"log-level": "info"})
    ports: list[int] = []
    taken = {p for m in c.members for p in (m.client_port, m.peer_port)}
    for m in c.members:
        cfg = yaml.safe_load(m.config_path.read_text())
        port = free_port()
        while port in taken or port in ports:  # a released port may come back: never reuse a member's
            port = free_port()
        cfg["listen-metrics-urls"] = f"http://127.0.0.1:{port}"
        m.config_path.write_text(yaml.safe_dump(cfg))
        ports.append(port)
    c.start()
    try:
        yield c, ports
    finally:
        for m in c.members:
            if m.proc is not None and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGCONT)
        c.stop()


async def wait_for(pred: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
    with trio.move_on_after(timeout):
        while not await pred():
            await trio.sleep(0.1)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def test_every_mixin_series_is_served_with_etcds_type(
    metrics_cluster: tuple[Cluster, list[int]],
) -> None:
    cluster, metrics_ports = metrics_cluster
    await find_leader(cluster)
    async with trikv.connect(cluster.endpoints) as c:
        await c.put("k", "v")
    selectors = mixin_selectors()
    assert len(selectors) >= 30  # the fixture really was parsed
    types = etcd_types()
    for m, mport in zip(cluster.members, metrics_ports, strict=True):
        # the RTT prober's first round and the peer links: give them a moment on a busy machine
        async def peers_seen(port: int = m.client_port) -> bool:
            s = await scrape(port)
            return len(s.samples.get("etcd_network_peer_round_trip_time_seconds_count", [])) == 2

        await wait_for(peers_seen, f"{m.name}: RTT series for both peers")
        for port in (m.client_port, mport):
            s = await scrape(port)
            assert "_created" not in "".join(s.samples)
            for name, matchers in selectors:
                series = [ls for ls, _ in s.samples.get(name, [])]
                assert series, f"{m.name}:{port} has no {name}"
                assert any(all(_matches(ls, op, lb, v) for lb, op, v in matchers) for ls in series), (
                    f"{m.name}: no {name} series matches {matchers}"
                )
                etcd_name = s.etcd_name(name)
                assert etcd_name in types, f"{etcd_name} missing from etcd_types.txt"
                assert s.family_of[name].type == types[etcd_name], (
                    f"{etcd_name} is a {s.family_of[name].type}"
                )
        assert "health" in await trio.to_thread.run_sync(http_get, mport, "/health")


async def test_values_are_true(metrics_cluster: tuple[Cluster, list[int]]) -> None:
    cluster, _ = metrics_cluster
    leader = cluster.members[await find_leader(cluster)]
    n = 30
    before = {m.name: await scrape(m.client_port) for m in cluster.members}
    async with trikv.connect([leader.endpoint]) as c:
        async with contextlib.AsyncExitStack() as stack:
            each = [await stack.enter_async_context(trikv.connect([m.endpoint])) for m in cluster.members]
            for i in range(n):
                rev = (await c.put(f"m{i}", "v")).header.revision
                # every member has it before the next put: a lagging follower would get two in one append
                for member_client in each:
                    with trio.fail_after(10):
                        while (await member_client.get("m", serializable=True)).header.revision < rev:
                            await trio.sleep(0.005)
        fsyncs = "etcd_disk_wal_fsync_duration_seconds_count"
        after: dict[str, Scrape] = {}

        async def all_synced() -> bool:  # the slower follower is not part of the acknowledging quorum
            after.update({m.name: await scrape(m.client_port) for m in cluster.members})
            return all(after[k].value(fsyncs) >= before[k].value(fsyncs) + n for k in after)

        await wait_for(all_synced, "every member fsyncs every put")
        leader_id: list[int] = []

        async def sizes_agree() -> bool:
            # A page-file commit between the two reads may move the sizes: they must agree once settled.
            status = await c.status()
            leader_id[:] = [status.leader]
            lead_now = await scrape(leader.client_port)
            return (
                lead_now.value("etcd_mvcc_db_total_size_in_bytes"),
                lead_now.value("etcd_mvcc_db_total_size_in_use_in_bytes"),
            ) == (status.db_size, status.db_size_in_use)

        await wait_for(sizes_agree, "the scraped db sizes equal endpoint status's")
        # three open watch streams: the mixin's started - handled
        streams_ok = trio.Event()

        async def open_watches() -> None:
            req = WatchRequest(create_request=WatchCreateRequest(b"w"))
            async with c.stream("watch", req, leader.endpoint), c.stream("watch", req, leader.endpoint):
                async with c.stream("watch", req, leader.endpoint):
                    await streams_ok.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_watches)

            async def three_open() -> bool:
                s = await scrape(leader.client_port)
                labels = {
                    "grpc_type": "bidi_stream",
                    "grpc_service": "etcdserverpb.Watch",
                    "grpc_method": "Watch",
                }
                started = s.value("grpc_server_started_total", **labels)
                handled = sum(
                    v
                    for ls, v in s.samples["grpc_server_handled_total"]
                    if all(ls.get(k) == x for k, x in labels.items())
                )
                return started - handled == 3

            await wait_for(three_open, "3 open watch streams")
            streams_ok.set()
    lname = leader.name
    committed = "etcd_server_proposals_committed_total"
    assert after[lname].value(committed) >= before[lname].value(committed) + n
    assert after[lname].value("etcd_server_proposals_failed_total") == before[lname].value(
        "etcd_server_proposals_failed_total"
    )
    put_ok = {
        "grpc_type": "unary",
        "grpc_service": "etcdserverpb.KV",
        "grpc_method": "Put",
        "grpc_code": "OK",
    }
    assert after[lname].value("grpc_server_handled_total", **put_ok) >= n
    assert after[lname].value("etcd_network_client_grpc_received_bytes_total") > 0
    assert after[lname].value("etcd_network_client_grpc_sent_bytes_total") > 0
    for m in cluster.members:
        assert after[m.name].value(fsyncs) >= before[m.name].value(fsyncs) + n, m.name
        assert after[m.name].value("etcd_server_has_leader") == 1
        assert after[m.name].value("etcd_server_is_leader") == (1 if m is leader else 0)
        sent = {ls["To"]: v for ls, v in after[m.name].samples["etcd_network_peer_sent_bytes_total"]}
        assert len(sent) == 2, m.name
        if m is leader:  # appends to both followers; a follower answers only its leader
            assert all(v > 0 for v in sent.values())
        else:
            assert sent[format_id(leader_id[0])] > 0, m.name

    # etcd's own etcdctl over gRPC counts on the same series (one surface among several, one place)
    grpc_before = await scrape(leader.client_port)
    proc = await trio.run_process(
        ["etcdctl", f"--endpoints={leader.endpoint}", "put", "via-grpc", "x"],
        capture_stdout=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    assert proc.stdout.strip() == b"OK"
    grpc_after = await scrape(leader.client_port)
    assert (
        grpc_after.value("grpc_server_handled_total", **put_ok)
        == grpc_before.value("grpc_server_handled_total", **put_ok) + 1
    )
    received = "etcd_network_client_grpc_received_bytes_total"
    assert grpc_after.value(received) > grpc_before.value(received) + len("via-grpc")
    sent_bytes = "etcd_network_client_grpc_sent_bytes_total"
    assert grpc_after.value(sent_bytes) > grpc_before.value(sent_bytes) + 50  # HEADERS, DATA and trailers


async def test_has_leader_and_leader_changes(metrics_cluster: tuple[Cluster, list[int]]) -> None:
    cluster, _ = metrics_cluster
    li = await find_leader(cluster)
    leader = cluster.members[li]
    survivors = [m for m in cluster.members if m is not leader]
    changes = "etcd_server_leader_changes_seen_total"
    seen = {m.name: (await scrape(m.client_port)).value(changes) for m in survivors}
    async with trikv.connect([leader.endpoint]) as c:
        old_id = (await c.status()).header.member_id
    assert all(v >= 1 for v in seen.values())
    # A leader kill: the survivors elect a new leader and count the change.
    leader.kill()

    async def changed() -> bool:
        for m in survivors:
            s = await scrape(m.client_port)
            if s.value(changes) <= seen[m.name] or s.value("etcd_server_has_leader") != 1:
                return False
        return True

    await wait_for(changed, "survivors count a leader change")
    # ... and log it at warn, naming the new leader and its term (structured fields, not message text).
    async with trikv.connect([survivors[0].endpoint]) as c:
        st = await c.status()
    for m in survivors:
        lines = [json.loads(line) for line in m.log_text().splitlines()]
        elected = [e for e in lines if e["msg"] == "elected leader" and e["level"] == "warn"]
        assert elected and elected[-1]["leader"] == format_id(st.leader), m.name
        assert elected[-1]["term"] == st.raft_term and elected[-1]["local-member-id"], m.name
    # One member whose two peers are stopped: after an election timeout it has no leader.
    leader.start()
    leader.wait_ready()
    lone = survivors[0]
    others = [m for m in cluster.members if m is not lone]

    async def has_leader() -> bool:
        return (await scrape(lone.client_port)).value("etcd_server_has_leader") == 1

    await wait_for(has_leader, "the restarted member rejoins")
    for m in others:
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGSTOP)
    try:

        async def no_leader() -> bool:
            return (await scrape(lone.client_port)).value("etcd_server_has_leader") == 0

        await wait_for(no_leader, "has_leader 0 on the member cut off from its peers")
    finally:
        for m in others:
            assert m.proc is not None
            os.kill(m.proc.pid, signal.SIGCONT)
    await wait_for(has_leader, "a leader again after SIGCONT")
    # Every line at info level is one JSON object with zap's fields; the new leader saw the old one go and
    # come back, at warn, with both ids as fields.
    for m in cluster.members:
        for line in m.log_text().splitlines():
            entry = json.loads(line)
            assert {"level", "ts", "caller", "msg"} <= entry.keys(), line
            assert entry["level"] in ("info", "warn", "error") and TS.fullmatch(entry["ts"]), line
    by_id = {}
    for m in survivors:
        async with trikv.connect([m.endpoint]) as c:
            by_id[(await c.status()).header.member_id] = m
    new_leader = by_id[st.leader]  # the one elected after the kill: it sent to the dead member
    failures = (await scrape(new_leader.client_port)).value(
        "etcd_network_peer_sent_failures_total", To=format_id(old_id)
    )
    assert failures > 0  # the mixin's etcdMembersDown reads their rate

    def peer_lines(msg: str) -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in new_leader.log_text().splitlines()]
        return [e for e in lines if e["msg"] == msg and e.get("remote-peer-id") == format_id(old_id)]

    assert [e["level"] for e in peer_lines("peer became inactive (message send to peer failed)")][:1] == [
        "warn"
    ]
    assert [e["level"] for e in peer_lines("peer became active")][:1] == ["warn"]


TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
