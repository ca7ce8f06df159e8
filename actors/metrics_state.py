"""Scrape-time series: a member's state (leader, indexes, db sizes, inbox depth, watchers, leases) read
when Prometheus scrapes, so nothing on the write path updates a gauge and a scrape answers from values
already in memory, even while the page file is being committed, installed or defragmented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trikv import __version__
from trikv.actors.events import Inbox, RaftStatus, Waiters
from trikv.actors.identity import format_id
from trikv.api import errors


@attrs.define
class Sources:
    """Where the scrape-time collector reads a member's state (set by the Node once storage is open)."""

    member_id: int
    status: RaftStatus
    inbox: Inbox
    waiters: Waiters
    quota_bytes: int
    is_learner: Callable[[], bool]
    db_size: Callable[[], int]
    db_size_in_use: Callable[[], int]
    revision: Callable[[], int]
    compact_revision: Callable[[], int]



class StateCollector(Collector):
    """Reads state at scrape time: nothing on the write path updates these gauges."""

    def __init__(self) -> None:
        self.sources: Sources | None = None
        self._db_size = 0
        self._db_in_use = 0
        self._last: dict[str, float] = {}
        self.extra: list[Callable[[], Iterable[Metric]]] = []  # other actors' series (watchers, leases)

    def _read(self, name: str, fn: Callable[[], float]) -> float:
        """A value read from another actor's state; the last good one if it is being swapped right now (the
        scrape renders in a worker thread while the Raft loop commits, installs or defragments)."""
        try:
            self._last[name] = fn()
        except (OSError, ValueError, AttributeError, errors.StorageError):
            pass
        return self._last.get(name, 0)

    def _sizes(self, s: Sources) -> tuple[int, int]:
        """The page file's sizes, or the last ones read if it is being replaced (snapshot install, defrag)."""
        try:
            self._db_size, self._db_in_use = s.db_size(), s.db_size_in_use()
        except (OSError, ValueError, AttributeError, errors.StorageError):
            pass
        return self._db_size, self._db_in_use

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        if s is None:
            return
        st = s.status

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            1 if st.lead else 0,
        )
        yield gauge(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            1 if st.is_leader else 0,
        )
        yield gauge(
            "etcd_server_is_learner",
            "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            int(s.is_learner()),
        )
        yield gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            st.committed,
        )
        yield gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            st.applied,
        )
        yield gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            len(s.waiters.requests),
        )
        yield gauge(
            "etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.", s.quota_bytes
        )
        size, in_use = self._sizes(s)
        yield gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            size,
        )
        yield gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            in_use,
        )
        yield gauge(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            self._read("revision", s.revision),
        )
        yield gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            self._read("compact", s.compact_revision),
        )
        version = GaugeMetricFamily(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            labels=["server_version"],
        )
        version.add_metric([__version__], 1)
        yield version
        ident = GaugeMetricFamily(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            labels=["server_id"],
        )
        ident.add_metric([format_id(s.member_id)], 1)
        yield ident
        yield gauge("trikv_inbox_depth", "Events queued for the Raft loop (trikv).", s.inbox.used())
        yield CounterMetricFamily(
            "trikv_inbox_dropped_peer_messages",
            "Peer messages dropped on a full inbox (trikv).",
            value=s.inbox.dropped,
        )
        for extra in self.extra:
            yield from extra()


def watch_series(hub: Any) -> Callable[[], Iterable[Metric]]:
    """The watch hub's series, read at scrape time (duck-typed: actors/watch.py's WatchHub)."""

    def collect() -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "etcd_debugging_mvcc_watcher_total", "Total number of watchers.", value=hub.watcher_count()
        )
        yield CounterMetricFamily(
            "etcd_debugging_mvcc_events_total",
            "Total number of events sent by this member.",
            value=hub.events_sent,
        )
        yield GaugeMetricFamily(
            "trikv_watch_buffered_bytes",
            "Watch responses buffered for slow readers, all streams (trikv).",
            value=hub.buffered_bytes,
        )

    return collect


def lease_series(lessor: Callable[[], Any]) -> Callable[[], Iterable[Metric]]:
    """The lease table's size, read at scrape time (`lessor()`: the applier's current Lessor)."""

    def collect() -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "trikv_leases", "Leases in this member's lease table (trikv).", value=len(lessor().leases)
        )

    return collect


__all__ = ["Sources", "StateCollector", "lease_series", "watch_series"]
