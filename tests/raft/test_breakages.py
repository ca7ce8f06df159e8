"""The checkers must catch real bugs: plant one (Config.breakages, or a harness that forgets the vote on crash),
search a bounded range of shaped seeds, and demand that some seed fails with the right violation -- and that
the same seed passes without the breakage (so it is the bug that was caught, not a harness artefact).

Shaping makes the bug reachable quickly: short runs, 5 voters and one entry per append for Figure 8, a leader
that keeps believing it leads (no check-quorum) while isolated for the stale read, voters crashing right after
voting for the lost vote.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.raft.sim import Scenario, Sim, SimulationFailure

SEARCH = 300  # bound of the seed search for each breakage


def shape_figure8(sc: Scenario) -> None:
    sc.voters = 5
    sc.learners = 0
    sc.ticks = 1000
    sc.max_size_per_msg = 1  # one entry per append: replication stops between old-term entries and the no-op
    sc.max_inflight_msgs = 1
    sc.pre_vote = False
    sc.check_quorum = False
    sc.p_propose = 0.3
    sc.p_event = 1 / 15
    sc.p_drop = 0.1
    sc.p_delay = 0.2
    sc.membership = False
    sc.compaction = False
    sc.transfers = False
    sc.restart_delay = (1, 30)
    sc.event_weights = {"crash": 6, "partition": 4}


def shape_stale_read(sc: Scenario) -> None:
    sc.voters = 3
    sc.learners = 0
    sc.ticks = 1000
    sc.check_quorum = False  # the isolated old leader keeps leading its minority
    sc.p_propose = 0.3
    sc.p_read = 0.4
    sc.p_event = 1 / 40
    sc.membership = False
    sc.compaction = False
    sc.event_weights = {"partition": 8}


def shape_lost_vote(sc: Scenario) -> None:
    sc.voters = 3
    sc.learners = 0
    sc.ticks = 1000
    sc.pre_vote = False
    sc.check_quorum = False
    sc.p_delay = 0.4
    sc.max_delay = 4
    sc.p_crash_after_vote = 0.5
    sc.restart_delay = (1, 3)
    sc.p_event = 1 / 30
    sc.membership = False
    sc.compaction = False
    sc.event_weights = {"crash": 6}


def break_figure8(sc: Scenario) -> None:
    sc.breakages = frozenset({"figure8"})


def break_readindex(sc: Scenario) -> None:
    sc.breakages = frozenset({"readindex_no_heartbeat"})


def break_vote(sc: Scenario) -> None:
    sc.lose_vote_on_crash = True


def run(seed: int, shape: Callable[[Scenario], None], brk: Callable[[Scenario], None] | None) -> str | None:
    """The failure message of one shaped run, or None if it passed."""
    sc = Scenario.from_seed(seed)
    shape(sc)
    if brk is not None:
        brk(sc)
    sc.replay = (
        f"(breakage search) seed {seed} shape {shape.__name__} breakage {getattr(brk, '__name__', None)}"
    )
    try:
        Sim(sc).run()
    except SimulationFailure as exc:
        return str(exc)
    return None


def first_caught(shape: Callable[[Scenario], None], brk: Callable[[Scenario], None]) -> tuple[int, str]:
    for seed in range(SEARCH):
        msg = run(seed, shape, brk)
        if msg is not None:
            return seed, msg
    pytest.fail(f"{brk.__name__} not caught in seeds 0..{SEARCH - 1}")


@pytest.mark.parametrize(
    ("shape", "brk", "expect"),
    [
        (shape_figure8, break_figure8, ("leader completeness", "state machine safety", "log matching")),
        (shape_stale_read, break_readindex, ("linearizability",)),
        (shape_lost_vote, break_vote, ("election safety", "log matching", "state machine safety")),
    ],
    ids=["figure8", "readindex_no_heartbeat", "vote_not_persisted"],
)
def test_breakage_is_caught(
    shape: Callable[[Scenario], None], brk: Callable[[Scenario], None], expect: tuple[str, ...]
) -> None:
    seed, msg = first_caught(shape, brk)
    assert any(e in msg for e in expect), f"seed {seed} caught by the wrong checker:\n{msg}"
    clean = run(seed, shape, None)
    assert clean is None, f"seed {seed} fails without the breakage too:\n{clean}"
