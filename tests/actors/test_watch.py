"""The watch hub on in-process members (virtual time): ordered, unique, atomic, reliable watches across slow
consumers, compaction and snapshot installs; the stream's create / cancel / progress / filter rules."""

from __future__ import annotations

from collections import defaultdict

import trio
from trio.testing import MockClock

from tests.actors.harness import ELECTION_MS, Cluster, cluster, put, wait_until
from trikv.actors.node import Node
from trikv.actors.watch import WatchStream
from trikv.api import errors, rpc
from trikv.api.watch import (
    Event,
    EventType,
    FilterType,
    WatchCancelRequest,
    WatchCreateRequest,
    WatchProgressRequest,
    WatchRequest,
    WatchResponse,
)


class Collector:
    """Drains one stream into `responses` (unless paused)."""

    def __init__(self, stream: WatchStream) -> None:
        self.stream = stream
        self.responses: list[WatchResponse] = []
        self.paused = False

    async def run(self) -> None:
        while True:
            if self.paused:
                await trio.sleep(0.05)
                continue
            self.responses.extend(await self.stream.next())

    def events(self, watch_id: int) -> list[WatchResponse]:
        return [r for r in self.responses if r.watch_id == watch_id and r.events]

    def last_revision(self, watch_id: int) -> int:
        evs = [ev for r in self.events(watch_id) for ev in r.events]
        return evs[-1].kv.mod_revision if evs else 0


async def truth(node: Node, lo: int, key: bytes, range_end: bytes) -> list[Event]:
    events, _last, _compact = await node.backend.history(
        lo, node.backend.revision, key, range_end, 10**9, False
    )
    return events


def check(responses: list[WatchResponse], want: list[Event]) -> list[str]:
    """Ordered, unique, atomic (each revision whole in one response), reliable (exactly `want`)."""
    problems = []
    by_rev: dict[int, list[Event]] = defaultdict(list)
    for ev in want:
        by_rev[ev.kv.mod_revision].append(ev)
    got = []
    for r in responses:
        revs = {ev.kv.mod_revision for ev in r.events}
        for rev in revs:
            in_resp = [ev for ev in r.events if ev.kv.mod_revision == rev]
            if in_resp != by_rev[rev]:
                problems.append(f"revision {rev} not whole in one response")
        got.extend(r.events)
    keys = [(ev.kv.mod_revision, ev.kv.key) for ev in got]
    if keys != sorted(keys):
        problems.append("events out of revision order")
    if len(set(keys)) != len(keys):
        problems.append("an event delivered twice")
    if got != want:
        problems.append(f"{len(got)} events delivered, {len(want)} expected")
    return problems


async def workload(lead: Node, n: int, prefix: bytes = b"w/") -> None:
    """Puts, deletes and multi-key txns under `prefix`, plus writes outside it."""
    for i in range(n):
        k = prefix + b"%d" % (i % 7)
        if i % 5 == 4:
            await lead.handlers.handle(rpc.DeleteRangeRequest(k))
        elif i % 5 == 3:
            ops = (rpc.PutRequest(prefix + b"t%d" % i, b"a"), rpc.PutRequest(prefix + b"u%d" % i, b"b"))
            await lead.handlers.handle(rpc.TxnRequest(success=ops))
        elif i % 5 == 2:
            await put(lead, b"other%d" % i, b"x")
        else:
            await put(lead, k, b"v%d" % i)


def create(key: bytes, **kw: object) -> WatchRequest:
    return WatchRequest(create_request=WatchCreateRequest(key, **kw))  # type: ignore[arg-type]


