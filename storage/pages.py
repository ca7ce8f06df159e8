"""The page file's on-disk format: page header, tree nodes, blobs, free list and meta pages.

Every page (or span of contiguous pages, for nodes and blobs larger than a page) starts with a header:
crc32 over the rest of the span, page type, element count, overflow page count and the page's own id.
The checksum covers the whole span and the id catches misdirected writes, so every read can tell a
damaged page (CorruptionError naming file, offset and page) from a good one.

Leaf: header, n key lengths (u32), n value lengths (u32; the top bit marks a 16-byte blob reference
instead of an inline value), the keys, the values. Branch: header, n key lengths, n child page ids (u64),
the keys (each the lower bound of its child). Decoding slices whole lists at once: scans are hot.
"""

from __future__ import annotations

import struct
import zlib
from itertools import accumulate, islice

from trikv.api.errors import CorruptionError
from trikv.storage.files import File

MAGIC = 0x54_4B_56_50  # "TKVP"
VERSION = 1

# page types
META = 1
FREELIST = 2
BRANCH = 3
LEAF = 4
BLOB = 5
TYPE_NAMES = {META: "meta", FREELIST: "freelist", BRANCH: "branch", LEAF: "leaf", BLOB: "blob"}

# header: crc32 (over the span after this field), type, pad, count, overflow pages, own page id
HEADER = struct.Struct("<IB3xIIQ")
HDR = HEADER.size  # 24
# meta body: magic, version, page size, reserved, txid, directory root, freelist pgid, freelist span, hwm
META_BODY = struct.Struct("<IIIIQQQQQ")
REF = struct.Struct("<QQ")  # an out-of-line value: blob page id, value length
U64 = struct.Struct("<Q")
REF_FLAG = 0x80000000  # set in a leaf's value length: the value slot holds a REF
MAX_LEN = 0x7FFFFFFF


class Ref:
    """A value stored in a blob span; read only when asked for."""

    __slots__ = ("length", "pgid")

    def __init__(self, pgid: int, length: int) -> None:
        self.pgid = pgid
        self.length = length

    def __len__(self) -> int:
        return 16  # its size in a leaf: lets node sizes be summed with map(len, ...)


class Node:
    """A B+tree node. Clean nodes (pgid != 0) are shared through the cache and never mutated; a write
    transaction works on private dirty copies (pgid == 0) whose branch children are page ids (clean)
    or dirty nodes."""

    __slots__ = ("keys", "kids", "leaf", "pgid", "refs", "span", "vals")

    def __init__(
        self,
        leaf: bool,
        keys: list[bytes],
        vals: list[Value] | None = None,
        kids: list[Child] | None = None,
        pgid: int = 0,
        span: int = 1,
        refs: bool = False,
    ) -> None:
        self.leaf = leaf
        self.keys = keys
        self.vals: list[Value] = vals if vals is not None else []
        self.kids: list[Child] = kids if kids is not None else []
        self.pgid = pgid
        self.span = span
        self.refs = refs


Value = bytes | Ref
Child = int | Node


class Meta:
    __slots__ = ("fl_span", "freelist", "hwm", "root", "txid")

    def __init__(self, txid: int, root: int, freelist: int, fl_span: int, hwm: int) -> None:
        self.txid = txid
        self.root = root
        self.freelist = freelist
        self.fl_span = fl_span
        self.hwm = hwm


# --------------------------------------------------------------------------- page encoding


def seal(buf: bytearray, typ: int, count: int, pgid: int, span: int) -> bytearray:
    HEADER.pack_into(buf, 0, 0, typ, count, span - 1, pgid)
    struct.pack_into("<I", buf, 0, zlib.crc32(memoryview(buf)[4:]))
    return buf


