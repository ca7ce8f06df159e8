"""One robustness run: a real cluster, the workload and the nemeses for D seconds, heal, settle, check.

`run(RunConfig(seed=...))` starts N members (real processes on 127.0.0.1 with the test plugin), runs the
recording clients and the seeded fault schedule together in one trio run, heals every fault, waits until
every member has applied the same index, takes the final state (linearizable reads of every key, recorded
as `final` ops; HashKV of every member at one revision), writes the history and runs the checkers. A failing
run leaves its history, the minimal violating sub-histories and the members' logs in `out`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import attrs
import trio
import yaml

import trikv
from trikv.api.maintenance import HASHKV_OP, HashKVRequest, HashKVResponse
from trikv.tools.localcluster import CONFIGS, Cluster
from trikv.tools.robustness import workload
from trikv.tools.robustness.history import History
from trikv.tools.robustness.nemesis import DEFAULT_NEMESES, Nemesis, Step, schedule
from trikv.tools.robustness.scripted import ScriptedNemesis

SETTLE_TIMEOUT = 30.0
SETTLE_STUCK = 8.0  # every member answering the same unequal (leader, applied index) this long: stuck
START_TIMEOUT = 60.0  # a member's port open after its start (3-5 fresh interpreters on a loaded 2-core box)
WATCH_CATCHUP = 15.0
ELECTION_TIMEOUT = 1.0  # the members' election-timeout (configs/ default), for the lease checker's slack


@attrs.frozen
class RunConfig:
    seed: int
    duration: float = 8.0
    members: int = 3
    nemeses: tuple[str, ...] = DEFAULT_NEMESES
    plant: str | None = None
    out: Path | None = None  # where a failing run's history and logs go (None: nowhere)
    keep: bool = False  # keep the run's directory (data, logs, history) even when it passed
    check_budget: float = 60.0
    snapshot_count: int = 200  # low, so lagging followers get snapshots and snapshot failpoints are hit
    load: workload.Config = attrs.Factory(workload.Config)
    steps: tuple[Step, ...] | None = (
        None  # a scripted fault schedule instead of the seed's (planted-bug runs)
    )


@attrs.define
class RunResult:
    seed: int
    ok: bool = False
    ops: int = 0
    faults: dict[str, int] = attrs.Factory(dict)
    violations: list[str] = attrs.Factory(list)
    lost: int = 0  # acknowledged writes lost
    watch_violations: int = 0
    lease_violations: int = 0
    hash_mismatch: bool = False
    checks: dict[str, str] = attrs.Factory(dict)  # checker -> "ok" | "undecided" | "N violations"
    error: str | None = None  # the run itself broke (cluster did not start or settle)
    elapsed: float = 0.0
    saved: str | None = None  # directory holding a failing run's history and logs

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def member_configs(n: int, workdir: Path) -> list[Path]:
    """configs/node0..2.yaml for 3 members; for another size, the same shape with n names."""
    if n == 3:
        return [CONFIGS / f"node{i}.yaml" for i in range(3)]
    base = yaml.safe_load((CONFIGS / "node0.yaml").read_text())
    names = [f"etcdnode{i}" for i in range(n)]
    cluster = ",".join(f"{name}=http://127.0.0.1:{2380 + 10000 * i}" for i, name in enumerate(names))
    paths = []
    (workdir / "src").mkdir(parents=True, exist_ok=True)
    for name in names:
        cfg = {**base, "name": name, "initial-cluster": cluster, "initial-cluster-state": "new"}
        path = workdir / "src" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        paths.append(path)
    return paths


def run(cfg: RunConfig) -> RunResult:
    """One seeded run, start to verdict; never raises for a cluster that misbehaves (that is the result)."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"trikv-robust-{cfg.seed}-"))
    result = RunResult(cfg.seed)
    history: History | None = None
    cluster = Cluster(
        workdir,
        member_configs(cfg.members, workdir),
        token=f"robust-{cfg.seed}",
        overrides={"log-level": "info", "snapshot-count": cfg.snapshot_count},
    )
    rec = workload.Recorder(
        History(
            seed=cfg.seed,
            members=[m.name for m in cluster],
            params={"election_timeout_s": ELECTION_TIMEOUT, "duration": cfg.duration},
        )
    )
    nemesis = ScriptedNemesis(
        cluster.members, rec, None, workdir, cfg.seed, (cfg.plant,) if cfg.plant else ()
    )
    nemesis.prepare()
    try:
        start(cluster)
        hashes, unsettled = trio.run(_run_async, cfg, cluster, rec, nemesis)
        history = rec.history
        if unsettled is not None:
            result.violations.append(unsettled)
            dump_stacks(cluster, workdir)
        judge(result, history, hashes, cfg.check_budget, workdir)
    except Exception as exc:  # the harness reports a broken run; it never hides it as a pass
        result.error = describe(exc)
        result.violations.append(f"run error: {result.error}")
        (workdir / "error.txt").write_text(traceback.format_exc())
        history = rec.history
    finally:
        cluster.stop()
        result.faults = dict(nemesis.counts)
    result.ops = sum(1 for op in rec.history.ops if not op.final)
    result.ok = not result.violations and result.error is None
    if history is not None and (not result.ok or cfg.keep):
        history.dump(workdir / "history.jsonl")
    if not result.ok and cfg.out is not None:
        dest = cfg.out / f"seed-{cfg.seed}"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(workdir, dest, ignore=shutil.ignore_patterns("data"))
        result.saved = str(dest)
    if not cfg.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        result.saved = result.saved or str(workdir)
    result.elapsed = round(time.monotonic() - started, 2)
    return result


