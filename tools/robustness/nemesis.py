"""Nemeses: a seeded schedule of faults, one at a time, each healed before the next, recorded in the history.

`schedule(seed, ...)` draws every choice (kind, target, hold time, mode) from random.Random(seed), so a seed
fixes the fault schedule; only "leader" targets are resolved when the step runs. `Nemesis.run` executes the
steps against real member processes: signals (SIGKILL + restart, SIGSTOP/SIGCONT), the test plugin's control
file (peer faults, failpoints, clocks), the WAL (a torn tail after a crash before fsync), and the client API
(leader transfers, compaction, defrag, member remove/add). Faults never overlap, so a 3-member cluster keeps a
quorum except while a crash is being restarted.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import attrs
import trio
import yaml

import trikv
from trikv.api.protocol import MoveLeaderRequest, MoveLeaderResponse
from trikv.api.snapshot import DefragmentRequest, DefragmentResponse
from trikv.tools.localcluster import Member
from trikv.tools.robustness.history import Fault
from trikv.tools.robustness.torn import tear_tail
from trikv.tools.robustness.workload import Recorder

NEMESES = ("kill", "pause", "peer", "failpoint", "torn", "transfer", "membership", "clock")
DEFAULT_NEMESES = ("kill", "pause", "peer", "failpoint", "torn", "transfer", "clock")
ISOLATED_WRITER = (
    99  # the client id of the puts a scripted isolate_kill step sends through the cut-off member
)
MEMBERSHIP_MIN_DURATION = 20.0  # member remove/add only in runs at least this long
PEER_MODES = ("isolate", "drop", "delay", "oneway_out", "oneway_in", "stall")
# Failpoints hit all the time under load (crash at the Nth hit), and those a maintenance action triggers.
BUSY_POINTS = (
    "wal.before_fsync",
    "wal.after_fsync",
    "apply.before",
    "apply.after",
    "backend.commit.before",
    "backend.commit.after",
)
SLEEP_POINTS = ("wal.after_fsync", "apply.before", "backend.commit.before", "backend.commit.after")
MAINT_POINTS = (
    "compact.step",
    "defrag.during",
    "snapshot.send",
    "snapshot.install.before",
    "snapshot.install.after",
)


@attrs.frozen
class Step:
    """One fault: start `at` seconds into the workload, on `target` ("leader" or a member index), undone after
    `hold` seconds; `params` holds the kind's seeded choices."""

    at: float
    kind: str
    target: str
    hold: float
    params: dict[str, Any] = attrs.Factory(dict)


def schedule(seed: int, duration: float, nemeses: tuple[str, ...], members: int) -> list[Step]:
    """The fault schedule of a seed (the same seed, the same schedule)."""
    rng = random.Random(f"{seed}/nemesis")
    kinds = [k for k in nemeses if k != "membership" or duration >= MEMBERSHIP_MIN_DURATION]
    steps: list[Step] = []
    t = rng.uniform(0.5, 1.5)
    while kinds and t < duration - 1.0:
        kind = rng.choice(kinds)
        target = "leader" if rng.random() < 0.5 else str(rng.randrange(members))
        hold = round(rng.uniform(0.5, 2.5), 2)
        params: dict[str, Any] = {}
        if kind == "peer":
            params = {"mode": rng.choice(PEER_MODES), "other": rng.randrange(members)}
        elif kind == "failpoint":
            r = rng.random()
            if r < 0.45:
                params = {"point": rng.choice(BUSY_POINTS), "action": f"crash:{rng.randint(1, 40)}"}
            elif r < 0.7:
                params = {"point": rng.choice(SLEEP_POINTS), "action": f"sleep:{rng.uniform(0.05, 0.6):.2f}"}
            else:
                params = {
                    "point": rng.choice(MAINT_POINTS),
                    "action": "crash",
                    "other": rng.randrange(members),
                }
        elif kind == "torn":
            params = {"tear_seed": rng.randrange(1 << 30)}
        elif kind == "clock":
            params = {
                "lessor_rate": round(rng.uniform(0.9, 1.0), 3),
                "lessor_offset": round(rng.uniform(-1, 0), 3),
            }
            params["ticker_rate"] = round(rng.choice((0.5, 0.75, 1.5, 2.0)), 2)
        elif kind == "membership":
            target = str(rng.randrange(members))  # never "leader": removing the leader is another scenario
        steps.append(Step(round(t, 2), kind, target, hold, params))
        t += hold + rng.uniform(1.0, 2.0)  # time to recover before the next fault
    return steps


