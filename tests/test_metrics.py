"""Member metrics in-process (whole Nodes over the actor-test twins, virtual time): values are true, types
and names are etcd's, scrapes parse with prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio.testing import MockClock

from tests.actors.harness import cluster, put, wait_until
from trikv.actors.logfields import go_duration, member_fields
from trikv.actors.metrics import SERVICES, MemberMetrics, exponential_buckets, grpc_method
from trikv.actors.node import Node
from trikv.api import errors, protocol, rpc


def scrape(node: Node) -> dict[str, float]:
    """Every sample of one member's /metrics, by name and sorted labels."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(node.metrics.exposition().decode()):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def value(node: Node, name: str, **labels: str) -> float:
    key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return scrape(node)[f"{name}{{{key}}}"]


async def test_values_follow_writes(autojump_clock: MockClock) -> None:
    n = 20
    async with cluster() as c:
        lead = await c.settle()
        nodes = c.running()
        committed0 = value(lead, "etcd_server_proposals_committed_total")
        fsyncs0 = {id(m): value(m, "etcd_disk_wal_fsync_duration_seconds_count") for m in nodes}
        failed0 = value(lead, "etcd_server_proposals_failed_total")
        puts0 = value(
            lead,
            "grpc_server_handled_total",
            grpc_type="unary",
            grpc_service="etcdserverpb.KV",
            grpc_method="Put",
            grpc_code="OK",
        )
        for i in range(n):
            await put(lead, b"k%d" % i, b"v")
        await wait_until(lambda: all(m.status.applied >= lead.status.committed for m in nodes), "applied")
        assert value(lead, "etcd_server_proposals_committed_total") >= committed0 + n
        assert value(lead, "etcd_server_proposals_applied_total") >= committed0 + n
        for m in nodes:
            assert value(m, "etcd_disk_wal_fsync_duration_seconds_count") >= fsyncs0[id(m)] + n
            assert value(m, "etcd_server_has_leader") == 1
            assert value(m, "etcd_server_is_leader") == (1 if m is lead else 0)
            assert value(m, "etcd_server_leader_changes_seen_total") >= 1
        assert value(lead, "etcd_server_proposals_failed_total") == failed0
        assert (
            value(
                lead,
                "grpc_server_handled_total",
                grpc_type="unary",
                grpc_service="etcdserverpb.KV",
                grpc_method="Put",
                grpc_code="OK",
            )
            == puts0 + n
        )
        status = await lead.handlers.handle(protocol.StatusRequest())
        assert value(lead, "etcd_mvcc_db_total_size_in_bytes") == status.db_size
        assert value(lead, "etcd_mvcc_db_total_size_in_use_in_bytes") == status.db_size_in_use
        await wait_until(
            lambda: value(lead, "etcd_disk_backend_commit_duration_seconds_count") >= 1, "commit"
        )


def test_exposition_is_etcds_shape() -> None:
    m = MemberMetrics()
    text = m.exposition().decode()
    assert "_created" not in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["etcd_disk_wal_fsync_duration_seconds"].type == "histogram"
    les = [s.labels["le"] for s in fams["etcd_disk_wal_fsync_duration_seconds"].samples if "le" in s.labels]
    assert les[:3] == ["0.001", "0.002", "0.004"] and les[-2:] == [
        "8.192",
        "+Inf",
    ]  # ExponentialBuckets(0.001, 2, 14)
    assert exponential_buckets(0.0001, 2, 16)[-1] == 0.0001 * 2**15
    assert fams["etcd_server_leader_changes_seen"].type == "counter"
    assert "process_resident_memory_bytes" in fams
    # go-grpc-prometheus pre-registers every method with every code: the mixin's regex matchers find series.
    handled = {
        (s.labels["grpc_service"], s.labels["grpc_method"], s.labels["grpc_code"])
        for s in fams["grpc_server_handled"].samples
    }
    for service, methods in SERVICES.items():
        for method, _ in methods:
            assert (service, method, "Unavailable") in handled and (service, method, "OK") in handled
    assert not MemberMetrics(extensive=False).exposition().decode().count("grpc_server_handling_seconds")


def test_request_shapes_count_under_etcds_methods() -> None:
    assert grpc_method(rpc.PutRequest) == ("unary", "etcdserverpb.KV", "Put")
    assert grpc_method(rpc.CompactionRequest) == ("unary", "etcdserverpb.KV", "Compact")
    assert grpc_method(protocol.StatusRequest) == ("unary", "etcdserverpb.Maintenance", "Status")
    assert grpc_method(protocol.MemberListRequest) == ("unary", "etcdserverpb.Cluster", "MemberList")
    # trikv's stream shapes (trikv.api.watch / trikv.api.lease) by name, as the table maps them
    watch, keep_alive = type("WatchRequest", (), {}), type("LeaseKeepAliveRequest", (), {})
    assert grpc_method(watch) == ("bidi_stream", "etcdserverpb.Watch", "Watch")
    assert grpc_method(keep_alive) == ("bidi_stream", "etcdserverpb.Lease", "LeaseKeepAlive")