async def test_watchers_from_now_and_from_history_see_every_event(autojump_clock: MockClock) -> None:
    async with cluster() as c, trio.open_nursery() as nursery:
        lead = await c.settle()
        node = c.followers(lead)[0]
        await put(lead, b"w/before", b"1")
        stream = node.watch_hub.open_stream()
        col = Collector(stream)
        nursery.start_soon(col.run)
        stream.request(create(b"w/", range_end=b"w0"))  # id 0: from now
        stream.request(create(b"w/", range_end=b"w0", start_revision=1, watch_id=7))  # replays history
        await wait_until(lambda: len(col.responses) >= 2, "created responses")
        created = {r.watch_id: r for r in col.responses if r.created}
        assert set(created) == {0, 7}
        start = created[0].header.revision + 1
        await workload(lead, 60)
        final = lead.backend.revision
        await wait_until(lambda: node.watch_hub.rev >= final, "the follower applied everything")
        await wait_until(
            lambda: (
                col.last_revision(0) == col.last_revision(7) == final - 1 or col.last_revision(7) >= final - 1
            ),
            "both watchers caught up",
        )
        want_now = await truth(node, start, b"w/", b"w0")
        want_all = await truth(node, 1, b"w/", b"w0")
        await wait_until(lambda: sum(len(r.events) for r in col.events(7)) >= len(want_all), "history")
        assert check(col.events(0), want_now) == []
        assert check(col.events(7), want_all) == []
        # the created response precedes every event of its watcher
        assert next(r for r in col.responses if r.watch_id == 0).created
        nursery.cancel_scope.cancel()


async def test_a_slow_watcher_never_blocks_applies_and_catches_up_exactly_once(
    autojump_clock: MockClock,
) -> None:
    async with cluster() as c, trio.open_nursery() as nursery:
        lead = await c.settle()
        hub = lead.watch_hub
        hub.buffer_bytes = 4096
        stream = hub.open_stream()
        col = Collector(stream)
        stream.request(create(b"k", range_end=b"l"))
        start = hub.rev + 1
        col.paused = True  # a consumer that reads nothing
        nursery.start_soon(col.run)

        async def writer(w: int) -> None:
            for i in range(100):
                await put(lead, b"k%02d-%03d" % (w, i), b"x" * 50)

        async with trio.open_nursery() as writers:
            for w in range(50):
                writers.start_soon(writer, w)
        final = lead.backend.revision
        assert final - start + 1 == 5000, "all 5,000 applies completed with the watcher blocked"
        assert hub.slow_watchers >= 1
        assert hub.max_stream_buffered <= hub.buffer_bytes + 1024  # one response past the bound at most
        col.paused = False
        await wait_until(lambda: col.last_revision(0) == final, "the watcher caught up")
        assert check(col.events(0), await truth(lead, start, b"k", b"l")) == []
        nursery.cancel_scope.cancel()


async def test_compacted_start_and_a_paused_watcher_compacted_past_get_compacted(
    autojump_clock: MockClock,
) -> None:
    async with cluster() as c, trio.open_nursery() as nursery:
        lead = await c.settle()
        hub = lead.watch_hub
        hub.buffer_bytes = 512
        paused = hub.open_stream()
        pcol = Collector(paused)
        paused.request(create(b"c", range_end=b"d"))
        pcol.paused = True
        nursery.start_soon(pcol.run)
        for i in range(40):
            await put(lead, b"c%d" % i, b"y" * 100)
        assert paused.watchers[0] in hub.unsynced
        rev = lead.backend.revision
        await lead.handlers.handle(rpc.CompactionRequest(rev - 5))
        # a new watch below the compaction
        stream = hub.open_stream()
        col = Collector(stream)
        nursery.start_soon(col.run)
        stream.request(create(b"c", range_end=b"d", start_revision=2))
        await wait_until(lambda: any(r.compact_revision for r in col.responses), "compacted response")
        resp = next(r for r in col.responses if r.compact_revision)
        assert (resp.canceled, resp.compact_revision, resp.watch_id) == (True, rev - 5, 0)
        assert col.responses[0].created
        pcol.paused = False
        await wait_until(lambda: any(r.compact_revision for r in pcol.responses), "paused watcher compacted")
        done = next(r for r in pcol.responses if r.compact_revision)
        assert done.canceled and done.compact_revision == rev - 5
        evs = [ev for r in pcol.events(0) for ev in r.events]
        revs = [ev.kv.mod_revision for ev in evs]
        assert revs == sorted(set(revs)) and revs[-1] < rev - 5  # no gap hidden: it stops, cancelled
        assert hub.watcher_count() == 0
        nursery.cancel_scope.cancel()


