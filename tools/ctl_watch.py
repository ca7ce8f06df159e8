"""trikvctl `watch KEY [RANGE_END] [--prefix] [--rev N] [--prev-kv] [--progress-notify]` and `watch -i`, printing
as etcdctl 3.4 does (its watch_command.go and printers): per event its type, then prev_kv's and kv's key and
value lines (simple), or one clientv3.WatchResponse JSON object per response (json).

A watch runs on the Trio client (trikv.watches: resumed on another endpoint after a failure). A compacted
revision prints "watch was canceled (...)" and ends with "Error: watch is canceled by the server", exit 5.
Ctrl-C propagates as KeyboardInterrupt (trikvctl's main exits 130, no traceback).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from typing import Any

from trikv.api import errors
from trikv.api.watch import EventType, WatchResponse
from trikv.tools.ctl_print import dumps, j_header, j_kv

# trio and the Trio client are imported when a watch runs: unary commands must not pay their start-up
# (tests/test_trikvctl.py checks that trikvctl's other commands never import trio).

COMMAND_NAMES = ("watch",)
FORMATS = {"watch": frozenset({"simple", "json"})}
EXIT_ERROR = 1
EXIT_INVALID_INPUT = 4  # etcdctl's ExitInvalidInput
EXIT_INTERRUPTED = 5
EXIT_BAD_ARGS = 128

Leaf = Callable[..., Any]


def add_parsers(sub: Any, leaf: Leaf, only: str | None, unused: Any, parser_class: type) -> None:
    p = leaf(sub, "watch", "Watches events stream on keys or prefixes")
    p.add_argument("args", nargs="*", metavar="[key or prefix] [range_end]")
    p.add_argument("-i", "--interactive", action="store_true", help="Interactive mode")
    p.add_argument("--prefix", action="store_true", help="Watch on a prefix if prefix is set")
    p.add_argument("--rev", default="0", help="Revision to start watching")
    p.add_argument(
        "--prev-kv", action="store_true", help="get the previous key-value pair before the event happens"
    )
    p.add_argument("--progress-notify", action="store_true", help="get periodic watch progress notification")


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _event_json(ev: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if ev.type != EventType.PUT:
        d["type"] = int(ev.type)
    d["kv"] = j_kv(ev.kv)
    if ev.prev_kv is not None:
        d["prev_kv"] = j_kv(ev.prev_kv)
    return d


def response_json(resp: WatchResponse) -> str:
    """clientv3.WatchResponse as etcdctl -w json prints it (Go's encoding/json of the struct)."""
    return dumps(
        {
            "Header": j_header(resp.header),
            "Events": [_event_json(ev) for ev in resp.events],
            "CompactRevision": resp.compact_revision,
            "Canceled": resp.canceled,
            "Created": resp.created,
        }
    )


class _Display:
    def __init__(self, ctx: Any) -> None:
        self.out = ctx.out
        self.json = ctx.printer.fmt == "json"
        self.is_hex = bool(getattr(ctx.args, "hex", False))

    def _kv(self, kv: Any) -> None:
        key, value = kv.key, kv.value
        if self.is_hex:
            key, value = key.hex().encode(), value.hex().encode()
        self.out.line(key)
        self.out.line(value)

    def response(self, resp: WatchResponse) -> None:
        if resp.compact_revision:
            self.out.err("watch was canceled (etcdserver: mvcc: required revision has been compacted)")
        elif not resp.events and resp.header.revision:
            self.out.line(f"progress notify: {resp.header.revision}")
        if self.json:
            self.out.line(response_json(resp))
            return
        for ev in resp.events:
            self.out.line(ev.type.name)
            if ev.prev_kv is not None:
                self._kv(ev.prev_kv)
            self._kv(ev.kv)


def _watch_args(args: list[str], prefix: bool) -> tuple[bytes, bytes | None, bool]:
    if not args or len(args) > 2:
        raise _Failed(EXIT_BAD_ARGS, "bad number of arguments")
    if len(args) == 2 and prefix:
        raise _Failed(EXIT_BAD_ARGS, "`range_end` and `--prefix` are mutually exclusive")
    return os.fsencode(args[0]), os.fsencode(args[1]) if len(args) == 2 else None, prefix


async def _one(cl: Any, display: _Display, key: bytes, end: bytes | None, prefix: bool, ctx: Any) -> None:
    a = ctx.args
    async with cl.watch(
        key,
        end,
        prefix=prefix,
        start_revision=int(a.rev),
        prev_kv=a.prev_kv,
        progress_notify=a.progress_notify,
    ) as events:
        events.on_response = display.response
        async for _ in events:
            pass


async def _main(ctx: Any) -> int:
    import trikv
    from trikv.watches import WatchCanceledError, WatchCompactedError

    a = ctx.args
    display = _Display(ctx)
    async with trikv.connect(
        ctx.endpoints, dial_timeout=ctx.dial_timeout, request_timeout=ctx.command_timeout
    ) as cl:
        try:
            if a.interactive:
                return await _interactive(cl, display, ctx)
            key, end, prefix = _watch_args(list(a.args), a.prefix)
            await _one(cl, display, key, end, prefix, ctx)
        except (WatchCompactedError, WatchCanceledError):
            pass
    raise _Failed(EXIT_INTERRUPTED, "watch is canceled by the server")


async def _interactive(cl: Any, display: _Display, ctx: Any) -> int:
    """`watch -i`: each stdin line `watch KEY [RANGE_END] [--prefix]` opens one more watch."""
    import trio

    async with trio.open_nursery() as nursery:
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                raise _Failed(EXIT_INVALID_INPUT, "Error reading watch request line: EOF")
            text = line.rstrip("\n")
            try:
                words = shlex.split(text)
            except ValueError:
                words = text.split()
            if not words:
                ctx.out.err(f"Invalid command: {text} (watch and progress supported)")
                continue
            if words[0] != "watch":
                ctx.out.err(f"Invalid command {text} (only support watch)")
                continue
            prefix = "--prefix" in words
            rest = [w for w in words[1:] if w != "--prefix"]
            if not rest:
                ctx.out.err(f"Invalid command {text} (command type or key is not provided)")
                continue
            try:
                key, end, prefix = _watch_args(rest, prefix or ctx.args.prefix)
            except _Failed as exc:
                ctx.out.err(f"Invalid command {text} ({exc.message})")
                continue
            nursery.start_soon(_one, cl, display, key, end, prefix, ctx)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def cmd_watch(ctx: Any) -> int:
    import trio

    a = ctx.args
    try:
        try:
            int(a.rev)
        except ValueError:
            raise _Failed(EXIT_BAD_ARGS, f'invalid argument "{a.rev}" for "--rev" flag') from None
        if not a.interactive:
            _watch_args(list(a.args), a.prefix)
        try:
            return trio.run(_main, ctx)
        except BaseExceptionGroup as group:  # nurseries wrap what ends them: act on the leaves
            leaves = _leaves(group)
            for kind in (KeyboardInterrupt, _Failed, errors.TrikvError):
                for leaf in leaves:
                    if isinstance(leaf, kind):
                        raise leaf from None
            raise
    except _Failed as exc:
        ctx.out.err(f"Error: {exc.message}")
        return exc.code
    except errors.TrikvError as exc:
        ctx.out.err(f"Error: {exc}")
        return EXIT_ERROR


COMMANDS = {("watch", None): cmd_watch}

__all__ = ["COMMANDS", "COMMAND_NAMES", "FORMATS", "add_parsers", "cmd_watch", "response_json"]
