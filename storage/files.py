"""The one file layer: every byte the storage layer reads or writes goes through a `FileSystem`.

Two implementations share the protocol:

- `OsFileSystem`, the real one (pread/pwrite on descriptors, fsync, posix_fallocate, flock).
- `CrashFileSystem`, its power-loss twin in memory. It remembers what has been made durable (file content
  at its last `sync`, directory entries at their directory's last `sync_dir`) and `crash(rng)` returns the
  state a machine would find after losing power: synced data survives, every write since a file's last
  sync is dropped, kept or torn, and namespace changes survive only if their directory was synced.
  `arm(n)` makes the n-th mutating call from now raise `SimulatedCrash`, so a test can stop a workload at
  any point and check what recovery sees.

The twin's one simplification: `makedirs` is durable at once (callers create their directories once at
startup; the atomic steps that matter, create/rename/remove of files and directories, are modelled
strictly).
"""

from __future__ import annotations

import errno
import fcntl
import os
import posixpath
import random
import shutil
from typing import Protocol

from trikv.api.errors import LockedError

SECTOR = 512


class File(Protocol):
    path: str

    def pread(self, size: int, offset: int) -> bytes: ...
    def pwrite(self, data: bytes | memoryview, offset: int) -> None: ...
    def size(self) -> int: ...
    def truncate(self, size: int) -> None: ...
    def preallocate(self, size: int) -> None: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...


class DirLock(Protocol):
    def release(self) -> None: ...


