"""The checkers must catch real bugs: plant one (a `BrokenRaft` from broken.py, or a harness that forgets on crash the vote or
the entries of the last Ready it acknowledged),
search a bounded range of shaped seeds, and demand that some seed fails with the right violation -- and that
the same seed passes without the breakage (so it is the bug that was caught, not a harness artefact).

Shaping makes the bug reachable quickly: short runs, a leader that keeps believing it leads (no check-quorum)
while isolated for the stale read, voters crashing right after voting for the lost vote, and for Figure 8
leaders that die mid-broadcast right after replicating or committing (see `shape_figure8`). Figure 8 is also
driven by a crafted, message-by-message scenario below, so the exact textbook sequence stays covered.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs
import pytest

from tests.raft.broken import BrokenRaft, raw_node
from tests.raft.sim import Scenario, Sim, SimNode, SimulationFailure
from trikv.actors.raft import Config, MemoryStorage, Raft, StateType
from trikv.api.records import Entry, EntryType

SEARCH = 300  # bound of the seed search for each breakage


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


def shape_lost_tail(sc: Scenario) -> None:
    sc.voters = 3
    sc.learners = 0
    sc.ticks = 1000
    sc.p_propose = 0.3
    sc.p_crash_new_leader = 0.3
    sc.restart_delay = (1, 20)
    sc.p_event = 1 / 20
    sc.membership = False
    sc.compaction = False
    sc.event_weights = {"crash": 6}


def shape_figure8(sc: Scenario) -> None:
    """Many short leaderships whose entries land on arbitrary minorities.

    Five voters; a leader dies (and restarts within 25 ticks) right after 70% of its Readies that replicate or
    commit entries, having sent each message of that Ready with probability 1/2. So entries of a term sit on a
    minority while a node with another tail wins the next term, and a later leader holding the old entry gets it
    to a majority one follower at a time (one entry per append, one append in flight) before its own no-op: the
    moment the broken rule commits it, and the next such death lets a node with a newer-term tail overwrite it.
    """
    sc.voters = 5
    sc.learners = 0
    sc.ticks = 600
    sc.max_size_per_msg = 1
    sc.max_inflight_msgs = 1
    sc.p_propose = 0.1
    sc.p_read = 0.0
    sc.p_delay = 0.1
    sc.max_delay = 3
    sc.p_drop = 0.0
    sc.p_leader_dies_mid_send = 0.7
    sc.keep_on_death = 0.5
    sc.restart_delay = (1, 25)
    sc.p_crash_new_leader = 0.0
    sc.p_event = 0.0
    sc.forced = []
    sc.membership = False
    sc.compaction = False
    sc.transfers = False


def break_figure8(sc: Scenario) -> None:
    sc.breakages = frozenset({"figure8"})


def break_readindex(sc: Scenario) -> None:
    sc.breakages = frozenset({"readindex_no_heartbeat"})


def break_vote(sc: Scenario) -> None:
    sc.lose_vote_on_crash = True


def break_fsync(sc: Scenario) -> None:
    sc.lose_tail_on_crash = True


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
        (shape_stale_read, break_readindex, ("linearizability",)),
        (shape_lost_vote, break_vote, ("election safety", "log matching", "state machine safety")),
        (shape_lost_tail, break_fsync, ("leader completeness", "state machine safety", "log matching")),
    ],
    ids=["readindex_no_heartbeat", "vote_not_persisted", "acked_entries_not_fsynced"],
)
def test_breakage_is_caught(
    shape: Callable[[Scenario], None], brk: Callable[[Scenario], None], expect: tuple[str, ...]
) -> None:
    seed, msg = first_caught(shape, brk)
    assert any(e in msg for e in expect), f"seed {seed} caught by the wrong checker:\n{msg}"
    clean = run(seed, shape, None)
    assert clean is None, f"seed {seed} fails without the breakage too:\n{clean}"


def test_figure8_is_caught_by_a_seed() -> None:
    """Figure 8 rule off (breakage "figure8", tests/raft/broken.py): some seed of `shape_figure8` among the first
    SEARCH (300) must lose a committed entry, seen by leader completeness or state machine safety.

    Measured when written (core at 18bc153): the first seed caught is 0 (leader completeness: the leader of
    term 31 holds a term-11 entry at index 11, where a term-9 entry was committed by counting replicas);
    159 of seeds 0..299 are caught, all by leader completeness, and all 300 pass without the breakage. The
    search stops at the first catch, so the test takes well under a second. The same seed without the
    breakage must pass and commit real work.
    """
    seed, msg = first_caught(shape_figure8, break_figure8)
    assert "leader completeness" in msg or "state machine safety" in msg, (
        f"seed {seed} caught by the wrong checker:\n{msg}"
    )
    sc = Scenario.from_seed(seed)
    shape_figure8(sc)
    sim = Sim(sc).run()  # raises SimulationFailure (with the seed) if the clean run fails
    s = sim.summary()
    assert s["committed"] >= 20 and s["elections"] >= 10, f"seed {seed}: the clean run did little: {s}"


# --------------------------------------------------------------------------- Figure 8, crafted


def rounds(sim: Sim, stop: Callable[[], bool] | None = None, limit: int = 500) -> bool:
    """Deliver and handle Readies without ticking (no timer fires) until `stop()` or the network is quiet."""
    for _ in range(limit):
        sim.pump()
        if stop is not None and stop():
            return True
        if not sim.deliver_due():
            sim.pump()
            return stop() if stop is not None else False
    raise AssertionError("network never went quiet")


def cut(sim: Sim, a: int, others: tuple[int, ...]) -> None:
    for b in others:
        sim.blocked.add((a, b))
        sim.blocked.add((b, a))


def is_leader(node: SimNode) -> bool:
    return node.alive and node.rn is not None and node.rn.status().role == StateType.LEADER


def elect(sim: Sim, node: SimNode, on_win: Callable[[], None] | None = None) -> bool:
    """Campaign (retrying: a pre-vote first learns the higher term) until `node` leads or gives up."""
    for _ in range(4):
        assert node.rn is not None
        node.rn.campaign()
        if rounds(sim, lambda: is_leader(node)):
            if on_win is not None:
                on_win()
            return True
    return False


def figure8(breakages: frozenset[str]) -> Sim:
    """Raft paper Figure 8 with five voters, driven message by message.

    1 leads (term a) and gets X to index n on {1, 2} only, then crashes. 5 wins term b with {3, 4}, persists its
    no-op at n (term b) and crashes before sending it. 1 restarts and wins term c with {2, 3}; it sends X to 3 -- now X
    is on a majority, but X is of term a. A correct leader waits for its no-op (n+1, term c) to reach a majority; the
    broken one commits and applies X at once. 1 crashes right then. 5 restarts: its last entry (n, term b) is newer
    than 3's and 4's (n, a)/(n-1, a), so it wins -- and overwrites X. The checkers must see a committed entry lost.
    """
    sc = Scenario(
        seed=8, voters=5, p_propose=0.0, p_read=0.0, p_event=0.0, p_drop=0.0, p_dup=0.0, p_delay=0.0
    )
    sc.check_quorum = False
    sc.max_size_per_msg = 1
    sc.max_inflight_msgs = 1
    sc.breakages = breakages
    sc.replay = f"tests/raft/test_breakages.py::figure8 (crafted, breakages={sorted(breakages)})"
    sim = Sim(sc)
    n1, n2, n3, n5 = (sim.nodes[i] for i in (1, 2, 3, 5))
    rounds(sim)
    assert elect(sim, n1)
    sim.propose(n1, 3)
    rounds(sim)
    # X reaches 1 and 2 only
    cut(sim, 1, (3, 4, 5))
    sim.propose(n1, 1)
    rounds(sim)
    x = n1.durable.last_index()
    assert n2.durable.last_index() == x and n3.durable.last_index() == x - 1
    sim.crash(n1, "figure 8 step 1")
    # 5 wins with 3 and 4 and dies holding its own no-op at x
    sim.blocked.clear()
    cut(sim, 1, (2, 3, 4, 5))
    cut(sim, 2, (3, 4, 5))

    def silence_5() -> None:
        cut(sim, 5, (1, 2, 3, 4))
        sim.crash(n5, "figure 8 step 2")

    assert elect(sim, n5, silence_5)
    assert n5.durable.last_index() == x and n5.durable.entries[-1].term > n1.durable.entries[-1].term
    # 1 comes back and wins with 2 and 3 (4 hears nothing)
    sim.blocked.clear()
    cut(sim, 4, (1, 2, 3, 5))
    cut(sim, 5, (1, 2, 3, 4))
    sim.start(n1)
    rounds(sim)

    def commits_x() -> bool:
        if n1.alive and n1.applied >= x:
            cut(sim, 1, (2, 3, 4, 5))
            sim.crash(n1, "figure 8 step 3")
            return True
        return False

    assert elect(sim, n1)
    rounds(sim, commits_x)
    # 5 comes back and campaigns with 3 and 4
    sim.blocked.clear()
    cut(sim, 1, (2, 3, 4, 5))
    cut(sim, 2, (1, 3, 4, 5))
    sim.start(n5)
    elect(sim, n5)
    sim.finish()
    return sim


def test_figure8_crafted_is_caught() -> None:
    with pytest.raises(SimulationFailure, match=r"leader completeness|state machine safety"):
        figure8(frozenset({"figure8"}))


def test_figure8_crafted_passes_without_the_breakage() -> None:
    sim = figure8(frozenset())
    assert sim.committed, "nothing committed: the scenario did not run"


# --------------------------------------------------------------------------- the checkers themselves


def settled() -> tuple[Sim, SimNode]:
    sc = Scenario(
        seed=5, voters=3, p_propose=0.0, p_read=0.0, p_event=0.0, p_drop=0.0, p_dup=0.0, p_delay=0.0
    )
    sim = Sim(sc)
    rounds(sim)
    n1 = sim.nodes[1]
    assert elect(sim, n1)
    sim.propose(n1, 5)
    rounds(sim)
    assert n1.applied >= 5
    return sim, n1


def test_checker_state_machine_safety() -> None:
    """A node whose own log holds a different entry at an index another node applied."""
    sim, n1 = settled()
    idx = n1.applied
    forged = Entry(n1.durable.hard_state.term, idx, EntryType.NORMAL, b"forged")
    d = n1.durable
    d.entries[idx - d.snap_index() - 1] = forged
    n1.applied = idx - 1
    with pytest.raises(SimulationFailure, match="state machine safety"):
        sim.apply(n1, forged)


def test_checker_applies_what_it_persisted() -> None:
    sim, n1 = settled()
    idx = n1.applied
    n1.applied = idx - 1
    with pytest.raises(SimulationFailure, match="but persisted"):
        sim.apply(n1, Entry(n1.durable.hard_state.term, idx, EntryType.NORMAL, b"forged"))


def test_checker_leader_completeness_and_log_matching() -> None:
    """A node whose persisted log silently loses committed entries must not pass as a leader."""
    sim, _ = settled()
    for i in (2, 3):
        node = sim.nodes[i]
        sim.crash(node, "test")
        d = node.durable
        del d.entries[-3:]
        d.hard_state = attrs.evolve(d.hard_state, commit=min(d.hard_state.commit, d.last_index()))
        d.sm = [(j, data) for j, data in d.sm if j <= d.last_index()]
        d.sm_index = min(d.sm_index, d.last_index())
        sim.start(node)
    n3 = sim.nodes[3]
    cut(sim, 1, (2, 3))
    with pytest.raises(SimulationFailure, match="leader completeness"):
        for _ in range(6):
            elect(sim, n3)
            sim.check_logs()


# --------------------------------------------------------------------------- the production core stays clean


def test_planted_bugs_live_in_test_code_only() -> None:
    """The production Config has no breakage switch, a node built without breakages is the production class,
    and asking for an unknown breakage is an error (a typo must not silently test the correct core)."""
    assert "breakages" not in attrs.fields_dict(Config)
    rn = raw_node(Config(id=1, rng=random.Random(1)), MemoryStorage())
    assert type(rn.raft) is Raft
    broken = raw_node(Config(id=1, rng=random.Random(1)), MemoryStorage(), frozenset({"figure8"}))
    assert isinstance(broken.raft, BrokenRaft) and broken.raft.breakages == {"figure8"}
    with pytest.raises(ValueError, match="unknown breakages"):
        raw_node(Config(id=1, rng=random.Random(1)), MemoryStorage(), frozenset({"figure9"}))
