"""Power-loss acceptance for the WAL: random crash points over a long workload on CrashFileSystem.

After every crash + reopen, the replay must equal the state of everything synced before the crash, plus
possibly a prefix of the batch that was being synced when the power went (never a hole, never garbage),
and opening must not report corruption. The same harness must catch a WAL that skips its fsyncs.
"""

from __future__ import annotations

import random

import attrs
import pytest

from trikv.api.records import Entry, EntryType, HardState, SnapshotMeta, WalMetadata
from trikv.storage.files import CrashFileSystem, SimulatedCrash
from trikv.storage.wal import WAL, Replay

META = WalMetadata(cluster_id=7, member_id=3)
DIR = "/data/member/wal"
SEG = 1024


@attrs.define
class Model:
    """What replay must return, computed independently of the WAL code, one record at a time."""

    entries: list[Entry] = attrs.Factory(list)
    hard_state: HardState = HardState()
    snapshot: SnapshotMeta | None = None

    def copy(self) -> Model:
        return Model(list(self.entries), self.hard_state, self.snapshot)

    def apply(self, op: tuple[str, object]) -> None:
        kind, value = op
        if kind == "E":
            assert isinstance(value, Entry)
            self.entries = [e for e in self.entries if e.index < value.index] + [value]
        elif kind == "H":
            assert isinstance(value, HardState)
            self.hard_state = value
        else:
            assert isinstance(value, SnapshotMeta)
            if self.snapshot is None or value.index >= self.snapshot.index:
                self.snapshot = value
            self.entries = [e for e in self.entries if e.index > value.index]

    def visible(self) -> list[Entry]:
        floor = self.snapshot.index if self.snapshot else 0
        return [e for e in self.entries if e.index > floor]


def matches(model: Model, rep: Replay, released: int) -> bool:
    """Replay equals the model, except that entries below the release bound may be gone."""
    if rep.metadata != META or rep.hard_state != model.hard_state or rep.snapshot != model.snapshot:
        return False
    want = model.visible()
    got = rep.entries
    if not got:
        return all(e.index < released for e in want)
    first = got[0].index
    return got == [e for e in want if e.index >= first] and (
        not want or first <= max(released, want[0].index)
    )


class Workload:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.term = 1
        self.released = 0  # highest index passed to release_to
        self.durable = Model()  # state as of the last sync that returned
        self.pending: list[tuple[str, object]] = []  # records appended since

    def step(self, wal: WAL) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.55:
            snap = wal.snapshot.index if wal.snapshot else 0
            start = wal.last_index + 1
            floor = max(self.released, snap) + 1
            if rng.random() < 0.15 and start - 1 > floor:  # a follower truncating its log
                start = rng.randint(floor, start - 1)
                self.term += 1
            ents = [
                Entry(self.term, start + i, EntryType(rng.randrange(3)), rng.randbytes(rng.randrange(0, 200)))
                for i in range(rng.randint(1, 6))
            ]
            hs = HardState(self.term, rng.randrange(4), rng.randrange(start + len(ents)))
            if rng.random() < 0.5:
                hs = None
            self.pending += [("E", e) for e in ents]
            if hs is not None:
                self.pending.append(("H", hs))
            wal.append(ents, hs)
        elif r < 0.6:
            snap = wal.snapshot.index if wal.snapshot else 0
            hi = wal.last_index + (5 if rng.random() < 0.3 else 0)
            meta = SnapshotMeta(rng.randint(snap, max(snap, hi)), self.term)
            self.pending.append(("S", meta))
            wal.save_snapshot(meta)
        elif r < 0.92:
            wal.sync()
            for op in self.pending:
                self.durable.apply(op)
            self.pending = []
        else:
            synced = max((e.index for e in self.durable.entries), default=0)
            self.released = max(self.released, rng.randint(0, synced))
            wal.release_to(self.released)

    def check(self, rep: Replay) -> bool:
        """Find the prefix of the in-flight batch the disk kept; adopt it as the new durable state."""
        state = self.durable.copy()
        for k in range(len(self.pending) + 1):
            if k:
                state.apply(self.pending[k - 1])
            if matches(state, rep, self.released):
                self.durable = state
                self.pending = []
                return True
        return False