async def test_a_follower_installing_a_snapshot_keeps_its_watchers_whole(autojump_clock: MockClock) -> None:
    async with cluster(snapshot_count=20) as c, trio.open_nursery() as nursery:
        lead = await c.settle()
        node = c.followers(lead)[0]
        other = c.followers(lead)[1]
        stream = node.watch_hub.open_stream()
        col = Collector(stream)
        nursery.start_soon(col.run)
        stream.request(create(b"s", range_end=b"t"))
        await wait_until(lambda: bool(col.responses), "created")
        start = col.responses[0].header.revision + 1
        for i in range(10):
            await put(lead, b"s/a%d" % i, b"1")
        c.net.cut |= {frozenset((node.id, lead.id)), frozenset((node.id, other.id))}
        behind = node.raft.storage.last_index()
        for i in range(120):
            await put(lead, b"s/b%d" % (i % 9), b"2")
        await wait_until(lambda: lead.raft.storage.first_index() > behind + 1, "the leader compacted its log")
        sent = c.net.snapshots_sent
        c.net.cut.clear()
        final = lead.backend.revision
        await wait_until(lambda: c.net.snapshots_sent > sent, "a snapshot sent to the follower")
        await wait_until(lambda: node.backend.revision >= final, "the follower installed it")
        for i in range(10):
            await put(lead, b"s/c%d" % i, b"3")
        final = lead.backend.revision
        await wait_until(lambda: col.last_revision(0) == final, "the watcher caught up")
        assert check(col.events(0), await truth(lead, start, b"s", b"t")) == []
        nursery.cancel_scope.cancel()


async def test_stream_rules_ids_filters_prev_kv_cancel_progress_fragment(autojump_clock: MockClock) -> None:
    async with cluster(("n1",)) as c, trio.open_nursery() as nursery:
        lead = await c.settle()
        hub = lead.watch_hub
        stream = hub.open_stream()
        col = Collector(stream)
        nursery.start_soon(col.run)
        stream.request(create(b"a", watch_id=5, prev_kv=True, filters=(FilterType.NODELETE,)))
        stream.request(create(b"a", watch_id=5))  # duplicate id
        stream.request(create(b"b", range_end=b"a"))  # empty range
        stream.request(create(b"a", fragment=True, range_end=b"b"))  # auto id 0
        await put(lead, b"a", b"1")
        await put(lead, b"a", b"2")
        await lead.handlers.handle(rpc.DeleteRangeRequest(b"a"))
        await wait_until(lambda: len(col.events(0)) == 3, "events")
        refused = [r for r in col.responses if r.watch_id == -1]
        assert [r.cancel_reason for r in refused] == [
            "mvcc: duplicate watch ID provided on the WatchStream",
            "mvcc: watcher range is empty",
        ]
        assert all(r.created and r.canceled for r in refused)
        five = [ev for r in col.events(5) for ev in r.events]
        assert [(ev.type, ev.kv.value, ev.prev_kv and ev.prev_kv.value) for ev in five] == [
            (EventType.PUT, b"1", None),
            (EventType.PUT, b"2", b"1"),
        ]
        deleted = col.events(0)[-1].events[0]
        assert deleted.type == EventType.DELETE and deleted.prev_kv is None
        assert (deleted.kv.create_revision, deleted.kv.version, deleted.kv.value) == (0, 0, b"")
        # cancel: answered once, then silence for that id
        stream.request(WatchRequest(cancel_request=WatchCancelRequest(5)))
        await wait_until(lambda: any(r.canceled and r.watch_id == 5 for r in col.responses), "cancelled")
        await put(lead, b"a", b"3")
        await wait_until(lambda: len(col.events(0)) == 4, "event after cancel")
        assert len(col.events(5)) == 2
        # progress: the store's revision, watch id -1
        stream.request(WatchRequest(progress_request=WatchProgressRequest()))
        await wait_until(lambda: col.responses[-1].watch_id == -1, "progress")
        assert col.responses[-1].header.revision == lead.backend.revision
        # fragments: a big txn split at max-request-bytes, the last fragment has fragment=false
        hub.max_response_bytes = 3000
        ops = tuple(rpc.PutRequest(b"a%03d" % i, b"z" * 200) for i in range(40))
        await lead.handlers.handle(rpc.TxnRequest(success=ops))
        await wait_until(lambda: sum(1 for r in col.responses if r.fragment) >= 2, "fragments")
        tail = [r for r in col.responses if r.watch_id == 0 and r.events]
        parts = tail[tail.index(next(r for r in tail if r.fragment)) :]
        assert [r.fragment for r in parts][-1] is False and all(r.fragment for r in parts[:-1])
        assert len(parts) >= 2 and sum(len(r.events) for r in parts) == 40
        nursery.cancel_scope.cancel()