async def test_failures_count_with_their_codes(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        with pytest.raises(errors.EmptyKeyError):
            await lead.handlers.handle(rpc.PutRequest(b"", b"v"))  # etcd: key is not provided
        assert (
            value(
                lead,
                "grpc_server_handled_total",
                grpc_type="unary",
                grpc_service="etcdserverpb.KV",
                grpc_method="Put",
                grpc_code="InvalidArgument",
            )
            == 1
        )
        for other in c.followers(lead):
            await c.stop(c.name_of(other))
        await wait_until(lambda: lead.status.lead == 0, "leader steps down without a quorum")
        assert value(lead, "etcd_server_has_leader") == 0
        with pytest.raises(errors.NoLeaderError):
            await put(lead, b"k", b"v")
        assert value(lead, "etcd_server_proposals_failed_total") == 1
        assert (
            value(
                lead,
                "grpc_server_handled_total",
                grpc_type="unary",
                grpc_service="etcdserverpb.KV",
                grpc_method="Put",
                grpc_code="Unavailable",
            )
            == 1
        )


def test_log_fields_are_etcds() -> None:
    assert [go_duration(s) for s in (0.0125, 0.1, 1.0, 1.5, 75.25)] == [
        "12.5ms",
        "100ms",
        "1s",
        "1.5s",
        "1m15.25s",
    ]
    fields = member_fields(0x8E9E05C52164694D, remote_peer_id="a", expected_duration="1s", took="2s")[
        "fields"
    ]
    assert fields == {
        "local-member-id": "8e9e05c52164694d",
        "remote-peer-id": "a",
        "expected-duration": "1s",
        "took": "2s",
    }


async def test_trikv_series_watchers_and_leases(autojump_clock: MockClock) -> None:
    from trikv.api.lease import LeaseGrantRequest
    from trikv.api.watch import WatchCreateRequest, WatchRequest

    async with cluster() as c:
        lead = await c.settle()
        assert value(lead, "trikv_leases") == 0
        await lead.handlers.handle(LeaseGrantRequest(ttl=60))
        assert value(lead, "trikv_leases") == 1
        assert value(lead, "etcd_debugging_mvcc_watcher_total") == 0
        assert value(lead, "trikv_watch_buffered_bytes") == 0
        # A watch stream counts as one bidi_stream of etcdserverpb.Watch from open to close.
        watch = {"grpc_type": "bidi_stream", "grpc_service": "etcdserverpb.Watch", "grpc_method": "Watch"}
        _send, recv = trio.open_memory_channel[Any](8)

        async def emit(_: Any) -> None:
            pass

        first = WatchRequest(create_request=WatchCreateRequest(b"k"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lead.handlers.stream, first, recv, emit)
            await wait_until(lambda: value(lead, "etcd_debugging_mvcc_watcher_total") == 1, "a watcher")
            assert value(lead, "grpc_server_started_total", **watch) == 1
            assert value(lead, "grpc_server_handled_total", grpc_code="Canceled", **watch) == 0
            nursery.cancel_scope.cancel()
        assert value(lead, "grpc_server_handled_total", grpc_code="Canceled", **watch) == 1
        assert value(lead, "etcd_debugging_mvcc_watcher_total") == 0


def test_console_lines_for_a_terminal_json_elsewhere() -> None:
    import io
    import json
    import logging

    from trikv.actors.logconsole import ConsoleFormatter, pick_formatter
    from trikv.actors.logsetup import JsonFormatter

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    structured = JsonFormatter()
    record = logging.LogRecord(
        "trikv.raftnode", logging.WARNING, "/x/actors/raftnode.py", 7, "elected leader", (), None
    )
    record.fields = {"local-member-id": "a1", "leader": "b2", "term": 3}
    assert isinstance(pick_formatter(logging.StreamHandler(Terminal()), structured), ConsoleFormatter)
    piped = pick_formatter(logging.StreamHandler(io.StringIO()), structured)
    assert piped is structured
    ts, level, caller, msg, fields = (
        pick_formatter(logging.StreamHandler(Terminal()), structured).format(record).split("\t")
    )
    assert (level, caller, msg) == ("WARN", "actors/raftnode.py:7", "elected leader") and ts.endswith("Z")
    assert json.loads(fields) == {"local-member-id": "a1", "leader": "b2", "term": 3}
    assert json.loads(piped.format(record))["leader"] == "b2"


async def test_slow_fdatasync_and_slow_apply_warn_with_took(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Thresholds at zero make every fsync and apply "slow": the warnings carry etcd's fields."""
    import trikv.actors.backend
    import trikv.actors.raftnode

    monkeypatch.setattr(trikv.actors.raftnode, "SLOW_FDATASYNC", 0.0)
    monkeypatch.setattr(trikv.actors.backend, "SLOW_APPLY", 0.0)
    async with cluster() as c:
        lead = await c.settle()
        with caplog.at_level("WARNING"):
            await put(lead, b"k", b"v")
        assert value(lead, "etcd_server_slow_apply_total") >= 1
    by_msg = {r.getMessage(): r.fields for r in caplog.records if hasattr(r, "fields")}
    for msg, expected in (("slow fdatasync", "0s"), ("apply request took too long", "0s")):
        fields = by_msg[msg]
        assert fields["expected-duration"] == expected and fields["took"].endswith("s"), fields
        assert fields["local-member-id"]
