"""Server CPU per gRPC watch message: W Watch calls multiplexed on ONE HTTP/2 connection, P puts, in process.

    python -m trikv.tools.bench_grpc_watch                        # 250 watchers x 200 puts, lockstep
    python -m trikv.tools.bench_grpc_watch --watchers 100 --puts 500 --rounds 3

One member's client surface as the member wires it (ClientServer + Handlers + the watch hub + Backend over
a page file in a temp dir; no Raft: bench_surface_cpu's stub proposer applies and commits each put at
once), served on 127.0.0.1 by this process. A client process opens one h2 connection (grpcio's shape: one
Watch call per watcher, all on one connection, large receive windows; 250 calls is bench_watch's grpc
receiver process at 1,000 watchers, and the server's stream limit is 256), creates one prefix watcher per
call and counts what arrives. The puts are made in this process, one at a time, and by default in
lockstep: the next put once every watcher's response to the previous one has been handed to gRPC (one
response per watcher per put: issue 11's 1,000 x 100/s row without a backlog that merges revisions).
`--rate R` puts at R/s instead. Reported: this process's CPU (user + system, so the socket writes count)
from the first put until the client has every event, less the puts' own CPU (as many puts to a key no one
watches, measured just before), per delivered watch message; the server's socket
writes per message; the client's counts (messages, events, every call in order). A/B on a noisy machine:
run both trees interleaved (PYTHONPATH=<other tree>) and compare CPU per message, not wall time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import socket
import sys
import tempfile
import time
from typing import Any

import trio

PREFIX = b"/gw/"
WATCH_PATH = b"/etcdserverpb.Watch/Watch"


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _client(port: int, watchers: int, expect_events: int, pipe: Any) -> None:
    """One h2 connection, `watchers` Watch calls; reports when all are created and when all events are in."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    from trikv.actors.grpcpb import rpc_pb2

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20}
    )
    conn.initiate_connection()
    conn.increment_flow_control_window(64 << 20)
    create = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=PREFIX, range_end=_prefix_end(PREFIX))
    ).SerializeToString()
    body = b"\x00" + len(create).to_bytes(4, "big") + create
    bufs: dict[int, bytearray] = {}
    last_rev: dict[int, int] = {}
    for _ in range(watchers):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(
            sid,
            [(b":method", b"POST"), (b":scheme", b"http"), (b":path", WATCH_PATH), (b":authority", b"bench"),
             (b"content-type", b"application/grpc"), (b"te", b"trailers")],
        )  # fmt: skip
        conn.send_data(sid, body)
        bufs[sid], last_rev[sid] = bytearray(), 0
    sock.sendall(conn.data_to_send())
    created = messages = events = 0
    in_order = True
    ready_sent = False
    while events < expect_events:
        data = sock.recv(1 << 20)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                buf = bufs[ev.stream_id]
                buf += ev.data
                while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[1:5], "big"):
                    n = int.from_bytes(buf[1:5], "big")
                    resp = rpc_pb2.WatchResponse.FromString(bytes(buf[5 : 5 + n]))
                    del buf[: 5 + n]
                    if resp.created:
                        created += 1
                        continue
                    messages += 1
                    events += len(resp.events)
                    for e in resp.events:
                        in_order &= e.kv.mod_revision > last_rev[ev.stream_id]
                        last_rev[ev.stream_id] = e.kv.mod_revision
            elif isinstance(
                ev, (h2.events.StreamReset, h2.events.StreamEnded, h2.events.ConnectionTerminated)
            ):
                raise SystemExit(f"bench client: unexpected {ev!r}")
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
        if not ready_sent and created == watchers:
            pipe.send("ready")
            ready_sent = True
    pipe.send({"messages": messages, "events": events, "in_order": in_order})
    sock.close()


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class _CountingStream(trio.abc.HalfCloseableStream):
    """The server side of each accepted connection, counting `send_all` calls (socket writes)."""

    writes = 0

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.socket = inner.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        _CountingStream.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _round(watchers: int, puts: int, rate: float) -> dict[str, Any]:
    from trikv.actors.server import ClientServer
    from trikv.actors.watch import WatchHub
    from trikv.actors.watch_serve import watch_handler
    from trikv.api import rpc
    from trikv.api.watch import WatchRequest
    from trikv.tools.bench_surface_cpu import _member

    with tempfile.TemporaryDirectory(prefix="trikv-grpcwatch-") as tmp:
        handlers, backend, _proposer = _member(tmp)
        hub = WatchHub(backend, lambda rev: handlers.kv.header(rev))
        backend.on_events = hub.notify
        inner = watch_handler(hub)
        emitted = [0]
        target: list[Any] = [0, trio.Event()]

        async def counted(first: Any, inbound: Any, emit: Any) -> None:
            async def out(resp: Any) -> None:
                await emit(resp)
                emitted[0] += len(resp.events)
                if emitted[0] >= target[0]:
                    target[1].set()

            await inner(first, inbound, out)

        handlers.streams[WatchRequest] = counted
        server = ClientServer(handlers)
        server.metrics = handlers.metrics  # the member counts gRPC bytes per write, as here
        handle_connection = server._handle_connection

        async def counting(stream: trio.SocketStream) -> None:
            await handle_connection(_CountingStream(stream))  # type: ignore[arg-type]

        server._handle_connection = counting  # type: ignore[method-assign]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub.run)
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            parent, child = mp.get_context("spawn").Pipe()
            proc = mp.get_context("spawn").Process(
                target=_client, args=(port, watchers, watchers * puts, child)
            )
            proc.start()
            child.close()  # a dead client: recv raises EOFError
            if await trio.to_thread.run_sync(parent.recv) != "ready":
                raise SystemExit("bench client failed")
            value = b"v" * 64
            p0 = _cpu()  # the puts alone (a key no one watches), subtracted below
            for p in range(puts):
                await handlers.handle(rpc.PutRequest(b"/unwatched/k%d" % (p % 100), value))
            put_cpu = (_cpu() - p0) / puts
            got: dict[str, Any] = {}
            finished = trio.Event()

            async def result() -> None:
                # The client closes once it has every event; that can cancel emits still in progress, so
                # its report also ends a lockstep wait.
                got.update(await trio.to_thread.run_sync(parent.recv))
                finished.set()
                target[1].set()

            writes0, c0, t0 = _CountingStream.writes, _cpu(), time.monotonic()
            nursery.start_soon(result)
            for p in range(puts):
                target[0], target[1] = watchers * (p + 1), trio.Event()
                await handlers.handle(rpc.PutRequest(PREFIX + b"k%d" % (p % 100), value))
                if rate > 0:
                    await trio.sleep_until(t0 + (p + 1) / rate)
                elif not finished.is_set():
                    await target[1].wait()
            await finished.wait()
            c1, t1, writes = _cpu(), time.monotonic(), _CountingStream.writes - writes0
            await trio.to_thread.run_sync(proc.join)
            nursery.cancel_scope.cancel()
        backend.close()
    msgs = max(1, got["messages"])
    return {
        "watchers": watchers,
        "puts": puts,
        **got,
        "writes": writes,
        "seconds": round(t1 - t0, 2),
        "cpu_us_per_message": round((c1 - c0 - put_cpu * puts) / msgs * 1e6, 2),
        "put_us": round(put_cpu * 1e6),
        "writes_per_message": round(writes / msgs, 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watchers", type=int, default=250)
    ap.add_argument("--puts", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0.0, help="puts/s (0: lockstep, see above)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", default="", help="write cProfile stats of the server side to this file")
    args = ap.parse_args(argv)
    for _ in range(args.rounds):
        if args.profile:
            import cProfile

            with cProfile.Profile() as prof:
                r = trio.run(_round, args.watchers, args.puts, args.rate)
            prof.dump_stats(args.profile)
        else:
            r = trio.run(_round, args.watchers, args.puts, args.rate)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"{r['watchers']} watchers x {r['puts']} puts on one h2 connection: {r['cpu_us_per_message']} us "
                f"server CPU per watch message ({r['messages']} messages, {r['events']} events, in order: "
                f"{r['in_order']}; {r['writes']} socket writes, {r['writes_per_message']} per message; "
                f"{r['seconds']} s; the puts' own {r['put_us']} us each not counted)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
