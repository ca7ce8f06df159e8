"""The watch hub: one actor serving every watch of a member (etcd's watchableStore + serverWatchStream).

The apply path calls `notify(events, revision)` once per applied batch and never waits: synced watchers get
their events appended to their bounded buffers right there (one response per watcher per run of whole
revisions, so all events of a revision travel together). A watcher whose buffer cannot take a run leaves
the synced group with `next_rev` at its first revision; the hub's task catches unsynced watchers up from
storage (one scan of the history for all of them, etcd's syncWatchers) and moves them back once they reach
the store's revision. Because `notify` runs inside the apply step and a catch-up read runs without a checkpoint between
reading and moving a watcher, the hub's `rev` always equals the store's: nothing is missed or doubled.

A `WatchStream` is one client stream: it creates and cancels watchers and hands their buffered responses
to its surface in order. A progress request is answered (watch_id -1, the store's revision) only once every
watcher of the stream is synced and drained, so that revision always means "everything before was
delivered" (stronger than etcd 3.4, which may answer while a watcher lags).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import trio

from trikv.actors.watchers import (
    RESPONSE_OVERHEAD,
    History,
    Watcher,
    WatcherGroup,
    fragments,
    response_size,
    runs,
)
from trikv.api.protocol import DEFAULT_MAX_REQUEST_BYTES
from trikv.api.rpc import ResponseHeader
from trikv.api.watch import (
    AUTO_WATCH_ID,
    PROGRESS_WATCH_ID,
    Event,
    WatchCreateRequest,
    WatchRequest,
    WatchResponse,
)
from trikv.storage import faults

log = logging.getLogger("trikv.watch")

BUFFER_BYTES = 256 * 1024  # per watcher: responses buffered before it leaves the synced group
PROGRESS_INTERVAL = 600.0  # etcd's default progress-notify interval (10 min)
CATCH_UP_EVENTS = 1000  # events per history read (stops at a revision boundary)
BATCH_EVENTS = 1000  # live events per response (whole revisions): an applied batch may hold 10,000 entries
CATCH_UP_WINDOW = 10_000  # revisions scanned per history read
IDLE_POLL = 1.0  # the hub's task wakes at least this often (periodic progress)
STUCK_SECONDS = 30.0  # a watch client that reads nothing this long with full buffers is disconnected

ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"


class WatchHub:
    """Every watcher of the member; `run()` is its task (catch-up and periodic progress)."""

    def __init__(
        self,
        backend: History,
        header: Callable[[int], ResponseHeader],
        *,
        buffer_bytes: int = BUFFER_BYTES,
        progress_interval: float = PROGRESS_INTERVAL,
        max_response_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        set_want_prev: Callable[[bool], None] = lambda on: None,
        stuck_seconds: float = STUCK_SECONDS,
    ) -> None:
        self.backend = backend
        self.header = header
        self.buffer_bytes = buffer_bytes
        self.progress_interval = progress_interval
        self.max_response_bytes = max_response_bytes
        self._set_want_prev = set_want_prev
        self.stuck_seconds = stuck_seconds
        self.rev = backend.revision
        self.synced = WatcherGroup()
        self.unsynced: set[Watcher] = set()
        self.progress_watchers: set[Watcher] = set()
        self._prev_wanted = 0
        self._poke = trio.Event()
        self.buffered_bytes = 0  # metrics: bytes buffered across every stream
        self.max_stream_buffered = 0  # high-water mark of one stream's buffered bytes
        self.slow_watchers = 0  # times a synced watcher fell behind (moved to unsynced)
        self.events_sent = 0
        self.stuck_closed = 0  # connections closed because their client read nothing with full buffers

    # ------------------------------------------------------------------ the apply path (never awaits)

    def notify(self, events: list[Event], revision: int) -> None:
        """Hand the events of one applied batch (apply order, ascending revisions) to the synced watchers."""
        if faults.ACTIVE is not None and faults.ACTIVE.plant("watch_skip_revision"):  # PLANTED BUG (tests)
            events = [ev for ev in events if ev.kv.mod_revision % 10]  # every 10th revision never sent live
        if events and self.synced.count:
            for run in runs(events, BATCH_EVENTS, self.buffer_bytes // 2):
                self._deliver(run)
        if revision > self.rev:
            self.rev = revision

    def _deliver(self, evs: list[Event]) -> None:
        """Whole revisions to their synced watchers, one response per watcher for all of them (etcd batches
        revisions the same way when it catches a watcher up). Watchers of the same shape share one header
        and one events tuple, so every surface encodes them once (trikv.api.watch.IdentityCache)."""
        first = evs[0].kv.mod_revision
        last = evs[-1].kv.mod_revision
        header = self.header(last)
        shared: dict[tuple[object, ...], tuple[tuple[Event, ...], int]] = {}
        for w in self.synced.interested(evs):
            if w.next_rev > first:  # a watcher that starts inside (or after) this run sees its own part
                if w.next_rev > last:
                    continue
                sel = tuple(w.select(ev for ev in evs if ev.kv.mod_revision >= w.next_rev))
                size = response_size(WatchResponse(header, events=sel))
            else:
                shape = (w.start, w.end, w.single, w.prev_kv, w.no_put, w.no_delete)
                hit = shared.get(shape)
                if hit is None:
                    sel = tuple(w.select(evs))
                    hit = shared[shape] = (sel, response_size(WatchResponse(header, events=sel)))
                sel, size = hit
            if not sel:
                continue
            if w.fits(size, self.buffer_bytes):
                w.next_rev = last + 1
                self._push(w, WatchResponse(header, w.id, events=sel), size)
            else:
                self.slow_watchers += 1
                self._unsync(w, max(w.next_rev, first))

    def installed(self) -> None:
        """A snapshot replaced the store: its entries never passed `notify`, so every synced watcher is
        caught up from storage (etcd's watchableStore Restore)."""
        old = self.rev
        for w in list(self.synced):
            self._unsync(w, max(w.next_rev, old + 1))
        self.rev = max(self.rev, self.backend.revision)
        self._set_want_prev(self._prev_wanted > 0)

    # ------------------------------------------------------------------ watcher bookkeeping

    def _push(self, w: Watcher, resp: WatchResponse, size: int) -> None:
        stream = w.stream
        assert isinstance(stream, WatchStream)
        if w.buf is None:
            w.buf = deque()
        w.buf.append((resp, size))
        w.buf_bytes += size
        stream.buffered += size
        self.buffered_bytes += size
        if stream.buffered > self.max_stream_buffered:
            self.max_stream_buffered = stream.buffered
        stream.ready[w] = None
        stream.wake.set()

    def _unsync(self, w: Watcher, next_rev: int) -> None:
        self.synced.remove(w)
        w.synced = False
        w.next_rev = next_rev
        self.unsynced.add(w)
        self._poke.set()

    def _add(self, w: Watcher) -> None:
        if w.prev_kv:
            self._prev_wanted += 1
            if self._prev_wanted == 1:
                self._set_want_prev(True)
        if w.progress_notify:
            self.progress_watchers.add(w)
        w.last_sent = trio.current_time()
        if w.next_rev > self.rev:
            w.synced = True
            self.synced.add(w)
        else:
            self.unsynced.add(w)
            self._poke.set()

    def _remove(self, w: Watcher) -> None:
        if w.canceled:
            return
        w.canceled = True
        if w.synced:
            self.synced.remove(w)
        self.unsynced.discard(w)
        self.progress_watchers.discard(w)
        if w.prev_kv:
            self._prev_wanted -= 1
            if self._prev_wanted == 0:
                self._set_want_prev(False)

    def open_stream(self) -> WatchStream:
        return WatchStream(self)

    def watcher_count(self) -> int:
        return self.synced.count + len(self.unsynced)

    # ------------------------------------------------------------------ the hub's task

    async def run(self) -> None:
        next_progress = trio.current_time() + min(self.progress_interval, IDLE_POLL)
        while True:
            more = await self._catch_up()
            now = trio.current_time()
            if now >= next_progress:
                self._periodic_progress(now)
                next_progress = now + min(self.progress_interval, IDLE_POLL)
            if more:
                await trio.lowlevel.checkpoint()
                continue
            self._poke = trio.Event()
            with trio.move_on_after(max(0.0, next_progress - now)):
                await self._poke.wait()

    async def _catch_up(self) -> bool:
        """One history read for every unsynced watcher with buffer room. True when there is more to do."""
        ready = [w for w in self.unsynced if w.buf_bytes < self.buffer_bytes // 2]
        if not ready:
            return False
        # A client may ask for a negative start revision (etcd accepts it): read from the first revision.
        lo = max(1, min(w.next_rev for w in ready))
        want_prev = any(w.prev_kv for w in ready)
        events, last, compact = await self.backend.history(
            lo, lo + CATCH_UP_WINDOW, b"", b"\0", CATCH_UP_EVENTS, want_prev
        )
        # No checkpoint from the read to the end of this method: self.rev is the revision that was read.
        last = min(last, self.rev)
        more = False
        for w in ready:
            if w.canceled or w.synced:
                continue
            if w.next_rev < compact:
                self._compacted(w, compact)
                continue
            if w.next_rev <= last:
                sel = w.select(ev for ev in events if ev.kv.mod_revision >= w.next_rev)
                if sel:
                    resp = WatchResponse(self.header(last), w.id, events=tuple(sel))
                    self._push(w, resp, response_size(resp))
                w.next_rev = last + 1
            if w.next_rev > self.rev:
                self.unsynced.discard(w)
                w.synced = True
                self.synced.add(w)
                stream = w.stream
                assert isinstance(stream, WatchStream)
                if stream.progress_pending:
                    stream.wake.set()
            elif w.buf_bytes < self.buffer_bytes // 2:
                more = True
        return more

    def _compacted(self, w: Watcher, compact: int) -> None:
        """etcd: a watcher whose next revision was compacted gets compact_revision and is cancelled."""
        self._remove(w)
        stream = w.stream
        assert isinstance(stream, WatchStream)
        stream.watchers.pop(w.id, None)
        resp = WatchResponse(self.header(0), w.id, canceled=True, compact_revision=compact)
        self._push(w, resp, RESPONSE_OVERHEAD)

    def _periodic_progress(self, now: float) -> None:
        """progress_notify: an idle synced watcher with nothing buffered hears the store's revision."""
        for w in self.progress_watchers:
            if w.synced and not w.buf and now - w.last_sent >= self.progress_interval:
                w.last_sent = now
                self._push(w, WatchResponse(self.header(self.rev), w.id), RESPONSE_OVERHEAD)


class WatchStream:
    """One client watch stream: its watchers by id and the order their responses leave in."""

    def __init__(self, hub: WatchHub) -> None:
        self.hub = hub
        self.watchers: dict[int, Watcher] = {}
        self.ready: dict[Watcher, None] = {}  # watchers with buffered responses, oldest first
        self.ctrl: list[WatchResponse] = []  # answers of no watcher (a refused create)
        self.wake = trio.Event()
        self.progress_pending = False
        self.buffered = 0
        self._next_id = 0
        self.closed = False

    def request(self, req: WatchRequest) -> None:
        """One client message (etcd's recvLoop); a message with no field set is ignored, as in etcd."""
        if req.create_request is not None:
            self.create(req.create_request)
        elif req.cancel_request is not None:
            self.cancel(req.cancel_request.watch_id)
        elif req.progress_request is not None:
            self.request_progress()

    def create(self, req: WatchCreateRequest) -> None:
        hub = self.hub
        wsrev = hub.rev
        key = req.key or b"\0"
        error = ""
        if req.range_end and req.range_end != b"\0" and key >= req.range_end:
            error = ERR_EMPTY_RANGE
        wid = req.watch_id
        if not error:
            if wid == AUTO_WATCH_ID:
                while self._next_id in self.watchers:
                    self._next_id += 1
                wid = self._next_id
                self._next_id += 1
            elif wid in self.watchers:
                error = ERR_DUPLICATE_ID
        if error:
            self.ctrl.append(
                WatchResponse(
                    hub.header(wsrev), PROGRESS_WATCH_ID, created=True, canceled=True, cancel_reason=error
                )
            )
            self.wake.set()
            return
        w = Watcher(self, wid, req, req.start_revision or wsrev + 1)
        self.watchers[wid] = w
        hub._push(w, WatchResponse(hub.header(wsrev), wid, created=True), RESPONSE_OVERHEAD)
        hub._add(w)

    def cancel(self, watch_id: int) -> None:
        """etcd: cancelling an unknown id is answered with nothing."""
        w = self.watchers.pop(watch_id, None)
        if w is None:
            return
        hub = self.hub
        hub._remove(w)
        hub._push(w, WatchResponse(hub.header(hub.rev), watch_id, canceled=True), RESPONSE_OVERHEAD)

    def request_progress(self) -> None:
        self.progress_pending = True
        self.wake.set()

    def all_synced(self) -> bool:
        return all(w.synced for w in self.watchers.values())

    def drain(self, budget: int | None = None) -> list[WatchResponse]:
        """Take buffered responses (created first, events in revision order, per watcher), up to about
        `budget` bytes; a pending progress answer goes last, once everything is synced and taken."""
        hub = self.hub
        budget = budget if budget is not None else hub.buffer_bytes
        out, self.ctrl = self.ctrl, []
        taken = 0
        freed = False
        now = trio.current_time()
        for w in list(self.ready):
            buf = w.buf
            while buf and taken < budget:
                resp, size = buf.popleft()
                w.buf_bytes -= size
                self.buffered -= size
                hub.buffered_bytes -= size
                taken += size
                if resp.events:
                    hub.events_sent += len(resp.events)
                    w.last_sent = now
                if w.fragment:
                    out.extend(fragments(resp, hub.max_response_bytes))
                else:
                    out.append(resp)
            if buf:
                break
            w.buf = None
            del self.ready[w]
            freed = freed or not w.synced
        if freed:
            hub._poke.set()  # an unsynced watcher has room again
        if self.progress_pending and not self.ready and self.all_synced():
            self.progress_pending = False
            out.append(WatchResponse(hub.header(hub.rev), PROGRESS_WATCH_ID))
        return out

    async def next(self) -> list[WatchResponse]:
        """Wait for responses and take them (see `drain`)."""
        while True:
            out = self.drain()
            if out:
                return out
            self.wake = trio.Event()
            await self.wake.wait()

    def close(self) -> None:
        """The client is gone: its watchers leave the hub and its buffers are freed."""
        if self.closed:
            return
        self.closed = True
        hub = self.hub
        for w in self.watchers.values():
            hub._remove(w)
        self.watchers.clear()
        for w in self.ready:
            hub.buffered_bytes -= w.buf_bytes
            w.buf = None
            w.buf_bytes = 0
        self.ready.clear()
        self.buffered = 0


__all__ = ["BUFFER_BYTES", "PROGRESS_INTERVAL", "WatchHub", "WatchStream"]