def run_trial(seed: int, wal_cls: type[WAL] = WAL, cycles: int = 4, seg: int = SEG) -> str | None:
    """One seeded life of a WAL through several power losses; returns what went wrong, or None."""
    rng = random.Random(seed)
    fs = CrashFileSystem()
    fs.makedirs("/data/member")
    work = Workload(rng)
    wal: WAL | None = None
    created = False  # create() returned: from then on the WAL must always be there
    for cycle in range(cycles):
        fs.arm(rng.randint(1, 120))
        try:
            if wal is None:
                if WAL.exists(fs, DIR):
                    wal, rep = wal_cls.open(fs, DIR, segment_size=seg, max_wals=1)
                    if not work.check(rep):
                        return f"cycle {cycle}: replay after a crash in open differs"
                else:
                    wal = wal_cls.create(fs, DIR, META, segment_size=seg, max_wals=1)
                    created = True
            for _ in range(400):
                work.step(wal)
            fs.disarm()
            fs.arm(1)
            work.step(wal)
            while True:  # no crash yet: keep going until the next mutation
                work.step(wal)
        except SimulatedCrash:
            pass
        fs = fs.crash(rng)
        wal = None
        if not WAL.exists(fs, DIR):
            if created:
                return f"cycle {cycle}: the WAL vanished"
            continue
        created = True
        try:
            wal, rep = wal_cls.open(fs, DIR, segment_size=seg, max_wals=1)
        except Exception as exc:  # corruption, missing segment...: a failure of the WAL under test
            return f"cycle {cycle}: open failed: {exc!r}"
        if not work.check(rep):
            return (
                f"cycle {cycle}: replay lost or invented records: got {len(rep.entries)} entries "
                f"{rep.hard_state}, want {len(work.durable.visible())} {work.durable.hard_state}"
            )
        wal.close()
        wal = None
    return None


@pytest.mark.parametrize("seg", [SEG, 16 * SEG])  # cut-heavy, and long batches inside one segment
def test_every_synced_record_survives_random_power_losses(seg):
    failures = [(seed, err) for seed in range(200) if (err := run_trial(seed, seg=seg)) is not None]
    assert failures == []


class NoFsyncWAL(WAL):
    """A WAL that forgets to fsync: must not pass the harness above."""

    def _fsync(self, f) -> None:
        pass


def test_the_harness_catches_a_wal_that_skips_fsync():
    failures = [seed for seed in range(30) if run_trial(seed, NoFsyncWAL) is not None]
    assert len(failures) >= 10, failures


def test_crash_during_sync_keeps_a_prefix_of_the_batch_at_most():
    """Directly: a big batch crossing several segment cuts, crashed at every mutation in turn."""
    batch = [Entry(1, i, EntryType.NORMAL, bytes([i % 251 + 1]) * 90) for i in range(1, 41)]
    for n in range(1, 30):
        fs = CrashFileSystem()
        fs.makedirs("/w")
        wal = WAL.create(fs, "/w/wal", META, segment_size=SEG)
        wal.append(batch[:5], HardState(1, 1, 2))
        wal.sync()
        wal.append(batch[5:], HardState(1, 1, 30))
        fs.arm(n)
        try:
            wal.sync()
            crashed = False
        except SimulatedCrash:
            crashed = True
        after = fs.crash(random.Random(n))
        _, rep = WAL.open(after, "/w/wal", segment_size=SEG)
        assert rep.entries == batch[: len(rep.entries)]
        assert len(rep.entries) >= 5
        if not crashed:
            assert rep.entries == batch and rep.hard_state == HardState(1, 1, 30)
        elif rep.hard_state == HardState(1, 1, 30):
            assert rep.entries == batch
