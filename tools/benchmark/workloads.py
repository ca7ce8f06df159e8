"""Each workload as one client's operation, plus the two roles of the watch workloads (watchers, writer).

etcd's benchmark semantics: `put` writes random (or --sequential-keys) keys of --key-size digits from
--key-space-size; `range` reads KEY, or random keys of the key space (then prefilled); `txn-put` commits
--txn-ops puts per txn; `txn-mixed` one-op txns, reads and writes in --rw-ratio; `lease-keepalive` renews
the client's leases in turn on one keep-alive stream; `watch` / `watch-latency` record each event's arrival
against its put (watch: from the put's acknowledgement, on a prefix; watch-latency, like etcd's: from the
put's start, on one key).
"""

from __future__ import annotations

import contextlib
import math
import time
from array import array
from collections.abc import Awaitable, Callable

import trio

from trikv.tools.benchmark.spec import LEASE_TTL, WATCH_PREFIX, Spec, split
from trikv.tools.benchmark.surfaces import Session, Watch, open_session

Op = Callable[[], Awaitable[None]]


class BenchError(Exception):
    """A workload's answer that is not an error on the wire but still a failed operation."""


async def client_op(spec: Spec, session: Session, stack: contextlib.AsyncExitStack, client: int) -> Op:
    """Set up client number `client` (its leases, its stream) and return its one operation."""
    keys = spec.key_source(client * 7919 + 1)
    value = spec.value()
    serializable = spec.consistency == "s"
    w = spec.workload
    if w == "put":
        return lambda: _ignore(session.put(keys(), value))
    if w == "range":
        fixed = spec.range_key
        return lambda: session.range(fixed if fixed is not None else keys(), serializable)
    if w == "txn-put":

        def distinct() -> list[bytes]:
            out: dict[bytes, None] = {}
            while len(out) < spec.txn_ops:
                out[keys()] = None
            return list(out)

        return lambda: session.txn(distinct(), value, None, serializable)
    if w == "txn-mixed":
        p_read = spec.rw_ratio / (spec.rw_ratio + 1)

        def mixed() -> Awaitable[None]:
            if keys.coin(p_read):
                return session.txn([], value, keys(), serializable)
            return session.txn([keys()], value, None, serializable)

        return mixed
    if w == "lease-keepalive":
        n = max(1, split(spec.leases or spec.clients, spec.clients)[client])
        ids = [await session.grant(LEASE_TTL) for _ in range(n)]
        ka = await session.keepalive(stack, ids[0])
        turn = iter(range(1 << 62))

        async def renew() -> None:
            lid = ids[next(turn) % len(ids)]
            if await ka.once(lid) <= 0:
                raise BenchError(f"lease {lid:x} lost")

        return renew
    raise ValueError(f"unknown workload {w!r}")


async def _ignore(aw: Awaitable[object]) -> None:
    await aw


def watch_range(spec: Spec) -> tuple[bytes, bytes]:
    """watch: the prefix; watch-latency: one key."""
    if spec.workload == "watch":
        return WATCH_PREFIX, WATCH_PREFIX[:-1] + bytes([WATCH_PREFIX[-1] + 1])
    return WATCH_PREFIX + b"latency", b""


def watch_key(spec: Spec, i: int) -> bytes:
    return WATCH_PREFIX + spec.key(i) if spec.workload == "watch" else watch_range(spec)[0]


async def watcher(
    spec: Spec, watch: Watch, revs: array[int], times: array[float], bump: Callable[[], None]
) -> None:
    """Receive `spec.puts` events on one watch, recording each one's revision and arrival (wall clock)."""
    got = 0
    while got < spec.puts:
        batch = await watch.revisions()
        now = time.time()
        for rev in batch:
            revs.append(rev)
            times.append(now)
            bump()
        got += len(batch)


async def writer(
    spec: Spec, endpoint: str, stack: contextlib.AsyncExitStack, nursery: trio.Nursery
) -> tuple[array[int], array[float], array[float], int, str]:
    """Write `spec.puts` puts at `spec.rate` through `endpoint`: (revisions, starts, acks, errors, first error)."""
    # enough writers that one slow put does not hold the schedule back: each keeps ~10 puts/s
    tasks = max(1, min(32, math.ceil(spec.rate / 10))) if spec.rate > 0 else 1
    sessions = [
        await open_session(spec.surface, endpoint, stack, nursery)
        for _ in range(tasks if spec.surface == "gateway" else 1)
    ]
    revs: array[int] = array("q")
    starts: array[float] = array("d")
    acks: array[float] = array("d")
    errors = 0
    first = ""
    value = spec.value()
    begin = trio.current_time() + 0.05

    async def one(k: int) -> None:
        nonlocal errors, first
        session = sessions[k % len(sessions)]
        for i in range(k, spec.puts, tasks):
            if spec.rate > 0:
                await trio.sleep_until(begin + i / spec.rate)
            t0 = time.time()
            try:
                rev = await session.put(watch_key(spec, i), value)
            except Exception as exc:  # counted; the run goes on (etcd's benchmark does the same)
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"
                continue
            revs.append(rev)
            starts.append(t0)
            acks.append(time.time())

    async with trio.open_nursery() as inner:
        for k in range(tasks):
            inner.start_soon(one, k)
    return revs, starts, acks, errors, first