def describe(exc: BaseException) -> str:
    """The innermost exceptions of a (nested) exception group, one line: what actually went wrong."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def start(cluster: Cluster) -> None:
    """Start every member, then wait for each one's client port (Cluster.start allows only 20 s each)."""
    for m in cluster:
        m.start()
    for m in cluster:
        m.wait_ready(START_TIMEOUT)


def judge(result: RunResult, history: History, hashes: dict[str, Any], budget: float, workdir: Path) -> None:
    """Run the checkers; fold their verdicts and the HashKV comparison into the result."""
    from trikv.tools.robustness.checks import check_all

    distinct = {v for v in hashes.values()}
    if len(distinct) != 1 or any(isinstance(v, str) for v in distinct):
        result.hash_mismatch = True
        result.violations.append(f"HashKV differs between members at one revision: {hashes}")
    for cr in check_all(history, budget):
        if cr.undecided:
            result.checks[cr.name] = "undecided"
            result.violations.append(f"{cr.name}: undecided within {budget}s")
        elif not cr.ok:
            result.checks[cr.name] = f"{len(cr.violations)} violations"
            result.violations.extend(f"{cr.name}: {v}" for v in cr.violations[:20])
        else:
            result.checks[cr.name] = "ok"
        n = len(cr.violations) if not cr.ok else 0
        if cr.name == "watch":
            result.watch_violations += n
        elif cr.name == "lease":
            result.lease_violations += n
        if "lost-write" in getattr(cr, "kinds", ()):  # check_rules' final reads that miss an acked write
            result.lost += sum(1 for v in cr.violations if v.startswith("final read op"))
        if cr.minimal is not None and not cr.ok:
            cr.minimal.dump(workdir / f"minimal-{cr.name}.jsonl")


async def _run_async(
    cfg: RunConfig, cluster: Cluster, rec: workload.Recorder, nemesis: Nemesis
) -> tuple[dict[str, Any], str | None]:
    endpoints = cluster.endpoints
    async with trikv.connect(endpoints, request_timeout=3.0, lazy=True) as admin:
        nemesis.admin = admin
        await wait_leader(nemesis)
        steps = (
            list(cfg.steps)
            if cfg.steps is not None
            else schedule(cfg.seed, cfg.duration, cfg.nemeses, cfg.members)
        )
        t0 = time.monotonic()
        stop_at = t0 + cfg.duration
        async with trio.open_nursery() as watchers:
            for w in range(cfg.load.watchers):
                watcher = workload.Watcher(rec, w, workload.rotated(endpoints, w))
                watchers.start_soon(_watch, watcher, endpoints)
            async with trio.open_nursery() as work:
                work.start_soon(workload.run_clients, rec, endpoints, cfg.seed, stop_at, cfg.load)
                work.start_soon(nemesis.run, steps, t0, stop_at)
            await nemesis.heal_all()
            unsettled = await settle(nemesis)
            cid = cfg.load.kv_clients + cfg.load.lease_clients
            final_rev = await workload.final_reads(rec, endpoints, cid)
            with trio.move_on_after(WATCH_CATCHUP):
                while min(rec.watched.values(), default=final_rev) < final_rev:
                    await trio.sleep(0.1)
            watchers.cancel_scope.cancel()
        return await hash_all(admin, endpoints, final_rev), unsettled


async def _watch(watcher: workload.Watcher, endpoints: list[str]) -> None:
    async with trikv.connect(endpoints, request_timeout=3.0, lazy=True) as c:
        await watcher.run(c)


