"""Fuzz target: the page-file reader (storage/pagefile.py + storage/pages.py: open, read, `check`).

A real page file (512-byte pages: buckets, a few hundred keys, overflow values, three commits) is written
once by the page file itself; each example copies it, mutates bytes (flip, truncate, extend, splice, zero,
overwrite) and opens the copy. Opening and reading every bucket either raise the typed StorageError /
CorruptionError or give exactly the contents of one of the commits (a damaged newest meta page falls back
to the previous commit); `PageFile.check` answers in text. Never anything else, never a hang; the
original is unchanged after every example.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given

from tests.fuzz.conftest import budget, watchdog
from tests.fuzz.mutate import Mutation, Originals, mutate_file, mutations
from trikv.api.errors import StorageError
from trikv.storage.files import OsFileSystem
from trikv.storage.pagefile import PageFile

PAGE = 512
FS = OsFileSystem()
Contents = dict[bytes, dict[bytes, bytes]]


class Written:
    def __init__(self, originals: Originals, commits: list[Contents]) -> None:
        self.originals = originals
        self.commits = commits


def contents(pf: PageFile) -> Contents:
    with pf.read() as r:
        return {b: dict(r.range(b)) for b in r.buckets()}


@pytest.fixture(scope="module")
def written() -> Iterator[Written]:
    with tempfile.TemporaryDirectory(prefix="trikv-fuzz-pf-") as tmp:
        (Path(tmp) / "orig").mkdir()
        path = str(Path(tmp) / "orig" / "db")
        pf = PageFile.open(FS, path, page_size=PAGE)
        commits = [contents(pf)]
        for round_ in range(3):
            with pf.write() as w:
                if round_ == 0:
                    w.create_bucket(b"key")
                    w.create_bucket(b"meta")
                for i in range(round_ * 60, round_ * 60 + 120):
                    w.put(b"key", b"k%05d" % i, b"v%d" % round_ * (1 + i % 40))
                w.put(b"meta", b"big", bytes(range(256)) * (3 + round_))  # a value spanning pages
                if round_ == 2:
                    for i in range(0, 60, 3):
                        w.delete(b"key", b"k%05d" % i)
                w.commit()
            commits.append(contents(pf))
        pf.close()
        originals = Originals(Path(tmp) / "orig")
        originals.seal()
        yield Written(originals, commits)
        originals.check()


@budget(examples=600, deadline_ms=10_000)
@given(mutation=mutations, also=mutations)
@example(mutation=Mutation("flip", 0.0, 5), also=Mutation("truncate", 1.0, 0))  # the newest meta page
@example(mutation=Mutation("truncate", 0.5, 0), also=Mutation("truncate", 1.0, 0))
@example(mutation=Mutation("zero", 0.6, 4096), also=Mutation("truncate", 1.0, 0))
def test_pagefile_reader(written: Written, mutation: Mutation, also: Mutation) -> None:
    with tempfile.TemporaryDirectory(prefix="trikv-fuzz-pf-ex-") as tmp:
        path = written.originals.copy_to(Path(tmp) / "copy") / "db"
        mutate_file(path, mutation)
        mutate_file(path, also)
        with watchdog(10):
            assert isinstance(PageFile.check(FS, str(path), page_size=PAGE), list)
            try:
                pf = PageFile.open(FS, str(path), page_size=PAGE)
            except StorageError:
                pass  # CorruptionError is one: a typed refusal naming the file and offset
            else:
                try:
                    got = contents(pf)
                except StorageError:
                    pass
                else:
                    assert got in written.commits
                finally:
                    pf.close()
    written.originals.check()
