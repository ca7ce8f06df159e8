"""CPU per Raft message over a real peer link (Transport -> loopback WebSocket -> PeerServer -> inbox).

    python -m trikv.tools.bench_peer                 # 20,000 ping-pong round trips + a 64-deep pipeline
    python -m trikv.tools.bench_peer --messages 5000 --json

Two members' peer actors in one process and one Trio loop, no Raft: member A's Transport sends an append
(one 256-byte entry, the shape of a put) to B; B's PeerServer puts it in B's inbox; a stand-in Raft loop
answers with an append response through B's Transport, and so on. The figure is process CPU time
(time.process_time) per message delivered, so it measures what the link costs, not how busy the machine is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import trio

from trikv.actors.events import Inbox
from trikv.actors.peer import Transport
from trikv.actors.peer_server import PeerServer
from trikv.actors.peerwire import ClusterView
from trikv.api.protocol import Member
from trikv.api.raftpb import Message, MessageType
from trikv.api.records import Entry

A, B, CLUSTER = 0xA1, 0xB2, 0xC1


def _app(i: int) -> Message:
    entry = Entry(term=2, index=i + 1, data=b"v" * 256)
    return Message(MessageType.APP, to=B, frm=A, term=2, log_term=2, index=i, entries=(entry,), commit=i)


def _resp(i: int) -> Message:
    return Message(MessageType.APP_RESP, to=A, frm=B, term=2, index=i + 1)


async def _run(messages: int, depth: int) -> dict[str, Any]:
    ports: dict[int, int] = {}
    members: dict[int, Member] = {}
    view = {
        mid: ClusterView(mid, CLUSTER, members=lambda: members, removed=set) for mid in (A, B)
    }
    inbox = {mid: Inbox() for mid in (A, B)}
    async with trio.open_nursery() as nursery:
        for mid in (A, B):
            server = PeerServer(view[mid], inbox[mid])
            ports[mid] = await nursery.start(server.serve, "127.0.0.1", 0)
        for mid in (A, B):
            members[mid] = Member(mid, f"m{mid:x}", (f"http://127.0.0.1:{ports[mid]}",))
        transports = {mid: Transport(view[mid], inbox[mid], snapshot_source=bytes) for mid in (A, B)}
        for t in transports.values():
            nursery.start_soon(t.run)
        while not all(t.is_active(other) for t, other in ((transports[A], B), (transports[B], A))):
            await trio.sleep(0.01)

        async def echo() -> None:  # B's stand-in Raft loop: what it drained answered in one Ready
            while True:
                got = [await inbox[B].receive()]
                while True:
                    try:
                        got.append(inbox[B].receive_nowait())
                    except trio.WouldBlock:
                        break
                transports[B].send([_resp(m.index) for m in got if isinstance(m, Message)])

        nursery.start_soon(echo)
        results: dict[str, Any] = {}
        for label, window in (("round trip", 1), (f"pipelined x{depth}", depth)):
            t0, c0 = time.perf_counter(), time.process_time()
            sent = got = 0
            while got < messages:  # A's stand-in Raft loop: one Ready per round, as many appends as fit
                batch = [_app(i) for i in range(sent, min(messages, got + window))]
                if batch:
                    transports[A].send(batch)
                    sent += len(batch)
                drained = [await inbox[A].receive()]
                while True:
                    try:
                        drained.append(inbox[A].receive_nowait())
                    except trio.WouldBlock:
                        break
                got += sum(isinstance(m, Message) for m in drained)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            results[label] = {
                "messages": 2 * messages,
                "cpu_us_per_message": round(cpu / (2 * messages) * 1e6, 1),
                "round_trips_per_s": round(messages / wall),
            }
        nursery.cancel_scope.cancel()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000, help="round trips per measurement")
    ap.add_argument("--depth", type=int, default=64, help="appends in flight in the pipelined measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = trio.run(_run, args.messages, args.depth)
    if args.json:
        print(json.dumps(results))
    else:
        for label, r in results.items():
            print(
                f"{label}: {r['messages']} messages, {r['cpu_us_per_message']} us CPU per message, "
                f"{r['round_trips_per_s']:,} round trips/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
