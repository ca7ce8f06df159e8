"""Lease benchmark, trikv next to etcd 3.4 measured the same way (issue 10):

1. keep-alives/s for N leases (10,000) kept alive by C clients (100), through the v3 JSON gateway of the
   leader (POST /v3/lease/keepalive, one persistent HTTP connection per client, spread over worker processes);
   for trikv also through its CBOR WebSocket keep-alive streams (one stream per client connection).
2. expiry of N leases at once (one key each; granted with a TTL longer than granting takes, then renewed
   once so their TTLs end together): seconds from the TTL's end until `leases` is empty (>= 10 s by design
   for 10,000 at etcd's 500 revokes per 500 ms), while one client keeps putting: its put latency.

    python tools/bench_lease.py                          # both systems, 10,000 leases, 100 clients
    python tools/bench_lease.py --systems trikv --leases 2000 --duration 5

Each system runs as three members on free loopback ports in a temp dir (tools/localcluster.py; etcd from
../shared/reference/etcd-configs, the Debian package as a yardstick only). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from trikv.tools.localcluster import CONFIGS, ROOT, Cluster

REFERENCE = ROOT.parent / "shared" / "reference"


def _cluster(system: str, workdir: Path) -> Cluster:
    if system == "etcd":
        files = [REFERENCE / "etcd-configs" / f"etcdnode{i}.yml" for i in range(3)]
        return Cluster(workdir, config_files=files, command=("etcd",), overrides={"log-level": "warn"})
    return Cluster(workdir, config_files=[CONFIGS / f"node{i}.yaml" for i in range(3)])


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> dict[str, Any]:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:200]!r}")
    return json.loads(data.splitlines()[0]) if data else {}


def _retry(
    conn: http.client.HTTPConnection, path: str, body: dict[str, Any], tries: int = 5
) -> dict[str, Any]:
    """An overloaded member answers 503 (request timed out, too many requests): try again a few times."""
    for attempt in range(tries):
        try:
            return _post(conn, path, body)
        except RuntimeError as exc:
            if "HTTP 503" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def _conn(endpoint: str) -> http.client.HTTPConnection:
    host, port = endpoint.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def _leader(endpoints: list[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ep in endpoints:
            try:
                st = _post(_conn(ep), "/v3/maintenance/status", {})
            except (OSError, RuntimeError, ValueError):
                continue
            if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                return ep
        time.sleep(0.2)
    raise RuntimeError("no leader")


# --------------------------------------------------------------------------- worker processes


def _threads(fn: Any, jobs: list[Any]) -> list[Any]:
    out: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        out[i] = fn(jobs[i])

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def _grant_job(job: tuple[str, int, int, bool]) -> list[str]:
    endpoint, count, ttl, with_key = job
    conn = _conn(endpoint)
    ids = []
    for _ in range(count):
        lid = _retry(conn, "/v3/lease/grant", {"TTL": ttl})["ID"]
        if with_key:
            key = base64.b64encode(f"lease/{lid}".encode()).decode()
            _retry(conn, "/v3/kv/put", {"key": key, "value": "dg==", "lease": lid})
        ids.append(lid)
    return ids


def _keepalive_job(job: tuple[str, list[str], float]) -> int:
    endpoint, ids, until = job
    conn = _conn(endpoint)
    n = 0
    while time.monotonic() < until:
        for lid in ids:
            r = _retry(conn, "/v3/lease/keepalive", {"ID": lid})
            if int(r["result"].get("TTL", 0)) <= 0:
                raise RuntimeError(f"lease {lid} lost during the benchmark")
            n += 1
            if time.monotonic() >= until:
                break
    return n


def _proc_grant(args: tuple[str, list[int], int, bool]) -> list[str]:
    endpoint, counts, ttl, with_key = args
    return [i for ids in _threads(_grant_job, [(endpoint, c, ttl, with_key) for c in counts]) for i in ids]


def _proc_keepalive(args: tuple[str, list[list[str]], float]) -> int:
    endpoint, groups, until = args
    return sum(_threads(_keepalive_job, [(endpoint, g, until) for g in groups]))


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def grant_many(
    pool: Any, endpoint: str, n: int, clients: int, procs: int, ttl: int, with_key: bool
) -> list[str]:
    counts = [len(c) for c in _split(list(range(n)), clients)]
    per_proc = _split(counts, procs)
    return [i for ids in pool.map(_proc_grant, [(endpoint, c, ttl, with_key) for c in per_proc]) for i in ids]


def keepalives_gateway(
    pool: Any, endpoint: str, ids: list[str], clients: int, procs: int, duration: float
) -> float:
    groups = _split(ids, clients)
    until = time.monotonic() + duration
    start = time.monotonic()
    total = sum(pool.map(_proc_keepalive, [(endpoint, g, until) for g in _split(groups, procs)]))
    return total / (time.monotonic() - start)


def keepalives_native(
    pool: Any, endpoint: str, ids: list[str], clients: int, procs: int, duration: float
) -> float:
    """trikv only: one CBOR WebSocket keep-alive stream per client connection, spread over the processes."""
    groups = _split([int(i) for i in ids], clients)
    until = time.time() + duration
    start = time.monotonic()
    total = sum(pool.map(_proc_native, [(endpoint, g, until) for g in _split(groups, procs)]))
    return total / (time.monotonic() - start)


def _proc_native(args: tuple[str, list[list[int]], float], window: int = 32) -> int:
    """One process's share: a Trio client connection + keep-alive stream per group, `window` in flight each."""
    import trio

    import trikv
    from trikv.api.lease import LeaseKeepAliveRequest

    endpoint, groups, wall_until = args

    async def main() -> int:
        done = 0
        until = trio.current_time() + (wall_until - time.time())

        async def client(group: list[int]) -> None:
            nonlocal done
            async with trikv.connect([endpoint]) as c:
                async with c.stream("lease_keepalive", LeaseKeepAliveRequest(group[0])) as st:
                    await st.receive()
                    sent = 0
                    for i in range(window):
                        await st.send(LeaseKeepAliveRequest(group[i % len(group)]))
                        sent += 1
                    while trio.current_time() < until:
                        resp = await st.receive()
                        if resp.ttl <= 0:
                            raise RuntimeError("lease lost during the benchmark")
                        done += 1
                        await st.send(LeaseKeepAliveRequest(group[sent % len(group)]))
                        sent += 1

        async with trio.open_nursery() as nursery:
            for g in groups:
                nursery.start_soon(client, g)
        return done

    return trio.run(main)


