"""Copy-on-write page file: named buckets of ordered byte keys, the durable home of the applied state.

One file of fixed-size pages (bbolt's shape, our own code):

- pages 0 and 1 are two alternating meta pages (txid, root of the bucket directory, free-list page, high-water
  mark); commit T writes slot T % 2, so a torn meta write leaves the previous commit readable;
- every other page is a B+tree node (branch or leaf), a free-list page or a blob (an out-of-line value);
  a node or blob larger than a page spans contiguous pages (`overflow` in the header);
- every page/span carries a crc32 over its whole span and its own page id, so reads and `check` detect
  corruption and misdirected writes;
- the bucket directory is itself a tree: bucket name -> root page id of that bucket's tree (0 = empty).

The byte format of pages lives in storage/pages.py; this module is the tree, transactions and space.

Copy-on-write: a write transaction copies every node it changes into memory; commit writes the new nodes
to free pages, fsyncs, then writes the meta page and fsyncs again. Pages the transaction replaced become
"pending" under its txid and are reused only once no read transaction that can still reach them is open
(bbolt's pending lists). Decoded nodes are immutable once written, so they are cached by page id.

Durability contract: when `WriteTxn.commit()` returns, the whole transaction is on disk. A crash at any
point leaves either the previous commit or (if its meta page made it) the one being committed.

Not thread-safe; `commit()` may run in a worker thread while nothing else touches this object. A commit in
two steps (`WriteTxn.prepare()`, then the step it returns) is the exception: while the second writes and
fsyncs in a worker thread, read transactions may open and read on the event loop; they see the new state.
"""

from __future__ import annotations

import posixpath
import struct
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from itertools import islice
from typing import BinaryIO

from trikv.api.errors import CorruptionError, StorageError
from trikv.storage.files import File, FileSystem
from trikv.storage.pages import (
    BLOB,
    FREELIST,
    HDR,
    MAX_LEN,
    REF,
    REF_FLAG,
    U64,
    Child,
    Codec,
    Meta,
    Node,
    Ref,
    Value,
    read_metas,
)

__all__ = ["PageFile", "ReadTxn", "WriteTxn"]

FILL = 0.9  # a split fills pages to this fraction: the MVCC key space is mostly appended in order
MERGE_BELOW = 0.25  # a changed node smaller than this fraction of a page merges with a sibling
MAX_ELEMS = 512  # a node in memory splits eagerly above this many elements (keeps inserts O(log n))


def _dirty(kids: list[Child]) -> list[int]:
    """Indices of the dirty children (found at C speed: a wide branch usually has one or two)."""
    types = list(map(type, kids))
    out: list[int] = []
    i = -1
    try:
        while True:
            i = types.index(Node, i + 1)
            out.append(i)
    except ValueError:
        return out


def _runs(ids: list[int]) -> list[int]:
    """Sorted page ids -> flat [start, length, start, length, ...]."""
    out: list[int] = []
    start = prev = -2
    for p in ids:
        if p == prev + 1:
            prev = p
            continue
        if start >= 0:
            out += (start, prev - start + 1)
        start = prev = p
    if start >= 0:
        out += (start, prev - start + 1)
    return out


class _FreeRuns:
    """The free pages as maximal runs, kept up to date page by page, so writing the free list at each
    commit costs O(runs) and not O(free pages) of Python work."""

    __slots__ = ("heads", "tails")

    def __init__(self, sorted_ids: list[int]) -> None:
        flat = _runs(sorted_ids)
        self.heads: dict[int, int] = dict(zip(flat[::2], flat[1::2], strict=True))  # start -> length
        self.tails: dict[int, int] = {s + n - 1: s for s, n in self.heads.items()}  # end -> start

    def add(self, p: int) -> None:
        start = self.tails.pop(p - 1, p)
        right = self.heads.pop(p + 1, 0)
        end = p + right
        self.heads[start] = end - start + 1
        self.tails[end] = start

    def take(self, p: int) -> None:
        """Remove p, which the allocator always takes from the head of a run."""
        n = self.heads.pop(p, 0)
        if not n:
            raise StorageError(f"free-run bookkeeping lost page {p}")
        end = p + n - 1
        if n > 1:
            self.heads[p + 1] = n - 1
            self.tails[end] = p + 1
        else:
            del self.tails[end]

    def flat(self) -> list[int]:
        heads = self.heads
        out: list[int] = []
        for s in sorted(heads):
            out += (s, heads[s])
        return out


# --------------------------------------------------------------------------- the page file


