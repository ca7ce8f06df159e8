"""Reads during a page-file commit: a range (and a watch's history read) is answered while the commit's
writes and fsyncs are still in the worker thread, and it sees the whole batch; with the old rule (reads wait
for the whole commit) the first assertion fails."""

from __future__ import annotations

from typing import Any

import trio

from trikv.actors.apply import Applier
from trikv.actors.backend import Backend
from trikv.actors.events import Waiters
from trikv.api import codec, rpc
from trikv.api.internal import RaftRequest
from trikv.api.records import Entry, EntryType
from trikv.storage.files import CrashFileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile


class GatedWorker:
    """run_sync: the commit's first step runs at once, its second (writes + fsyncs) waits for `release`."""

    def __init__(self) -> None:
        self.calls = 0
        self.writing = trio.Event()
        self.release = trio.Event()

    async def __call__(self, fn: Any) -> Any:
        self.calls += 1
        await trio.lowlevel.checkpoint()
        if self.calls == 2:  # prepare, then finish
            self.writing.set()
            await self.release.wait()
        return fn()


def _put(index: int, key: bytes, value: bytes) -> Entry:
    request = RaftRequest(1, index, "put", rpc.PutRequest(key, value))
    return Entry(1, index, EntryType.NORMAL, codec.encode(request))


async def test_a_range_during_the_commits_fsync_is_answered_with_the_whole_batch(autojump_clock: Any) -> None:
    fs = CrashFileSystem()
    fs.makedirs("/m")
    pagefile = PageFile.open(fs, "/m/db")
    kv = KVStore(pagefile)
    worker = GatedWorker()
    backend = Backend(pagefile, kv, Applier(kv, 1), Waiters(), applied=0, run_sync=worker)
    entries = [_put(i, b"k%d" % i, b"v%d" % i) for i in range(1, 201)]

    async def apply_loop() -> None:  # one task holds the writer lock from apply to commit, as in a member
        await backend.apply(entries, lambda cc: None)  # type: ignore[arg-type,return-value]
        await backend.commit()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(apply_loop)
        with trio.fail_after(5):
            await worker.writing.wait()
        with trio.fail_after(1):  # not behind the gate (virtual time: a blocked read jumps the clock here)
            got = await backend.range(rpc.RangeRequest(b"k", b"l"))
            events, last, _ = await backend.history(2, 201, b"k", b"l", 1000, False)
        assert got.count == 200 and got.header.revision == 201
        assert {x.key: x.value for x in got.kvs} == {b"k%d" % i: b"v%d" % i for i in range(1, 201)}
        assert len(events) == 200 and last == 201
        assert backend.revision == 201
        worker.release.set()
    assert backend.applied == 200 and kv.consistent_index == 200
    backend.close()
    assert PageFile.check(fs, "/m/db") == []
