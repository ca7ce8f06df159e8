"""trikvctl `check perf` and `check datascale`: etcdctl 3.4's load models, lines and exit codes.

check perf: `clients` workers put 256-byte keys with 1 KiB values under --prefix, rate-limited to `limit`
puts/s for 60 s (a live progress bar on stderr), then delete the prefix (and optionally compact and
defragment) and judge as etcdctl does: throughput above 90 % of the limit, slowest request under 0.5 s,
stddev under 0.1 s; `PASS` or `FAIL` (exit 1). check datascale: `limit` puts of 512-byte keys and values,
process_resident_memory_bytes read from the first endpoint's /metrics before and after, the difference
printed in MB. A prefix that already holds keys is refused (exit 3), an unknown --load is exit 4.

TEST-ONLY: the environment variables TRIKVCTL_CHECK_TEST_SECONDS and TRIKVCTL_CHECK_TEST_KEYS, when set,
replace check perf's 60 s duration and check datascale's key count (CI cannot spend minutes per run).
Production never sets them; nothing but these two commands reads them.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import sys
import time
from collections import Counter
from typing import Any

import attrs

COMMAND_NAMES = ("check",)
FORMATS: dict[str, frozenset[str]] = {}
EXIT_ERROR, EXIT_INVALID_INPUT, EXIT_BAD_FEATURE = 1, 3, 4
TEST_SECONDS_ENV = "TRIKVCTL_CHECK_TEST_SECONDS"  # test-only: see the module docstring
TEST_KEYS_ENV = "TRIKVCTL_CHECK_TEST_KEYS"  # test-only
ALIASES = {
    "s": "s",
    "small": "s",
    "m": "m",
    "medium": "m",
    "l": "l",
    "large": "l",
    "xl": "xl",
    "xLarge": "xl",
}


@attrs.frozen
class PerfLoad:
    limit: int  # puts per second
    clients: int
    duration: int  # seconds


@attrs.frozen
class ScaleLoad:
    limit: int  # keys written
    kv_size: int
    clients: int


PERF = {
    "s": PerfLoad(150, 50, 60),
    "m": PerfLoad(1000, 200, 60),
    "l": PerfLoad(8000, 500, 60),
    "xl": PerfLoad(15000, 1000, 60),
}
SCALE = {
    "s": ScaleLoad(10_000, 1024, 50),
    "m": ScaleLoad(100_000, 1024, 200),
    "l": ScaleLoad(1_000_000, 1024, 500),
    "xl": ScaleLoad(3_000_000, 1024, 1000),
}
CONNECTIONS = 8  # the workers share a few client connections (each pipelines many requests)


def add_parsers(sub: Any, leaf: Any, only: str | None, unused: Any, parser_class: type) -> None:
    check = (sub if only in (None, "check") else unused).add_parser(
        "check",
        help="commands for checking properties of the trikv cluster",
        description="commands for checking properties of the trikv cluster",
    )
    csub = check.add_subparsers(dest="subcommand", parser_class=parser_class, metavar="SUBCOMMAND")
    for name, text, prefix in (
        ("perf", "Check the performance of the trikv cluster", "/etcdctl-check-perf/"),
        (
            "datascale",
            "Check the memory usage of holding data for different workloads on a given server endpoint.",
            "/etcdctl-check-datascale/",
        ),
    ):
        p = leaf(csub, name, text, "check")
        p.add_argument("--load", default="s", help="The workload model. Accepted workloads: s, m, l, xl")
        p.add_argument("--prefix", default=prefix, help="The prefix for writing the check's keys.")
        p.add_argument(
            "--auto-compact",
            action="store_true",
            help="Compact storage with last revision after test is finished.",
        )
        p.add_argument(
            "--auto-defrag", action="store_true", help="Defragment storage after test is finished."
        )


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Bar:
    """A live progress bar on stderr (stdout keeps etcdctl's lines only)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.t0 = total, 0, time.monotonic()

    def add(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        width = 40
        filled = width * self.done // max(1, self.total)
        pct = 100.0 * self.done / max(1, self.total)
        sys.stderr.write(
            f"\r{self.done} / {self.total} [{'=' * filled}>{' ' * (width - filled)}] {pct:6.2f}% "
            f"{time.monotonic() - self.t0:.0f}s"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


@attrs.define
class _Results:
    latencies: list[float] = attrs.Factory(list)
    errors: Counter[str] = attrs.Factory(Counter)
    first: float = 0.0
    last: float = 0.0

    def record(self, start: float, end: float, error: str | None) -> None:
        self.first = start if not self.first else min(self.first, start)
        self.last = max(self.last, end)
        if error is None:
            self.latencies.append(end - start)
        else:
            self.errors[error] += 1

    def rps(self) -> float:
        total = self.last - self.first
        return len(self.latencies) / total if total > 0 else 0.0


def _key(prefix: bytes, size: int) -> bytes:
    """etcdctl's key: a random varint at the start of `size` zero bytes."""
    n = random.getrandbits(62)
    zigzag = n << 1
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return prefix + bytes(out) + bytes(size - len(out))


async def _prefix_empty(cl: Any, prefix: bytes) -> None:
    resp = await cl.get(prefix, prefix=True, limit=1)
    if resp.kvs:
        text = prefix.decode("utf-8", "surrogateescape")
        raise _Failed(
            EXIT_INVALID_INPUT, f'prefix "{text}" has keys. Delete with etcdctl del --prefix {text} first'
        )


async def _run_puts(clients: list[Any], workers: int, keys: Any, results: _Results, on_done: Any) -> None:
    """`workers` tasks put whatever `keys` yields (an async iterator of (key, value)) and record each."""
    import trio

    from trikv.api import errors

    send, recv = trio.open_memory_channel[tuple[bytes, bytes]](workers)

    async def worker(cl: Any, inbox: Any) -> None:
        async for key, value in inbox:
            start = time.perf_counter()
            error = None
            try:
                await cl.put(key, value)
            except errors.TrikvError as exc:
                error = str(exc) or type(exc).__name__
            results.record(start, time.perf_counter(), error)
            on_done()

    async with trio.open_nursery() as nursery:
        async with recv:
            for i in range(workers):
                nursery.start_soon(worker, clients[i % len(clients)], recv.clone())
        async with send:
            async for item in keys:
                await send.send(item)


async def _cleanup(ctx: Any, cl: Any, prefix: bytes) -> None:
    from trikv.api.snapshot import DEFRAGMENT_OP, DefragmentRequest, DefragmentResponse

    resp = await cl.delete(prefix, prefix=True)
    if ctx.args.auto_compact:
        rev = resp.header.revision
        ctx.out.line(f"Compacting with revision {rev}")
        await cl.compact(rev, physical=True)
        ctx.out.line(f"Compacted with revision {rev}")
    if ctx.args.auto_defrag:
        for ep in ctx.endpoints:
            ctx.out.line(f'Defragmenting "{ep}"')
            await cl._call(
                DEFRAGMENT_OP, DefragmentRequest(), DefragmentResponse, idempotent=False, endpoint=ep
            )
            ctx.out.line(f'Defragmented "{ep}"')


async def _open_clients(ctx: Any, n: int, stack: Any) -> list[Any]:
    import trikv

    return [
        await stack.enter_async_context(
            trikv.connect(ctx.endpoints, dial_timeout=ctx.dial_timeout, request_timeout=30.0)
        )
        for _ in range(n)
    ]


async def _perf(ctx: Any, load: PerfLoad, duration: float) -> int:
    import contextlib

    import trio

    prefix = os.fsencode(ctx.args.prefix)
    value = bytes(1024)
    async with contextlib.AsyncExitStack() as stack:
        clients = await _open_clients(ctx, min(CONNECTIONS, load.clients), stack)
        await _prefix_empty(clients[0], prefix)
        bar = _Bar(math.ceil(duration))
        results = _Results()

        async def paced() -> Any:
            interval, next_at = 1.0 / load.limit, trio.current_time()
            with trio.move_on_after(duration):
                while True:
                    await trio.sleep_until(next_at)
                    next_at += interval
                    yield _key(prefix, 256), value

        async def ticks() -> None:
            for _ in range(math.ceil(duration)):
                await trio.sleep(1)
                bar.add()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticks)
            await _run_puts(clients, load.clients, paced(), results, lambda: None)
            nursery.cancel_scope.cancel()
        bar.add(bar.total - bar.done)
        bar.finish()
        await _cleanup(ctx, clients[0], prefix)
    return _judge(ctx, results, load)


def _judge(ctx: Any, results: _Results, load: PerfLoad) -> int:
    """etcdctl 3.4's verdict lines, in its order and wording."""
    line = ctx.out.line
    ok = True
    if results.errors:
        line("FAIL: too many errors")
        for err, n in results.errors.items():
            line(f"FAIL: ERROR({err}) -> {n}")
        ok = False
    rps = results.rps()
    if rps / load.limit <= 0.9:
        line(f"FAIL: Throughput too low: {int(rps) + 1} writes/s")
        ok = False
    else:
        line(f"PASS: Throughput is {int(rps) + 1} writes/s")
    lats = results.latencies
    slowest = max(lats, default=0.0)
    stddev = statistics.pstdev(lats) if lats else 0.0
    if slowest > 0.5:
        line(f"Slowest request took too long: {slowest:f}s")
        ok = False
    else:
        line(f"PASS: Slowest request took {slowest:f}s")
    if stddev > 0.1:
        line(f"Stddev too high: {stddev:f}s")
        ok = False
    else:
        line(f"PASS: Stddev is {stddev:f}s")
    line("PASS" if ok else "FAIL")
    return 0 if ok else EXIT_ERROR


def resident_memory(endpoint: str, timeout: float = 5.0) -> float:
    """process_resident_memory_bytes from an endpoint's /metrics (0 when it cannot be read, as etcdctl)."""
    import urllib.request

    url = endpoint if "://" in endpoint else f"http://{endpoint}"
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return 0.0
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1])
    return 0.0


