"""Fuzz target: the WAL reader (storage/wal.py: `WAL.open` replay and repair, `verify`).

A real WAL of three small segments (entries, hard states, a snapshot marker) is written once by the WAL
itself; each example copies it to a temp dir, mutates one segment's bytes (flip, truncate, extend, splice,
zero a sector, overwrite) and opens the copy. Opening either raises the typed StorageError/CorruptionError
or returns a replay whose every entry and hard state is one the WAL wrote (a torn tail gives a valid
prefix); a repaired copy opens again to the same replay; `verify` answers in text. Never anything else,
never a hang; the original files are unchanged after every example.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import budget, watchdog
from tests.fuzz.mutate import Mutation, Originals, mutate_file, mutations
from trikv.api.errors import StorageError
from trikv.api.records import ConfState, Entry, EntryType, HardState, SnapshotMeta, WalMetadata
from trikv.storage.files import OsFileSystem
from trikv.storage.wal import WAL, Replay, verify

SEGMENT = 4096
FS = OsFileSystem()


class Written:
    def __init__(self, originals: Originals, entries: dict[int, Entry], states: set[HardState]) -> None:
        self.originals = originals
        self.entries = entries
        self.states = states


@pytest.fixture(scope="module")
def written() -> Iterator[Written]:
    with tempfile.TemporaryDirectory(prefix="trikv-fuzz-wal-") as tmp:
        wal_dir = Path(tmp) / "orig" / "wal"
        wal_dir.parent.mkdir()
        wal = WAL.create(FS, str(wal_dir), WalMetadata(cluster_id=7, member_id=9), segment_size=SEGMENT)
        entries: dict[int, Entry] = {}
        states = {HardState()}
        for i in range(1, 71):
            e = Entry(
                term=1 + i // 15,
                index=i,
                type=EntryType.NORMAL if i % 7 else EntryType.NOOP,
                data=b"%d" % i * (i % 9 * 11),
            )
            entries[i] = e
            hs = HardState(term=e.term, vote=9, commit=max(0, i - 2))
            states.add(hs)
            wal.append([e], hs)
            if i == 12:
                wal.save_snapshot(SnapshotMeta(index=10, term=1, conf_state=ConfState(voters=(9,))))
            if i % 5 == 0:
                wal.sync()
        wal.sync()
        wal.close()
        originals = Originals(wal_dir.parent)
        originals.seal()
        assert len(list(wal_dir.iterdir())) >= 3  # mutations can hit a middle segment and the last one
        yield Written(originals, entries, states)
        originals.check()


def check_replay(w: Written, rep: Replay) -> None:
    assert rep.metadata == WalMetadata(cluster_id=7, member_id=9)
    assert rep.hard_state in w.states
    indexes = [e.index for e in rep.entries]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes))) if indexes else True
    for e in rep.entries:
        assert e == w.entries[e.index], e


@budget(examples=400, deadline_ms=10_000)
@given(segment=st.integers(0, 10), mutation=mutations, also=st.one_of(st.none(), mutations))
@example(segment=-1, mutation=Mutation("truncate", 0.5, 0), also=None)  # a torn tail: a valid prefix
@example(segment=0, mutation=Mutation("flip", 0.5, 3), also=None)  # a flip in a sealed segment: corruption
@example(segment=-1, mutation=Mutation("zero", 0.3, 512), also=None)
def test_wal_reader(written: Written, segment: int, mutation: Mutation, also: Mutation | None) -> None:
    with tempfile.TemporaryDirectory(prefix="trikv-fuzz-wal-ex-") as tmp:
        copy = written.originals.copy_to(Path(tmp) / "copy") / "wal"
        names = sorted(p.name for p in copy.iterdir())
        target = copy / names[segment % len(names)]
        mutate_file(target, mutation)
        if also is not None:
            mutate_file(target, also)
        with watchdog(10):
            assert isinstance(verify(FS, str(copy)), list)
            try:
                wal, rep = WAL.open(FS, str(copy), segment_size=SEGMENT)
            except StorageError:
                pass  # CorruptionError is one: a typed refusal naming the file and offset
            else:
                wal.close()
                check_replay(written, rep)
                again, rep2 = WAL.open(FS, str(copy), segment_size=SEGMENT)  # the repair is durable
                again.close()
                assert rep2.entries == rep.entries and rep2.torn is None
    written.originals.check()
