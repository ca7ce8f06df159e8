"""Watch benchmark: trikv next to etcd, measured the same way on each surface both have.

    python -m trikv.tools.bench_watch                          # both workloads + idle memory, every surface
    python -m trikv.tools.bench_watch --systems trikv --surfaces cbor --workloads 100x1000 --idle 0 \
        --profile /tmp/prof                                    # py-spy's collapsed stacks of the watched member

Each system runs as three members on free loopback ports (tools/side_by_side.py's clusters). The watchers
sit on a follower, the puts go to the leader. Receivers run in separate processes, each holding its share
of the watchers on one prefix, by surface: `cbor` (trikv's Trio client, one connection per process carrying
every watch stream), `grpc` (grpcio, one channel per process, one Watch call per watcher: what etcd's own
clients speak) and `json` (the v3 gateway's `POST /v3/watch`, one HTTP connection per watcher). Writer
processes put 64-byte values to that prefix on a fixed schedule over gRPC (the same for both systems;
`--writer json` for the gateway) and record when each put was acknowledged. Reported: the put rate reached,
whether every watcher got every acknowledged put (receivers wait up to 30 s after the last put), how long
that took, the p50/p99 of acknowledged-to-event latency (receiver clock minus writer clock, one machine),
and the CPU seconds of the watched member and of the leader. Idle memory: N watchers created over 10
streams (many create requests per stream) on the follower, its RSS before and after divided by N.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h11
import trio

PREFIX = b"/watchbench/"


# --------------------------------------------------------------------------- a tiny HTTP/1.1 client


async def _post_stream(
    host: str, port: int, path: str, body: bytes
) -> tuple[trio.SocketStream, h11.Connection]:
    stream = await trio.open_tcp_stream(host, port)
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("host", f"{host}:{port}"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    data = conn.send(h11.Request(method="POST", target=path, headers=headers)) or b""
    data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
    return stream, conn


async def _lines(stream: trio.SocketStream, conn: h11.Connection) -> Any:
    buf = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                return
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Data):
            buf += event.data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield line
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


CREATE = json.dumps(
    {"create_request": {"key": _b64(PREFIX), "range_end": _b64(_prefix_end(PREFIX))}}
).encode()


# --------------------------------------------------------------------------- receivers (separate processes)


class _Record:
    """What one receiver process saw: events per watcher and (revision, arrival time) of each event."""

    def __init__(self, n: int) -> None:
        self.counts = [0] * n
        self.revs: list[int] = []
        self.times: list[float] = []

    def events(self, i: int, revs: list[int]) -> None:
        now = time.time()
        self.counts[i] += len(revs)
        self.revs += revs
        self.times += [now] * len(revs)

    def dump(self, out_path: str) -> None:
        Path(out_path).write_text(json.dumps({"counts": self.counts, "revs": self.revs, "times": self.times}))


async def _rx_json(host: str, port: int, rec: _Record, i: int, started: trio.Event) -> None:
    stream, conn = await _post_stream(host, port, "/v3/watch", CREATE)
    async for line in _lines(stream, conn):
        result = json.loads(line).get("result", {})
        if result.get("created"):
            started.set()
            continue
        rec.events(i, [int(ev["kv"]["mod_revision"]) for ev in result.get("events", ())])


def _create_request() -> Any:
    from trikv.api.watch import WatchCreateRequest, WatchRequest

    return WatchRequest(create_request=WatchCreateRequest(PREFIX, _prefix_end(PREFIX)))


async def _rx_cbor(client: Any, rec: _Record, i: int, started: trio.Event) -> None:
    """One watch stream on the process's one connection (the Trio client multiplexes them)."""
    async with client.stream("watch", _create_request()) as st:
        async for resp in st:
            if resp.created:
                started.set()
                continue
            rec.events(i, [ev.kv.mod_revision for ev in resp.events])


def _receiver(
    surface: str, endpoint: str, n: int, stop: Any, out_path: str, ready: Any, progress: Any
) -> None:
    if surface == "grpc":
        _receiver_grpc(endpoint, n, stop, out_path, ready, progress)
        return
    host, port = endpoint.rsplit(":", 1)
    rec = _Record(n)

    async def main() -> None:
        import trikv

        async with contextlib.AsyncExitStack() as stack:
            client = None
            if surface == "cbor":
                client = await stack.enter_async_context(trikv.connect([endpoint], request_timeout=None))
            nursery = await stack.enter_async_context(trio.open_nursery())
            for i in range(n):
                started = trio.Event()
                if client is None:
                    nursery.start_soon(_rx_json, host, int(port), rec, i, started)
                else:
                    nursery.start_soon(_rx_cbor, client, rec, i, started)
                await started.wait()
            ready.set()
            while not stop.is_set():
                progress.value = min(rec.counts)  # the main process waits for every event
                await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

    trio.run(main)
    rec.dump(out_path)