class Nemesis:
    """Executes a schedule against the cluster's members and records each fault in the history."""

    def __init__(
        self,
        members: list[Member],
        rec: Recorder,
        admin: trikv.Client | None,
        workdir: Path,
        seed: int,
        plants: tuple[str, ...] = (),
    ) -> None:
        self.members = members
        self.rec = rec
        self.admin = admin
        self.workdir = workdir
        self.seed = seed
        self.plants = plants
        self.control: dict[str, dict[str, Any]] = {m.name: {} for m in members}
        self.paused: set[str] = set()
        self.ids: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    @property
    def api(self) -> trikv.Client:
        """The runner's admin client (set once the trio run has one)."""
        assert self.admin is not None, "Nemesis.admin is set by the runner before the run"
        return self.admin

    # ----------------------------------------------------------------- the control files

    def faults_path(self, m: Member) -> Path:
        return self.workdir / f"{m.name}.faults.json"

    def prepare(self) -> None:
        """Plugin environment and a control file (plants, seed) for every member, before they start."""
        for m in self.members:
            m.env.update(
                {"TRIKV_TEST_PLUGIN": "trikv.testing.plugin", "TRIKV_TEST_FAULTS": str(self.faults_path(m))}
            )
            self.write(m)

    def write(self, m: Member) -> None:
        doc = {"plants": list(self.plants), "seed": self.seed, **self.control[m.name]}
        tmp = self.faults_path(m).with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.faults_path(m))

    def set_control(self, m: Member, **parts: Any) -> None:
        self.control[m.name] = {k: v for k, v in parts.items() if v}
        self.write(m)

    # ----------------------------------------------------------------- cluster queries

    async def refresh_ids(self) -> None:
        with trio.move_on_after(3):
            resp = await self.api.member_list()
            by_url = {u: mem.id for mem in resp.members for u in mem.peer_urls}
            for m in self.members:
                mid = by_url.get(f"http://127.0.0.1:{m.peer_port}")
                if mid:
                    self.ids[m.name] = mid

    async def leader(self) -> Member | None:
        """The member the live members name as leader (highest term wins), or None."""
        best: tuple[int, int] | None = None
        for m in self.members:
            if not m.alive or m.name in self.paused:
                continue
            with trio.move_on_after(1.0):
                try:
                    st = await self.api.status(m.endpoint)
                except Exception:
                    continue
                if st.leader and (best is None or st.raft_term > best[0]):
                    best = (st.raft_term, st.leader)
        if best is None:
            return None
        if best[1] not in self.ids.values():
            await self.refresh_ids()
        return next((m for m in self.members if self.ids.get(m.name) == best[1]), None)

    async def resolve(self, target: str, rng: random.Random) -> Member:
        if target == "follower":  # any live member but the leader (scripted steps)
            lead = await self.leader()
            return rng.choice([o for o in self.members if o is not lead and o.alive] or self.members)
        if target == "leader":
            found = await self.leader()
            if found is not None:
                return found
            return rng.choice(self.members)
        return self.members[int(target) % len(self.members)]

    # ----------------------------------------------------------------- process control

    async def wait_dead(self, m: Member, timeout: float) -> bool:
        with trio.move_on_after(timeout):
            while m.alive:
                await trio.sleep(0.05)
            return True
        return False

    async def restart(self, m: Member) -> None:
        if m.alive:
            return
        m.start()
        with trio.move_on_after(30):
            while True:
                try:
                    await trio.open_tcp_stream("127.0.0.1", m.client_port)
                    return
                except OSError:
                    await trio.sleep(0.1)
                if not m.alive:
                    m.start()  # it died during start-up (a failpoint left on, a port race): again

    async def kill(self, m: Member) -> None:
        if m.alive:
            assert m.proc is not None
            m.proc.send_signal(signal.SIGKILL)
            await self.wait_dead(m, 10)

    def signal(self, m: Member, sig: int) -> None:
        if m.alive:
            assert m.proc is not None
            m.proc.send_signal(sig)

    # ----------------------------------------------------------------- running the schedule

    async def run(self, steps: list[Step], t0: float, stop_at: float) -> None:
        rng = random.Random(f"{self.seed}/nemesis/run")
        await self.refresh_ids()
        for step in steps:
            start = t0 + step.at
            if start >= stop_at or time.monotonic() >= stop_at:
                break  # the clients have stopped (slow steps, e.g. member remove/add, push later ones out)
            await trio.sleep(max(0.0, start - time.monotonic()))
            m = await self.resolve(step.target, rng)
            at = time.monotonic()
            detail = await getattr(self, f"do_{step.kind}")(m, step, rng)
            self.rec.history.faults.append(Fault(at, step.kind, m.name, detail, time.monotonic()))
            self.counts[step.kind] = self.counts.get(step.kind, 0) + 1

    async def heal_all(self) -> None:
        """Every member running, unpaused, with no fault in its control file (plants stay)."""
        for m in self.members:
            if m.name in self.paused:
                self.signal(m, signal.SIGCONT)
                self.paused.discard(m.name)
            if self.control[m.name]:
                self.set_control(m)
        for m in self.members:
            await self.restart(m)

    # ----------------------------------------------------------------- the nemeses

    async def do_kill(self, m: Member, step: Step, rng: random.Random) -> str:
        await self.kill(m)
        await trio.sleep(step.hold)
        await self.restart(m)
        return f"SIGKILL, restarted after {step.hold}s"

    async def do_pause(self, m: Member, step: Step, rng: random.Random) -> str:
        self.signal(m, signal.SIGSTOP)
        self.paused.add(m.name)
        try:
            await trio.sleep(step.hold)
        finally:
            self.signal(m, signal.SIGCONT)
            self.paused.discard(m.name)
        return f"SIGSTOP for {step.hold}s"

    async def do_peer(self, m: Member, step: Step, rng: random.Random) -> str:
        mode = step.params["mode"]
        others = [o.name for o in self.members if o is not m]
        other = others[step.params["other"] % len(others)]
        all_ = {"*": {"drop": 1.0}}
        modes: dict[str, dict[str, Any]] = {
            "isolate": {"peers": {"out": all_, "in": all_}},
            "drop": {"peers": {"out": {"*": {"drop": 0.3}}, "in": {"*": {"drop": 0.3}}}},
            "delay": {"peers": {"out": {"*": {"delay": [0.01, 0.15]}}}},
            "oneway_out": {"peers": {"out": all_}},
            "oneway_in": {"peers": {"in": all_}},
            "stall": {"stall": [other]},
        }
        parts = modes[mode]
        self.set_control(m, **parts)
        await trio.sleep(step.hold)
        self.set_control(m)
        return f"{mode}{' ' + other if mode == 'stall' else ''} for {step.hold}s"

    async def do_clock(self, m: Member, step: Step, rng: random.Random) -> str:
        p = step.params
        clock = {
            "lessor": {"rate": p["lessor_rate"], "offset": p["lessor_offset"]},
            "ticker": {"rate": p["ticker_rate"]},
        }
        self.set_control(m, clock=clock)
        await trio.sleep(step.hold)
        self.set_control(m)
        return f"{json.dumps(clock, sort_keys=True)} for {step.hold}s"

    async def move_leader(self, leader: Member, to: Member) -> bool:
        """Ask `leader` to hand the leadership to `to`; False when it did not (not leader, timed out)."""
        with trio.move_on_after(2):
            try:
                await self.api._call(  # a fixed endpoint: the leader
                    "move_leader",
                    MoveLeaderRequest(self.ids[to.name]),
                    MoveLeaderResponse,
                    idempotent=False,
                    endpoint=leader.endpoint,
                )
                return True
            except Exception:
                pass
        return False

    async def do_transfer(self, m: Member, step: Step, rng: random.Random) -> str:
        """A leader-transfer storm: move the leadership to a random other member every 0.2-0.5 s."""
        end = time.monotonic() + step.hold
        moves = 0
        while time.monotonic() < end:
            leader = await self.leader()
            if leader is not None:
                targets = [o for o in self.members if o is not leader and o.alive and o.name in self.ids]
                if targets:
                    to = rng.choice(targets)
                    if await self.move_leader(leader, to):
                        moves += 1
            await trio.sleep(rng.uniform(0.2, 0.5))
        return f"{moves} leader transfers in {step.hold}s"

    async def do_torn(self, m: Member, step: Step, rng: random.Random) -> str:
        """Crash before a WAL fsync, add a torn (partially written) record at the log's end, restart."""
        self.set_control(m, failpoints={"wal.before_fsync": "crash"})
        died = await self.wait_dead(m, 5)
        self.set_control(m)
        if not died:
            return "wal.before_fsync not hit"
        detail = tear_tail(wal_dir(m), random.Random(step.params["tear_seed"]))
        await trio.sleep(step.hold)
        await self.restart(m)
        return f"crash at wal.before_fsync; {detail}"

    async def do_failpoint(self, m: Member, step: Step, rng: random.Random) -> str:
        point, action = step.params["point"], step.params["action"]
        if action.startswith("sleep"):
            self.set_control(m, failpoints={point: action})
            await trio.sleep(step.hold)
            self.set_control(m)
            return f"{point}={action} for {step.hold}s"
        if point == "snapshot.send":
            leader = await self.leader()
            m = leader or m
        self.set_control(m, failpoints={point: action})
        await self.trigger(m, point, step)
        died = await self.wait_dead(m, 4)
        self.set_control(m)
        if died:
            await trio.sleep(step.hold)
            await self.restart(m)
        return f"{point}={action} on {m.name}: {'crashed, restarted' if died else 'not hit'}"

    async def trigger(self, m: Member, point: str, step: Step) -> None:
        """Make the member reach a maintenance failpoint: compaction, defrag, or a snapshot to a lagger."""
        with trio.move_on_after(5):
            try:
                if point == "compact.step":
                    rev = min(self.rec.watched.values(), default=0) - 5
                    if rev > 1:
                        await self.api.compact(rev, physical=False)
                elif point == "defrag.during":
                    await self.api._call(  # a fixed endpoint: the member under test
                        "defragment",
                        DefragmentRequest(),
                        DefragmentResponse,
                        idempotent=False,
                        endpoint=m.endpoint,
                    )
                elif point.startswith("snapshot."):
                    # a follower cut off long enough to need a snapshot (snapshot-count is low in these runs)
                    others = [o for o in self.members if o is not m]
                    lagger = (
                        m
                        if point.startswith("snapshot.install")
                        else others[step.params["other"] % len(others)]
                    )
                    if lagger.name == (await self.leader() or m).name:
                        return
                    all_ = {"*": {"drop": 1.0}}
                    keep = dict(self.control[lagger.name])
                    self.set_control(lagger, **keep, peers={"out": all_, "in": all_})
                    await trio.sleep(3.0)
                    self.set_control(lagger, **keep)
            except Exception:
                pass

    async def do_membership(self, m: Member, step: Step, rng: random.Random) -> str:
        """Remove a follower, wipe it, add it back as a new member (state `existing`) while clients write."""
        leader = await self.leader()
        if leader is m:
            others = [o for o in self.members if o is not m]
            m = others[int(step.target) % len(others)]
        await self.refresh_ids()
        mid = self.ids.get(m.name)
        if mid is None:
            return "member id unknown"
        try:
            with trio.fail_after(10):
                await self.api.member_remove(mid)
        except Exception as exc:
            return f"remove failed: {exc}"
        await self.wait_dead(m, 10)
        await self.kill(m)
        cfg = yaml.safe_load(m.config_path.read_text())
        for d in ("data-dir", "wal-dir"):
            shutil.rmtree(cfg[d], ignore_errors=True)
        cfg["initial-cluster-state"] = "existing"
        m.config_path.write_text(yaml.safe_dump(cfg))
        await trio.sleep(step.hold)
        try:
            with trio.fail_after(10):
                await self.api.member_add([f"http://127.0.0.1:{m.peer_port}"])
        except Exception as exc:
            return f"removed {mid:x}; add failed: {exc}"
        await self.restart(m)
        await self.refresh_ids()
        return f"removed {mid:x}, wiped, added back as {self.ids.get(m.name, 0):x}"


def wal_dir(m: Member) -> Path:
    cfg = yaml.safe_load(m.config_path.read_text())
    return Path(cfg["wal-dir"])
