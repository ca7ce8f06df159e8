"""The snapshot file: a member's page file, optionally followed by etcd's 32-byte SHA-256 trailer.

`trikvctl snapshot save` writes the stream of Maintenance.Snapshot as it comes: the page-file image, then
the SHA-256 of that image (the stream's last item). Like etcd, a file has a trailer iff
`size % 512 == 32` (page files are whole pages, a multiple of 512 bytes).

`snapshot status` prints four figures, defined here:

- hash: CRC-32 (IEEE, zlib's) over every bucket name, then each of its keys and values, buckets and keys
  in their stored (byte) order: equal contents give equal hashes whatever the page layout (etcd hashes
  bolt's buckets the same way, with CRC-32C);
- revision: the key space's current revision (the persisted counter, or the newest revision stored);
- total keys: the number of key/value entries in all buckets (MVCC revisions, members, meta records...),
  as etcd counts bolt keys;
- total size: the page-file image's size in bytes (without the trailer).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from typing import Any

import attrs

from trikv.api.errors import CorruptionError
from trikv.storage.files import OsFileSystem
from trikv.storage.mvcc import KEY_BUCKET, MVCC_BUCKET
from trikv.storage.pagefile import PageFile
from trikv.storage.pages import read_metas

HASH_SIZE = 32
_CURRENT_REV = b"current_revision"  # storage/mvcc.py's persisted revision counter
_REV = struct.Struct(">Q")


class SnapshotFileError(Exception):
    """A snapshot file that cannot be used; the message is etcd's where etcd has one."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@attrs.frozen
class SnapshotStatus:
    hash: int
    revision: int
    total_key: int
    total_size: int

    def as_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "revision": self.revision,
            "totalKey": self.total_key,
            "totalSize": self.total_size,
        }


class _ReadOnlyFile:
    """A file opened read-only (a backup may be read-only): reads only, every write refused."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def _refuse(self, *args: object) -> None:
        raise OSError(f"{self.path}: opened read-only")

    pwrite = truncate = preallocate = _refuse

    def sync(self) -> None:
        pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def has_hash(size: int) -> bool:
    return size % 512 == HASH_SIZE


def _stat(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        raise SnapshotFileError(f"stat {path}: no such file or directory") from None


def go_bytes(data: bytes) -> str:
    """Go's `%v` of a []byte: `[1 2 3]`."""
    return "[" + " ".join(str(b) for b in data) + "]"


def verify_hash(path: str, *, skip_hash_check: bool = False) -> int:
    """Check the SHA-256 trailer as etcd's restore does; returns the image size (without the trailer)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise SnapshotFileError(f"open {path}: no such file or directory") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        hashed = has_hash(size)
        body = size - HASH_SIZE if hashed else size
        if not hashed and not skip_hash_check:
            raise SnapshotFileError("snapshot missing hash but --skip-hash-check=false")
        if hashed and not skip_hash_check:
            h = hashlib.sha256()
            left = body
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise SnapshotFileError(f"read {path}: unexpected EOF")
                h.update(chunk)
                left -= len(chunk)
            want = f.read(HASH_SIZE)
            got = h.digest()
            if want != got:
                raise SnapshotFileError(f"expected sha256 {go_bytes(want)}, got {go_bytes(got)}")
    return body


def copy_image(src: str, dst: str, size: int) -> None:
    """Copy the first `size` bytes of src (the image without its trailer) to dst, synced."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        left = size
        while left:
            chunk = fi.read(min(left, 1 << 20))
            if not chunk:
                raise SnapshotFileError(f"read {src}: unexpected EOF")
            fo.write(chunk)
            left -= len(chunk)
        fo.flush()
        os.fsync(fo.fileno())


def status(path: str) -> SnapshotStatus:
    """The figures of `snapshot status` (see the module docstring). Reads only."""
    size = _stat(path)
    image = size - HASH_SIZE if has_hash(size) else size
    f = _ReadOnlyFile(path)
    try:
        codec, meta = read_metas(f, path, 4096)
        pf = PageFile(OsFileSystem(), path, f, codec, meta, 4096)  # no PageFile.open: it may write
    except CorruptionError as exc:
        f.close()
        raise SnapshotFileError(f"snapshot file {path} is not a trikv page file: {exc}") from None
    except BaseException:
        f.close()
        raise
    try:
        crc = 0
        keys = 0
        revision = 0
        with pf.read() as rx:
            for name in rx.buckets():
                crc = zlib.crc32(name, crc)
                for k, v in rx.range(name):
                    crc = zlib.crc32(v, zlib.crc32(k, crc))
                    keys += 1
            counter = rx.get(MVCC_BUCKET, _CURRENT_REV)
            if counter is not None:
                revision = _REV.unpack(counter)[0]
            for k, _ in rx.range(KEY_BUCKET, reverse=True):  # the newest page key (revision first)
                revision = max(revision, _REV.unpack_from(k)[0])
                break
    finally:
        pf.close()
    return SnapshotStatus(crc, revision, keys, image)


__all__ = [
    "HASH_SIZE",
    "SnapshotFileError",
    "SnapshotStatus",
    "copy_image",
    "go_bytes",
    "has_hash",
    "status",
    "verify_hash",
]
