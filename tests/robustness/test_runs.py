"""The robustness harness in CI: seeded fault runs against real 3-member clusters, and the planted bugs.

Each CI run is a fresh cluster of real processes on 127.0.0.1 with the test plugin, 6 s of workload under
its seed's fault schedule (every nemesis but membership, which needs longer runs), then the checkers: it
must pass with nothing lost. Each planted bug runs its scripted scenario (runner.plant_config) twice: with
the plant the checkers must report a violation, without it the same run must pass. The 200-seed run is
`soak`-marked (manual: `pytest -m soak tests/robustness`), or `python -m trikv.tools.robustness --seeds
0-199` (docs/ROBUSTNESS.md).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from trikv.storage.faults import PLANTS
from trikv.tools.robustness.nemesis import DEFAULT_NEMESES, schedule
from trikv.tools.robustness.runner import RunConfig, RunResult, plant_config, run

CI_SEEDS = range(20)
CI_DURATION = 6.0
# The checkers that must report each planted bug (a violation from another one alone would be a false catch).
CATCHERS = {
    "put_ack_before_quorum_fsync": {"linearizable", "rules"},
    "read_without_read_index": {"linearizable", "rules"},
    "reapply_after_restart": {"linearizable", "rules", "hashkv"},
    "watch_skip_revision": {"watch"},
    "lease_early_expiry_after_leader_change": {"lease"},
}


def explain(r: RunResult) -> str:
    return f"seed {r.seed}: {r.violations[:10]} (history and logs: {r.saved})"


def test_same_seed_same_schedule() -> None:
    a = schedule(7, 30.0, DEFAULT_NEMESES, 3)
    assert a == schedule(7, 30.0, DEFAULT_NEMESES, 3)
    assert a != schedule(8, 30.0, DEFAULT_NEMESES, 3)
    assert {s.kind for s in a} <= set(DEFAULT_NEMESES)


@pytest.mark.slow
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_seeded_fault_run(seed: int, tmp_path: Path) -> None:
    r = run(RunConfig(seed=seed, duration=CI_DURATION, out=tmp_path))
    assert r.error is None, explain(r)
    assert r.ok and r.lost == 0 and not r.hash_mismatch, explain(r)
    assert r.ops > 20, f"seed {seed}: only {r.ops} operations recorded"
    if schedule(seed, CI_DURATION, DEFAULT_NEMESES, 3):
        assert sum(r.faults.values()) >= 1, f"seed {seed}: its faults never ran"


@pytest.mark.slow
@pytest.mark.parametrize("plant", PLANTS)
def test_planted_bug_is_caught(plant: str, tmp_path: Path) -> None:
    caught = run(plant_config(plant, out=tmp_path / "on"))
    assert caught.error is None, explain(caught)
    assert not caught.ok, f"{plant}: the checkers saw nothing wrong ({caught.ops} ops, {caught.checks})"
    flagged = {name for name, verdict in caught.checks.items() if verdict != "ok"}
    flagged |= {"hashkv"} if caught.hash_mismatch else set()
    assert flagged & CATCHERS[plant], f"{plant}: caught by {flagged} only: {caught.violations[:5]}"
    clean = run(attrs.evolve(plant_config(plant, out=tmp_path / "off"), plant=None))
    assert clean.ok, f"{plant} off: " + explain(clean)


@pytest.mark.soak
def test_long_run_200_seeds(tmp_path: Path) -> None:
    failed = []
    for seed in range(200):
        r = run(RunConfig(seed=seed, duration=10.0, out=tmp_path))
        if not r.ok:
            failed.append(explain(r))
    assert not failed, "\n".join(failed)