def _grpc_watch(channel: Any) -> Any:
    from trikv.actors.grpcpb import rpc_pb2

    return channel.stream_stream(
        "/etcdserverpb.Watch/Watch",
        request_serializer=rpc_pb2.WatchRequest.SerializeToString,
        response_deserializer=rpc_pb2.WatchResponse.FromString,
    )


def _grpc_create(count: int = 1) -> Any:
    from trikv.actors.grpcpb import rpc_pb2

    create = rpc_pb2.WatchCreateRequest(key=PREFIX, range_end=_prefix_end(PREFIX))
    return [rpc_pb2.WatchRequest(create_request=create) for _ in range(count)]


def _receiver_grpc(endpoint: str, n: int, stop: Any, out_path: str, ready: Any, progress: Any) -> None:
    """grpcio's asyncio client (what etcd's own clients speak): one channel, one Watch call per watcher."""
    import asyncio

    import grpc

    rec = _Record(n)

    async def main() -> None:
        async with grpc.aio.insecure_channel(endpoint) as channel:
            watch = _grpc_watch(channel)
            done = asyncio.Event()

            async def requests() -> Any:
                for r in _grpc_create():
                    yield r
                await done.wait()

            async def one(i: int, started: asyncio.Event) -> None:
                async for resp in watch(requests()):
                    if resp.created:
                        started.set()
                        continue
                    rec.events(i, [ev.kv.mod_revision for ev in resp.events])

            tasks = []
            for i in range(n):
                started = asyncio.Event()
                tasks.append(asyncio.create_task(one(i, started)))
                await started.wait()
            ready.set()
            while not stop.is_set():
                progress.value = min(rec.counts)
                await asyncio.sleep(0.1)
            done.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    rec.dump(out_path)


# --------------------------------------------------------------------------- the writer


def _writer(endpoint: str, rate: float, seconds: float, out_path: str, begin: float, conns: int) -> None:
    """Puts at `rate`/s from `begin` (wall clock) for `seconds`, over `conns` keep-alive HTTP connections
    to the gateway (the same for both systems); each put is scheduled, a late one goes at once."""
    host, port = endpoint.rsplit(":", 1)
    acks: dict[int, float] = {}
    errors_seen: list[str] = []
    total = int(rate * seconds)

    async def client(k: int, start: float) -> None:
        stream = await trio.open_tcp_stream(host, int(port))
        conn = h11.Connection(h11.CLIENT)
        for i in range(k, total, conns):
            await trio.sleep_until(start + i / rate)
            body = json.dumps({"key": _b64(PREFIX + b"k%d" % (i % 100)), "value": _b64(b"v" * 64)}).encode()
            headers = [
                ("host", endpoint),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ]
            data = conn.send(h11.Request(method="POST", target="/v3/kv/put", headers=headers)) or b""
            data += (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            await stream.send_all(data)
            resp = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Data):
                    resp += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            answer = json.loads(resp)
            if "header" in answer:  # an error answer (e.g. too many requests) acknowledges nothing
                acks[int(answer["header"]["revision"])] = time.time()
            else:
                errors_seen.append(answer.get("message", ""))
            conn.start_next_cycle()

    async def main() -> None:
        start = trio.current_time() + (begin - time.time())
        async with trio.open_nursery() as nursery:
            for k in range(conns):
                nursery.start_soon(client, k, start)

    trio.run(main)
    if errors_seen:
        print(f"writer: {len(errors_seen)} puts refused, e.g. {errors_seen[0]!r}", file=sys.stderr)
    Path(out_path).write_text(json.dumps({str(k): v for k, v in acks.items()}))


