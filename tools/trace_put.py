"""Where one put's time goes: a timestamp at each stage of the write path on all three members.

    python -m trikv.tools.trace_put                   # 200 sequential puts to the leader, 30 ms apart
    python -m trikv.tools.trace_put --puts 500 --gap 0.02
    python -m trikv.tools.trace_put --via follower    # through a follower, which forwards the proposal

Starts configs/node0..2.yaml (rewritten to free loopback ports and a temp dir) with each member run through
this module, which wraps a few methods of the write path with a timestamp (CLOCK_MONOTONIC, one clock for
every process on the machine) before starting the member as usual. Production code has no trace points.
Puts go one at a time to the leader through the Trio client, far enough apart that each stage of put k
falls between its request and the next put. Prints each stage's median (and p90) offset from the request
in ms, per role (leader, the first follower to see the append, the other follower).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRACE_FLAG = "--trace-out"  # member mode: `python -m trikv.tools.trace_put --trace-out FILE --config-file ...`


def _install(out_path: str) -> None:
    """Member mode: wrap the write path's stage methods so each appends 'stage t_ns' to out_path."""
    from trikv.actors import applyloop, events, kv, peer, raftnode
    from trikv.api.raftpb import MessageType

    out = open(out_path, "a", buffering=1)  # lives as long as the member

    def rec(stage: str) -> None:
        out.write(f"{stage} {time.monotonic_ns()}\n")

    def around(cls: Any, name: str, before: str | None, after: str | None) -> None:
        fn = getattr(cls, name)

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before:
                rec(before)
            result = await fn(*args, **kwargs)
            if after:
                rec(after)
            return result

        setattr(cls, name, wrapper)

    def before_sync(cls: Any, name: str, stage_of: Callable[..., str | None]) -> None:
        fn = getattr(cls, name)

        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any) -> Any:
            stage = stage_of(*args)
            if stage:
                rec(stage)
            return fn(self, *args)

        setattr(cls, name, wrapper)

    def sent(msgs: list[Any]) -> str | None:
        kinds = {m.type for m in msgs}
        if MessageType.PROP in kinds:
            return "proposal forwarded"
        if MessageType.APP in kinds:
            return "appends sent" if any(m.entries for m in msgs) else "commit sent"
        if MessageType.APP_RESP in kinds:
            return "append responses sent"
        return None

    def delivered(m: Any) -> str | None:
        if m.type == MessageType.PROP:
            return "proposal received"
        if m.type == MessageType.APP:
            return "append received" if m.entries else "commit received"
        if m.type == MessageType.APP_RESP:
            return "append response received"
        return None

    around(kv.KVApi, "write", "request in", "answered")
    def in_loop(ev: Any) -> str | None:
        if isinstance(ev, events.Propose):
            return "proposal in Raft loop"
        if getattr(ev, "type", None) == MessageType.APP_RESP:
            return "append response in Raft loop"
        if getattr(ev, "type", None) == MessageType.APP and not ev.entries:
            return "commit in Raft loop"
        return None

    before_sync(raftnode.RaftNode, "_handle", in_loop)
    around(raftnode.RaftNode, "_handle_ready", "Ready handling", None)
    before_sync(peer.Transport, "send", sent)
    before_sync(events.Inbox, "deliver", delivered)
    around(raftnode.RaftNode, "_sync_wal", None, "WAL fsync done")
    around(applyloop.ApplyLoop, "submit", "committed, handed to apply", None)
    around(applyloop.ApplyLoop, "_handle", None, "applied")