async def test_progress_waits_until_every_watcher_is_synced(autojump_clock: MockClock) -> None:
    async with cluster(("n1",)) as c, trio.open_nursery() as nursery:
        lead = await c.settle()
        hub = lead.watch_hub
        hub.progress_interval = 5.0
        for i in range(30):
            await put(lead, b"p%d" % i, b"v")
        stream = hub.open_stream()
        col = Collector(stream)
        stream.request(create(b"p", range_end=b"q", start_revision=2))  # unsynced: history to replay
        stream.request(create(b"p", range_end=b"q", progress_notify=True))
        stream.request(WatchRequest(progress_request=WatchProgressRequest()))
        first = stream.drain()
        assert all(r.watch_id != -1 for r in first) and stream.progress_pending  # nothing promised yet
        col.responses.extend(first)
        nursery.start_soon(col.run)
        await wait_until(lambda: any(r.watch_id == -1 for r in col.responses), "deferred progress")
        progress = next(i for i, r in enumerate(col.responses) if r.watch_id == -1)
        replayed = [ev for r in col.responses[:progress] if r.watch_id == 0 for ev in r.events]
        assert len(replayed) == 30, "every earlier event came before the progress response"
        # periodic: an idle synced progress_notify watcher hears the revision, an active one does not
        await trio.sleep(6.0)
        idle = [r for r in col.responses if r.watch_id == 1 and not r.events and not r.created]
        assert idle and idle[-1].header.revision == lead.backend.revision
        nursery.cancel_scope.cancel()


__all__ = ["Cluster"]


async def test_a_member_without_a_leader_ends_require_leader_streams(autojump_clock: MockClock) -> None:
    async with cluster() as c:
        lead = await c.settle()
        node = c.followers(lead)[0]
        others = [n for n in c.running() if n is not node]
        send, recv = trio.open_memory_channel[object](8)
        got: list[WatchResponse] = []

        async def emit(resp: object) -> None:
            assert isinstance(resp, WatchResponse)
            got.append(resp)

        async def serve(first: WatchRequest) -> BaseException | None:
            try:
                await node.handlers.stream(first, recv, emit)
            except errors.EtcdError as exc:
                return exc
            return None

        outcome: list[BaseException | None] = []

        async def run(first: WatchRequest) -> None:
            outcome.append(await serve(first))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                run, WatchRequest(create_request=WatchCreateRequest(b"x"), require_leader=True)
            )
            await wait_until(lambda: bool(got), "created")
            started = trio.current_time()
            c.net.cut |= {frozenset((node.id, o.id)) for o in others}
            await wait_until(lambda: bool(outcome), "the stream ended", timeout=30)
        assert isinstance(outcome[0], errors.NoLeaderError)
        assert str(outcome[0]) == "etcdserver: no leader"
        assert trio.current_time() - started >= 3 * ELECTION_MS / 1000
        assert node.watch_hub.watcher_count() == 0
        del send