def _writer_grpc(endpoint: str, rate: float, seconds: float, out_path: str, begin: float, conns: int) -> None:
    """The same schedule over gRPC (grpcio, one HTTP/2 connection, `conns` puts in flight at most)."""
    import asyncio

    import grpc

    from trikv.actors.grpcpb import rpc_pb2

    acks: dict[int, float] = {}
    errors_seen: list[str] = []
    total = int(rate * seconds)

    async def main() -> None:
        async with grpc.aio.insecure_channel(endpoint) as channel:
            put = channel.unary_unary(
                "/etcdserverpb.KV/Put",
                request_serializer=rpc_pb2.PutRequest.SerializeToString,
                response_deserializer=rpc_pb2.PutResponse.FromString,
            )
            await put(rpc_pb2.PutRequest(key=PREFIX + b"warm", value=b"v"))
            loop = asyncio.get_running_loop()
            start = loop.time() + (begin - time.time())
            slots = asyncio.Semaphore(conns)

            async def one(i: int) -> None:
                try:
                    resp = await put(rpc_pb2.PutRequest(key=PREFIX + b"k%d" % (i % 100), value=b"v" * 64))
                    acks[resp.header.revision] = time.time()
                except grpc.aio.AioRpcError as exc:
                    errors_seen.append(str(exc.details()))
                finally:
                    slots.release()

            tasks = []
            for i in range(total):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)

    asyncio.run(main())
    if errors_seen:
        print(f"writer: {len(errors_seen)} puts refused, e.g. {errors_seen[0]!r}", file=sys.stderr)
    Path(out_path).write_text(json.dumps({str(k): v for k, v in acks.items()}))


