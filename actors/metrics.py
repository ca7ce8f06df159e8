"""A member's Prometheus metrics, under etcd's names, types, units, buckets and labels.

One `MemberMetrics` per Node, each with its own CollectorRegistry (several Nodes share a process in the
in-process tests, so nothing goes to prometheus_client's global registry). The write path only pays for
cheap observations: one histogram observe per WAL fsync (RaftNode) and per page-file commit (Backend),
counter increments per client request (Handlers) and per peer frame (peer.py). Everything that is state
(leader, indexes, db size, inbox depth) is read at scrape time by `metrics_state.StateCollector`, so a scrape costs the
write path nothing and answers from values already in memory, even during a page-file commit.

Client requests count under etcd's gRPC service and method names whatever surface carried them
(`grpc_server_started_total` / `grpc_server_handled_total`, pre-registered for every method and code as
go-grpc-prometheus does, so rate() and the mixin's regex matchers find series from the first scrape).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import prometheus_client
import trio
from prometheus_client import CollectorRegistry, Counter, Histogram

from trikv.actors.identity import format_id
from trikv.actors.metrics_state import Sources, StateCollector
from trikv.api import errors

prometheus_client.disable_created_metrics()  # etcd exposes no *_created series

T = TypeVar("T")


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """Prometheus' ExponentialBuckets (Go): count upper bounds from start, each factor times the last."""
    return tuple(start * factor**i for i in range(count))


GO_DEF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # go-grpc-prometheus

# go's codes.Code.String(), by gRPC code number.
GRPC_CODE_NAMES = (
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
)

UNARY, BIDI, SERVER_STREAM = "unary", "bidi_stream", "server_stream"

# etcd's v3 services and their methods (etcdserverpb/rpc.proto); the grpc_type of each.
SERVICES: dict[str, tuple[tuple[str, str], ...]] = {
    "etcdserverpb.KV": tuple((m, UNARY) for m in ("Range", "Put", "DeleteRange", "Txn", "Compact")),
    "etcdserverpb.Watch": (("Watch", BIDI),),
    "etcdserverpb.Lease": (
        ("LeaseGrant", UNARY),
        ("LeaseRevoke", UNARY),
        ("LeaseKeepAlive", BIDI),
        ("LeaseTimeToLive", UNARY),
        ("LeaseLeases", UNARY),
    ),
    "etcdserverpb.Cluster": tuple(
        (m, UNARY) for m in ("MemberAdd", "MemberRemove", "MemberUpdate", "MemberList", "MemberPromote")
    ),
    "etcdserverpb.Maintenance": (
        ("Alarm", UNARY),
        ("Status", UNARY),
        ("Defragment", UNARY),
        ("Hash", UNARY),
        ("HashKV", UNARY),
        ("Snapshot", SERVER_STREAM),
        ("MoveLeader", UNARY),
    ),
    "etcdserverpb.Auth": tuple(
        (m, UNARY)
        for m in (
            "AuthEnable",
            "AuthDisable",
            "Authenticate",
            "UserAdd",
            "UserGet",
            "UserList",
            "UserDelete",
            "UserChangePassword",
            "UserGrantRole",
            "UserRevokeRole",
            "RoleAdd",
            "RoleGet",
            "RoleList",
            "RoleDelete",
            "RoleGrantPermission",
            "RoleRevokePermission",
        )
    ),
}

# Request shapes whose names are not "<Method>Request" (trikv's watch opens with WatchCreateRequest).
_ALIASES = {"CompactionRequest": "Compact", "WatchCreateRequest": "Watch"}
_METHODS: dict[str, tuple[str, str, str]] = {
    method + "Request": (kind, service, method) for service, ms in SERVICES.items() for method, kind in ms
}
for _alias, _method in _ALIASES.items():
    _METHODS[_alias] = next(v for v in _METHODS.values() if v[2] == _method)

# Requests that go through Raft: a no-leader or timeout answer is a failed proposal (etcd's proposals_failed).
_PROPOSING = {"Put", "DeleteRange", "Txn", "Compact", "LeaseGrant", "LeaseRevoke", "Alarm"}
_PROPOSAL_FAILURES = (errors.NoLeaderError, errors.TimeoutError_)


def grpc_method(request_type: type, kind: str = UNARY) -> tuple[str, str, str]:
    """(grpc_type, grpc_service, grpc_method) etcd would count this request shape under."""
    found = _METHODS.get(request_type.__name__)
    if found is not None:
        return found
    return kind, "trikv", request_type.__name__.removesuffix("Request")


def grpc_code(exc: BaseException | None) -> str:
    if exc is None:
        return "OK"
    if isinstance(exc, BaseExceptionGroup):  # a handler's nursery: its typed error, or a cancellation
        codes = {grpc_code(inner) for inner in exc.exceptions}
        typed = sorted(codes - {"Canceled", "Unknown"})
        return typed[0] if typed else "Unknown" if "Unknown" in codes else "Canceled"
    if isinstance(exc, errors.EtcdError):
        return GRPC_CODE_NAMES[int(exc.code)]
    if isinstance(exc, trio.Cancelled):
        return "Canceled"
    return "Unknown"


class _Method:
    """Pre-resolved children of one method's series (a labels() lookup per request would cost a lock)."""

    def __init__(self, m: MemberMetrics, kind: str, service: str, method: str) -> None:
        self.started = m.grpc_started.labels(kind, service, method)
        self.handled = {code: m.grpc_handled.labels(kind, service, method, code) for code in GRPC_CODE_NAMES}
        self.labels = (kind, service, method)
        self.family = m.grpc_seconds
        self.seconds: Histogram | None = None  # created at the first call: 14 series per method otherwise
        self.proposing = method in _PROPOSING

    def observe(self, seconds: float) -> None:
        if self.seconds is None:
            if self.family is None:
                return
            self.seconds = self.family.labels(*self.labels)
        self.seconds.observe(seconds)


