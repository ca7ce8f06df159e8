"""Seeded whole-cluster simulations of the Raft core (see sim.py for what every run checks).

1,000 seeds in 50 chunks of 20 so `pytest -n 2` spreads them. A failure names its seed and the command that
replays exactly that run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.raft.sim import ELECTION_TICK, Scenario, Sim, run_seed

CHUNKS = 50
PER_CHUNK = 20
MIN_TICKS = 2000
MIN_PROPOSALS = 100
SOAK_BASE = 1_000_000


def replay_cmd(seed: int) -> str:
    return f".venv/bin/pytest tests/raft/test_simulation.py::test_replay_seed --raft-seed={seed} -q -s"


def run_checked(seed: int) -> Sim:
    sim = run_seed(seed, replay=replay_cmd(seed))
    s = sim.summary()
    # The run itself must have been a real one, or its passing proves nothing.
    assert s["ticks"] >= MIN_TICKS, f"seed {seed}: only {s['ticks']} ticks"
    assert s["proposed"] >= MIN_PROPOSALS, f"seed {seed}: only {s['proposed']} proposals accepted ({s})"
    assert s["committed"] >= MIN_PROPOSALS // 2, f"seed {seed}: only {s['committed']} entries committed ({s})"
    return sim


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_simulation_chunk(chunk: int) -> None:
    for seed in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK):
        run_checked(seed)


def test_replay_seed(raft_seed: int | None) -> None:
    """Collected only with --raft-seed=N (conftest.py deselects it otherwise, and the chunks with it)."""
    assert raft_seed is not None
    sim = run_checked(raft_seed)
    print(sim.summary())


def test_runs_exercise_the_faults() -> None:
    """Across a sample of seeds the nemesis really does partition, crash, change membership, snapshot,
    transfer leadership and serve reads; otherwise the chunks above would pass vacuously."""
    totals: dict[str, int] = {}
    with_partition_and_crash = 0
    seeds = range(40)
    for seed in seeds:
        s = run_seed(seed).summary()
        for k, v in s.items():
            if k != "seed":
                totals[k] = totals.get(k, 0) + v
        with_partition_and_crash += s["partitions"] > 0 and s["crashes"] > 0
    assert with_partition_and_crash >= len(seeds) * 3 // 4, totals
    print(totals)
    for key in (
        "crashes",
        "partitions",
        "elections",
        "conf_changes",
        "snapshots_applied",
        "transfers_done",
        "reads",
    ):
        assert totals[key] > 0, f"no {key} across seeds {seeds}: {totals}"


def test_same_seed_same_run() -> None:
    """Replay is exact: the same seed yields the same history."""
    a = Sim(Scenario.from_seed(7)).run()
    b = Sim(Scenario.from_seed(7)).run()
    assert a.summary() == b.summary()
    assert a.committed == b.committed
    assert a.events == b.events


@pytest.mark.soak
def test_soak(raft_soak: int) -> None:
    n = raft_soak or 5000
    for seed in range(SOAK_BASE, SOAK_BASE + n):
        run_checked(seed)


def quiet(seed: int = 1, voters: int = 1) -> Sim:
    """A fault-free cluster driven by hand (crafted scenarios)."""
    sc = Scenario(seed=seed, voters=voters, p_propose=0.0, p_read=0.0, p_event=0.0, p_drop=0.0, p_dup=0.0)
    sc.p_delay = 0.0
    sc.replay = "crafted scenario (no seed)"
    return Sim(sc)


def tick_until(sim: Sim, cond: Callable[[], bool], limit: int = 300) -> None:
    for _ in range(limit):
        if cond():
            return
        sim.step_tick()
    sim.fail(f"condition not reached within {limit} ticks")


@pytest.mark.parametrize("kind", ["add_learner", "add_voter"])
def test_member_added_after_compaction_catches_up(kind: str) -> None:
    """A member added after the leader's last snapshot must still catch up (it gets that older snapshot,
    whose conf state does not list it, then the entries that add it)."""
    sim = quiet()
    tick_until(sim, lambda: sim.leader() is not None)
    ld = sim.leader()
    assert ld is not None
    sim.propose(ld, 30)
    tick_until(sim, lambda: ld.applied >= 30)
    sim.compact()
    assert ld.durable.snapshot is not None
    assert sim.conf_change(kind)
    new = sim.nodes[sim.next_id - 1]
    tick_until(sim, lambda: new.applied >= ld.applied, limit=20 * ELECTION_TICK)


def test_replay_does_not_depend_on_hash_seed() -> None:
    """Exact replay across processes: no behaviour hangs on set/dict order of hashed str/bytes."""
    code = (
        "import hashlib\n"
        "from tests.raft.sim import run_seed\n"
        "sim = run_seed(11)\n"
        "out = repr(sim.events) + repr(sorted(sim.committed.items())) + repr(sim.summary())\n"
        "print(hashlib.sha256(out.encode()).hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[2]
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(root)}
        res = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, res.stderr
        digests.add(res.stdout.strip())
    assert len(digests) == 1, digests
