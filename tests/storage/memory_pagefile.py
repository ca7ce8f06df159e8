"""An in-memory twin of storage.pagefile.PageFile's API for the MVCC tests.

Committed state is an immutable-by-convention dict of SortedDicts; a write txn works on a copy and swaps it
in at commit, so read txns are consistent views. `Disk` outlives a PageFile so tests can reopen, and a
write txn that never commits leaves no trace (what a crash does to the real one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from sortedcontainers import SortedDict

from trikv.api.errors import StorageError


class Disk:
    def __init__(self) -> None:
        self.state: dict[bytes, SortedDict] = {}
        self.txid = 0


class MemReadTxn:
    def __init__(self, state: dict[bytes, SortedDict]) -> None:
        self._state = state

    def __enter__(self) -> MemReadTxn:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def get(self, bucket: bytes, key: bytes) -> bytes | None:
        b = self._state.get(bucket)  # a missing bucket reads as empty, like the real PageFile
        return None if b is None else b.get(key)

    def range(
        self, bucket: bytes, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        b = self._state.get(bucket, SortedDict())
        keys = list(b.irange(start, end, inclusive=(True, False), reverse=reverse))
        for k in keys:
            yield k, b[k]

    def buckets(self) -> list[bytes]:
        return sorted(self._state)

    def close(self) -> None:
        pass


class MemWriteTxn(MemReadTxn):
    def __init__(self, pf: MemoryPageFile) -> None:
        super().__init__({k: SortedDict(v) for k, v in pf.disk.state.items()})
        self._pf = pf
        self._open = True

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rollback()

    def create_bucket(self, name: bytes) -> None:
        self._state.setdefault(name, SortedDict())

    def delete_bucket(self, name: bytes) -> None:
        self._state.pop(name, None)

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        assert self._open
        if bucket not in self._state:
            raise StorageError(f"bucket {bucket!r} not found")
        self._state[bucket][bytes(key)] = bytes(value)

    def delete(self, bucket: bytes, key: bytes) -> bool:
        assert self._open
        if bucket not in self._state:
            raise StorageError(f"bucket {bucket!r} not found")
        return self._state[bucket].pop(key, None) is not None

    def commit(self) -> None:
        assert self._open
        self._pf.disk.state = self._state
        self._pf.disk.txid += 1
        self._close()

    def prepare(self) -> Callable[[], None]:
        """PageFile's two-step commit: the new state is read from here on, the returned step is the I/O."""
        self.commit()
        return lambda: None

    def rollback(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._open:
            self._open = False
            self._pf.writer = None


class MemoryPageFile:
    def __init__(self, disk: Disk | None = None) -> None:
        self.disk = disk if disk is not None else Disk()
        self.writer: MemWriteTxn | None = None

    @property
    def txid(self) -> int:
        return self.disk.txid

    def read(self) -> MemReadTxn:
        return MemReadTxn(self.disk.state)

    def write(self) -> MemWriteTxn:
        assert self.writer is None, "one write txn at a time"
        self.writer = MemWriteTxn(self)
        return self.writer

    def close(self) -> None:
        pass


class Backend:
    """Opens (and reopens) a KVStore over either the in-memory twin or the real PageFile.

    The real one runs on storage.files.CrashFileSystem, so reopen goes through the real on-disk format.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.disk = Disk()
        self.fs: Any = None
        self.pf: Any = None
        if kind == "pagefile":
            from trikv.storage.files import CrashFileSystem

            self.fs = CrashFileSystem()
            self.fs.makedirs("/data")

    def open_pagefile(self) -> Any:
        if self.kind == "memory":
            return MemoryPageFile(self.disk)
        from trikv.storage.pagefile import PageFile

        return PageFile.open(self.fs, "/data/db")

    def open(self) -> Any:
        from trikv.storage.mvcc import KVStore

        self.pf = self.open_pagefile()
        return KVStore(self.pf)

    def reopen(self, store: Any) -> Any:
        store.close()
        self.pf.close()
        return self.open()


def backend_kinds() -> list[str]:
    """'memory' always; 'pagefile' once storage/pagefile.py exists."""
    try:
        import trikv.storage.pagefile  # noqa: F401
    except ImportError:
        return ["memory"]
    return ["memory", "pagefile"]