@attrs.frozen
class PeerSeries:
    sent_bytes: Counter
    sent_failures: Counter
    rtt: Histogram


class MemberMetrics:
    """Every series of one member. `extensive` adds grpc_server_handling_seconds (etcd's `metrics: extensive`)."""

    def __init__(self, *, extensive: bool = True) -> None:
        self.registry = r = CollectorRegistry(auto_describe=False)
        prometheus_client.ProcessCollector(registry=r)
        prometheus_client.PlatformCollector(registry=r)
        prometheus_client.GCCollector(registry=r)
        disk_buckets = exponential_buckets(0.001, 2, 14)
        self.wal_fsync = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=disk_buckets,
            registry=r,
        )
        self.backend_commit = Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=disk_buckets,
            registry=r,
        )
        self.apply_duration = Histogram(
            "trikv_server_apply_duration_seconds",
            "The latency distributions of applying one Ready's committed entries (trikv).",
            buckets=disk_buckets,
            registry=r,
        )
        self.leader_changes = Counter(
            "etcd_server_leader_changes_seen_total", "The number of leader changes seen.", registry=r
        )
        self.proposals_failed = Counter(
            "etcd_server_proposals_failed_total", "The total number of failed proposals seen.", registry=r
        )
        self.slow_apply = Counter(
            "etcd_server_slow_apply_total",
            "The total number of slow apply requests (likely overloaded from slow disk).",
            registry=r,
        )
        self.client_sent = Counter(
            "etcd_network_client_grpc_sent_bytes_total",
            "The total number of bytes sent to grpc clients.",
            registry=r,
        )
        self.client_received = Counter(
            "etcd_network_client_grpc_received_bytes_total",
            "The total number of bytes received from grpc clients.",
            registry=r,
        )
        self.peer_sent = Counter(
            "etcd_network_peer_sent_bytes_total",
            "The total number of bytes sent to peers.",
            ["To"],
            registry=r,
        )
        self.peer_received = Counter(
            "etcd_network_peer_received_bytes_total",
            "The total number of bytes received from peers.",
            ["From"],
            registry=r,
        )
        self.peer_sent_failures = Counter(
            "etcd_network_peer_sent_failures_total",
            "The total number of send failures from peers.",
            ["To"],
            registry=r,
        )
        self.peer_rtt = Histogram(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
            ["To"],
            buckets=exponential_buckets(0.0001, 2, 16),
            registry=r,
        )
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.grpc_started = Counter(
            "grpc_server_started_total", "Total number of RPCs started on the server.", labels, registry=r
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            [*labels, "grpc_code"],
            registry=r,
        )
        self.grpc_seconds: Histogram | None = None
        if extensive:
            self.grpc_seconds = Histogram(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled "
                "by the server.",
                labels,
                buckets=GO_DEF_BUCKETS,
                registry=r,
            )
        self._received: dict[int, Counter] = {}
        self._methods: dict[type, _Method] = {}
        self._by_name: dict[tuple[str, str, str], _Method] = {}
        for service, methods in SERVICES.items():
            for method, kind in methods:
                self._by_name[kind, service, method] = _Method(self, kind, service, method)
        self.state = StateCollector()
        r.register(self.state)

    def attach(self, sources: Sources) -> None:
        """The member's state became readable (storage open, actors wired)."""
        self.state.sources = sources

    # ------------------------------------------------------------------ client requests (Handlers)

    def _method(self, request_type: type, kind: str) -> _Method:
        m = self._methods.get(request_type)
        if m is None:
            key = grpc_method(request_type, kind)
            m = self._by_name.get(key)
            if m is None:
                m = self._by_name[key] = _Method(self, *key)
            self._methods[request_type] = m
        return m

    async def unary(self, request: Any, serve: Callable[[Any], Awaitable[T]]) -> T:
        """Serve one unary request, counted as etcd's go-grpc-prometheus interceptor counts it."""
        return await self._counted(self._method(type(request), UNARY), serve(request))

    async def stream(self, first: Any, serve: Awaitable[None]) -> None:
        """One stream from open to close (the mixin reads open streams as started - handled)."""
        await self._counted(self._method(type(first), BIDI), serve)

    async def _counted(self, m: _Method, call: Awaitable[T]) -> T:
        m.started.inc()
        t0 = time.perf_counter()
        failure: BaseException | None = None
        try:
            return await call
        except BaseException as exc:
            failure = exc
            if m.proposing and isinstance(exc, _PROPOSAL_FAILURES):
                self.proposals_failed.inc()
            raise
        finally:
            m.handled[grpc_code(failure)].inc()
            m.observe(time.perf_counter() - t0)

    # ------------------------------------------------------------------ peers (peer.py)

    def peer(self, peer_id: int) -> PeerSeries:
        """One remote member's outbound series, resolved once per Peer (they exist from the first scrape)."""
        to = format_id(peer_id)
        return PeerSeries(
            self.peer_sent.labels(to), self.peer_sent_failures.labels(to), self.peer_rtt.labels(to)
        )

    def received_from(self, peer_id: int) -> Counter:
        child = self._received.get(peer_id)
        if child is None:
            child = self._received[peer_id] = self.peer_received.labels(format_id(peer_id))
        return child

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


__all__ = [
    "GRPC_CODE_NAMES",
    "SERVICES",
    "MemberMetrics",
    "PeerSeries",
    "exponential_buckets",
    "grpc_code",
    "grpc_method",
]