async def _puts(endpoints: list[str], n: int, gap: float, via: str) -> tuple[str, str, list[tuple[int, int]]]:
    import trio

    import trikv

    async with trikv.connect(endpoints) as c:
        st = await c.status()
        leader = st.leader
        members = (await c.member_list()).members
        leader_ep = next(m.client_urls[0] for m in members if m.id == leader).removeprefix("http://")
        target = leader_ep
        if via == "follower":
            target = next(m.client_urls[0] for m in members if m.id != leader).removeprefix("http://")
    windows: list[tuple[int, int]] = []
    async with trikv.connect([target]) as c:
        for i in range(20):  # warm up
            await c.put(f"/trace/warm{i}", b"v" * 256)
        for i in range(n):
            t0 = time.monotonic_ns()
            await c.put(f"/trace/{i:06d}", b"v" * 256)
            windows.append((t0, time.monotonic_ns()))
            await trio.sleep(gap)
    return leader_ep, target, windows


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == [TRACE_FLAG]:
        _install(args_in[1])
        from trikv.actors.main import main as member_main

        return member_main(args_in[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--puts", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.03, help="seconds between puts")
    ap.add_argument("--via", choices=("leader", "follower"), default="leader", help="the member the client talks to")
    args = ap.parse_args(args_in)

    import trio

    from trikv.tools.localcluster import Cluster

    with tempfile.TemporaryDirectory(prefix="trikv-trace-") as tmp:
        cluster = Cluster(Path(tmp))
        for m in cluster:
            m.command = (sys.executable, "-m", "trikv.tools.trace_put", TRACE_FLAG, str(Path(tmp) / f"{m.name}.trace"))
        cluster.start()
        try:
            time.sleep(3.0)
            leader_ep, target, windows = trio.run(_puts, cluster.endpoints, args.puts, args.gap, args.via)
        finally:
            for m in cluster:
                m.terminate()
        traces = {m.endpoint: _read(Path(tmp) / f"{m.name}.trace") for m in cluster}
    print(_report(traces, leader_ep, target, windows))
    return 0


def _read(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        stage, _, t = line.rpartition(" ")
        rows.append((stage, int(t)))
    return rows


def _report(
    traces: dict[str, list[tuple[str, int]]], leader_ep: str, target: str, windows: list[tuple[int, int]]
) -> str:
    """Per put: each member's first time at each stage inside the put's window, as ms after the request."""
    offsets: dict[tuple[str, str], list[float]] = {}
    order: list[tuple[str, str]] = []
    for k, (t0, t1) in enumerate(windows):
        end = windows[k + 1][0] if k + 1 < len(windows) else t1 + 5_000_000
        firsts: dict[str, dict[str, int]] = {}
        for ep, events in traces.items():
            seen: dict[str, int] = {}
            for stage, t in events:
                if t0 <= t < end and stage not in seen:
                    seen[stage] = t
            firsts[ep] = seen
        followers = sorted(
            (ep for ep in traces if ep != leader_ep),
            key=lambda ep: firsts[ep].get("append received", 1 << 62),
        )
        if target == leader_ep:
            roles = {leader_ep: "leader", followers[0]: "follower 1", followers[1]: "follower 2"}
        else:
            other = next(ep for ep in followers if ep != target)
            roles = {leader_ep: "leader", target: "proposer (follower)", other: "other follower"}
        for ep, seen in firsts.items():
            for stage, t in seen.items():
                key = (roles[ep], stage)
                if key not in offsets:
                    offsets[key] = []
                    order.append(key)
                offsets[key].append((t - t0) / 1e6)
        offsets.setdefault(("client", "answer received"), []).append((t1 - t0) / 1e6)
    rows = sorted(offsets.items(), key=lambda kv: statistics.median(kv[1]))
    lines = [
        f"{len(windows)} sequential puts (256-byte values) to the {'leader' if target == leader_ep else 'follower'};"
        " ms after the client sent each one",
        "| stage | member | median ms | p90 ms |",
        "|---|---|---|---|",
    ]
    for (role, stage), vals in rows:
        vals.sort()
        p90 = vals[min(len(vals) - 1, int(0.9 * len(vals)))]
        lines.append(f"| {stage} | {role} | {statistics.median(vals):.2f} | {p90:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
