"""The robustness checkers on hand-written histories (each guarantee broken once) and on simulated ones.

A checker that passes everything proves nothing: every rule here has a history that breaks it and must be
reported, next to one that keeps it and must pass. hypothesis feeds simulated linearizable histories (a
sequential store with revisions, windows drawn around each op's linearization point) that must pass, and
the same with one read turned stale that must fail.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, assume, given, settings

from trikv.tools.robustness.bench_checker import simulate
from trikv.tools.robustness.check_lease import check_lease
from trikv.tools.robustness.check_linearizable import check_linearizable
from trikv.tools.robustness.check_model import CheckResult, Writes
from trikv.tools.robustness.check_rules import check_rules
from trikv.tools.robustness.check_watch import check_watch
from trikv.tools.robustness.checks import check_all, summary
from trikv.tools.robustness.history import Event, Fault, History, Op, WatchResponse, WatchResume, WatchSpec


def put(
    i: int, client: int, inv: float, comp: float | None, rev: int | None, key: str, value: str, **kw
) -> Op:
    ok = kw.pop("ok", True if comp is not None else None)
    return Op(i, client, "put", inv, comp, ok, rev, key=key, value=value, **kw)


def get(
    i: int, client: int, inv: float, comp: float, rev: int, key: str, value: str | None, mod: int | None, **kw
) -> Op:
    return Op(
        i,
        client,
        "get",
        inv,
        comp,
        True,
        rev,
        key=key,
        found=value is not None,
        got_value=value,
        got_mod_revision=mod,
        **kw,
    )


def fails(result: CheckResult, kind: str) -> bool:
    return not result.ok and not result.undecided and kind in result.kinds


# ---- KV: linearizability and the global rules -------------------------------------------------------------

BASE = [put(1, 0, 0.0, 1.0, 2, "a", "x"), put(2, 0, 2.0, 3.0, 3, "a", "y")]


def test_linearizable_history_passes_every_kv_check() -> None:
    h = History(
        ops=[
            *BASE,
            get(3, 1, 0.5, 4.0, 2, "a", "x", 2),  # overlaps the second put: may see the first
            get(4, 2, 3.5, 4.0, 3, "a", "y", 3),
            get(5, 1, 4.5, 5.0, 2, "a", "x", 2, serializable=True),  # stale but serializable: allowed
            Op(6, 2, "txn", 5.0, 6.0, True, 4, compares=(("a", "y"),), puts=(("b", "z"),), succeeded=True),
            Op(7, 0, "txn", 6.5, 7.0, True, 4, compares=(("a", "x"),), puts=(("b", "w"),), succeeded=False),
            Op(8, 1, "delete", 7.5, 8.0, True, 5, key="b", deleted=1),
            get(9, 0, 9.0, 9.5, 5, "b", None, None, final=True),
            get(10, 0, 9.0, 9.5, 5, "a", "y", 3, final=True),
        ]
    )
    assert check_linearizable(h, 5).ok, check_linearizable(h, 5).violations
    assert check_rules(h, 5).ok, check_rules(h, 5).violations


def test_stale_read_is_not_linearizable_and_shrinks_to_three_ops() -> None:
    h = History(ops=[*BASE, get(3, 1, 3.5, 4.0, 3, "a", "x", 2), get(4, 2, 0.0, 9.0, 3, "b", None, None)])
    r = check_linearizable(h, 5)
    assert fails(r, "stale-read") and "op 3" in r.violations[0]
    assert r.minimal is not None and sorted(op.id for op in r.minimal.ops) == [1, 2, 3]


def test_lost_write_in_the_final_reads() -> None:
    h = History(ops=[*BASE, get(3, 1, 5.0, 6.0, 3, "a", "x", 2, final=True)])
    assert fails(check_rules(h, 5), "lost-write")
    assert fails(check_linearizable(h, 5), "stale-read")
    gone = History(ops=[*BASE, get(3, 1, 5.0, 6.0, 3, "a", None, None, final=True)])
    assert fails(check_rules(gone, 5), "lost-write")


def test_duplicate_revision() -> None:
    h = History(ops=[put(1, 0, 0.0, 1.0, 2, "a", "x"), put(2, 1, 0.0, 1.0, 2, "b", "y")])
    assert fails(check_rules(h, 5), "duplicate-revision")
    assert fails(check_linearizable(h, 5), "duplicate-revision")


def test_revisions_against_real_time() -> None:
    h = History(ops=[put(1, 0, 0.0, 1.0, 3, "a", "x"), put(2, 1, 2.0, 3.0, 2, "b", "y")])
    assert fails(check_rules(h, 5), "realtime-order")
    overlapping = History(ops=[put(1, 0, 0.0, 2.5, 3, "a", "x"), put(2, 1, 2.0, 3.0, 2, "b", "y")])
    assert check_rules(overlapping, 5).ok


def test_read_header_below_an_acknowledged_write() -> None:
    h = History(ops=[put(1, 0, 0.0, 1.0, 3, "a", "x"), get(2, 1, 2.0, 3.0, 2, "b", None, None)])
    assert fails(check_rules(h, 5), "read-below-acked")
    serializable = History(
        ops=[put(1, 0, 0.0, 1.0, 3, "a", "x"), get(2, 1, 2.0, 3.0, 2, "b", None, None, serializable=True)]
    )
    assert check_rules(serializable, 5).ok
    # ... but a serializable read must still return what the key held at its header revision.
    wrong = History(
        ops=[put(1, 0, 0.0, 1.0, 3, "a", "x"), get(2, 1, 2.0, 3.0, 2, "a", "x", 3, serializable=True)]
    )
    assert fails(check_rules(wrong, 5), "value-at-header")


def test_txn_compare_inconsistent_with_the_value() -> None:
    won = Op(2, 1, "txn", 2.0, 3.0, True, 3, compares=(("a", "other"),), puts=(("b", "q"),), succeeded=True)
    h = History(ops=[put(1, 0, 0.0, 1.0, 2, "a", "x"), won])
    assert fails(check_rules(h, 5), "txn-compare")
    assert fails(check_linearizable(h, 5), "txn-compare")
    lost = Op(2, 1, "txn", 2.0, 3.0, True, 2, compares=(("a", "x"),), puts=(("b", "q"),), succeeded=False)
    assert fails(check_linearizable(History(ops=[put(1, 0, 0.0, 1.0, 2, "a", "x"), lost]), 5), "stale-read")


def test_unknown_writes_settled_from_reads_and_watch() -> None:
    # An unanswered put that a read saw happened (at the read's mod_revision).
    seen = History(ops=[put(1, 0, 0.0, None, None, "a", "x"), get(2, 1, 5.0, 6.0, 2, "a", "x", 2)])
    assert check_linearizable(seen, 5).ok
    # An unanswered delete may explain a missing key, unless the complete watch history says it did not happen.
    base = [put(1, 0, 0.0, 1.0, 2, "a", "x"), Op(2, 0, "delete", 2.0, None, None, None, key="a")]
    h = History(ops=[*base, get(3, 1, 5.0, 6.0, 3, "a", None, None)])
    assert check_linearizable(h, 5).ok
    h.watches = [WatchSpec(0, "", 1)]
    h.responses = [
        WatchResponse(0, 1.0, 2, (Event("PUT", "a", "x", 2, 2, 1),)),
        WatchResponse(0, 7.0, 3, progress=True),
    ]
    assert Writes.build(h).watch_complete
    assert fails(check_linearizable(h, 5), "stale-read")


def test_adversarial_history_on_a_tiny_budget_is_undecided_and_a_failure() -> None:
    ops = [put(n, n % 8, 0.5, None, None, "a", f"u{n}") for n in range(2, 60)]
    ops += [put(1, 0, 0.0, 1.0, 100, "a", "x"), get(99, 1, 2.0, 3.0, 100, "a", None, None)]
    r = check_linearizable(History(ops=ops), 0.05)
    assert r.undecided and not r.ok


# ---- watch guarantees ----------------------------------------------------------------------------------

WOPS = [
    put(1, 0, 0.0, 1.0, 2, "a", "x"),
    Op(2, 0, "txn", 1.0, 2.0, True, 3, compares=(), puts=(("b", "y"), ("c", "z")), succeeded=True),
    put(3, 0, 2.0, 3.0, 4, "a", "w"),
]


def ev(key: str, value: str, rev: int) -> Event:
    return Event("PUT", key, value, rev, rev, 1)


CREATED = WatchResponse(0, 0.5, 1, created=True)
R2 = WatchResponse(0, 1.5, 2, (ev("a", "x", 2),))
R3 = WatchResponse(0, 2.5, 3, (ev("b", "y", 3), ev("c", "z", 3)))
R4 = WatchResponse(0, 3.5, 4, (ev("a", "w", 4),))
PROGRESS = WatchResponse(0, 4.0, 4, progress=True)


def watched(*responses: WatchResponse, resumes: tuple[WatchResume, ...] = ()) -> History:
    return History(ops=WOPS, watches=[WatchSpec(0, "", 1)], responses=list(responses), resumes=list(resumes))


def test_watch_that_keeps_every_guarantee_passes() -> None:
    assert check_watch(watched(CREATED, R2, R3, R4, PROGRESS), 5).ok
    resumed = watched(CREATED, R2, R3, R4, resumes=(WatchResume(0, 3.0, 4, "127.0.0.1:1"),))
    assert check_watch(resumed, 5).ok


def test_watch_gap() -> None:
    r = check_watch(watched(CREATED, R2, R4), 5)
    assert fails(r, "gap") and "'b'@3" in " ".join(r.violations)
    assert r.minimal is not None and len(r.minimal.responses) <= 2


def test_watch_duplicate() -> None:
    assert fails(check_watch(watched(CREATED, R2, R3, R4, R4), 5), "duplicate")


def test_watch_revision_split_across_responses() -> None:
    split = [WatchResponse(0, 2.5, 3, (ev("b", "y", 3),)), WatchResponse(0, 2.6, 3, (ev("c", "z", 3),))]
    assert fails(check_watch(watched(CREATED, R2, *split, R4), 5), "atomic")


def test_watch_out_of_order() -> None:
    swapped = WatchResponse(0, 2.5, 3, (ev("c", "z", 3), ev("b", "y", 3)))  # txn put b then c
    assert fails(check_watch(watched(CREATED, R2, swapped, R4), 5), "order")
    assert fails(check_watch(watched(CREATED, R3, R2, R4), 5), "order")


def test_watch_progress_before_a_delivered_event() -> None:
    early = WatchResponse(0, 2.2, 4, progress=True)
    assert fails(check_watch(watched(CREATED, R2, early, R3, R4), 5), "bookmark")


def test_watch_bad_compacted_response() -> None:
    bad = WatchResponse(0, 0.6, 1, compact_revision=1, canceled=True)  # start 1 is not below compaction 1
    assert fails(check_watch(watched(CREATED, bad), 5), "compacted")
    good = History(
        ops=WOPS,
        watches=[WatchSpec(0, "", 1)],
        responses=[WatchResponse(0, 0.6, 1, compact_revision=3, canceled=True)],
    )
    assert check_watch(good, 5).ok


def test_watch_resume_that_skips_and_put_revision_mismatch() -> None:
    skip = watched(CREATED, R2, R4, resumes=(WatchResume(0, 2.0, 4, "127.0.0.1:1"),))
    assert fails(check_watch(skip, 5), "resume")
    wrong = WatchResponse(0, 1.5, 2, (ev("a", "w", 2),))  # 'w' was acknowledged at revision 4
    assert fails(check_watch(watched(CREATED, wrong, R3, R4), 5), "put-revision")


# ---- leases --------------------------------------------------------------------------------------------

GRANT = Op(1, 0, "lease_grant", 0.0, 0.01, True, 1, lease=7, ttl=2)
ATTACH = put(2, 0, 0.1, 0.2, 2, "k", "v", lease=7)
KEEP = Op(3, 0, "lease_keepalive", 1.0, 1.1, True, 2, lease=7, ttl=2)
LATER = get(4, 1, 9.0, 9.1, 3, "x", None, None)


def leased(*responses: WatchResponse, ops: tuple[Op, ...] = (), faults: tuple[Fault, ...] = ()) -> History:
    params = {"election_timeout_s": 0.1, "revoke_allowance_s": 0.1, "watch_latency_s": 0.1}
    stream = [WatchResponse(0, 0.2, 2, (Event("PUT", "k", "v", 2, 2, 1),)), *responses]
    return History(
        ops=[GRANT, ATTACH, KEEP, *ops],
        watches=[WatchSpec(0, "", 1)],
        responses=stream,
        faults=list(faults),
        params=params,
    )


def expired(at: float) -> WatchResponse:
    return WatchResponse(0, at, 3, (Event("DELETE", "k", None, 3),))


def test_lease_expiry_on_time_passes() -> None:
    assert check_lease(leased(expired(3.5), ops=(LATER,)), 5).ok


def test_lease_expired_while_a_keepalive_covered_it() -> None:
    r = check_lease(leased(expired(2.5)), 5)
    assert fails(r, "lease-early") and "op 3" in r.violations[0]


def test_lease_revoked_early_is_fine() -> None:
    revoke = Op(5, 0, "lease_revoke", 1.5, 1.6, True, 3, lease=7)
    assert check_lease(leased(expired(1.6), ops=(revoke,)), 5).ok


def test_lease_not_expired_in_time() -> None:
    assert fails(check_lease(leased(expired(8.0), ops=(LATER,)), 5), "lease-late")
    assert fails(check_lease(leased(ops=(LATER,)), 5), "lease-late")
    # A fault inside the window restarts the count.
    assert check_lease(
        leased(expired(8.0), ops=(LATER,), faults=(Fault(3.0, "kill", "node1", healed=6.0),)), 5
    ).ok


# ---- histories: dump/load, simulated runs --------------------------------------------------------------


def test_history_round_trips_through_jsonl(tmp_path: Path) -> None:
    h = leased(
        expired(3.5),
        ops=(Op(9, 1, "txn", 1.0, None, None, None, compares=(("a", None),), puts=(("a", "q"),)),),
    )
    h.resumes.append(WatchResume(0, 1.0, 3, "127.0.0.1:2379"))
    h.seed, h.members = 42, ["node0", "node1", "node2"]
    h.dump(tmp_path / "h.jsonl")
    assert History.load(tmp_path / "h.jsonl") == h


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 200),
    clients=st.integers(1, 8),
    keys=st.integers(1, 6),
    unknown=st.sampled_from([0.0, 0.1]),
    watch=st.booleans(),
)
def test_simulated_linearizable_histories_pass(
    seed: int, n: int, clients: int, keys: int, unknown: float, watch: bool
) -> None:
    h = simulate(seed, n, clients, keys, p_unknown=unknown, watch=watch)
    results = check_all(h, 20)
    assert all(r.ok for r in results), summary(results)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=st.integers(0, 2**31), n=st.integers(20, 200), clients=st.integers(1, 8), data=st.data())
def test_one_stale_read_makes_a_simulated_history_fail(
    seed: int, n: int, clients: int, data: st.DataObject
) -> None:
    h = simulate(seed, n, clients, 3, watch=False)
    ws = Writes.build(h)
    # A read that started after the key was overwritten, made to return the overwritten value.
    candidates = []
    for i, op in enumerate(h.ops):
        if op.kind != "get" or op.serializable or not op.ok:
            continue
        for old, new in zip(ws.by_key.get(op.key, []), ws.by_key.get(op.key, [])[1:], strict=False):
            if old.value is not None and new.complete < op.invoke and old.value != op.got_value:
                candidates.append((i, old))
    assume(candidates)
    i, old = data.draw(st.sampled_from(candidates))
    op = h.ops[i]
    h.ops[i] = Op(
        op.id,
        op.client,
        "get",
        op.invoke,
        op.complete,
        True,
        op.revision,
        key=op.key,
        found=True,
        got_value=old.value,
        got_mod_revision=old.rev,
        final=op.final,
    )
    assert not check_linearizable(h, 20, minimize=False).ok


def test_lease_early_under_a_clock_fault_is_not_judged() -> None:
    skewed = leased(expired(2.5), faults=(Fault(0.5, "clock", "node0", "lessor rate 2.0", healed=4.0),))
    assert check_lease(skewed, 5).ok
