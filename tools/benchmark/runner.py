"""Runs one Spec: prefill, worker processes started together, a live progress bar, merged results.

Server CPU is the members' utime+stime over the measured window (from `go` until every worker is done);
generator CPU is what the workers report for the same window plus this process's own.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import queue
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import trio
from tqdm import tqdm

from trikv.tools.benchmark.clusters import cpu_seconds, listening_pids
from trikv.tools.benchmark.clusters import start as start_cluster
from trikv.tools.benchmark.report import Row, make_row
from trikv.tools.benchmark.spec import WATCH_WORKLOADS, Spec, split
from trikv.tools.benchmark.surfaces import SHARED, open_session
from trikv.tools.benchmark.worker import Job, work

READY_TIMEOUT = 180.0  # connecting and granting leases on a loaded machine
STALL_TIMEOUT = 60.0  # no op completed for this long: the run is abandoned
WATCH_GRACE = 10.0  # after the last put, how long the watchers may take to receive everything


class BenchError(Exception):
    """The run could not be carried out (a worker failed to set up, the cluster stalled)."""


def plan(spec: Spec, endpoints: list[str]) -> list[Job]:
    eps = tuple(endpoints)
    if spec.workload in WATCH_WORKLOADS:
        procs = max(1, min(spec.procs, spec.watchers))
        conns = split(max(spec.conns, procs), procs)
        jobs = [
            Job(spec, "watchers", i, eps, watchers=w, conns=conns[i], first_conn=sum(conns[:i]))
            for i, w in enumerate(split(spec.watchers, procs))
        ]
        return [*jobs, Job(spec, "writer", procs, eps)]
    procs = max(1, min(spec.procs, spec.clients))
    conns = split(max(spec.conns, procs), procs)
    jobs, first = [], 0
    for i, n in enumerate(split(spec.clients, procs)):
        clients = tuple(range(first, first + n))
        jobs.append(Job(spec, "clients", i, eps, clients=clients, conns=conns[i], first_conn=sum(conns[:i])))
        first += n
    return jobs


def needs_prefill(spec: Spec) -> bool:
    return (spec.workload == "range" and spec.range_key is None) or spec.workload == "txn-mixed"


async def prefill(spec: Spec, endpoints: list[str], tasks: int = 16) -> None:
    """Write every key of the key space once, so reads find values of --val-size."""
    n = max(1, spec.key_space_size)
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
        shared = spec.surface in SHARED
        sessions = [
            await open_session(spec.surface, endpoints[i % len(endpoints)], stack, nursery)
            for i in range(1 if shared else tasks)
        ]

        async def fill(k: int) -> None:
            for i in range(k, n, tasks):
                await sessions[k % len(sessions)].put(spec.key(i), spec.value())

        async with trio.open_nursery() as inner:
            for k in range(tasks):
                inner.start_soon(fill, k)
        nursery.cancel_scope.cancel()


def run(spec: Spec, endpoints: list[str], server_pids: list[int] | None, progress: bool = True) -> Row:
    if needs_prefill(spec):
        trio.run(prefill, spec, endpoints)
    jobs = plan(spec, endpoints)
    ctx = multiprocessing.get_context("spawn")
    counters: Any = ctx.Array("q", len(jobs), lock=False)
    channel: Any = ctx.Queue()
    go, stop = ctx.Value("b", 0, lock=False), ctx.Value("b", 0, lock=False)
    procs = [ctx.Process(target=work, args=(j, counters, channel, go, stop), daemon=True) for j in jobs]
    for p in procs:
        p.start()
    try:
        _collect(channel, procs, want="ready", timeout=READY_TIMEOUT)
        server0 = cpu_seconds(server_pids) if server_pids else 0.0
        gen0 = time.process_time()
        go.value = 1
        results = _watch_progress(spec, jobs, procs, counters, channel, stop, progress)
        server_cpu = cpu_seconds(server_pids) - server0 if server_pids else None
        gen_cpu = time.process_time() - gen0 + sum(r["cpu"] for r in results.values())
    finally:
        stop.value = 1
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    watch = spec.workload in WATCH_WORKLOADS
    merged = _merge_watch(spec, jobs, results) if watch else _merge_clients(results)
    lat, errors, elapsed, first, extra = merged
    return make_row(
        workload=spec.label,
        surface=spec.surface,
        target=spec.target,
        clients=spec.watchers if watch else spec.clients,
        conns=_conns(spec, jobs),
        procs=len(jobs),
        latencies=lat,
        errors=errors,
        elapsed=elapsed,
        server_cpu=server_cpu,
        generator_cpu=gen_cpu,
        first_error=first,
        extra=extra,
    )


def run_spec(spec: Spec, endpoints: str = "", progress: bool = True) -> Row:
    """One run: against --endpoints, or a fresh cluster of spec.target started and stopped here."""
    if endpoints:
        eps = [e.strip() for e in endpoints.split(",") if e.strip()]
        return run(spec, eps, listening_pids(eps), progress)
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec.target}-") as tmp:
        cluster = start_cluster(spec.target, Path(tmp))
        try:
            pids = [m.proc.pid for m in cluster.members if m.proc is not None]
            return run(spec, cluster.endpoints, pids, progress)
        finally:
            cluster.stop()


def _conns(spec: Spec, jobs: list[Job]) -> int:
    """Connections the load used: shared surfaces multiplex; a gateway client or watcher has its own."""
    if spec.surface in SHARED:
        return sum(j.conns for j in jobs if j.role != "writer")
    return spec.watchers if spec.workload in WATCH_WORKLOADS else spec.clients


def _collect(channel: Any, procs: list[Any], want: str, timeout: float) -> dict[int, Any]:
    got: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(procs):
        try:
            kind, index, payload = channel.get(timeout=0.5)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise BenchError(f"workers not {want} within {timeout:.0f} s") from None
            dead = [p for p in procs if not p.is_alive() and p.exitcode]
            if dead:
                raise BenchError(f"a worker process died (exit code {dead[0].exitcode})") from None
            continue
        if kind == "fatal":
            raise BenchError(f"worker {index}: {payload}")
        got[index] = payload
    return got


def _watch_progress(
    spec: Spec, jobs: list[Job], procs: list[Any], counters: Any, channel: Any, stop: Any, show: bool
) -> dict[int, Any]:
    total = spec.total if spec.duration <= 0 else None
    bar = tqdm(
        total=total,
        unit="op",
        file=sys.stderr,
        disable=not (show and sys.stderr.isatty()),  # drawn on stderr, and only on a terminal: no log spam
        leave=False,
        dynamic_ncols=True,
    )
    results: dict[int, Any] = {}
    last, last_change = 0, time.monotonic()
    writer_done_at = math.inf
    try:
        while len(results) < len(jobs):
            try:
                kind, index, payload = channel.get(timeout=0.2)
                if kind == "fatal":
                    raise BenchError(f"worker {index}: {payload}")
                results[index] = payload
                if jobs[index].role == "writer":
                    writer_done_at = time.monotonic()
            except queue.Empty:
                pass
            now = time.monotonic()
            done = sum(counters)
            if done != last:
                bar.update(done - last)
                last, last_change = done, now
            elif now - last_change > STALL_TIMEOUT + spec.duration and writer_done_at == math.inf:
                raise BenchError(f"no operation completed for {STALL_TIMEOUT:.0f} s")
            if now - writer_done_at > WATCH_GRACE:
                stop.value = 1  # the watchers stop waiting for events that did not come
            if any(not p.is_alive() and p.exitcode for p in procs):
                raise BenchError("a worker process died")
    finally:
        bar.close()
    return results


def _merge_clients(results: dict[int, Any]) -> tuple[list[float], int, float, str, dict[str, Any]]:
    lat: array[float] = array("d")
    for r in results.values():
        lat.frombytes(r["lat"])
    errors = sum(r["errors"] for r in results.values())
    first = next((r["first_error"] for r in results.values() if r["first_error"]), "")
    elapsed = max(r["end"] for r in results.values()) - min(r["start"] for r in results.values())
    return list(lat), errors, elapsed, first, {}


def _merge_watch(
    spec: Spec, jobs: list[Job], results: dict[int, Any]
) -> tuple[list[float], int, float, str, dict[str, Any]]:
    w = results[jobs[-1].index]
    revs, starts, acks = array("q"), array("d"), array("d")
    revs.frombytes(w["revs"])
    starts.frombytes(w["starts"])
    acks.frombytes(w["acks"])
    base = dict(zip(revs, acks if spec.workload == "watch" else starts, strict=True))
    lat: list[float] = []
    early = 0
    last = 0.0
    for job in jobs[:-1]:
        r = results[job.index]
        ev_revs, times = array("q"), array("d")
        ev_revs.frombytes(r["revs"])
        times.frombytes(r["times"])
        for rev, t in zip(ev_revs, times, strict=True):
            b = base.get(rev)
            if b is None:
                continue
            if t < b:
                early += 1  # the event overtook the put's acknowledgement: counted as 0
            lat.append(max(0.0, t - b))
            last = max(last, t)
    expected = spec.puts * spec.watchers
    elapsed = (last - min(starts)) if starts and last else 0.0
    extra = {
        "puts": spec.puts,
        "puts_acked": len(revs),
        "watchers": spec.watchers,
        "events_expected": expected,
        "events_delivered": len(lat),
        "events_before_ack": early,
    }
    return lat, max(0, expected - len(lat)), elapsed, w["first_error"], extra
