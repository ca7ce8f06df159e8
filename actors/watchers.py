"""One watcher and the synced group's key lookup (etcd's mvcc watcher / watcherGroup, our own take).

A watcher is either synced (in the hub's synced group: the apply path hands it every matching event as it
is applied) or unsynced (it missed revisions because its buffer was full, it started in the past, or a
snapshot replaced the store: the hub catches it up from storage from `next_rev`). Its buffer holds built
responses for the stream to take, bounded in bytes; a watcher whose next revision does not fit leaves the
synced group instead of slowing anybody down.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from trikv.api.checks import key_span
from trikv.api.watch import Event, EventType, FilterType, WatchCreateRequest, WatchResponse

EVENT_OVERHEAD = 48  # bytes charged per event on top of its keys and values (revisions, framing)
RESPONSE_OVERHEAD = 64


def event_size(ev: Event) -> int:
    size = EVENT_OVERHEAD + len(ev.kv.key) + len(ev.kv.value)
    if ev.prev_kv is not None:
        size += len(ev.prev_kv.key) + len(ev.prev_kv.value) + EVENT_OVERHEAD
    return size


def response_size(resp: WatchResponse) -> int:
    return RESPONSE_OVERHEAD + sum(event_size(ev) for ev in resp.events)


class History(Protocol):
    """What the hub needs of the Backend (actors/backend.py)."""

    @property
    def revision(self) -> int: ...
    async def history(self, lo: int, hi: int, key: bytes, end: bytes, limit: int, prev: bool) -> Any: ...


class Watcher:
    """One watch of one stream. `next_rev` is the first revision it still needs when unsynced."""

    __slots__ = (
        "buf",
        "buf_bytes",
        "canceled",
        "end",
        "fragment",
        "id",
        "last_sent",
        "next_rev",
        "no_delete",
        "no_put",
        "prev_kv",
        "progress_notify",
        "single",
        "start",
        "stream",
        "synced",
    )

    def __init__(self, stream: object, watch_id: int, req: WatchCreateRequest, next_rev: int) -> None:
        self.stream = stream
        self.id = watch_id
        key = req.key or b"\0"  # etcd: an empty key is the smallest key
        self.start, self.end, self.single = key_span(key, req.range_end)
        self.prev_kv = req.prev_kv
        self.no_put = FilterType.NOPUT in req.filters
        self.no_delete = FilterType.NODELETE in req.filters
        self.progress_notify = req.progress_notify
        self.fragment = req.fragment
        self.next_rev = next_rev
        self.synced = False
        self.canceled = False
        self.buf: deque[tuple[WatchResponse, int]] | None = None  # only while it holds responses (an
        # empty deque is 760 bytes: most of an idle watcher)
        self.buf_bytes = 0
        self.last_sent = 0.0

    def matches(self, key: bytes) -> bool:
        if self.single:
            return key == self.start
        return key >= self.start and (self.end is None or key < self.end)

    def select(self, events: Iterable[Event]) -> list[Event]:
        """This watcher's view of events: its keys, its filters, prev_kv only if it asked."""
        out = []
        for ev in events:
            if not self.matches(ev.kv.key):
                continue
            if ev.type == EventType.PUT:
                if self.no_put:
                    continue
            elif self.no_delete:
                continue
            if ev.prev_kv is not None and not self.prev_kv:
                ev = Event(ev.type, ev.kv, None)
            out.append(ev)
        return out

    def fits(self, size: int, limit: int) -> bool:
        """An empty buffer takes anything (one revision must always pass), else it must stay in bounds."""
        return not self.buf or self.buf_bytes + size <= limit


class WatcherGroup:
    """The synced watchers, found by key: a dict for single keys, a list for ranges (etcd's interval tree
    is worth it with many distinct ranges; a prefix shared by many watchers scans the same either way)."""

    def __init__(self) -> None:
        self.singles: dict[bytes, set[Watcher]] = {}
        self.ranges: set[Watcher] = set()
        self.count = 0

    def add(self, w: Watcher) -> None:
        if w.single:
            self.singles.setdefault(w.start, set()).add(w)
        else:
            self.ranges.add(w)
        self.count += 1

    def remove(self, w: Watcher) -> None:
        if w.single:
            bucket = self.singles.get(w.start)
            if bucket is None or w not in bucket:
                return
            bucket.discard(w)
            if not bucket:
                del self.singles[w.start]
        else:
            if w not in self.ranges:
                return
            self.ranges.discard(w)
        self.count -= 1

    def __iter__(self) -> Iterator[Watcher]:
        for bucket in self.singles.values():
            yield from bucket
        yield from self.ranges

    def interested(self, events: list[Event]) -> set[Watcher]:
        """Every synced watcher with at least one event's key in its span."""
        found: set[Watcher] = set()
        singles = self.singles
        for ev in events:
            bucket = singles.get(ev.kv.key)
            if bucket:
                found.update(bucket)
        if self.ranges:
            keys = {ev.kv.key for ev in events}
            for w in self.ranges:
                if w not in found and any(w.matches(k) for k in keys):
                    found.add(w)
        return found


def runs(events: list[Event], max_events: int, max_bytes: int) -> Iterator[list[Event]]:
    """Whole revisions in runs of at most `max_events` events and `max_bytes` (a larger revision alone), so
    a live response stays within a watcher's buffer bound like a per-revision one."""
    i, n = 0, len(events)
    while i < n:
        j, size = i, 0
        while j < n:
            rev = events[j].kv.mod_revision
            k = j
            while k < n and events[k].kv.mod_revision == rev:
                size += event_size(events[k])
                k += 1
            if j > i and (k - i > max_events or size > max_bytes):
                break
            j = k
        yield events if i == 0 and j == n else events[i:j]
        i = j


def fragments(resp: WatchResponse, max_bytes: int) -> list[WatchResponse]:
    """etcd's sendFragments: a response above max_bytes with several events is split; every fragment but
    the last has fragment=true, so the client reassembles one atomic response."""
    if len(resp.events) < 2 or response_size(resp) < max_bytes:
        return [resp]
    out: list[WatchResponse] = []
    part: list[Event] = []
    size = RESPONSE_OVERHEAD
    for ev in resp.events:
        s = event_size(ev)
        if part and size + s > max_bytes:
            out.append(_with_events(resp, part, fragment=True))
            part, size = [], RESPONSE_OVERHEAD
        part.append(ev)
        size += s
    out.append(_with_events(resp, part, fragment=False))
    return out


def _with_events(resp: WatchResponse, events: list[Event], *, fragment: bool) -> WatchResponse:
    return WatchResponse(
        header=resp.header,
        watch_id=resp.watch_id,
        created=resp.created,
        canceled=resp.canceled,
        compact_revision=resp.compact_revision,
        cancel_reason=resp.cancel_reason,
        fragment=fragment,
        events=tuple(events),
    )


__all__ = ["History", "Watcher", "WatcherGroup", "event_size", "fragments", "response_size", "runs"]
