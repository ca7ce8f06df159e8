"""What the fault hooks (storage/faults.py) cost a member that runs without the test plugin.

    python -m trikv.tools.bench_faults                 # timeit of the check + 4 interleaved rounds of puts
    python -m trikv.tools.bench_faults --puts 3000 --rounds 6

1. timeit: the disabled hook (`if faults.ACTIVE is not None: faults.ACTIVE.point(...)`) against an empty
   statement, in ns per execution.
2. One real single-member Node in this process (temp dir, real fsyncs, 127.0.0.1 free ports), puts through
   its Handlers from --concurrency tasks: CPU time of this process (user + system) per put and puts/s,
   with `faults.ACTIVE` None (production) and, interleaved round by round, with the test plugin installed
   but idle (no faults in its settings: every hook site then calls into the plugin). The CPU figure is the
   stable signal on a shared machine; puts/s is shown for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import timeit

import trio

from trikv.actors.config import load_config
from trikv.actors.node import Node
from trikv.api import rpc
from trikv.storage import faults
from trikv.testing.plugin import Plugin
from trikv.tools.localcluster import free_ports


def hook_ns(number: int = 2_000_000) -> tuple[float, float]:
    """(ns per disabled hook check, ns per empty statement), best of 5."""
    env = {"faults": faults}
    hook = min(
        timeit.repeat(
            'if faults.ACTIVE is not None:\n    faults.ACTIVE.point("apply.before")',
            globals=env,
            number=number,
            repeat=5,
        )
    )
    empty = min(timeit.repeat("pass", number=number, repeat=5))
    return hook / number * 1e9, empty / number * 1e9


async def _puts(node: Node, count: int, concurrency: int, tag: str) -> tuple[float, float]:
    """(CPU seconds per put, puts/s) of `count` puts from `concurrency` tasks."""
    per_task = count // concurrency

    async def writer(w: int) -> None:
        for i in range(per_task):
            await node.handlers.handle(rpc.PutRequest(b"bench/%d/%d" % (w, i % 100), tag.encode() * 16))

    cpu0, t0 = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as n:
        for w in range(concurrency):
            n.start_soon(writer, w)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    done = per_task * concurrency
    return cpu / done, done / wall


async def member_puts(puts: int, rounds: int, concurrency: int) -> dict[str, list[tuple[float, float]]]:
    cport, pport = free_ports(2)
    out: dict[str, list[tuple[float, float]]] = {"off": [], "idle plugin": []}
    with tempfile.TemporaryDirectory(prefix="trikv-bench-faults-") as tmp:
        cfg = load_config(
            [
                "--name", "bench",
                "--data-dir", os.path.join(tmp, "data"),
                "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                "--listen-client-urls", f"http://127.0.0.1:{cport}",
                "--advertise-client-urls", f"http://127.0.0.1:{cport}",
                "--initial-cluster", f"bench=http://127.0.0.1:{pport}",
            ],
            {},
        )  # fmt: skip
        node = Node(cfg)
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            with trio.fail_after(30):
                while not node.status.is_leader:
                    await trio.sleep(0.05)
            await _puts(node, puts // 4, concurrency, "w")  # warm up
            idle = Plugin()
            for _ in range(rounds):
                for mode in ("off", "idle plugin"):
                    faults.ACTIVE = idle if mode == "idle plugin" else None
                    out[mode].append(await _puts(node, puts, concurrency, mode[0]))
            faults.ACTIVE = None
            nursery.cancel_scope.cancel()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m trikv.tools.bench_faults", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--puts", type=int, default=2000, help="puts per round and mode")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (off, idle plugin, off, ...)")
    ap.add_argument("--concurrency", type=int, default=32, help="concurrent put tasks")
    args = ap.parse_args(argv)
    if faults.ACTIVE is not None:
        print("bench_faults: run it without TRIKV_TEST_PLUGIN", file=sys.stderr)
        return 1
    hook, empty = hook_ns()
    print(f"disabled hook check: {hook:.1f} ns   empty statement: {empty:.1f} ns   (timeit, best of 5)")
    results = trio.run(member_puts, args.puts, args.rounds, args.concurrency)
    print(f"single in-process member, {args.puts} puts x {args.rounds} rounds, {args.concurrency} tasks")
    print(f"{'hooks':<12} {'CPU us/put (median)':>20} {'puts/s (median)':>16}   per round (us/put)")
    for mode, rows in results.items():
        cpu = statistics.median(r[0] for r in rows) * 1e6
        rate = statistics.median(r[1] for r in rows)
        each = " ".join(f"{r[0] * 1e6:.0f}" for r in rows)
        print(f"{mode:<12} {cpu:>20.1f} {rate:>16.0f}   {each}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