class Codec:
    """Encodes/decodes pages of one page size; raises CorruptionError naming file and offset."""

    def __init__(self, path: str, page_size: int) -> None:
        self.path = path
        self.ps = page_size
        self.blob_min = page_size // 4  # values longer than this live in blobs

    def spans(self, nbytes: int) -> int:
        return max(1, -(-nbytes // self.ps))

    def buffer(self, nbytes: int) -> tuple[bytearray, int]:
        span = self.spans(nbytes)
        return bytearray(span * self.ps), span

    def leaf_size(self, node: Node) -> int:
        blob_min = self.blob_min
        lens = list(map(len, node.vals))
        size = HDR + 8 * len(lens) + sum(map(len, node.keys)) + sum(lens)
        if lens and max(lens) > blob_min:  # values that will move to blobs take 16 bytes
            size -= sum(n - 16 for n in lens if n > blob_min)
        return size

    @staticmethod
    def branch_size(node: Node) -> int:
        return HDR + 12 * len(node.keys) + sum(map(len, node.keys))

    def size(self, node: Node) -> int:
        return self.leaf_size(node) if node.leaf else self.branch_size(node)

    def encode_leaf(self, keys: list[bytes], vals: list[bytes], vflags: list[int], pgid: int) -> bytearray:
        n = len(keys)
        klens = [len(k) for k in keys]
        vlens = [len(v) | f for v, f in zip(vals, vflags, strict=False)]
        kblob = b"".join(keys)
        vblob = b"".join(vals)
        total = HDR + 8 * n + len(kblob) + len(vblob)
        buf, span = self.buffer(total)
        struct.pack_into(f"<{2 * n}I", buf, HDR, *klens, *vlens)
        pos = HDR + 8 * n
        buf[pos : pos + len(kblob)] = kblob
        pos += len(kblob)
        buf[pos : pos + len(vblob)] = vblob
        return seal(buf, LEAF, n, pgid, span)

    def encode_branch(self, keys: list[bytes], kids: list[int], pgid: int) -> bytearray:
        n = len(keys)
        kblob = b"".join(keys)
        buf, span = self.buffer(HDR + 12 * n + len(kblob))
        struct.pack_into(f"<{n}I{n}Q", buf, HDR, *map(len, keys), *kids)
        pos = HDR + 12 * n
        buf[pos : pos + len(kblob)] = kblob
        return seal(buf, BRANCH, n, pgid, span)

    def encode_blob(self, data: bytes, pgid: int) -> bytearray:
        buf, span = self.buffer(HDR + len(data))
        buf[HDR : HDR + len(data)] = data
        return seal(buf, BLOB, len(data), pgid, span)

    def encode_meta(self, meta: Meta, slot: int) -> bytearray:
        buf = bytearray(self.ps)
        META_BODY.pack_into(
            buf, HDR, MAGIC, VERSION, self.ps, 0, meta.txid, meta.root, meta.freelist, meta.fl_span, meta.hwm
        )
        return seal(buf, META, 0, slot, 1)

    def encode_freelist(self, runs: list[int], pgid: int, span: int) -> bytearray:
        buf = bytearray(span * self.ps)
        struct.pack_into(f"<{len(runs)}Q", buf, HDR, *runs)
        return seal(buf, FREELIST, len(runs) // 2, pgid, span)

    # ---------------------------------------------------------------- reading

    def corrupt(self, pgid: int, reason: str) -> CorruptionError:
        return CorruptionError(self.path, pgid * self.ps, f"page {pgid}: {reason}")

    def read_span(self, f: File, pgid: int, want: int | None = None) -> tuple[bytes, int, int]:
        """The verified bytes of the span starting at pgid; returns (bytes, type, count)."""
        ps = self.ps
        off = pgid * ps
        buf = f.pread(ps, off)
        if len(buf) < ps:
            raise self.corrupt(pgid, "beyond the end of the file")
        crc, typ, count, overflow, own = HEADER.unpack_from(buf, 0)
        if overflow:
            if overflow > (1 << 20):
                raise self.corrupt(pgid, f"implausible overflow {overflow}")
            rest = f.pread(overflow * ps, off + ps)
            if len(rest) < overflow * ps:
                raise self.corrupt(pgid, "span runs beyond the end of the file")
            buf += rest
        if zlib.crc32(memoryview(buf)[4:]) != crc:
            raise self.corrupt(pgid, "checksum mismatch")
        if own != pgid:
            raise self.corrupt(pgid, f"page claims id {own}")
        if want is not None and typ != want:
            raise self.corrupt(pgid, f"expected a {TYPE_NAMES[want]} page, found type {typ}")
        return buf, typ, count

    def decode_node(self, buf: bytes, typ: int, n: int, pgid: int) -> Node:
        span = len(buf) // self.ps
        try:
            if typ == LEAF:
                lens = struct.unpack_from(f"<{2 * n}I", buf, HDR)
                klens = lens[:n]
                vlens = lens[n:]
                refs = bool(n) and max(vlens) >= REF_FLAG
                if refs:
                    vlens = tuple(16 if v & REF_FLAG else v for v in vlens)
                offs = list(accumulate(klens, initial=HDR + 8 * n))
                keys = [buf[a:b] for a, b in zip(offs, islice(offs, 1, None), strict=False)]
                voffs = list(accumulate(vlens, initial=offs[-1]))
                if voffs[-1] > len(buf):
                    raise ValueError("elements run past the span")
                vals: list[Value] = [buf[a:b] for a, b in zip(voffs, islice(voffs, 1, None), strict=False)]
                if refs:
                    for i, v in enumerate(lens[n:]):
                        if v & REF_FLAG:
                            bp, ln = REF.unpack(vals[i])  # type: ignore[arg-type]
                            vals[i] = Ref(bp, ln)
                return Node(True, keys, vals, None, pgid, span, refs)
            if typ == BRANCH:
                fields = struct.unpack_from(f"<{n}I{n}Q", buf, HDR)
                offs = list(accumulate(fields[:n], initial=HDR + 12 * n))
                if offs[-1] > len(buf):
                    raise ValueError("keys run past the span")
                keys = [buf[a:b] for a, b in zip(offs, islice(offs, 1, None), strict=False)]
                return Node(False, keys, None, list(fields[n:]), pgid, span)
        except (struct.error, ValueError) as exc:
            raise self.corrupt(pgid, f"malformed node: {exc}") from None
        raise self.corrupt(pgid, f"expected a tree node, found type {typ}")

    def decode_meta(self, buf: bytes, slot: int) -> Meta | None:
        if len(buf) < self.ps:
            return None
        crc, typ, _count, _ov, own = HEADER.unpack_from(buf, 0)
        if typ != META or own != slot or zlib.crc32(memoryview(buf)[4 : self.ps]) != crc:
            return None
        magic, version, ps, _r, txid, root, fl, fl_span, hwm = META_BODY.unpack_from(buf, HDR)
        if magic != MAGIC or version != VERSION or ps != self.ps:
            return None
        return Meta(txid, root, fl, fl_span, hwm)


def read_metas(f: File, path: str, page_size: int) -> tuple[Codec, Meta]:
    """The valid meta with the highest txid; the page size comes from the file when meta 0 is readable."""
    head = f.pread(HDR + META_BODY.size, 0)
    sizes = [page_size]
    if len(head) == HDR + META_BODY.size:
        claimed = META_BODY.unpack_from(head, HDR)[2]
        if claimed != page_size and 512 <= claimed <= 1 << 16 and claimed & (claimed - 1) == 0:
            sizes.insert(0, claimed)
    for ps in sizes:
        codec = Codec(path, ps)
        metas = [m for m in (codec.decode_meta(f.pread(ps, slot * ps), slot) for slot in (0, 1)) if m]
        if metas:
            return codec, max(metas, key=lambda m: m.txid)
    raise CorruptionError(path, 0, "both meta pages are invalid: not a page file, or damaged beyond recovery")
