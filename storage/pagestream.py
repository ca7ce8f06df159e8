"""A consistent copy of one page-file commit, read in bounded chunks (snapshot streams, Raft snapshots).

Opening one pins a read transaction (the commit's pages are never reused while it is open: the page
file's pending-reader rule) and opens a file handle of its own, so chunks can be read in a worker thread
while the owner keeps committing, and an online defrag that renames a new file over the path does not
disturb it (the handle keeps the old file). The byte image is what `PageFile.write_snapshot` writes: the
commit's meta page in both slots, then pages 2 .. high-water mark as they are on disk (free pages may hold
anything; the copied free list says they are free).

Open and close on the owner's thread (they touch the reader table); `read` may run in any thread.
"""

from __future__ import annotations

from trikv.api.errors import CorruptionError
from trikv.storage.files import File
from trikv.storage.pagefile import PageFile

__all__ = ["PageFileSnapshot"]


class PageFileSnapshot:
    """`size` bytes of one commit's image; `read(offset, n)` returns the bytes there."""

    def __init__(self, pf: PageFile) -> None:
        self._txn = pf.read()
        try:
            meta = self._txn._meta
            codec = pf._codec
            ps = codec.ps
            self.txid = meta.txid
            self.page_size = ps
            self._head = bytes(codec.encode_meta(meta, 0)) + bytes(codec.encode_meta(meta, 1))
            self.size = max(2, meta.hwm) * ps
            self._path = pf.path
            self._f: File | None = pf._fs.open(pf.path)
        except BaseException:
            self._txn.close()
            raise

    def read(self, offset: int, n: int) -> bytes:
        """Up to n bytes at offset (fewer only at the end)."""
        f = self._f
        if f is None:
            raise CorruptionError(self._path, offset, "snapshot read after close")
        end = min(self.size, offset + n)
        out = bytearray()
        if offset < len(self._head):
            out += self._head[offset : min(end, len(self._head))]
            offset = len(self._head)
        if offset < end:
            data = f.pread(end - offset, offset)
            if len(data) != end - offset:
                raise CorruptionError(self._path, offset, "file shorter than its pages")
            out += data
        return bytes(out)

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()
        self._txn.close()

    def __enter__(self) -> PageFileSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
