"""Online defragmentation of a page file: a compact copy made in steps, then renamed over the original.

`CompactCopy` reads the file's last commit through a page-file instance of its own (its own handle and
node cache), so the owner keeps serving reads from the original meanwhile; the owner must not commit
while a copy is under way (the copy would miss those commits: the Backend holds its writer lock).
Each `step` copies a bounded number of entries and commits the new file (bounded memory, and a point
between steps where the owner's event loop serves reads). `install` renames the copy over the path
(write-new + sync + rename + sync_dir, as `PageFile.defrag`) and reloads the owner's instance; a read
stream holding the old file (storage/pagestream.py) keeps reading the old file through its own handle.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from trikv.storage.files import FileSystem
from trikv.storage.pagefile import PageFile, ReadTxn, _write_empty

__all__ = ["CompactCopy"]

STEP_ENTRIES = 50_000  # entries per step (and per commit of the new file)


class CompactCopy:
    def __init__(self, owner: PageFile) -> None:
        fs, path, page_size = owner._fs, owner.path, owner.page_size
        self.fs: FileSystem = fs
        self.path = path
        self.tmp = path + ".defrag"
        self.copied = 0
        self._src = PageFile.open(fs, path, page_size=page_size)  # removes a stale .defrag first
        self._dst: PageFile | None = None
        self._rx: ReadTxn | None = None
        try:
            self._rx = self._src.read()
            _write_empty(fs, self.tmp, page_size, self._rx.txid)
            self._dst = PageFile.open(fs, self.tmp, page_size=page_size)
        except BaseException:
            self.abort()
            raise
        self._items = self._walk(self._rx)

    def _walk(self, rx: ReadTxn) -> Iterator[tuple[bytes, bytes, bytes] | bytes]:
        for name in rx.buckets():
            yield name
            for k, v in rx.range(name):
                yield name, k, v

    def step(self, limit: int = STEP_ENTRIES) -> bool:
        """Copy up to `limit` entries and commit them to the new file; True when everything is copied."""
        assert self._dst is not None
        w = self._dst.write()
        try:
            n = 0
            for item in self._items:
                if isinstance(item, bytes):
                    w.create_bucket(item)
                    continue
                w.put(*item)
                n += 1
                if n >= limit:
                    break
            else:
                w.commit()
                self.copied += n
                return True
            w.commit()
            self.copied += n
            return False
        except BaseException:
            if not w._closed:
                w.rollback()
            raise

    def size(self) -> int:
        return self._dst.size() if self._dst is not None else 0

    def _close(self) -> None:
        if self._rx is not None:
            self._rx.close()
            self._rx = None
        for pf in (self._dst, self._src):
            if pf is not None:
                pf.close()
        self._dst = None

    def abort(self) -> None:
        """Give up: the original stays as it is; the partial copy is removed."""
        self._close()
        if self.fs.exists(self.tmp):
            self.fs.remove(self.tmp)

    def install(self, owner: PageFile) -> None:
        """Rename the finished copy over the original and reload `owner` (no transaction of it may be
        running: call it where nothing else touches `owner`)."""
        self._close()
        self.fs.rename(self.tmp, self.path)
        self.fs.sync_dir(posixpath.dirname(self.path) or ".")
        owner._reload()
