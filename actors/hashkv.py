"""HashKV and Hash handlers (etcd's Maintenance.HashKV / Hash): what the corruption check compares.

HashKV hashes the applied state, as etcd's (its reads see the backend's write buffer): through the open
batch's transaction, else the last commit, in steps of `STEP_KEYS` page keys (trikv.storage.hashkv.
KVHasher), each a short synchronous read between two awaits like a range read, so the Raft loop keeps
applying and committing meanwhile (a step never runs while a worker thread writes the page file) and
hashing a large key space never stalls heartbeats. The header's revision is the applied revision, so the
corruption check compares like etcd's. Later writes have higher revisions than the hash reads; if the
compact revision moves meanwhile, the hash starts again (or the revision is compacted).
Hash (the whole backend) is computed between two batches in a worker thread.
"""

from __future__ import annotations

import trio

from trikv.actors.backend import Backend
from trikv.actors.kv import KVApi
from trikv.api import errors
from trikv.api.maintenance import HashKVRequest, HashKVResponse, HashRequest, HashResponse
from trikv.storage.hashkv import KVHasher, hash_all

STEP_KEYS = 2000  # page keys per synchronous step (~5 ms of the event loop; docs/PERFORMANCE.md)
MAX_RESTARTS = 10  # compactions committed while hashing before the hash gives up


class HashApi:
    def __init__(self, kv: KVApi, step_keys: int = STEP_KEYS) -> None:
        self.kv = kv
        self.step_keys = step_keys

    @property
    def backend(self) -> Backend:
        return self.kv.backend

    async def hashkv(self, req: HashKVRequest) -> HashKVResponse:
        """etcd's HashByRev: revision 0 (or below: no revision is negative) is the current one; at or below
        the compact revision is compacted."""
        backend = self.backend
        for _ in range(MAX_RESTARTS):
            await backend.settled()
            kv = backend.kv
            with backend.applied_view() as (rx, current, compacted):
                rev = req.revision
                if rev > 0 and compacted and rev <= compacted:
                    raise errors.CompactedError()
                if rev > current:
                    raise errors.FutureRevError()
                hasher = KVHasher(rev if rev > 0 else current, compacted)
                done = hasher.step(rx, self.step_keys)
            while not done:
                await trio.sleep(0)  # let the Raft loop apply and commit
                await backend.settled()
                with backend.applied_view() as (rx, _, now_compacted):
                    if backend.kv is not kv or now_compacted != compacted:
                        break  # a compaction (or a snapshot install) changed what is kept: start again
                    done = hasher.step(rx, self.step_keys)
            else:
                return HashKVResponse(self.kv.header(current), hasher.hash, compacted or -1)
        raise errors.TimeoutError_()

    async def hash(self, req: HashRequest) -> HashResponse:
        backend = self.backend

        def compute() -> tuple[int, int]:
            return hash_all(backend.pagefile), backend.kv.current_revision

        h, current = await backend.exclusive(compute)
        return HashResponse(self.kv.header(current), h)


__all__ = ["HashApi"]