async def wait_leader(nemesis: Nemesis, timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while await nemesis.leader() is None:
            await trio.sleep(0.1)


async def settle(nemesis: Nemesis) -> str | None:
    """Every member up, one leader named by all, the same applied index everywhere (no writes are running).

    A cluster that does not get there within SETTLE_TIMEOUT after every fault healed is a finding (a member
    that diverged, a lost leader), not a broken run: the returned violation says what each member reported,
    and the final reads and checkers still run."""
    last: list[tuple[int, int]] = []
    since = time.monotonic()
    with trio.move_on_after(SETTLE_TIMEOUT):
        while True:
            seen = []
            for m in nemesis.members:
                with trio.move_on_after(1.0):
                    try:
                        st = await nemesis.api.status(m.endpoint)
                        seen.append((st.leader, st.raft_applied_index))
                    except Exception:
                        pass
            if seen != last:
                last, since = seen, time.monotonic()
            if len(seen) == len(nemesis.members):
                if len(set(seen)) == 1 and seen[0][0]:
                    return None
                if time.monotonic() - since > SETTLE_STUCK:
                    break  # all up, nothing moving, not equal: it will not converge by waiting
            await trio.sleep(0.2)
    return (
        "the members did not converge after every fault healed: "
        f"(leader, applied index) of those that answered: {last}"
    )


def dump_stacks(cluster: Cluster, workdir: Path) -> None:
    """Every live member's thread stacks (py-spy dump, when installed) next to its log: what a member that
    did not converge was waiting for."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return
    for m in cluster:
        if m.proc is None or m.proc.poll() is not None:
            continue
        try:
            out = subprocess.run(
                [spy, "dump", "--locals", "-p", str(m.proc.pid)], capture_output=True, text=True, timeout=30
            )
            (workdir / f"{m.name}.stacks.txt").write_text(out.stdout + out.stderr)
        except (OSError, subprocess.SubprocessError) as exc:
            (workdir / f"{m.name}.stacks.txt").write_text(f"py-spy dump failed: {exc}\n")


async def hash_all(admin: trikv.Client, endpoints: list[str], rev: int) -> dict[str, Any]:
    """Each member's (hash, compact revision) at `rev`, or the error text when it cannot say."""
    out: dict[str, Any] = {}
    for ep in endpoints:
        last: Exception | None = None
        for _ in range(20):  # a member still applying the last entries says "future revision": wait
            try:
                r = await admin._call(
                    HASHKV_OP, HashKVRequest(rev), HashKVResponse, idempotent=True, endpoint=ep
                )
                out[ep] = (r.hash, r.compact_revision)
                break
            except Exception as exc:
                last = exc
                await trio.sleep(0.25)
        else:
            out[ep] = f"error: {last}"
    return out


def plant_config(plant: str, seed: int = 0, **changes: Any) -> RunConfig:
    """The scripted run that catches planted bug `plant` reliably; the same run without the plant passes.

    Each scenario sets up what the bug needs to show: a follower cut off, puts through the leader, then
    reads of the same keys through the follower (read_without_read_index); a leader cut off, six puts sent through it at once, then
    killed (put_ack_before_quorum_fsync: acknowledged, they collide with the new leader's revisions); restarts with the whole log still in the WAL (reapply_after_restart);
    nothing at all (watch_skip_revision); a lease kept alive every second across a leader transfer
    (lease_early_expiry_after_leader_change). The decisive steps are in scripted.py."""
    scenarios: dict[str, dict[str, Any]] = {
        "put_ack_before_quorum_fsync": {
            "steps": (Step(1.5, "isolate_kill", "leader", 1.5, {"writes": 6}),),
            "load": workload.Config(kv_clients=6, lease_clients=0, reads=0.0, pinned=True),
            "duration": 6.0,
        },
        "read_without_read_index": {
            "steps": (Step(1.5, "stale_read", "follower", 3.0, {"writes": 4}),),
            "load": workload.Config(kv_clients=6, reads=0.8, pinned=True),
            "duration": 6.0,
        },
        "reapply_after_restart": {
            "steps": (Step(2.0, "kill", "0", 0.5), Step(4.5, "kill", "1", 0.5)),
            "snapshot_count": 100_000,
            "duration": 7.0,
        },
        "watch_skip_revision": {"steps": (), "duration": 4.0},
        "lease_early_expiry_after_leader_change": {
            "steps": (Step(1.5, "lease_leader_change", "leader", 3.0, {"ttl": 6}),),
            "load": workload.Config(lease_clients=3),
            "duration": 6.0,
        },
    }
    return RunConfig(seed=seed, plant=plant, **{**scenarios[plant], **changes})