class FileSystem(Protocol):
    def open(self, path: str, create: bool = False) -> File: ...
    def exists(self, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str]: ...
    def makedirs(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def remove(self, path: str) -> None: ...
    def rmtree(self, path: str) -> None: ...
    def sync_dir(self, path: str) -> None: ...
    def lock(self, dirpath: str) -> DirLock: ...


# --------------------------------------------------------------------------- the real file system


class OsFile:
    """A read-write descriptor; positional I/O only, so no shared offset to get wrong."""

    __slots__ = ("_fd", "_size", "path")

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd
        # The size as this descriptor's own writes left it (None: ask the kernel). Only this object writes the
        # file (the directory lock keeps other processes out), and the quota asks for the page file's size on
        # every write request: an fstat per call was a syscall per request.
        self._size: int | None = None

    def pread(self, size: int, offset: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) == size or not data:
            return data
        # A regular file only reads short at EOF, but loop rather than trust that.
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(self._fd, size - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(self._fd, view, offset)
                view = view[n:]
                offset += n
        except BaseException:
            self._size = None
            raise
        if self._size is not None and offset > self._size:
            self._size = offset

    def size(self) -> int:
        if self._size is None:
            self._size = os.fstat(self._fd).st_size
        return self._size

    def truncate(self, size: int) -> None:
        self._size = None
        os.ftruncate(self._fd, size)
        self._size = size

    def preallocate(self, size: int) -> None:
        current = self.size()
        if size <= current:
            return
        self._size = None
        fallocate = getattr(os, "posix_fallocate", None)
        if fallocate is not None:
            try:
                fallocate(self._fd, current, size - current)
                self._size = size
                return
            except OSError as exc:  # e.g. a file system without fallocate support
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        os.ftruncate(self._fd, size)
        self._size = size

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsDirLock:
    """flock on the directory's own descriptor: released by the kernel when the process dies."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    def open(self, path: str, create: bool = False) -> OsFile:
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        return OsFile(path, os.open(path, flags, 0o644))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def makedirs(self, path: str) -> None:
        os.makedirs(path, mode=0o700, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def rmtree(self, path: str) -> None:
        shutil.rmtree(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, dirpath: str) -> OsDirLock:
        fd = os.open(dirpath, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{dirpath}: locked by another process") from None
        except BaseException:
            os.close(fd)
            raise
        return OsDirLock(fd)


# --------------------------------------------------------------------------- the power-loss twin


class SimulatedCrash(Exception):
    """Raised by an armed `CrashFileSystem`: the power went out at this call."""


def _resize(buf: bytearray, size: int) -> None:
    if size < len(buf):
        del buf[size:]
    elif size > len(buf):
        buf.extend(bytes(size - len(buf)))


def _write(buf: bytearray, offset: int, data: bytes) -> None:
    end = offset + len(data)
    if end > len(buf):
        _resize(buf, end)
    buf[offset:end] = data


class _Inode:
    """A file's bytes now, its bytes as of its last sync, and the operations in between."""

    __slots__ = ("data", "durable", "pending")

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.durable = bytearray(data)
        # ("w", offset, bytes) or ("s", size, b"") in call order since the last sync.
        self.pending: list[tuple[str, int, bytes]] = []

    def sync(self) -> None:
        for op, arg, payload in self.pending:
            if op == "w":
                _write(self.durable, arg, payload)
            else:
                _resize(self.durable, arg)
        self.pending.clear()

    def after_crash(self, rng: random.Random) -> bytes:
        """What a power loss leaves: durable bytes plus each later operation dropped, kept or torn."""
        buf = bytearray(self.durable)
        for op, arg, payload in self.pending:
            if op == "s":
                if rng.random() < 0.5:
                    _resize(buf, arg)
                continue
            mode = rng.randrange(4)
            if mode == 0:  # dropped
                continue
            if mode == 1:  # kept
                _write(buf, arg, payload)
            elif mode == 2:  # torn: a prefix reached the platter
                _write(buf, arg, payload[: rng.randrange(len(payload) + 1)])
            else:  # torn: some sectors reached it, in no particular order
                end = arg + len(payload)
                pos = arg
                while pos < end:
                    nxt = min(end, (pos // SECTOR + 1) * SECTOR)
                    if rng.random() < 0.5:
                        _write(buf, pos, payload[pos - arg : nxt - arg])
                    pos = nxt
        return bytes(buf)


class _Dir:
    __slots__ = ("durable", "entries")

    def __init__(self) -> None:
        self.entries: dict[str, _Inode | _Dir] = {}
        self.durable: dict[str, _Inode | _Dir] = {}


class CrashFile:
    """A handle on an inode of a `CrashFileSystem`; every mutation is counted for `arm`."""

    __slots__ = ("_closed", "_fs", "_inode", "path")

    def __init__(self, fs: CrashFileSystem, path: str, inode: _Inode) -> None:
        self._fs = fs
        self._inode = inode
        self.path = path
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: I/O on closed file")

    def pread(self, size: int, offset: int) -> bytes:
        self._check()
        return bytes(self._inode.data[offset : offset + size])

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        self._check()
        self._fs._tick()
        payload = bytes(data)
        _write(self._inode.data, offset, payload)
        self._inode.pending.append(("w", offset, payload))

    def size(self) -> int:
        self._check()
        return len(self._inode.data)

    def truncate(self, size: int) -> None:
        self._check()
        self._fs._tick()
        _resize(self._inode.data, size)
        self._inode.pending.append(("s", size, b""))

    def preallocate(self, size: int) -> None:
        self._check()
        self._fs._tick()
        if size > len(self._inode.data):
            _resize(self._inode.data, size)
            self._inode.pending.append(("s", size, b""))

    def sync(self) -> None:
        self._check()
        self._fs._tick()
        self._inode.sync()
        self._fs.syncs += 1

    def close(self) -> None:
        self._closed = True


class CrashDirLock:
    def __init__(self, fs: CrashFileSystem, key: str) -> None:
        self._fs = fs
        self._key = key

    def release(self) -> None:
        self._fs._locks.discard(self._key)


class CrashFileSystem:
    """In-memory file system that can lose power (see the module docstring)."""

    def __init__(self) -> None:
        self._root = _Dir()
        self._locks: set[str] = set()
        self._armed: int | None = None
        self._dead = False
        self.syncs = 0  # file syncs so far: lets tests see that durability was asked for

    # ---------------------------------------------------------------- crash control

    def arm(self, n: int) -> None:
        """The n-th mutating call from now (1 = the next one) raises SimulatedCrash."""
        if n < 1:
            raise ValueError("arm(n) needs n >= 1")
        self._armed = n

    def disarm(self) -> None:
        self._armed = None

    @property
    def crashed(self) -> bool:
        return self._dead

    def _tick(self) -> None:
        if self._dead:
            raise SimulatedCrash("the machine is off")
        if self._armed is not None:
            self._armed -= 1
            if self._armed == 0:
                self._armed = None
                self._dead = True
                raise SimulatedCrash("power loss")

    def crash(self, rng: random.Random) -> CrashFileSystem:
        """The disk as the next boot finds it. This file system is dead from now on."""
        self._dead = True
        fresh = CrashFileSystem()

        def copy(src: _Dir) -> _Dir:
            out = _Dir()
            for name in sorted(src.durable):
                node = src.durable[name]
                new: _Inode | _Dir = copy(node) if isinstance(node, _Dir) else _Inode(node.after_crash(rng))
                out.entries[name] = new
                out.durable[name] = new
            return out

        fresh._root = copy(self._root)
        return fresh

    # ---------------------------------------------------------------- namespace helpers

    @staticmethod
    def _parts(path: str) -> list[str]:
        norm = posixpath.normpath("/" + path)
        return [p for p in norm.split("/") if p]

    def _lookup(self, path: str) -> _Inode | _Dir | None:
        node: _Inode | _Dir = self._root
        for part in self._parts(path):
            if not isinstance(node, _Dir):
                return None
            nxt = node.entries.get(part)
            if nxt is None:
                return None
            node = nxt
        return node

    def _parent(self, path: str) -> tuple[_Dir, str]:
        parts = self._parts(path)
        if not parts:
            raise PermissionError(f"{path}: the root cannot be changed")
        parent = self._lookup("/".join(parts[:-1]))
        if not isinstance(parent, _Dir):
            raise FileNotFoundError(errno.ENOENT, "no such directory", posixpath.dirname(path))
        return parent, parts[-1]

    def _dir(self, path: str) -> _Dir:
        node = self._lookup(path)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        if not isinstance(node, _Dir):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        return node

    # ---------------------------------------------------------------- FileSystem

    def open(self, path: str, create: bool = False) -> CrashFile:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "no such file", path)
            self._tick()
            node = _Inode()
            parent.entries[name] = node
        if isinstance(node, _Dir):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return CrashFile(self, path, node)

    def exists(self, path: str) -> bool:
        return self._lookup(path) is not None

    def listdir(self, path: str) -> list[str]:
        return sorted(self._dir(path).entries)

    def makedirs(self, path: str) -> None:
        node = self._root
        for part in self._parts(path):
            nxt = node.entries.get(part)
            if nxt is None:
                self._tick()
                nxt = _Dir()
                node.entries[part] = nxt
                node.durable[part] = nxt  # the documented simplification
            if not isinstance(nxt, _Dir):
                raise FileExistsError(errno.EEXIST, "a file is in the way", path)
            node = nxt

    def rename(self, src: str, dst: str) -> None:
        sparent, sname = self._parent(src)
        node = sparent.entries.get(sname)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", src)
        dparent, dname = self._parent(dst)
        existing = dparent.entries.get(dname)
        if isinstance(existing, _Dir) and (existing.entries or not isinstance(node, _Dir)):
            raise OSError(errno.ENOTEMPTY if existing.entries else errno.EISDIR, "cannot replace", dst)
        if isinstance(node, _Dir) and existing is not None and not isinstance(existing, _Dir):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", dst)
        self._tick()
        del sparent.entries[sname]
        dparent.entries[dname] = node

    def remove(self, path: str) -> None:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        if isinstance(node, _Dir):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        self._tick()
        del parent.entries[name]

    def rmtree(self, path: str) -> None:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if not isinstance(node, _Dir):
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        self._tick()
        del parent.entries[name]

    def sync_dir(self, path: str) -> None:
        node = self._dir(path)
        self._tick()
        node.durable = dict(node.entries)

    def lock(self, dirpath: str) -> CrashDirLock:
        self._dir(dirpath)
        key = "/".join(self._parts(dirpath))
        if key in self._locks:
            raise LockedError(f"{dirpath}: locked by another process")
        self._locks.add(key)
        return CrashDirLock(self, key)