class PageFile:
    """One page file; see the module docstring."""

    def __init__(self, fs: FileSystem, path: str, f: File, codec: Codec, meta: Meta, cache_nodes: int):
        self._fs = fs
        self.path = path
        self._f = f
        self._codec = codec
        self.page_size = codec.ps
        self._meta = meta
        self._free: list[int] = []
        self._pending: dict[int, list[int]] = {}
        self._readers: dict[int, int] = {}  # txid -> open read transactions at it
        self._writer: WriteTxn | None = None
        self._cache: dict[int, Node] = {}
        self._cache_max = cache_nodes
        self._broken: str | None = None
        self._hwm = meta.hwm  # next never-used page (moves during a commit)
        self._runs = _FreeRuns([])
        # A prepared commit's pages until its writes are done: readers of the new state find them here.
        self._unwritten: dict[int, Node] = {}
        self._unwritten_blobs: dict[int, bytes] = {}
        self._load_freelist()

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def open(cls, fs: FileSystem, path: str, *, page_size: int = 4096, cache_nodes: int = 4096) -> PageFile:
        """Open, creating crash-safely (write-new + sync + rename + sync_dir) if missing."""
        if page_size < 512 or page_size & (page_size - 1):
            raise StorageError(f"page size {page_size} is not a power of two >= 512")
        for stale in (path + ".defrag", path + ".recv"):  # leftovers of an interrupted defrag/install
            if fs.exists(stale):
                fs.remove(stale)
        if not fs.exists(path):
            tmp = path + ".tmp"
            _write_empty(fs, tmp, page_size, 0)
            fs.rename(tmp, path)
            fs.sync_dir(posixpath.dirname(path) or ".")
        f = fs.open(path)
        try:
            codec, meta = read_metas(f, path, page_size)
            if f.size() < meta.hwm * codec.ps:
                raise CorruptionError(path, f.size(), f"file shorter than its {meta.hwm} pages")
            return cls(fs, path, f, codec, meta, cache_nodes)
        except BaseException:
            f.close()
            raise

    def _load_freelist(self) -> None:
        m = self._meta
        self._free = []
        self._pending = {}
        self._hwm = m.hwm
        if m.freelist:
            buf, _typ, count = self._codec.read_span(self._f, m.freelist, FREELIST)
            runs = struct.unpack_from(f"<{2 * count}Q", buf, HDR)
            free: list[int] = []
            for i in range(0, len(runs), 2):
                free.extend(range(runs[i], runs[i] + runs[i + 1]))
            free.sort()  # runs of free and of pending pages were written apart
            self._free = free
        self._runs = _FreeRuns(self._free)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.rollback()
        self._f.close()
        self._cache.clear()
        self._broken = "closed"

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise StorageError(f"{self.path}: page file unusable ({self._broken}); reopen it")

    @property
    def txid(self) -> int:
        return self._meta.txid

    def size(self) -> int:
        return self._f.size()

    def size_in_use(self) -> int:
        """Bytes of pages holding data (including pages still pinned by readers)."""
        return (self._meta.hwm - len(self._free)) * self.page_size

    # ---------------------------------------------------------------- transactions

    def read(self) -> ReadTxn:
        self._check_usable()
        meta = self._meta  # once: a commit in a worker thread may swap it
        self._readers[meta.txid] = self._readers.get(meta.txid, 0) + 1
        return ReadTxn(self, meta)

    def write(self) -> WriteTxn:
        self._check_usable()
        if self._writer is not None:
            raise StorageError(f"{self.path}: a write transaction is already open")
        self._release_pending()
        self._writer = WriteTxn(self, self._meta)
        return self._writer

    def _reader_closed(self, txid: int) -> None:
        n = self._readers.get(txid, 0) - 1
        if n > 0:
            self._readers[txid] = n
        else:
            self._readers.pop(txid, None)

    def _release_pending(self) -> None:
        """Pages freed by commit t were reachable only from states before t: free once no reader is older."""
        if not self._pending:
            return
        oldest = min(self._readers) if self._readers else self._meta.txid
        done = [t for t in self._pending if t <= oldest]
        if done:
            add = self._runs.add
            released: list[int] = []
            for t in done:
                released += self._pending.pop(t)
            for p in released:
                add(p)
            if len(released) < 64:  # the usual few pages: cheaper than re-sorting a long free list
                for p in released:
                    insort(self._free, p)
            else:
                self._free += released
                self._free.sort()

    # ---------------------------------------------------------------- node access

    def _load(self, pgid: int) -> Node:
        node = self._cache.get(pgid)
        if node is None:
            node = self._unwritten.get(pgid)
            if node is not None:
                return node
            buf, typ, count = self._codec.read_span(self._f, pgid)
            node = self._codec.decode_node(buf, typ, count, pgid)
            self._remember(node)
        return node

    def _remember(self, node: Node) -> None:
        cache = self._cache
        if len(cache) >= self._cache_max:
            for k in list(islice(cache, self._cache_max // 4)):
                cache.pop(k, None)  # pop: a reader may evict concurrently with a threaded commit
        cache[node.pgid] = node

    def _read_blob(self, ref: Ref) -> bytes:
        data = self._unwritten_blobs.get(ref.pgid)
        if data is not None:
            return data
        buf, _typ, count = self._codec.read_span(self._f, ref.pgid, BLOB)
        if count != ref.length:
            raise self._codec.corrupt(ref.pgid, f"blob holds {count} bytes, its leaf says {ref.length}")
        return buf[HDR : HDR + count]

    def _allocate(self, n: int) -> int:
        """n contiguous free pages (lowest first), else grow the high-water mark."""
        free = self._free
        if n == 1:
            if free:
                p = free[0]
                del free[0]
                self._runs.take(p)
                return p
        elif len(free) >= n:
            run = 1
            for i in range(1, len(free)):
                if free[i] == free[i - 1] + 1:
                    run += 1
                    if run == n:
                        start = free[i - n + 1]
                        del free[i - n + 1 : i + 1]
                        for p in range(start, start + n):
                            self._runs.take(p)
                        return start
                else:
                    run = 1
        p = self._hwm
        self._hwm += n
        return p

    # ---------------------------------------------------------------- whole-file operations

    def _require_idle(self, what: str) -> None:
        self._check_usable()
        if self._writer is not None or self._readers:
            raise StorageError(f"{self.path}: {what} needs all transactions closed")

    def _reload(self) -> None:
        self._f.close()
        self._cache.clear()
        self._f = self._fs.open(self.path)
        self._codec, self._meta = read_metas(self._f, self.path, self.page_size)
        self._load_freelist()

    def defrag(self) -> None:
        """Rewrite compactly into a new file (write-new + sync + rename + sync_dir); contents unchanged."""
        self._require_idle("defrag")
        tmp = self.path + ".defrag"
        if self._fs.exists(tmp):
            self._fs.remove(tmp)
        _write_empty(self._fs, tmp, self.page_size, self._meta.txid)
        dst = PageFile.open(self._fs, tmp, page_size=self.page_size)
        try:
            with self.read() as r:
                w = dst.write()
                n = 0
                for name in r.buckets():
                    w.create_bucket(name)
                    for k, v in r.range(name):
                        w.put(name, k, v)
                        n += 1
                        if n % 50000 == 0:  # bounded memory: commit in chunks
                            w.commit()
                            w = dst.write()
                w.commit()
        finally:
            dst.close()
        self._fs.rename(tmp, self.path)
        self._fs.sync_dir(posixpath.dirname(self.path) or ".")
        self._reload()

    def write_snapshot(self, out: BinaryIO) -> int:
        """Stream a consistent copy of the last commit (its meta in both slots + its pages); bytes written."""
        ps = self.page_size
        with self.read() as r:
            meta = r._meta
            written = 0
            for slot in (0, 1):
                out.write(self._codec.encode_meta(meta, slot))
                written += ps
            pg = 2
            chunk = max(1, (1 << 20) // ps)
            while pg < meta.hwm:
                n = min(chunk, meta.hwm - pg)
                data = self._f.pread(n * ps, pg * ps)
                if len(data) != n * ps:
                    raise CorruptionError(self.path, pg * ps, "file shorter than its pages")
                out.write(data)
                written += len(data)
                pg += n
        return written

    def replace_from(self, stream: BinaryIO) -> None:
        """Install a received snapshot: write it to a new file, sync, verify, rename, sync_dir, reopen."""
        self._require_idle("replace_from")
        tmp = self.path + ".recv"
        f = self._fs.open(tmp, create=True)
        try:
            f.truncate(0)
            off = 0
            while True:
                data = stream.read(1 << 20)
                if not data:
                    break
                f.pwrite(data, off)
                off += len(data)
            f.sync()
        finally:
            f.close()
        problems = PageFile.check(self._fs, tmp, page_size=self.page_size)
        if problems:
            self._fs.remove(tmp)
            raise CorruptionError(tmp, 0, "received snapshot is invalid: " + "; ".join(problems[:5]))
        self._fs.rename(tmp, self.path)
        self._fs.sync_dir(posixpath.dirname(self.path) or ".")
        self._reload()

    @staticmethod
    def check(fs: FileSystem, path: str, *, page_size: int = 4096) -> list[str]:
        """Verify every reachable page (checksum, id, order, bounds, depth) and the page accounting."""
        try:
            f = fs.open(path)
        except FileNotFoundError:
            return [f"{path}: missing"]
        try:
            return _Checker(f, path, page_size).run()
        finally:
            f.close()


def _write_empty(fs: FileSystem, path: str, page_size: int, txid: int) -> None:
    """A fresh file: both meta slots at txid, empty directory, no free pages; synced."""
    codec = Codec(path, page_size)
    meta = Meta(txid, 0, 0, 0, 2)
    f = fs.open(path, create=True)
    try:
        f.truncate(0)
        f.pwrite(bytes(codec.encode_meta(meta, 0) + codec.encode_meta(meta, 1)), 0)
        f.sync()
    finally:
        f.close()


# --------------------------------------------------------------------------- transactions


class ReadTxn:
    """A consistent view of one commit; keeps that commit's pages from reuse until closed."""

    def __init__(self, pf: PageFile, meta: Meta) -> None:
        self._pf = pf
        self._meta = meta
        self._roots: dict[bytes, int] = {}
        self._closed = False

    def __enter__(self) -> ReadTxn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def txid(self) -> int:
        return self._meta.txid

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pf._reader_closed(self._meta.txid)

    def _live(self) -> None:
        if self._closed:
            raise StorageError("transaction is closed")

    # ---------------------------------------------------------------- tree walking (clean or dirty)

    def _node(self, c: Child) -> Node:
        return self._pf._load(c) if type(c) is int else c  # type: ignore[return-value]

    def _tree_get(self, root: Child, key: bytes) -> Value | None:
        if root == 0:
            return None
        node = self._node(root)
        while not node.leaf:
            i = bisect_right(node.keys, key) - 1
            node = self._node(node.kids[i if i > 0 else 0])
        keys = node.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return node.vals[i]
        return None

    def _value(self, v: Value) -> bytes:
        return self._pf._read_blob(v) if type(v) is Ref else v  # type: ignore[return-value]

    def _dir_root(self) -> Child:
        return self._meta.root

    def _bucket_root(self, name: bytes) -> Child | None:
        root = self._roots.get(name)
        if root is None:
            v = self._tree_get(self._meta.root, name)
            if v is None:
                return None
            root = U64.unpack(v)[0]  # type: ignore[arg-type]
            self._roots[name] = root
        return root

    def _iter(
        self, root: Child, start: bytes, end: bytes | None, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        if root == 0:
            return
        node = self._node(root)
        stack: list[tuple[Node, int]] = []
        if not reverse:
            while not node.leaf:
                i = bisect_right(node.keys, start) - 1
                i = i if i > 0 else 0
                stack.append((node, i))
                node = self._node(node.kids[i])
            lo = bisect_left(node.keys, start)
            while True:
                keys = node.keys
                hi = len(keys)
                stop = False
                if end is not None and hi and keys[-1] >= end:
                    hi = bisect_left(keys, end, lo)
                    stop = True
                if lo < hi:
                    if node.refs:
                        yield from self._resolved(keys[lo:hi], node.vals[lo:hi])
                    else:
                        yield from zip(keys[lo:hi], node.vals[lo:hi], strict=False)
                if stop:
                    return
                if self._closed:  # its pages may be reused once closed
                    raise StorageError("transaction closed during iteration")
                while stack:
                    parent, i = stack.pop()
                    if i + 1 < len(parent.kids):
                        stack.append((parent, i + 1))
                        node = self._node(parent.kids[i + 1])
                        while not node.leaf:
                            stack.append((node, 0))
                            node = self._node(node.kids[0])
                        break
                else:
                    return
                lo = 0
        else:
            # reverse: keys in [start, end), largest first
            while not node.leaf:
                if end is None:
                    i = len(node.kids) - 1
                else:
                    i = bisect_left(node.keys, end) - 1
                    i = i if i > 0 else 0
                stack.append((node, i))
                node = self._node(node.kids[i])
            hi = len(node.keys) if end is None else bisect_left(node.keys, end)
            while True:
                keys = node.keys
                lo = 0
                stop = False
                if keys and keys[0] < start:
                    lo = bisect_left(keys, start, 0, hi)
                    stop = True
                if lo < hi:
                    if node.refs:
                        yield from reversed(list(self._resolved(keys[lo:hi], node.vals[lo:hi])))
                    else:
                        yield from zip(reversed(keys[lo:hi]), reversed(node.vals[lo:hi]), strict=False)
                if stop:
                    return
                if self._closed:
                    raise StorageError("transaction closed during iteration")
                while stack:
                    parent, i = stack.pop()
                    if i > 0:
                        stack.append((parent, i - 1))
                        node = self._node(parent.kids[i - 1])
                        while not node.leaf:
                            stack.append((node, len(node.kids) - 1))
                            node = self._node(node.kids[-1])
                        break
                else:
                    return
                hi = len(node.keys)

    # ---------------------------------------------------------------- public reads

    def get(self, bucket: bytes, key: bytes) -> bytes | None:
        self._live()
        root = self._bucket_root(bucket)
        if root is None:
            return None
        v = self._tree_get(root, key)
        return None if v is None else self._value(v)

    def range(
        self, bucket: bytes, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys in [start, end) in order (descending with reverse); a missing bucket is empty."""
        self._live()
        root = self._bucket_root(bucket)
        if root is None or (end is not None and end <= start):
            return iter(())
        return self._iter(root, start, end, reverse)

    def _resolved(self, keys: list[bytes], vals: list[Value]) -> Iterator[tuple[bytes, bytes]]:
        read_blob = self._pf._read_blob
        for k, v in zip(keys, vals, strict=True):
            yield k, (read_blob(v) if type(v) is Ref else v)  # type: ignore[misc]

    def buckets(self) -> list[bytes]:
        self._live()
        return [k for k, _ in self._iter(self._dir_root(), b"", None, False)]


class WriteTxn(ReadTxn):
    """The one write transaction; reads see its own writes. Leaving the block without commit() rolls back."""

    def __init__(self, pf: PageFile, meta: Meta) -> None:
        super().__init__(pf, meta)
        self._dir: Child = meta.root
        self._broots: dict[bytes, Child] = {}  # buckets changed in this txn (0 = empty)
        self._freed: list[int] = []

    def __enter__(self) -> WriteTxn:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            self.rollback()

    def close(self) -> None:
        if not self._closed:
            self.rollback()

    def rollback(self) -> None:
        if not self._closed:
            self._closed = True
            self._pf._writer = None

    def _dir_root(self) -> Child:
        return self._dir

    def buckets(self) -> list[bytes]:
        return sorted(set(super().buckets()).union(self._broots))

    def _bucket_root(self, name: bytes) -> Child | None:
        if name in self._broots:
            return self._broots[name]
        v = self._tree_get(self._dir, name)
        return None if v is None else U64.unpack(v)[0]  # type: ignore[arg-type]

    # ---------------------------------------------------------------- copy-on-write tree edits

    def _free_span(self, pgid: int, span: int) -> None:
        self._freed.extend(range(pgid, pgid + span))

    def _free_value(self, v: Value) -> None:
        if type(v) is Ref:
            self._free_span(v.pgid, self._pf._codec.spans(HDR + v.length))

    def _own(self, c: Child) -> Node:
        """A private dirty copy of a clean node (its page becomes free at commit)."""
        if type(c) is not int:
            return c  # type: ignore[return-value]
        n = self._pf._load(c)
        self._free_span(n.pgid, n.span)
        if n.leaf:
            return Node(True, list(n.keys), list(n.vals), None, 0, 1, n.refs)
        return Node(False, list(n.keys), None, list(n.kids))

    def _path(self, root: Child, key: bytes) -> tuple[Node, list[tuple[Node, int]]]:
        """Own the root-to-leaf path for key; branch separators are lowered to stay lower bounds."""
        node = self._own(root)
        path: list[tuple[Node, int]] = []
        while not node.leaf:
            keys = node.keys
            i = bisect_right(keys, key) - 1
            if i < 0:
                i = 0
                keys[0] = key
            kid = node.kids[i]
            if type(kid) is int:
                kid = node.kids[i] = self._own(kid)
            path.append((node, i))
            node = kid  # type: ignore[assignment]
        return node, path

    def _tree_put(self, root: Child, key: bytes, value: bytes) -> Node:
        top = self._own(root) if root != 0 else Node(True, [], [])
        leaf, path = self._path(top, key)
        keys = leaf.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            self._free_value(leaf.vals[i])
            leaf.vals[i] = value
        else:
            keys.insert(i, key)
            leaf.vals.insert(i, value)
            if len(keys) > MAX_ELEMS:
                return self._split_up(top, leaf, path)
        return top

    def _split_up(self, top: Node, node: Node, path: list[tuple[Node, int]]) -> Node:
        """Halve an oversized dirty node in memory, inserting into ancestors as needed."""
        while len(node.keys) > MAX_ELEMS:
            h = len(node.keys) // 2
            right = Node(node.leaf, node.keys[h:], node.vals[h:] if node.leaf else None,
                          None if node.leaf else node.kids[h:], 0, 1, node.refs)  # fmt: skip
            del node.keys[h:]
            if node.leaf:
                del node.vals[h:]
            else:
                del node.kids[h:]
            if not path:
                return Node(False, [node.keys[0], right.keys[0]], None, [node, right])
            parent, i = path.pop()
            parent.keys.insert(i + 1, right.keys[0])
            parent.kids.insert(i + 1, right)
            node = parent
        return top

    def _tree_delete(self, root: Child, key: bytes) -> Child | None:
        """The new root, or None when the key is absent (nothing copied)."""
        if root == 0 or self._tree_get(root, key) is None:
            return None
        top = self._own(root)
        leaf, _ = self._path(top, key)
        i = bisect_left(leaf.keys, key)
        del leaf.keys[i]
        self._free_value(leaf.vals.pop(i))
        return top

    def _free_tree(self, c: Child) -> None:
        stack = [c]
        while stack:
            c = stack.pop()
            if c == 0:
                continue
            if type(c) is int:
                n = self._pf._load(c)
                self._free_span(n.pgid, n.span)
            else:
                n = c  # type: ignore[assignment]
            if n.leaf:
                if n.refs:
                    for v in n.vals:
                        self._free_value(v)
            else:
                stack.extend(n.kids)

    # ---------------------------------------------------------------- public writes

    def create_bucket(self, name: bytes) -> None:
        self._live()
        if not name:
            raise StorageError("bucket name must not be empty")
        if self._bucket_root(name) is None:
            self._broots[name] = 0

    def delete_bucket(self, name: bytes) -> None:
        self._live()
        root = self._bucket_root(name)
        if root is None:
            raise StorageError(f"bucket {name!r} not found")
        self._free_tree(root)
        self._broots.pop(name, None)
        new = self._tree_delete(self._dir, name)
        if new is not None:
            self._dir = new

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        self._live()
        if not key:
            raise StorageError("key must not be empty")
        if len(key) > MAX_LEN or len(value) > MAX_LEN:
            raise StorageError("key or value too large")
        root = self._bucket_root(bucket)
        if root is None:
            raise StorageError(f"bucket {bucket!r} not found")
        self._broots[bucket] = self._tree_put(root, bytes(key), bytes(value))

    def delete(self, bucket: bytes, key: bytes) -> bool:
        self._live()
        root = self._bucket_root(bucket)
        if root is None:
            raise StorageError(f"bucket {bucket!r} not found")
        new = self._tree_delete(root, key)
        if new is None:
            return False
        self._broots[bucket] = new
        return True

    # ---------------------------------------------------------------- commit

    def commit(self) -> None:
        """Write dirty pages, fsync, write the alternate meta page, fsync. Any failure poisons the file."""
        self.prepare()()

    def prepare(self) -> Callable[[], None]:
        """Commit in two steps: this one lays the new pages out in memory (CPU only) and makes the new state
        the one read transactions open at (its pages are served from memory until written); the returned
        step writes and fsyncs them and the meta page. Between the two, reads may run on another thread than
        the write (nothing they touch is written: the new pages are free ones, the old stay as they are),
        and no write transaction can open. Any failure, in either step, poisons the file."""
        self._live()
        pf = self._pf
        committer = _Committer(self)
        try:
            committer.prepare()
        except BaseException as exc:
            pf._broken = f"commit failed: {exc!r}"
            self._closed = True
            pf._writer = None
            raise
        self._closed = True  # no more writes through it; pf._writer stays set until the pages are written

        def finish() -> None:
            try:
                committer.finish()
            except BaseException as exc:
                pf._broken = f"commit failed: {exc!r}"
                raise
            finally:
                pf._writer = None
            pf._unwritten, pf._unwritten_blobs = {}, {}  # whole swaps: a reader never sees half a clear

        return finish


class _Committer:
    """Rebalance, spill (split + write) the dirty trees, then the free list and the meta page."""

    def __init__(self, tx: WriteTxn) -> None:
        self.tx = tx
        self.pf = tx._pf
        self.codec = tx._pf._codec
        self.writes: list[tuple[int, bytearray]] = []
        self.nodes: dict[int, Node] = {}  # what this commit writes, for readers until it is on disk
        self.blobs: dict[int, bytes] = {}
        self.meta: Meta | None = None

    def prepare(self) -> None:
        tx, pf, codec = self.tx, self.pf, self.codec
        old = tx._meta
        txid = old.txid + 1
        pf._hwm = old.hwm
        for name, root in tx._broots.items():
            new_root = root if isinstance(root, int) else self.commit_tree(root)
            tx._dir = tx._tree_put(tx._dir, name, U64.pack(new_root))
        dir_root = tx._dir if isinstance(tx._dir, int) else self.commit_tree(tx._dir)
        # the free list: the old one's pages are freed by this commit too
        freed = tx._freed
        if old.freelist:
            freed.extend(range(old.freelist, old.freelist + old.fl_span))
        # Everything not reachable from this commit is written as free (pending included: after a
        # restart no reader is left): the free runs, then the runs of pending pages. Allocating the
        # list's own pages takes runs' heads, so the free run count cannot grow meanwhile.
        pending = [p for ps in pf._pending.values() for p in ps] + freed
        pending.sort()
        extra = _runs(pending)
        fl_pgid, fl_span = 0, 0
        if pf._free or extra:
            est = len(pf._runs.heads) + len(extra) // 2 + 1
            fl_span = codec.spans(HDR + 16 * est)
            fl_pgid = pf._allocate(fl_span)
            runs = pf._runs.flat() + extra
            if len(runs) // 2 > est:  # cannot happen (see above); never write a truncated list
                raise StorageError(f"free list of {len(runs) // 2} runs exceeds its estimate {est}")
            self.writes.append((fl_pgid, codec.encode_freelist(runs, fl_pgid, fl_span)))
        self.meta = meta = Meta(txid, dir_root, fl_pgid, fl_span, pf._hwm)
        pf._unwritten, pf._unwritten_blobs = self.nodes, self.blobs
        pf._meta = meta  # read transactions open at the new state from here on
        if freed:
            pf._pending[txid] = freed

    def finish(self) -> None:
        """The I/O: pages, fsync, the meta page, fsync (nothing else of the page file is touched)."""
        f, codec, meta = self.pf._f, self.codec, self.meta
        assert meta is not None, "finish before prepare"
        self.flush(f, meta.hwm)
        f.sync()
        f.pwrite(memoryview(codec.encode_meta(meta, meta.txid % 2)), (meta.txid % 2) * codec.ps)
        f.sync()

    def flush(self, f: File, hwm: int) -> None:
        ps = self.codec.ps
        if f.size() < hwm * ps:
            f.preallocate(hwm * ps)
        self.writes.sort(key=lambda w: w[0])
        i = 0
        ws = self.writes
        while i < len(ws):
            start, buf = ws[i]
            end = start + len(buf) // ps
            j = i + 1
            if j < len(ws) and ws[j][0] == end:
                parts = [buf]
                while j < len(ws) and ws[j][0] == end:
                    parts.append(ws[j][1])
                    end += len(ws[j][1]) // ps
                    j += 1
                f.pwrite(b"".join(parts), start * ps)
            else:
                f.pwrite(memoryview(buf), start * ps)
            i = j

    def write_node(self, node: Node) -> int:
        codec, pf = self.codec, self.pf
        if node.leaf:
            vals: list[bytes] = []
            flags: list[int] = []
            refs = False
            for i, v in enumerate(node.vals):
                if type(v) is not Ref and len(v) > codec.blob_min:
                    v = node.vals[i] = self.write_blob(v)  # type: ignore[arg-type]
                if type(v) is Ref:
                    vals.append(REF.pack(v.pgid, v.length))
                    flags.append(REF_FLAG)
                    refs = True
                else:
                    vals.append(v)  # type: ignore[arg-type]
                    flags.append(0)
            node.refs = refs
            span = codec.spans(codec.leaf_size(node))
            pgid = pf._allocate(span)
            buf = codec.encode_leaf(node.keys, vals, flags, pgid)
        else:
            kids = node.kids
            span = codec.spans(codec.branch_size(node))
            pgid = pf._allocate(span)
            buf = codec.encode_branch(node.keys, kids, pgid)  # type: ignore[arg-type]
        node.pgid = pgid
        node.span = span
        self.writes.append((pgid, buf))
        self.nodes[pgid] = node
        pf._remember(node)
        return pgid

    def write_blob(self, data: bytes) -> Ref:
        span = self.codec.spans(HDR + len(data))
        pgid = self.pf._allocate(span)
        self.pf._cache.pop(pgid, None)
        self.writes.append((pgid, self.codec.encode_blob(data, pgid)))
        self.blobs[pgid] = bytes(data)
        return Ref(pgid, len(data))

    def commit_tree(self, root: Node) -> int:
        self.rebalance(root)
        while not root.leaf and len(root.kids) == 1:
            kid = root.kids[0]
            if type(kid) is int:
                return kid
            root = kid  # type: ignore[assignment]
        pieces = self.spill(root)
        while len(pieces) > 1:
            pieces = self.spill(Node(False, [k for k, _ in pieces], None, [p for _, p in pieces]))
        return pieces[0][1] if pieces else 0

    def rebalance(self, node: Node) -> None:
        """Drop empty dirty children and merge small dirty ones into a sibling (bottom-up)."""
        if node.leaf:
            return
        tx, codec = self.tx, self.codec
        small = int(codec.ps * MERGE_BELOW)
        kids, keys = node.kids, node.keys
        dirty = _dirty(kids)
        for i in dirty:
            self.rebalance(kids[i])  # type: ignore[arg-type]
        # right to left: a merge only shifts positions at or after it
        for i in reversed(dirty):
            if i >= len(kids) or type(kids[i]) is int:
                continue
            if not kids[i].keys:  # type: ignore[union-attr]
                del kids[i], keys[i]
                continue
            while len(kids) > 1 and codec.size(kids[i]) < small:  # type: ignore[arg-type]
                left_i = i - 1 if i > 0 else 0
                left = kids[left_i] = tx._own(kids[left_i])
                right = kids[left_i + 1] = tx._own(kids[left_i + 1])
                if not left.leaf:
                    right.keys[0] = keys[left_i + 1]
                left.keys += right.keys
                if left.leaf:
                    left.vals += right.vals
                    left.refs = left.refs or right.refs
                else:
                    left.kids += right.kids
                del kids[left_i + 1], keys[left_i + 1]
                i = left_i

    def spill(self, node: Node) -> list[tuple[bytes, int]]:
        """Write a dirty node (split by size) after its dirty children; [(first key, pgid)] per piece."""
        codec = self.codec
        if not node.leaf:
            keys, kids = node.keys, node.kids
            shift = 0
            for i in _dirty(kids):  # left to right: pages of an in-order load stay in order
                i += shift
                pieces = self.spill(kids[i])  # type: ignore[arg-type]
                keys[i : i + 1] = [keys[i], *(fk for fk, _ in pieces[1:])] if pieces else []
                kids[i : i + 1] = [pg for _, pg in pieces]
                shift += len(pieces) - 1
        if not node.keys:
            return []
        size = codec.size(node)
        if size <= codec.ps or len(node.keys) == 1:
            return [(node.keys[0], self.write_node(node))]
        # split into pieces of at most FILL * page
        limit = int(codec.ps * FILL) - HDR
        out: list[tuple[bytes, int]] = []
        n = len(node.keys)
        least = 1 if node.leaf else 2
        lo = 0
        acc = 0
        blob_min = codec.blob_min
        for i in range(n + 1):
            if i < n:
                k = node.keys[i]
                if node.leaf:
                    v = node.vals[i]
                    vl = 16 if (type(v) is Ref or len(v) > blob_min) else len(v)
                    es = 8 + len(k) + vl
                else:
                    es = 12 + len(k)
                # a branch piece keeps >= 2 children (and leaves >= 2 to the rest), so a root of huge
                # separators still converges instead of splitting into one-child branches forever
                if not (acc + es > limit and i - lo >= least and n - i >= least):
                    acc += es
                    continue
            piece = Node(node.leaf, node.keys[lo:i], node.vals[lo:i] if node.leaf else None,
                          None if node.leaf else node.kids[lo:i])  # fmt: skip
            out.append((piece.keys[0], self.write_node(piece)))
            lo = i
            acc = es if i < n else 0
        return out


class _Checker:
    """Offline verification for `PageFile.check`: every problem found, as text naming page and offset."""

    def __init__(self, f: File, path: str, page_size: int) -> None:
        self.f = f
        self.path = path
        self.page_size = page_size
        self.problems: list[str] = []
        self.used: dict[int, str] = {}
        self.hwm = 0
        self.leaf_depth: int | None = None

    def problem(self, pgid: int, codec: Codec, text: str) -> None:
        self.problems.append(f"{self.path}: page {pgid} (offset {pgid * codec.ps}): {text}")

    def claim(self, codec: Codec, pgid: int, span: int, what: str) -> bool:
        ok = True
        for p in range(pgid, pgid + span):
            if p < 2 or p >= self.hwm:
                self.problem(p, codec, f"{what} outside the file's pages [2, {self.hwm})")
                ok = False
            elif p in self.used:
                self.problem(p, codec, f"used twice: {what} and {self.used[p]}")
                ok = False
            else:
                self.used[p] = what
        return ok

    def run(self) -> list[str]:
        try:
            codec, meta = read_metas(self.f, self.path, self.page_size)
        except CorruptionError as exc:
            return [str(exc)]
        self.hwm = meta.hwm
        if self.f.size() < meta.hwm * codec.ps:
            self.problems.append(
                f"{self.path}: file has {self.f.size()} bytes, its meta needs {meta.hwm} pages"
            )
            return self.problems
        free: set[int] = set()
        if meta.freelist and self.claim(codec, meta.freelist, meta.fl_span, "freelist"):
            try:
                buf, _t, count = codec.read_span(self.f, meta.freelist, FREELIST)
                runs = struct.unpack_from(f"<{2 * count}Q", buf, HDR)
                for i in range(0, len(runs), 2):
                    free.update(range(runs[i], runs[i] + runs[i + 1]))
            except (CorruptionError, struct.error) as exc:
                self.problems.append(str(exc))
        buckets: list[tuple[bytes, int]] = []
        self.tree(codec, meta.root, "directory", b"", None, 0, buckets)
        for name, root in buckets:
            self.leaf_depth = None
            self.tree(codec, root, f"bucket {name!r}", b"", None, 0, None)
        for p in sorted(free):
            if p < 2 or p >= meta.hwm:
                self.problem(p, codec, "free page outside the file's pages")
            elif p in self.used:
                self.problem(p, codec, f"listed free but used by {self.used[p]}")
        if self.problems:  # pages below an unreadable node would all look leaked: say the cause only
            return self.problems
        for p in range(2, meta.hwm):
            if p not in self.used and p not in free:
                self.problem(p, codec, "neither reachable nor free (leaked)")
        return self.problems

    def tree(
        self,
        codec: Codec,
        pgid: int,
        what: str,
        lo: bytes,
        hi: bytes | None,
        depth: int,
        buckets: list[tuple[bytes, int]] | None,
    ) -> None:
        if pgid == 0:
            return
        try:
            buf, typ, count = codec.read_span(self.f, pgid)
            node = codec.decode_node(buf, typ, count, pgid)
        except CorruptionError as exc:
            self.problems.append(f"{exc} (in {what})")
            self.used.setdefault(pgid, what)
            return
        if not self.claim(codec, pgid, node.span, what):
            return
        keys = node.keys
        if not keys:
            self.problem(pgid, codec, f"empty node in {what}")
        if any(a >= b for a, b in zip(keys, islice(keys, 1, None), strict=False)):
            self.problem(pgid, codec, f"keys out of order in {what}")
        if keys and (keys[0] < lo or (hi is not None and keys[-1] >= hi)):
            self.problem(pgid, codec, f"keys outside the parent's bounds in {what}")
        if node.leaf:
            if self.leaf_depth is None:
                self.leaf_depth = depth
            elif self.leaf_depth != depth:
                self.problem(pgid, codec, f"leaf at depth {depth}, others at {self.leaf_depth} in {what}")
            for k, v in zip(keys, node.vals, strict=False):
                if type(v) is Ref:
                    if self.claim(codec, v.pgid, codec.spans(HDR + v.length), f"blob in {what}"):
                        try:
                            _b, _t, n = codec.read_span(self.f, v.pgid, BLOB)
                            if n != v.length:
                                self.problem(v.pgid, codec, f"blob length {n}, leaf says {v.length}")
                        except CorruptionError as exc:
                            self.problems.append(f"{exc} (blob in {what})")
                elif buckets is not None:
                    assert isinstance(v, bytes)
                    if len(v) != 8:
                        self.problem(pgid, codec, f"directory entry {k!r} is not a page id")
                    else:
                        buckets.append((k, U64.unpack(v)[0]))
            return
        for i, kid in enumerate(node.kids):
            klo = keys[i] if keys[i] > lo else lo
            khi = keys[i + 1] if i + 1 < len(keys) else hi
            self.tree(codec, kid, what, klo, khi, depth + 1, buckets)  # type: ignore[arg-type]
