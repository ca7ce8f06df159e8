"""Client-port round trips: requests/s over one WebSocket connection to the real ClientServer.

    python -m trikv.tools.bench_client_server            # three phases, one line each
    python -m trikv.tools.bench_client_server --json

The server runs in this process on 127.0.0.1 with a trivial backend (every request answers an empty
RangeResponse), so the figure is the cost of the client surface itself: HTTP upgrade, WebSocket framing, the
CBOR codec, shape checks and dispatch -- no Raft, no storage. The client runs in a subprocess (its own core
when one is free). The server's CPU time per request is printed too, because wall-clock rates on a shared
2-core machine mostly measure the neighbours. This was a measurement inside the test suite
(tests/test_server.py, soak-marked, no assertion); a benchmark belongs here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trikv.actors.server import serve_clients
from trikv.api import protocol, rpc

HOST = "127.0.0.1"
MAX_MESSAGE = 8 * 1024 * 1024
# phase -> (requests, requests per frame, requests in flight at most)
PHASES = {
    "sequential": (3000, 1, 1),
    "pipelined, 1 item/frame": (20000, 1, 1000),
    "pipelined, 100 items/frame": (100000, 100, 1000),
}


class TrivialBackend:
    """Answers every request at once with an empty RangeResponse: only the client surface is measured."""

    HEADER = rpc.ResponseHeader(cluster_id=1, member_id=2, revision=1, raft_term=1)

    async def handle(self, request: Any) -> Any:
        return rpc.RangeResponse(self.HEADER)

    async def health(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> dict[str, str]:
        return {"etcdserver": "3.4.0", "etcdcluster": "3.4.0"}


async def run_client(port: int, phase: str) -> float:
    """Requests/s of one phase over one connection, at most `window` requests in flight."""
    import trio_websocket

    total, per_frame, window = PHASES[phase]
    req = rpc.RangeRequest(b"k", serializable=True)
    url = f"ws://{HOST}:{port}{protocol.WS_PATH}"
    async with trio_websocket.open_websocket_url(url, max_message_size=MAX_MESSAGE) as ws:
        sent = done = 0
        room = trio.Semaphore(window)
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:

            async def sender() -> None:
                nonlocal sent
                while sent < total:
                    k = min(per_frame, total - sent)
                    for _ in range(k):
                        await room.acquire()
                    items = [[sent + j + 1, "range", req] for j in range(k)]
                    await ws.send_message(protocol.encode_frame(items))
                    sent += k

            nursery.start_soon(sender)
            while done < total:
                msg = await ws.get_message()
                assert isinstance(msg, bytes)
                items = protocol.decode_frame(msg)
                bad = [item for item in items if item[1] != protocol.OK]
                if bad:
                    raise RuntimeError(f"request failed: {bad[0]}")
                done += len(items)
                for _ in items:
                    room.release()
        return total / (time.perf_counter() - t0)


async def run_all() -> list[dict[str, Any]]:
    results = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_clients, TrivialBackend(), HOST, 0)
        for phase, (total, _, _) in PHASES.items():
            argv = [sys.executable, "-m", "trikv.tools.bench_client_server", "--client", str(port), phase]
            cpu0 = time.process_time()
            done = await trio.run_process(argv, capture_stdout=True)
            cpu_us = (time.process_time() - cpu0) / total * 1e6
            results.append(
                {
                    "phase": phase,
                    "req_per_s": round(float(done.stdout.decode()), 1),
                    "server_cpu_us": round(cpu_us, 1),
                }
            )
        nursery.cancel_scope.cancel()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    ap.add_argument("--client", nargs=2, metavar=("PORT", "PHASE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        print(trio.run(run_client, int(args.client[0]), args.client[1]))
        return 0
    results = trio.run(run_all)
    if args.json:
        print(json.dumps({"phases": results}))
    else:
        for r in results:
            print(
                f"{r['phase']:28s} {r['req_per_s']:9,.0f} req/s   server CPU {r['server_cpu_us']:6.1f} us/request"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