async def _datascale(ctx: Any, load: ScaleLoad) -> int:
    import contextlib

    import trio

    prefix = os.fsencode(ctx.args.prefix)
    value = bytes(512)
    async with contextlib.AsyncExitStack() as stack:
        clients = await _open_clients(ctx, min(CONNECTIONS, load.clients), stack)
        await _prefix_empty(clients[0], prefix)
        before = await trio.to_thread.run_sync(resident_memory, ctx.endpoints[0])
        if before == 0:
            ctx.out.line("FAIL: Could not read process_resident_memory_bytes before the put operations.")
            return EXIT_ERROR
        ctx.out.line(
            f"Start data scale check for work load [{load.limit} key-value pairs, {load.kv_size} bytes per "
            f"key-value, {load.clients} concurrent clients]."
        )
        bar = _Bar(load.limit)
        results = _Results()

        async def keys() -> Any:
            for _ in range(load.limit):
                yield _key(prefix, 512), value

        await _run_puts(clients, load.clients, keys(), results, bar.add)
        bar.finish()
        after = await trio.to_thread.run_sync(resident_memory, ctx.endpoints[0])
        if after == 0:
            ctx.out.line("FAIL: Could not read process_resident_memory_bytes after the put operations.")
            return EXIT_ERROR
        await _cleanup(ctx, clients[0], prefix)
    if results.errors:
        ctx.out.line("FAIL: too many errors")
        for err, n in results.errors.items():
            ctx.out.line(f"FAIL: ERROR({err}) -> {n}")
        return EXIT_ERROR
    ctx.out.line(f"PASS: Approximate system memory used : {(after - before) / (1024 * 1024):.2f} MB.")
    return 0


