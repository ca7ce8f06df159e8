"""One load-generating process: its share of the clients (or watchers, or the watch writer) on its own
connections, started together with the other workers, returning raw latencies to the parent.

Protocol with the parent (runner.py): put ("ready", index, None) once connected and set up, wait for the shared `go` flag,
run, put ("done", index, result) or ("fatal", index, message). Progress is this worker's slot of a shared
array, bumped per completed op (the parent draws the bar).
"""

from __future__ import annotations

import contextlib
import math
import time
from array import array
from typing import Any

import attrs
import trio

from trikv.tools.benchmark.spec import Spec, split
from trikv.tools.benchmark.surfaces import SHARED, open_session
from trikv.tools.benchmark.workloads import client_op, watch_range, watcher, writer


@attrs.frozen
class Job:
    spec: Spec
    role: str  # "clients", "watchers" or "writer"
    index: int
    endpoints: tuple[str, ...]
    clients: tuple[int, ...] = ()  # global client numbers (role "clients")
    watchers: int = 0  # role "watchers"
    conns: int = 1  # connections of a shared surface in this process
    first_conn: int = 0  # global number of the first one (endpoints are dealt round-robin)


def work(job: Job, progress: Any, channel: Any, go: Any, stop: Any) -> None:
    """The process entry point (multiprocessing spawn)."""
    try:
        result = trio.run(_main, job, progress, channel, go, stop)
    except BaseException as exc:
        channel.put(("fatal", job.index, _describe(exc)))
        return
    channel.put(("done", job.index, result))


async def _until(flag: Any) -> None:
    """Wait for a shared flag (a multiprocessing Value, polled: an Event's waiters that die with their
    process leave its condition unusable for the parent's set())."""
    while not flag.value:
        await trio.sleep(0.005)


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def _main(job: Job, progress: Any, channel: Any, go: Any, stop: Any) -> dict[str, Any]:
    async with trio.open_nursery() as nursery:
        async with contextlib.AsyncExitStack() as stack:  # closes the connections; then the nursery ends
            result = await _role(job, progress, channel, go, stop, stack, nursery)
        nursery.cancel_scope.cancel()
    return result


async def _role(
    job: Job,
    progress: Any,
    channel: Any,
    go: Any,
    stop: Any,
    stack: contextlib.AsyncExitStack,
    nursery: trio.Nursery,
) -> dict[str, Any]:
    spec = job.spec
    eps = job.endpoints

    def bump() -> None:
        progress[job.index] += 1

    if job.role == "writer":
        session_ep = eps[1 % len(eps)]  # not the watchers' member: events cross the cluster
        channel.put(("ready", job.index, None))
        await _until(go)
        cpu0 = time.process_time()
        revs, starts, acks, errors, first = await writer(spec, session_ep, stack, nursery)
        out: dict[str, Any] = {"revs": revs.tobytes(), "starts": starts.tobytes(), "acks": acks.tobytes()}
        out |= {"errors": errors, "first_error": first, "cpu": time.process_time() - cpu0}
        return out
    shared = spec.surface in SHARED
    n_sessions = max(1, job.conns) if shared else (1 if job.role == "watchers" else len(job.clients))
    sessions = []
    for s in range(n_sessions):
        if job.role == "watchers":
            ep = eps[0]  # every watcher on one member; the writer writes through another
        elif shared:
            ep = eps[(job.first_conn + s) % len(eps)]
        else:
            ep = eps[job.clients[s] % len(eps)]
        sessions.append(await open_session(spec.surface, ep, stack, nursery))
    if job.role == "watchers":
        key, end = watch_range(spec)
        watches = [await sessions[i % len(sessions)].watch(stack, key, end) for i in range(job.watchers)]
        channel.put(("ready", job.index, None))
        await _until(go)
        cpu0, t0 = time.process_time(), time.time()
        seen: array[int] = array("q")
        times: array[float] = array("d")

        async def until_stop() -> None:
            await _until(stop)
            inner.cancel_scope.cancel()

        async with trio.open_nursery() as inner:
            inner.start_soon(until_stop)
            async with trio.open_nursery() as each:
                for w in watches:
                    each.start_soon(watcher, spec, w, seen, times, bump)
            inner.cancel_scope.cancel()
        got: dict[str, Any] = {
            "revs": seen.tobytes(),
            "times": times.tobytes(),
            "errors": 0,
            "first_error": "",
        }
        got |= {"cpu": time.process_time() - cpu0, "start": t0, "end": time.time()}
        return got
    ops = [await client_op(spec, sessions[i % n_sessions], stack, c) for i, c in enumerate(job.clients)]
    channel.put(("ready", job.index, None))
    await _until(go)
    return await _run_clients(spec, job, ops, bump)


async def _run_clients(spec: Spec, job: Job, ops: list[Any], bump: Any) -> dict[str, Any]:
    shares = split(spec.total, spec.clients)
    deadline = trio.current_time() + spec.duration if spec.duration > 0 else math.inf
    per_client_rate = spec.rate / spec.clients if spec.rate > 0 else 0.0
    lat: array[float] = array("d")
    errors = 0
    first = ""
    cpu0, t0 = time.process_time(), time.time()
    begin = trio.current_time()

    async def client(op: Any, n: int) -> None:
        nonlocal errors, first
        i = 0
        while i < n and trio.current_time() < deadline:
            if per_client_rate:
                await trio.sleep_until(begin + i / per_client_rate)
            i += 1
            s = time.perf_counter()
            try:
                await op()
            except Exception as exc:  # counted and reported; the run goes on (as etcd's benchmark)
                errors += 1
                first = first or _describe(exc)
                continue
            lat.append(time.perf_counter() - s)
            bump()

    async with trio.open_nursery() as nursery:
        for op, c in zip(ops, job.clients, strict=True):
            nursery.start_soon(client, op, shares[c] if spec.duration <= 0 else 1 << 62)
    end = time.time()
    return {
        "lat": lat.tobytes(),
        "errors": errors,
        "first_error": first,
        "cpu": time.process_time() - cpu0,
        "start": t0,
        "end": end,
    }
