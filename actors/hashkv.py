"""HashKV and Hash handlers (etcd's Maintenance.HashKV / Hash): what the corruption check compares.

The hash is computed on the committed page file between two batches (the Backend's writer lock: everything
applied is committed and nothing writes meanwhile), in a worker thread, so it never reads a half-written
batch and never blocks the event loop. See trikv.storage.hashkv for the bytes hashed.
"""

from __future__ import annotations

from trikv.actors.backend import Backend
from trikv.actors.kv import KVApi
from trikv.api import errors
from trikv.api.maintenance import HashKVRequest, HashKVResponse, HashRequest, HashResponse
from trikv.storage.hashkv import hash_all, hash_kv


class HashApi:
    def __init__(self, kv: KVApi) -> None:
        self.kv = kv

    @property
    def backend(self) -> Backend:
        return self.kv.backend

    async def hashkv(self, req: HashKVRequest) -> HashKVResponse:
        """etcd's HashByRev: revision 0 is the current one; at or below the compact revision is compacted."""
        backend = self.backend

        def compute() -> tuple[int, int, int]:
            kv = backend.kv
            current, compacted = kv.current_revision, kv.compact_revision
            rev = req.revision
            if rev > 0 and compacted and rev <= compacted:
                raise errors.CompactedError()
            if rev > current:
                raise errors.FutureRevError()
            return hash_kv(backend.pagefile, rev or current, compacted), current, compacted

        h, current, compacted = await backend.exclusive(compute)
        return HashKVResponse(self.kv.header(current), h, compacted or -1)

    async def hash(self, req: HashRequest) -> HashResponse:
        backend = self.backend

        def compute() -> tuple[int, int]:
            return hash_all(backend.pagefile), backend.kv.current_revision

        h, current = await backend.exclusive(compute)
        return HashResponse(self.kv.header(current), h)


__all__ = ["HashApi"]