def _keepalive_once_job(job: tuple[str, list[str]]) -> None:
    endpoint, ids = job
    conn = _conn(endpoint)
    for lid in ids:
        _retry(conn, "/v3/lease/keepalive", {"ID": lid})


def _proc_keepalive_once(args: tuple[str, list[list[str]]]) -> None:
    endpoint, groups = args
    _threads(_keepalive_once_job, [(endpoint, g) for g in groups])


def expiry(pool: Any, endpoint: str, n: int, clients: int, procs: int, ttl: int) -> dict[str, float]:
    """Grant n leases (one key each) with a TTL longer than granting them takes, renew each once (so their
    TTLs end together, within one keep-alive round), stop renewing: time from the end of the TTL until none
    is left, and the put latency of one client meanwhile."""
    granted_at = time.monotonic()
    ids = grant_many(pool, endpoint, n, clients, procs, ttl, with_key=True)
    granted = time.monotonic()
    if granted - granted_at > ttl:
        raise RuntimeError(f"granting took {granted - granted_at:.0f} s, longer than the TTL {ttl} s")
    round_start = time.monotonic()
    pool.map(_proc_keepalive_once, [(endpoint, g) for g in _split(_split(ids, clients), procs)])
    renewed = time.monotonic()
    time.sleep(max(0.0, renewed + ttl - 2 - time.monotonic()))
    latencies: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        conn = _conn(endpoint)
        while not stop.is_set():
            t0 = time.monotonic()
            _retry(conn, "/v3/kv/put", {"key": "d3JpdGVy", "value": "dg=="})
            latencies.append(time.monotonic() - t0)
            time.sleep(0.01)

    w = threading.Thread(target=writer)
    w.start()
    conn = _conn(endpoint)
    try:
        while True:
            left = len(_post(conn, "/v3/lease/leases", {}).get("leases", []))
            if left == 0:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        w.join()
    gone = time.monotonic()
    latencies.sort()
    return {
        "grant_s": granted - granted_at,
        "renew_round_s": renewed - round_start,
        # the TTLs ended between round_start + ttl and renewed + ttl
        "expiry_s": gone - (renewed + ttl),
        "put_p50_ms": 1000 * statistics.median(latencies),
        "put_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "put_max_ms": 1000 * latencies[-1],
    }


def run_system(system: str, a: argparse.Namespace, pool: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in a.phases.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-lease-{system}-"))
        c = _cluster(system, workdir)
        c.start()
        try:
            leader = _leader(c.endpoints)
            if phase == "keepalive":
                ids = grant_many(pool, leader, a.leases, a.clients, a.procs, 600, with_key=False)
                out["gateway_keepalives_per_s"] = keepalives_gateway(
                    pool, leader, ids, a.clients, a.procs, a.duration
                )
                if system == "trikv":
                    out["stream_keepalives_per_s"] = keepalives_native(
                        pool, leader, ids, a.clients, a.procs, a.duration
                    )
            else:
                out.update(expiry(pool, leader, a.leases, a.clients, a.procs, a.expiry_ttl))
        finally:
            c.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default="trikv,etcd")
    p.add_argument("--leases", type=int, default=10000)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--phases", default="keepalive,expiry")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--expiry-ttl", type=int, default=90, help="TTL (s) of the expiry phase's leases")
    a = p.parse_args(argv)
    results = {}
    with multiprocessing.get_context("fork").Pool(a.procs) as pool:
        for system in a.systems.split(","):
            results[system] = run_system(system, a, pool)
            print(system, json.dumps(results[system]), file=sys.stderr)
    print(f"| {a.leases} leases, {a.clients} clients | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    rows = [
        ("keep-alives/s, JSON gateway", "gateway_keepalives_per_s", "{:,.0f}"),
        ("keep-alives/s, CBOR stream", "stream_keepalives_per_s", "{:,.0f}"),
        ("grant + put of all leases (s)", "grant_s", "{:.1f}"),
        ("renewing all once (s): the window their TTLs end in", "renew_round_s", "{:.1f}"),
        ("expiry: TTL end -> none left (s)", "expiry_s", "{:.1f}"),
        ("put p50 / p99 / max during expiry (ms)", None, ""),
    ]
    for label, key, fmt in rows:
        cells = []
        for r in results.values():
            if key is None and "put_p50_ms" not in r:
                cells.append("-")
            elif key is None:
                cells.append(f"{r['put_p50_ms']:.1f} / {r['put_p99_ms']:.1f} / {r['put_max_ms']:.0f}")
            else:
                cells.append(fmt.format(r[key]) if key in r else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
