"""Byte mutations of real files for the file-reader fuzz targets: flip, truncate, extend, splice, zero.

Originals are made once per module by the code itself (a real WAL, page file, snapshot file) and never
opened by a reader: every example mutates a COPY in a fresh temp dir, and `Originals.check` proves by sha256
that the originals were not touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import attrs
from hypothesis import strategies as st


@attrs.frozen
class Mutation:
    kind: str  # flip | truncate | extend | splice | zero | overwrite
    at: float  # position as a fraction of the region the mutation aims at
    size: int
    data: bytes = b""
    src: float = 0.0  # splice: where the copied bytes come from (fraction)

    def apply(self, data: bytes, region: int) -> bytes:
        """Mutated bytes; `region` is how much of the file holds written data (mutations aim there)."""
        n = len(data)
        pos = min(int(self.at * max(region, 1)), n)
        if self.kind == "flip":
            if n == 0:
                return data
            pos = min(pos, n - 1)
            return data[:pos] + bytes([data[pos] ^ (1 << (self.size % 8))]) + data[pos + 1 :]
        if self.kind == "truncate":
            return data[:pos]
        if self.kind == "extend":
            return data + (self.data or b"\0" * self.size)
        if self.kind == "splice":  # bytes of the file itself copied over another place (a misdirected write)
            src = min(int(self.src * max(region, 1)), n)
            return data[:pos] + data[src : src + self.size] + data[pos + self.size :]
        if self.kind == "zero":  # a sector that never reached the disk
            return data[:pos] + b"\0" * min(self.size, n - pos) + data[pos + self.size :]
        return data[:pos] + self.data + data[pos + len(self.data) :]  # overwrite


fractions = st.floats(0.0, 1.0)
mutations = st.one_of(
    st.builds(Mutation, st.just("flip"), fractions, st.integers(0, 7)),
    st.builds(Mutation, st.just("truncate"), fractions, st.just(0)),
    st.builds(
        Mutation,
        st.just("extend"),
        fractions,
        st.integers(1, 600),
        st.one_of(st.just(b""), st.binary(max_size=64)),
    ),
    st.builds(Mutation, st.just("splice"), fractions, st.integers(1, 600), st.just(b""), fractions),
    st.builds(Mutation, st.just("zero"), fractions, st.sampled_from([1, 8, 512, 4096])),
    st.builds(Mutation, st.just("overwrite"), fractions, st.just(0), st.binary(min_size=1, max_size=16)),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Originals:
    """A directory of files made by the code itself; examples work on copies, the originals' hashes hold."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hashes: dict[str, str] = {}

    def seal(self) -> None:
        self.hashes = {
            str(p.relative_to(self.root)): sha256(p) for p in sorted(self.root.rglob("*")) if p.is_file()
        }

    def check(self) -> None:
        now = {str(p.relative_to(self.root)): sha256(p) for p in sorted(self.root.rglob("*")) if p.is_file()}
        assert now == self.hashes, "an original file changed: readers must only ever see copies"

    def copy_to(self, dst: Path) -> Path:
        shutil.copytree(self.root, dst)
        return dst


def written_length(data: bytes) -> int:
    """Where the written data of a preallocated file ends (the last non-zero byte, plus one)."""
    return len(data.rstrip(b"\0"))


def mutate_file(path: Path, mutation: Mutation, region: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(mutation.apply(data, written_length(data) if region is None else region))
    os.utime(path)