def _model(ctx: Any) -> str:
    model = ALIASES.get(ctx.args.load)
    if model is None:
        raise _Failed(EXIT_BAD_FEATURE, f"unknown load option {ctx.args.load}")
    return model


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _run(ctx: Any, fn: Any, *args: Any) -> int:
    import trio

    from trikv.api import errors

    try:
        try:
            return int(trio.run(fn, ctx, *args))
        except BaseExceptionGroup as group:  # nurseries wrap what ends them: act on the leaves
            for leaf in _leaves(group):
                if isinstance(leaf, (KeyboardInterrupt, _Failed, errors.TrikvError)):
                    raise leaf from None
            raise
    except _Failed as exc:
        ctx.out.err(f"Error: {exc.message}")
        return exc.code
    except errors.TrikvError as exc:
        ctx.out.err(f"Error: {exc}")
        return EXIT_ERROR


def cmd_check_perf(ctx: Any) -> int:
    try:
        load = PERF[_model(ctx)]
    except _Failed as exc:
        ctx.out.err(f"Error: {exc.message}")
        return exc.code
    override = os.environ.get(TEST_SECONDS_ENV)
    duration = float(override) if override else float(load.duration)
    return _run(ctx, _perf, load, duration)


def cmd_check_datascale(ctx: Any) -> int:
    try:
        load = SCALE[_model(ctx)]
    except _Failed as exc:
        ctx.out.err(f"Error: {exc.message}")
        return exc.code
    override = os.environ.get(TEST_KEYS_ENV)
    if override:
        load = attrs.evolve(load, limit=int(override))
    return _run(ctx, _datascale, load)


COMMANDS = {("check", "perf"): cmd_check_perf, ("check", "datascale"): cmd_check_datascale}

__all__ = [
    "COMMANDS",
    "COMMAND_NAMES",
    "FORMATS",
    "PERF",
    "SCALE",
    "TEST_KEYS_ENV",
    "TEST_SECONDS_ENV",
    "add_parsers",
    "resident_memory",
]