# --------------------------------------------------------------------------- one measurement


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def run_delivery(
    surface: str,
    eps: list[str],
    watchers: int,
    rate: float,
    seconds: float,
    procs: int,
    writers: int,
    writer: str = "grpc",
    grace: float = 30.0,
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="bench_watch_"))
    per = [watchers // procs + (1 if i < watchers % procs else 0) for i in range(procs)]
    per = [n for n in per if n]
    readies = [ctx.Event() for _ in per]
    stop = ctx.Event()
    progress = [ctx.Value("q", 0) for _ in per]
    rx = [
        ctx.Process(
            target=_receiver,
            args=(surface, eps[0], n, stop, str(tmp / f"r{i}.json"), readies[i], progress[i]),
        )
        for i, n in enumerate(per)
    ]
    for p in rx:
        p.start()
    for ev in readies:
        if not ev.wait(300):
            raise RuntimeError("receivers did not start")
    begin = time.time() + 1.0
    conns = max(1, int(rate // 20) // writers)  # puts in flight: 50 ms per put leaves room
    target = _writer_grpc if writer == "grpc" else _writer
    wr = [
        ctx.Process(
            target=target, args=(eps[1], rate / writers, seconds, str(tmp / f"w{k}.json"), begin, conns)
        )
        for k in range(writers)
    ]
    for w in wr:
        w.start()
    for w in wr:
        w.join()
    acks: dict[int, float] = {}
    for k in range(writers):
        acks.update({int(r): t for r, t in json.loads((tmp / f"w{k}.json").read_text()).items()})
    last_ack = max(acks.values(), default=time.time())
    while time.time() < last_ack + grace and any(v.value < len(acks) for v in progress):
        time.sleep(0.1)  # until every watcher has every acknowledged put, or the grace period ends
    drained = time.time() - last_ack
    stop.set()
    for p in rx:
        p.join(300)
    lat: list[float] = []
    delivered = 0
    for i in range(len(per)):
        path = tmp / f"r{i}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        delivered += sum(1 for c in data["counts"] if c >= len(acks))
        lat += [t - acks[r] for r, t in zip(data["revs"], data["times"], strict=True) if r in acks]
    lat.sort()
    span = max(acks.values()) - begin if acks else float("nan")
    return {
        "watchers": watchers,
        "puts": len(acks),
        "puts_per_s": round(len(acks) / span) if acks else 0,
        "watchers_with_every_event": delivered,
        "drain_s": round(drained, 1),
        "p50_ms": round(_pct(lat, 0.5) * 1000, 2),
        "p99_ms": round(_pct(lat, 0.99) * 1000, 2),
    }


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_idle(surface: str, eps: list[str], pid: int, watchers: int, conns: int = 10) -> dict[str, Any]:
    """`watchers` idle watchers over `conns` streams (many create requests per stream) on member 0."""
    per = watchers // conns
    before = _rss(pid)
    if surface == "grpc":
        created, after = _idle_grpc(eps[0], pid, per, conns)
    else:
        created, after = trio.run(_idle_trio, surface, eps[0], pid, per, conns)
    return {
        "watchers": created,
        "rss_before_mb": round(before / 2**20, 1),
        "bytes_per_watcher": round((after - before) / max(created, 1)),
    }


async def _idle_trio(surface: str, endpoint: str, pid: int, per: int, conns: int) -> tuple[int, int]:
    import trikv

    host, port = endpoint.rsplit(":", 1)
    created = 0

    async def gateway(done: trio.Event) -> None:
        nonlocal created
        stream, conn = await _post_stream(host, int(port), "/v3/watch", b"".join([CREATE] * per))
        n = 0
        async for line in _lines(stream, conn):
            if b'"created":true' in line:
                n += 1
                created += 1
                if n == per:
                    done.set()

    async def cbor(client: Any, done: trio.Event) -> None:
        nonlocal created
        async with client.stream("watch", _create_request()) as st, trio.open_nursery() as nursery:

            async def more() -> None:
                for _ in range(per - 1):
                    await st.send(_create_request())

            nursery.start_soon(more)
            n = 0
            async for resp in st:
                if resp.created:
                    n += 1
                    created += 1
                    if n == per:
                        done.set()

    async with contextlib.AsyncExitStack() as stack:
        client = None
        if surface == "cbor":
            client = await stack.enter_async_context(trikv.connect([endpoint], request_timeout=None))
        nursery = await stack.enter_async_context(trio.open_nursery())
        for _ in range(conns):
            done = trio.Event()
            if client is None:
                nursery.start_soon(gateway, done)
            else:
                nursery.start_soon(cbor, client, done)
            with trio.move_on_after(60):
                await done.wait()
        await trio.sleep(2.0)
        after = _rss(pid)
        nursery.cancel_scope.cancel()
    return created, after


def _idle_grpc(endpoint: str, pid: int, per: int, conns: int) -> tuple[int, int]:
    import asyncio

    import grpc

    async def main() -> tuple[int, int]:
        created = 0
        async with grpc.aio.insecure_channel(endpoint) as channel:
            watch = _grpc_watch(channel)
            hold = asyncio.Event()

            async def requests() -> Any:
                for r in _grpc_create(per):
                    yield r
                await hold.wait()

            async def one(done: asyncio.Event) -> None:
                nonlocal created
                n = 0
                async for resp in watch(requests()):
                    if resp.created:
                        n += 1
                        created += 1
                        if n == per:
                            done.set()

            tasks = []
            for _ in range(conns):
                done = asyncio.Event()
                tasks.append(asyncio.create_task(one(done)))
                try:
                    await asyncio.wait_for(done.wait(), 60)
                except TimeoutError:
                    pass
            await asyncio.sleep(2.0)
            after = _rss(pid)
            hold.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return created, after

    return asyncio.run(main())


# --------------------------------------------------------------------------- the hub alone, in-process


def run_hub(watchers: int, batches: int, per_batch: int, conns: int = 4) -> dict[str, Any]:
    """CPU per delivered event of the hub's fan-out, the streams' drain and the CBOR frame encode (no
    sockets): `watchers` prefix watchers over `conns` streams, `batches` applied batches of `per_batch`
    one-put revisions. Runs against whatever trikv is on the path (A/B: PYTHONPATH=<old checkout>)."""
    from trikv.actors.watch import WatchHub
    from trikv.api import protocol
    from trikv.api.rpc import KeyValue, ResponseHeader
    from trikv.api.watch import Event, EventType

    class Store:
        revision = 1

        async def history(self, *args: Any) -> Any:
            return [], self.revision, 0

    sent = [0]

    async def main() -> float:
        hub = WatchHub(Store(), lambda rev: ResponseHeader(1, 2, rev, 3))
        streams = [hub.open_stream() for _ in range(conns)]
        for i in range(watchers):
            streams[i % conns].request(_create_request())
        for st in streams:
            st.drain()

        async def pump(st: Any) -> None:
            while True:
                resps = await st.next()
                protocol.encode_frame([[1, protocol.MORE, r] for r in resps])
                sent[0] += sum(len(r.events) for r in resps)

        async with trio.open_nursery() as nursery:
            for st in streams:
                nursery.start_soon(pump, st)
            await trio.sleep(0)
            t0 = time.process_time()
            rev = 1
            for _ in range(batches):
                events = []
                for _ in range(per_batch):
                    rev += 1
                    kv = KeyValue(PREFIX + b"k%d" % (rev % 100), rev, rev, 1, b"v" * 64)
                    events.append(Event(EventType.PUT, kv))
                hub.notify(events, rev)
                for _ in range(3):
                    await trio.sleep(0)
            while sent[0] < watchers * batches * per_batch:
                await trio.sleep(0)
            spent = time.process_time() - t0
            nursery.cancel_scope.cancel()
        return spent

    spent = trio.run(main)
    events = watchers * batches * per_batch
    return {"watchers": watchers, "events": events, "us_per_event": round(spent / events * 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="trikv,etcd")
    ap.add_argument("--surfaces", default="cbor,grpc,json", help="cbor (trikv only), grpc, json (gateway)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=4, help="receiver processes")
    ap.add_argument("--writers", type=int, default=2, help="writer processes")
    ap.add_argument(
        "--writer", default="grpc", help="the writers' surface, the same for both systems: grpc|json"
    )
    ap.add_argument("--idle", type=int, default=100_000, help="idle watchers for the memory figure (0: skip)")
    ap.add_argument("--profile", default="", help="a directory: py-spy records member 0 (collapsed stacks)")
    ap.add_argument("--workloads", default="1000x100,100x1000", help="WATCHERSxPUTS_PER_S, comma separated")
    ap.add_argument(
        "--hub", default="", help="WATCHERSxBATCHESxREVISIONS_PER_BATCH: the hub alone, in-process"
    )
    args = ap.parse_args(argv)
    if args.hub:
        watchers, batches, per_batch = (int(x) for x in args.hub.split("x"))
        print(json.dumps(run_hub(watchers, batches, per_batch)))
        return 0
    from trikv.tools.side_by_side import _cluster

    specs = [w for w in args.workloads.split(",") if w] + (["idle"] if args.idle else [])
    rows = []
    for spec in specs:  # systems interleaved per workload: load changes hit both alike
        for surface in args.surfaces.split(","):
            for system in args.systems.split(","):
                if surface == "cbor" and system != "trikv":
                    continue
                with tempfile.TemporaryDirectory(prefix=f"bench_watch_{system}_") as d:
                    c = _cluster(system, Path(d))
                    c.start()
                    try:
                        time.sleep(2.0)
                        lead = _leader_index(c.endpoints)
                        watched = c.members[(lead + 1) % len(c.members)]  # watchers on a follower
                        eps = [watched.endpoint, c.members[lead].endpoint]  # puts to the leader
                        proc, lead_proc = watched.proc, c.members[lead].proc
                        assert proc is not None and lead_proc is not None
                        t0, t0_lead = _cpu(proc.pid), _cpu(lead_proc.pid)
                        spy = _py_spy(args.profile, proc.pid, f"{system}-{surface}-{spec}")
                        if spec == "idle":
                            res = run_idle(surface, eps, proc.pid, args.idle)
                        else:
                            watchers, rate = (int(x) for x in spec.split("x"))
                            res = run_delivery(
                                surface,
                                eps,
                                watchers,
                                rate,
                                args.duration,
                                args.procs,
                                args.writers,
                                args.writer,
                            )
                        res["watched_cpu_s"] = round(_cpu(proc.pid) - t0, 2)
                        res["leader_cpu_s"] = round(_cpu(lead_proc.pid) - t0_lead, 2)
                        if spy is not None:
                            spy.send_signal(signal.SIGINT)
                            spy.wait(60)
                    finally:
                        c.stop()
                res = {"system": system, "surface": surface, "workload": spec, **res}
                rows.append(res)
                print(json.dumps(res), flush=True)
    print(json.dumps(rows), file=sys.stderr)
    return 0


def _leader_index(eps: list[str]) -> int:
    """Which member leads (gRPC Maintenance.Status, the same question for both systems)."""
    import grpc

    from trikv.actors.grpcpb import rpc_pb2

    deadline = time.time() + 30
    while True:
        ids, leaders = [], set()
        for ep in eps:
            with grpc.insecure_channel(ep) as ch:
                status = ch.unary_unary(
                    "/etcdserverpb.Maintenance/Status",
                    request_serializer=rpc_pb2.StatusRequest.SerializeToString,
                    response_deserializer=rpc_pb2.StatusResponse.FromString,
                )
                try:
                    st = status(rpc_pb2.StatusRequest(), timeout=2)
                except grpc.RpcError:
                    ids.append(0)
                    continue
                ids.append(st.header.member_id)
                leaders.add(st.leader)
        if len(leaders) == 1 and (lead := leaders.pop()) in ids:
            return ids.index(lead)
        if time.time() > deadline:
            raise RuntimeError("no agreed leader")
        time.sleep(0.2)


def _py_spy(directory: str, pid: int, name: str) -> subprocess.Popen[bytes] | None:
    if not directory:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    out = Path(directory) / f"{name}.txt"
    cmd = [str(spy), "record", "-p", str(pid), "-r", "50", "--format", "raw", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
