"""How fast the checkers judge a big history: `python -m trikv.tools.robustness.bench_checker`.

Generates a linearizable history the way a correct etcd would produce it (a sequential store with revisions;
each op's invoke/complete window drawn around its linearization point, clients one op at a time), with a
complete watch stream, a few unknown outcomes and closing reads, then times check_all on it (CPU seconds).
`simulate` is also what tests/robustness/test_checkers.py feeds hypothesis with.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from trikv.tools.robustness.checks import CHECKERS
from trikv.tools.robustness.history import Event, History, Op, WatchResponse, WatchSpec


def simulate(
    seed: int,
    n_ops: int = 1000,
    clients: int = 8,
    keys: int = 20,
    p_unknown: float = 0.0,
    watch: bool = True,
    spread: float = 3.0,
) -> History:
    """A linearizable history: op i takes effect at time i, its window [invoke, complete] around it."""
    rnd = random.Random(seed)
    names = [f"k{n}" for n in range(keys)]
    state: dict[str, tuple[str, int]] = {}  # key -> (value, mod_revision)
    past: list[dict[str, tuple[str, int]]] = [
        {}
    ]  # state after each revision (sparse copies for serializable)
    rev = 1
    free = [0.0] * clients
    ops: list[Op] = []
    responses: list[WatchResponse] = []
    t = 0.0
    for i in range(n_ops):
        t += 1.0
        ready = [c for c in range(clients) if free[c] <= t]
        while not ready:
            t += 1.0
            ready = [c for c in range(clients) if free[c] <= t]
        c = rnd.choice(ready)
        invoke = max(free[c], t - rnd.uniform(0, spread))
        complete: float | None = t + rnd.uniform(0, spread)
        free[c] = complete or t
        key = rnd.choice(names)
        roll = rnd.random()
        events: list[Event] = []
        if roll < 0.45:
            value = f"v{i}"
            unknown = rnd.random() < p_unknown
            applied = not unknown or rnd.random() < 0.5
            if applied:
                rev += 1
                state[key] = (value, rev)
                events.append(Event("PUT", key, value, rev, rev, 1))
            if unknown:
                complete = None
                free[c] = t + spread
            ops.append(
                Op(
                    i,
                    c,
                    "put",
                    invoke,
                    complete,
                    None if unknown else True,
                    None if unknown else rev,
                    key=key,
                    value=value,
                )
            )
        elif roll < 0.75:
            got = state.get(key)
            ops.append(
                Op(
                    i,
                    c,
                    "get",
                    invoke,
                    complete,
                    True,
                    rev,
                    key=key,
                    found=got is not None,
                    got_value=got[0] if got else None,
                    got_mod_revision=got[1] if got else None,
                )
            )
        elif roll < 0.8:
            back = rnd.randint(0, min(3, len(past) - 1))
            old = past[-1 - back]
            got = old.get(key)
            ops.append(
                Op(
                    i,
                    c,
                    "get",
                    invoke,
                    complete,
                    True,
                    rev - back,
                    key=key,
                    serializable=True,
                    found=got is not None,
                    got_value=got[0] if got else None,
                    got_mod_revision=got[1] if got else None,
                )
            )
        elif roll < 0.87:
            if key in state:
                rev += 1
                del state[key]
                events.append(Event("DELETE", key, None, rev))
                ops.append(Op(i, c, "delete", invoke, complete, True, rev, key=key, deleted=1))
            else:
                ops.append(Op(i, c, "delete", invoke, complete, True, rev, key=key, deleted=0))
        else:
            ks = rnd.sample(names, min(len(names), rnd.randint(1, 3)))
            compares = tuple(
                (
                    k,
                    state[k][0]
                    if k in state and rnd.random() < 0.6
                    else None
                    if rnd.random() < 0.5
                    else "zz",
                )
                for k in ks
            )
            ok = all((state[k][0] if k in state else None) == v for k, v in compares)
            puts = tuple((k, f"v{i}.{n}") for n, k in enumerate(ks)) if rnd.random() < 0.7 else ()
            if ok and puts:
                rev += 1
                for k, v in puts:
                    state[k] = (v, rev)
                    events.append(Event("PUT", k, v, rev, rev, 1))
            ops.append(
                Op(i, c, "txn", invoke, complete, True, rev, compares=compares, puts=puts, succeeded=ok)
            )
        if events:
            past.append(dict(state))
            if len(past) > 8:
                past.pop(0)
            responses.append(WatchResponse(0, t + rnd.uniform(0, 0.5), rev, tuple(events)))
    t += spread + 1
    for n, key in enumerate(names):
        got = state.get(key)
        ops.append(
            Op(
                n_ops + n,
                n % clients,
                "get",
                t + n,
                t + n + 0.5,
                True,
                rev,
                key=key,
                found=got is not None,
                got_value=got[0] if got else None,
                got_mod_revision=got[1] if got else None,
                final=True,
            )
        )
    h = History(ops=ops, seed=seed, members=["node0", "node1", "node2"])
    if watch:
        h.watches = [WatchSpec(0, "", 1)]
        h.responses = [WatchResponse(0, 0.0, 1, created=True), *responses]
    return h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trikv.tools.robustness.bench_checker", description=__doc__)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--unknown", type=float, default=0.01, help="share of puts with an unknown outcome")
    ap.add_argument(
        "--no-watch", action="store_true", help="no watch stream: unknown writes must be searched"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=float, default=120.0)
    args = ap.parse_args(argv)
    h = simulate(args.seed, args.ops, args.clients, args.keys, args.unknown, watch=not args.no_watch)
    print(
        f"history: {len(h.ops)} ops, {args.clients} clients, {args.keys} keys, "
        f"{sum(len(r.events) for r in h.responses)} watch events"
    )
    total = 0.0
    bad = False
    for checker in CHECKERS:
        c0, w0 = time.process_time(), time.perf_counter()
        r = checker(h, args.budget)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        total += cpu
        bad |= not r.ok
        print(f"  {r.name:13s} {'ok' if r.ok else 'FAILED'}  {cpu:6.2f} s CPU  {wall:6.2f} s wall")
        for v in r.violations[:5]:
            print(f"      {v}")
    print(f"  {'total':13s}     {total:6.2f} s CPU")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
