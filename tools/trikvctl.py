"""trikvctl: etcdctl's command line, output formats and exit codes, on the trikv client.

Output is written to match etcdctl 3.4/3.5 byte for byte where the shapes allow (simple lines, the JSON
dialect with base64 keys and omitted zero fields, tablewriter tables), so scripts written for etcdctl
keep working. Exit codes are etcdctl's: 1 server/RPC error, 4 unsupported feature or format,
128 bad arguments.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import attrs
import trio

import trikv
from trikv.api import errors, rpc
from trikv.api.protocol import (
    Member,
    MemberAddResponse,
    MemberListResponse,
    MoveLeaderResponse,
    StatusResponse,
)
from trikv.client import DeadlineExceededError, connect

EXIT_ERROR = 1
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_BAD_ARGS = 128

API_VERSION = "3.4"
FORMATS = ("simple", "json", "table", "fields")
_BOOL_FLAGS = frozenset(
    {
        "--prev-kv",
        "--ignore-value",
        "--ignore-lease",
        "--prefix",
        "--from-key",
        "--count-only",
        "--keys-only",
        "--print-value-only",
        "--cluster",
        "--physical",
        "--learner",
    }
)


class CommandError(Exception):
    """Ends the command with `Error: <message>` on stderr and an etcdctl exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Exit(Exception):
    """Ends the command with an exit code after its output was printed (no extra error line)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------- output helpers


class Out:
    """Bytes to stdout (keys and values are bytes, not necessarily UTF-8); text to stderr."""

    def line(self, data: bytes | str = b"") -> None:
        raw = data.encode() if isinstance(data, str) else data
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(raw + b"\n")
            buffer.flush()
        else:
            sys.stdout.write(raw.decode("utf-8", "replace") + "\n")

    def err(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 1.411027ms, 2.5s, 1m0.5s."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)

    def frac(value: int, unit: int, digits: int) -> str:
        whole, rest = divmod(value, unit)
        text = str(whole)
        if rest:
            text += "." + str(rest).rjust(digits, "0").rstrip("0")
        return text

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1_000, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{frac(ns, 1_000_000, 6)}ms"
    hours, ns = divmod(ns, 3600 * 10**9)
    minutes, ns = divmod(ns, 60 * 10**9)
    text = frac(ns, 10**9, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration (what etcdctl's --dial-timeout / --command-timeout take)."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f'time: invalid duration "{text}"')
    return total


def humanize_bytes(size: int) -> str:
    """go-humanize's Bytes (SI units), as etcdctl prints DB SIZE: 20 kB, 126 MB."""
    if size < 10:
        return f"{size} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    exp = 0
    while size >= 1000 ** (exp + 1) and exp < len(units) - 1:
        exp += 1
    val = int(size / 1000**exp * 10 + 0.5) / 10
    return f"{val:.0f} {units[exp]}" if val >= 10 else f"{val:.1f} {units[exp]}"


def go_quote(data: bytes) -> str:
    """Go's %q of a string: what the fields format prints for keys and values."""
    out = ['"']
    simple = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    for ch in data.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in simple:
            out.append(simple[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """olekukonko/tablewriter as etcdctl configures it: centred header, right-aligned cells."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centre(text: str, width: int) -> str:
        gap = width - len(text)
        return " " * (gap // 2) + text + " " * (gap - gap // 2)

    lines = [
        border,
        "|" + "|".join(f" {centre(h, w)} " for h, w in zip(header, widths, strict=True)) + "|",
        border,
    ]
    for row in rows:
        lines.append("|" + "|".join(f" {cell.rjust(w)} " for cell, w in zip(row, widths, strict=True)) + "|")
    lines.append(border)
    return lines


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _omit_zero(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Go's `json:",omitempty"`: zero numbers, false, empty strings and empty lists are left out."""
    return {k: v for k, v in pairs if v not in (0, "", [], None)}


def j_header(h: rpc.ResponseHeader) -> dict[str, Any]:
    return _omit_zero(
        [
            ("cluster_id", h.cluster_id),
            ("member_id", h.member_id),
            ("revision", h.revision),
            ("raft_term", h.raft_term),
        ]
    )


def j_kv(kv: rpc.KeyValue) -> dict[str, Any]:
    return _omit_zero(
        [
            ("key", _b64(kv.key) if kv.key else ""),
            ("create_revision", kv.create_revision),
            ("mod_revision", kv.mod_revision),
            ("version", kv.version),
            ("value", _b64(kv.value) if kv.value else ""),
            ("lease", kv.lease),
        ]
    )


def j_range(r: rpc.RangeResponse) -> dict[str, Any]:
    return {
        "header": j_header(r.header),
        **_omit_zero([("kvs", [j_kv(kv) for kv in r.kvs]), ("more", r.more), ("count", r.count)]),
    }


def j_put(r: rpc.PutResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"header": j_header(r.header)}
    if r.prev_kv is not None:
        out["prev_kv"] = j_kv(r.prev_kv)
    return out


def j_delete(r: rpc.DeleteRangeResponse) -> dict[str, Any]:
    return {
        "header": j_header(r.header),
        **_omit_zero([("deleted", r.deleted), ("prev_kvs", [j_kv(kv) for kv in r.prev_kvs])]),
    }


def j_status(s: StatusResponse) -> dict[str, Any]:
    return {
        "header": j_header(s.header),
        **_omit_zero(
            [
                ("version", s.version),
                ("dbSize", s.db_size),
                ("leader", s.leader),
                ("raftIndex", s.raft_index),
                ("raftTerm", s.raft_term),
                ("raftAppliedIndex", s.raft_applied_index),
                ("errors", list(s.errors)),
                ("dbSizeInUse", s.db_size_in_use),
                ("isLearner", s.is_learner),
            ]
        ),
    }


def j_member(m: Member) -> dict[str, Any]:
    return _omit_zero(
        [
            ("ID", m.id),
            ("name", m.name),
            ("peerURLs", list(m.peer_urls)),
            ("clientURLs", list(m.client_urls)),
            ("isLearner", m.is_learner),
        ]
    )


def j_member_add(r: MemberAddResponse) -> dict[str, Any]:
    """pb.MemberAddResponse through Go's encoding/json: header, member, then members (omitted if empty)."""
    out: dict[str, Any] = {"header": j_header(r.header), "member": j_member(r.member)}
    if r.members:
        out["members"] = [j_member(m) for m in r.members]
    return out


def j_member_list(r: MemberListResponse) -> dict[str, Any]:
    """pb.MemberRemove/Update/PromoteResponse: the header and the membership after the change."""
    out: dict[str, Any] = {"header": j_header(r.header)}
    if r.members:
        out["members"] = [j_member(m) for m in r.members]
    return out


# --------------------------------------------------------------------------- printers


class Printer:
    def __init__(self, fmt: str, out: Out) -> None:
        self.fmt = fmt
        self.out = out
        self.value_only = False

    def kv(self, kv: rpc.KeyValue) -> None:
        if not self.value_only:
            self.out.line(kv.key)
        self.out.line(kv.value)

    # fields format (etcdctl's fieldsPrinter)
    def f_header(self, h: rpc.ResponseHeader) -> None:
        for name, val in (
            ("ClusterID", h.cluster_id),
            ("MemberID", h.member_id),
            ("Revision", h.revision),
            ("RaftTerm", h.raft_term),
        ):
            self.out.line(f'"{name}" : {val}')

    def f_kv(self, prefix: str, kv: rpc.KeyValue) -> None:
        self.out.line(f'"{prefix}Key" : {go_quote(kv.key)}')
        self.out.line(f'"{prefix}CreateRevision" : {kv.create_revision}')
        self.out.line(f'"{prefix}ModRevision" : {kv.mod_revision}')
        self.out.line(f'"{prefix}Version" : {kv.version}')
        self.out.line(f'"{prefix}Value" : {go_quote(kv.value)}')
        self.out.line(f'"{prefix}Lease" : {kv.lease}')

    def put(self, r: rpc.PutResponse) -> None:
        if self.fmt == "json":
            self.out.line(dumps(j_put(r)))
        elif self.fmt == "fields":
            self.f_header(r.header)
            if r.prev_kv is not None:
                self.f_kv("Prev", r.prev_kv)
        else:
            self.out.line("OK")
            if r.prev_kv is not None:
                self.kv(r.prev_kv)

    def get(self, r: rpc.RangeResponse) -> None:
        if self.fmt == "json":
            self.out.line(dumps(j_range(r)))
        elif self.fmt == "fields":
            self.f_header(r.header)
            for kv in r.kvs:
                self.f_kv("", kv)
            self.out.line(f'"More" : {str(r.more).lower()}')
            self.out.line(f'"Count" : {r.count}')
        else:
            for kv in r.kvs:
                self.kv(kv)

    def delete(self, r: rpc.DeleteRangeResponse) -> None:
        if self.fmt == "json":
            self.out.line(dumps(j_delete(r)))
        elif self.fmt == "fields":
            self.f_header(r.header)
            self.out.line(f'"Deleted" : {r.deleted}')
            for kv in r.prev_kvs:
                self.f_kv("Prev", kv)
        else:
            self.out.line(str(r.deleted))
            for kv in r.prev_kvs:
                self.kv(kv)


# --------------------------------------------------------------------------- argument parsing


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        match = re.match(r"unrecognized arguments: (\S+)", message)
        if match:
            raise CommandError(EXIT_ERROR, f"unknown flag: {match.group(1)}")
        match = re.match(r"argument (?:command|subcommand): invalid choice: '([^']*)'", message)
        if match:
            raise CommandError(
                EXIT_ERROR,
                f'unknown command "{match.group(1)}" for "{self.prog}"\n'
                f"Run '{self.prog} --help' for usage.",
            )
        raise CommandError(EXIT_ERROR, message)


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value: str) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--endpoints", default=default("127.0.0.1:2379"), help="gRPC endpoints")
    parser.add_argument(
        "-w", "--write-out", dest="write_out", default=default("simple"), help="output format"
    )
    parser.add_argument("--dial-timeout", default=default("2s"), help="dial timeout")
    parser.add_argument("--command-timeout", default=default("5s"), help="timeout per command")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trikvctl", description="A simple command line client for trikv.")
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    def leaf(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        _globals(p, suppress=True)
        return p

    p = leaf(sub, "put", "Puts the given key into the store")
    p.add_argument("args", nargs="*")
    p.add_argument("--prev-kv", action="store_true")
    p.add_argument("--lease", default="0")
    p.add_argument("--ignore-value", action="store_true")
    p.add_argument("--ignore-lease", action="store_true")

    p = leaf(sub, "get", "Gets the key or a range of keys")
    p.add_argument("args", nargs="*")
    p.add_argument("--consistency", default="l")
    p.add_argument("--order", default="")
    p.add_argument("--sort-by", default="")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--prefix", action="store_true")
    p.add_argument("--from-key", action="store_true")
    p.add_argument("--rev", type=int, default=0)
    p.add_argument("--keys-only", action="store_true")
    p.add_argument("--count-only", action="store_true")
    p.add_argument("--print-value-only", action="store_true")

    p = leaf(sub, "del", "Removes the specified key or range of keys [key, range_end)")
    p.add_argument("args", nargs="*")
    p.add_argument("--prefix", action="store_true")
    p.add_argument("--prev-kv", action="store_true")
    p.add_argument("--from-key", action="store_true")

    p = leaf(sub, "compaction", "Compacts the event history in etcd")
    p.add_argument("args", nargs="*")
    p.add_argument("--physical", action="store_true")

    endpoint = sub.add_parser("endpoint", help="Endpoint related commands")
    endpoint_sub = endpoint.add_subparsers(dest="subcommand", parser_class=_Parser)
    for name, text in (
        ("health", "Checks the healthiness of endpoints specified in `--endpoints` flag"),
        ("status", "Prints out the status of endpoints specified in `--endpoints` flag"),
    ):
        p = leaf(endpoint_sub, name, text)
        p.add_argument("--cluster", action="store_true")

    member = sub.add_parser("member", help="Membership related commands")
    member_sub = member.add_subparsers(dest="subcommand", parser_class=_Parser)
    leaf(member_sub, "list", "Lists all members in the cluster")
    p = leaf(member_sub, "add", "Adds a member into the cluster")
    p.add_argument("args", nargs="*")
    p.add_argument("--peer-urls", default="", help="comma separated peer URLs for the new member.")
    p.add_argument("--learner", action="store_true", help="indicates if the new member is raft learner")
    p = leaf(member_sub, "remove", "Removes a member from the cluster")
    p.add_argument("args", nargs="*")
    p = leaf(member_sub, "update", "Updates a member in the cluster")
    p.add_argument("args", nargs="*")
    p.add_argument("--peer-urls", default="", help="comma separated peer URLs for the updated member.")
    p = leaf(member_sub, "promote", "Promotes a non-voting member in the cluster")
    p.add_argument("args", nargs="*")

    p = leaf(sub, "move-leader", "Transfers leadership to another etcd cluster member.")
    p.add_argument("args", nargs="*")

    leaf(sub, "version", "Prints the version of etcdctl")
    return parser


def _normalise_bools(argv: Sequence[str]) -> list[str]:
    """cobra accepts --flag=true/false for boolean flags; argparse's store_true does not."""
    out: list[str] = []
    for arg in argv:
        name, eq, val = arg.partition("=")
        if eq and name in _BOOL_FLAGS and val.lower() in ("true", "false", "1", "0", "t", "f"):
            if val.lower() in ("true", "1", "t"):
                out.append(name)
            continue
        out.append(arg)
    return out


# --------------------------------------------------------------------------- commands


@attrs.define
class Ctx:
    args: argparse.Namespace
    out: Out
    printer: Printer
    endpoints: list[str]
    dial_timeout: float
    command_timeout: float


def _client(ctx: Ctx, endpoints: Sequence[str] | None = None) -> Any:
    return connect(
        list(endpoints or ctx.endpoints),
        dial_timeout=ctx.dial_timeout,
        request_timeout=ctx.command_timeout,
        lazy=True,
    )


def _read_stdin() -> bytes:
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    data = stream.read()
    return data.encode() if isinstance(data, str) else data


async def cmd_put(ctx: Ctx) -> None:
    a = ctx.args
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not a.args:
        raise CommandError(EXIT_BAD_ARGS, usage)
    key = a.args[0]
    if a.ignore_value and len(a.args) > 1:
        raise CommandError(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    value = b""
    if not a.ignore_value:
        if len(a.args) > 1:
            value = a.args[1].encode()
        else:
            try:
                value = _read_stdin()
            except (OSError, ValueError):
                value = b""
            if not value:
                raise CommandError(EXIT_BAD_ARGS, usage)
    lease = parse_lease(a.lease)
    async with _client(ctx) as c:
        resp = await c.put(
            key,
            value,
            lease=lease,
            prev_kv=a.prev_kv,
            ignore_value=a.ignore_value,
            ignore_lease=a.ignore_lease,
        )
    ctx.printer.put(resp)


def parse_lease(text: str) -> int:
    try:
        value = int(text, 16)
        if not re.fullmatch(r"[+-]?[0-9a-fA-F]+", text) or not -(2**63) <= value < 2**63:
            raise ValueError
    except ValueError:
        raise CommandError(
            EXIT_BAD_ARGS,
            f'bad lease ID (strconv.ParseInt: parsing "{text}": invalid syntax), expecting ID in Hex',
        ) from None
    return value


def _range_args(a: argparse.Namespace, name: str) -> tuple[str, str | None]:
    if not a.args:
        raise CommandError(
            EXIT_BAD_ARGS, f"{name} command needs one argument as key and an optional argument as range_end"
        )
    if a.prefix and a.from_key:
        raise CommandError(
            EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one"
        )
    range_end = None
    if len(a.args) > 1:
        if a.prefix or a.from_key:
            raise CommandError(
                EXIT_BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            )
        range_end = a.args[1]
    return a.args[0], range_end


_SORT_TARGETS = {
    "": rpc.SortTarget.KEY,
    "KEY": rpc.SortTarget.KEY,
    "CREATE": rpc.SortTarget.CREATE,
    "MODIFY": rpc.SortTarget.MOD,
    "VALUE": rpc.SortTarget.VALUE,
    "VERSION": rpc.SortTarget.VERSION,
}
_SORT_ORDERS = {"": rpc.SortOrder.NONE, "ASCEND": rpc.SortOrder.ASCEND, "DESCEND": rpc.SortOrder.DESCEND}


async def cmd_get(ctx: Ctx) -> None:
    a = ctx.args
    key, range_end = _range_args(a, "get")
    if a.keys_only and a.count_only:
        raise CommandError(
            EXIT_BAD_ARGS, "`--keys-only` and `--count-only` cannot be set at the same time, choose one"
        )
    if a.consistency not in ("l", "s"):
        raise CommandError(EXIT_BAD_FEATURE, f'unknown consistency flag "{a.consistency}"')
    order = _SORT_ORDERS.get(a.order.upper())
    if order is None:
        raise CommandError(EXIT_BAD_FEATURE, f"bad sort order {a.order}")
    target = _SORT_TARGETS.get(a.sort_by.upper())
    if target is None:
        raise CommandError(EXIT_BAD_FEATURE, f"bad sort target {a.sort_by}")
    async with _client(ctx) as c:
        resp = await c.get(
            key,
            range_end,
            prefix=a.prefix,
            from_key=a.from_key,
            revision=max(a.rev, 0),
            limit=a.limit,
            serializable=a.consistency == "s",
            keys_only=a.keys_only,
            count_only=a.count_only,
            sort_order=order,
            sort_target=target,
        )
    # etcdctl 3.5 checks these after the request, exactly like this.
    if a.count_only and ctx.printer.fmt != "fields":
        raise CommandError(EXIT_BAD_ARGS, "--count-only is only for `--write-out=fields`")
    if a.print_value_only:
        if ctx.printer.fmt != "simple":
            raise CommandError(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        ctx.printer.value_only = True
    ctx.printer.get(resp)


async def cmd_del(ctx: Ctx) -> None:
    a = ctx.args
    key, range_end = _range_args(a, "del")
    async with _client(ctx) as c:
        resp = await c.delete(key, range_end, prefix=a.prefix, from_key=a.from_key, prev_kv=a.prev_kv)
    ctx.printer.delete(resp)


async def cmd_compaction(ctx: Ctx) -> None:
    a = ctx.args
    if len(a.args) != 1:
        raise CommandError(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        rev = int(a.args[0])
    except ValueError:
        raise CommandError(
            EXIT_BAD_ARGS, f'strconv.ParseInt: parsing "{a.args[0]}": invalid syntax'
        ) from None
    async with _client(ctx) as c:
        await c.compact(rev, physical=a.physical)
    ctx.out.line(f"compacted revision {rev}")


async def _cluster_endpoints(ctx: Ctx) -> list[str]:
    if not ctx.args.cluster:
        return ctx.endpoints
    try:
        async with _client(ctx) as c:
            members = await c.member_list()
    except errors.TrikvError as exc:
        raise CommandError(
            EXIT_ERROR, f"failed to fetch endpoints from etcd cluster member list: {error_text(exc)}"
        ) from exc
    return [url for m in members.members for url in m.client_urls]


async def cmd_endpoint_health(ctx: Ctx) -> None:
    endpoints = await _cluster_endpoints(ctx)
    results: dict[int, dict[str, Any]] = {}

    async def probe(i: int, ep: str) -> None:
        start = time.perf_counter()
        error = ""
        try:
            async with _client(ctx, [ep]) as c:
                await c.get("health")
        except errors.PermissionDeniedError:
            pass  # the request went through consensus: the member is healthy
        except errors.TrikvError as exc:
            error = error_text(exc)
        took = go_duration(time.perf_counter() - start)
        results[i] = {"endpoint": ep, "health": not error, "took": took, "error": error}

    async with trio.open_nursery() as nursery:
        for i, ep in enumerate(endpoints):
            nursery.start_soon(probe, i, ep)
    health = [results[i] for i in range(len(endpoints))]
    fmt = ctx.printer.fmt
    if fmt == "json":
        body = [
            {k: v for k, v in h.items() if k != "error" or v}  # etcd: `json:"error,omitempty"`
            for h in health
        ]
        ctx.out.line(dumps(body))
    elif fmt == "table":
        rows = [[h["endpoint"], str(h["health"]).lower(), h["took"], h["error"]] for h in health]
        for line in render_table(["ENDPOINT", "HEALTH", "TOOK", "ERROR"], rows):
            ctx.out.line(line)
    else:
        for h in health:
            if h["health"]:
                ctx.out.line(
                    f"{h['endpoint']} is healthy: successfully committed proposal: took = {h['took']}"
                )
            else:
                ctx.out.err(f"{h['endpoint']} is unhealthy: failed to commit proposal: {h['error']}")
    if any(not h["health"] for h in health):
        raise CommandError(EXIT_ERROR, "unhealthy cluster")


def _status_row(ep: str, s: StatusResponse) -> list[str]:
    return [
        ep,
        f"{s.header.member_id:x}",
        s.version,
        humanize_bytes(s.db_size),
        str(s.leader == s.header.member_id).lower(),
        str(s.is_learner).lower(),
        str(s.raft_term),
        str(s.raft_index),
        str(s.raft_applied_index),
        ", ".join(s.errors),
    ]


STATUS_HEADER = [
    "ENDPOINT",
    "ID",
    "VERSION",
    "DB SIZE",
    "IS LEADER",
    "IS LEARNER",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "ERRORS",
]


async def cmd_endpoint_status(ctx: Ctx) -> None:
    endpoints = await _cluster_endpoints(ctx)
    statuses: list[tuple[str, StatusResponse]] = []
    failed = False
    async with _client(ctx, endpoints) as c:
        for ep in endpoints:
            try:
                statuses.append((ep, await c.status(ep)))
            except errors.TrikvError as exc:
                failed = True
                ctx.out.err(f"Failed to get the status of endpoint {ep} ({error_text(exc)})")
    fmt = ctx.printer.fmt
    if fmt == "json":
        ctx.out.line(dumps([{"Endpoint": ep, "Status": j_status(s)} for ep, s in statuses]))
    elif fmt == "table":
        for line in render_table(STATUS_HEADER, [_status_row(ep, s) for ep, s in statuses]):
            ctx.out.line(line)
    else:
        for ep, s in statuses:
            ctx.out.line(", ".join(_status_row(ep, s)))
    if failed:
        raise _Exit(EXIT_ERROR)


def _member_row(m: Member) -> list[str]:
    return [
        f"{m.id:x}",
        "started" if m.name else "unstarted",
        m.name,
        ",".join(m.peer_urls),
        ",".join(m.client_urls),
        str(m.is_learner).lower(),
    ]


async def cmd_member_list(ctx: Ctx) -> None:
    async with _client(ctx) as c:
        resp: MemberListResponse = await c.member_list()
    fmt = ctx.printer.fmt
    if fmt == "json":
        body = {"header": j_header(resp.header), "members": [j_member(m) for m in resp.members]}
        ctx.out.line(dumps(body))
    elif fmt == "table":
        header = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"]
        for line in render_table(header, [_member_row(m) for m in resp.members]):
            ctx.out.line(line)
    else:
        for m in resp.members:
            ctx.out.line(", ".join(_member_row(m)))


def parse_uint64_hex(text: str) -> int:
    """Go's strconv.ParseUint(text, 16, 64), with its error text (etcdctl prints it verbatim)."""
    value = 0
    for ch in text:
        digit = int(ch, 16) if ch in "0123456789abcdefABCDEF" else -1
        if digit < 0:
            break
        value = value * 16 + digit
        if value >= 2**64:
            raise ValueError(f"strconv.ParseUint: parsing {go_quote(text.encode())}: value out of range")
    else:
        if text:
            return value
    raise ValueError(f"strconv.ParseUint: parsing {go_quote(text.encode())}: invalid syntax")


def _member_id_arg(args: Sequence[str]) -> int:
    """The one hex member ID of `member remove|update|promote`, checked as etcdctl does."""
    if len(args) != 1:
        raise CommandError(EXIT_BAD_ARGS, "member ID is not provided")
    try:
        return parse_uint64_hex(args[0])
    except ValueError as exc:
        raise CommandError(EXIT_BAD_ARGS, f"bad member ID arg ({exc}), expecting ID in Hex") from None


def _rpc_output_only(ctx: Ctx) -> None:
    """etcdctl prints these responses only as simple text or JSON; table and fields are refused.

    etcdctl refuses in its printer, i.e. after the request already changed the cluster; the output and
    exit code are the same here, but the refusal comes first so a wrong -w changes nothing.
    """
    fmt = ctx.printer.fmt
    if fmt not in ("simple", "json"):
        raise CommandError(EXIT_BAD_FEATURE, f"{fmt} not supported as output format")


def _split_urls(text: str) -> list[str]:
    return text.split(",")  # as etcdctl: strings.Split, empty parts are left for the server to refuse


async def cmd_member_add(ctx: Ctx) -> None:
    a = ctx.args
    if not a.args:
        raise CommandError(EXIT_BAD_ARGS, "member name not provided")
    if len(a.args) > 1:
        text = "too many arguments"
        for arg in a.args:
            if arg.lower().startswith("http"):
                text += f", did you mean --peer-urls={arg}"
        raise CommandError(EXIT_BAD_ARGS, text)
    name = a.args[0]
    if not a.peer_urls:
        raise CommandError(EXIT_BAD_ARGS, "member peer urls not provided")
    _rpc_output_only(ctx)
    async with _client(ctx) as c:
        resp: MemberAddResponse = await c.member_add(_split_urls(a.peer_urls), is_learner=a.learner)
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps(j_member_add(resp)))
        return
    ctx.out.line(f"Member {resp.member.id:16x} added to cluster {resp.header.cluster_id:16x}")
    # What the new member needs to join. etcdctl prints etcd's environment variable names; a trikv
    # member reads the same values as TRIKV_NAME, TRIKV_INITIAL_CLUSTER, TRIKV_INITIAL_ADVERTISE_PEER_URLS
    # and TRIKV_INITIAL_CLUSTER_STATE (or the YAML keys name, initial-cluster, ...), so the lines stay
    # etcd's for scripts that parse them.
    conf = [
        f"{name if m.id == resp.member.id else m.name}={url}" for m in resp.members for url in m.peer_urls
    ]
    ctx.out.line()
    ctx.out.line(f"ETCD_NAME={go_quote(name.encode())}")
    ctx.out.line(f"ETCD_INITIAL_CLUSTER={go_quote(','.join(conf).encode())}")
    ctx.out.line(f"ETCD_INITIAL_ADVERTISE_PEER_URLS={go_quote(a.peer_urls.encode())}")
    ctx.out.line('ETCD_INITIAL_CLUSTER_STATE="existing"')


def _member_changed(ctx: Ctx, member_id: int, verb: str, resp: MemberListResponse) -> None:
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps(j_member_list(resp)))
    else:
        ctx.out.line(f"Member {member_id:16x} {verb} cluster {resp.header.cluster_id:16x}")


async def cmd_member_remove(ctx: Ctx) -> None:
    member_id = _member_id_arg(ctx.args.args)
    _rpc_output_only(ctx)
    async with _client(ctx) as c:
        resp = await c.member_remove(member_id)
    _member_changed(ctx, member_id, "removed from", resp)


async def cmd_member_update(ctx: Ctx) -> None:
    member_id = _member_id_arg(ctx.args.args)
    if not ctx.args.peer_urls:
        raise CommandError(EXIT_BAD_ARGS, "member peer urls not provided")
    _rpc_output_only(ctx)
    async with _client(ctx) as c:
        resp = await c.member_update(member_id, _split_urls(ctx.args.peer_urls))
    _member_changed(ctx, member_id, "updated in", resp)


async def cmd_member_promote(ctx: Ctx) -> None:
    # etcdctl 3.4/3.5 panics on `-w json` here (its JSON printer lacks MemberPromote); later etcdctl
    # prints pb.MemberPromoteResponse, which is what this prints.
    member_id = _member_id_arg(ctx.args.args)
    _rpc_output_only(ctx)
    async with _client(ctx) as c:
        resp = await c.member_promote(member_id)
    _member_changed(ctx, member_id, "promoted in", resp)


async def cmd_move_leader(ctx: Ctx) -> None:
    """etcdctl's way: ask each endpoint in turn for its status and send the request to the leader."""
    a = ctx.args
    if len(a.args) != 1:
        raise CommandError(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    try:
        target = parse_uint64_hex(a.args[0])
    except ValueError as exc:
        raise CommandError(EXIT_BAD_ARGS, str(exc)) from None
    _rpc_output_only(ctx)
    for ep in ctx.endpoints:
        async with _client(ctx, [ep]) as c:
            status = await c.status()
            if status.header.member_id != status.leader:
                continue
            resp: MoveLeaderResponse = await c.move_leader(target)
        if ctx.printer.fmt == "json":
            ctx.out.line(dumps({"header": j_header(resp.header)}))
        else:
            ctx.out.line(f"Leadership transferred from {status.leader:x} to {target:x}")
        return
    raise CommandError(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(ctx.endpoints)}]")


async def cmd_version(ctx: Ctx) -> None:
    ctx.out.line(f"trikvctl version: {trikv.__version__}")
    ctx.out.line(f"API version: {API_VERSION}")


COMMANDS: dict[tuple[str, str | None], Callable[[Ctx], Any]] = {
    ("put", None): cmd_put,
    ("get", None): cmd_get,
    ("del", None): cmd_del,
    ("compaction", None): cmd_compaction,
    ("endpoint", "health"): cmd_endpoint_health,
    ("endpoint", "status"): cmd_endpoint_status,
    ("member", "list"): cmd_member_list,
    ("member", "add"): cmd_member_add,
    ("member", "remove"): cmd_member_remove,
    ("member", "update"): cmd_member_update,
    ("member", "promote"): cmd_member_promote,
    ("move-leader", None): cmd_move_leader,
    ("version", None): cmd_version,
}
_FIELDS_COMMANDS = {"put", "get", "del"}
# Commands whose printer refuses table/fields with etcdctl's own message (see _rpc_output_only).
_RPC_OUTPUT_COMMANDS = {"move-leader", "member add", "member remove", "member update", "member promote"}


def error_text(exc: BaseException) -> str:
    """What etcdctl prints after `Error: ` for this failure."""
    if isinstance(exc, errors.EtcdError):
        return exc.text
    if isinstance(exc, (errors.NoEndpointsError, DeadlineExceededError)):
        return "context deadline exceeded"
    if isinstance(exc, errors.OutcomeUnknownError) and isinstance(
        exc.__cause__, (errors.EtcdError, DeadlineExceededError)
    ):
        return error_text(exc.__cause__)  # what etcdctl shows: the server's error or the deadline
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends us quietly, like any Unix tool
    out = Out()
    args_list = _normalise_bools(sys.argv[1:] if argv is None else list(argv))
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        command = getattr(args, "command", None)
        if command is None:
            parser.print_help()
            return 0
        key = (command, getattr(args, "subcommand", None))
        handler = COMMANDS.get(key)
        if handler is None:
            raise CommandError(EXIT_ERROR, f"unknown command for {command!r}")
        rpc_output = " ".join(k for k in key if k) in _RPC_OUTPUT_COMMANDS
        if args.write_out not in FORMATS or (
            args.write_out == "fields" and command not in _FIELDS_COMMANDS and not rpc_output
        ):
            raise CommandError(EXIT_BAD_FEATURE, "unsupported output format")
        timeouts = []
        for flag, text in (
            ("--dial-timeout", args.dial_timeout),
            ("--command-timeout", args.command_timeout),
        ):
            try:
                timeouts.append(parse_go_duration(text))
            except ValueError as exc:
                raise CommandError(
                    EXIT_ERROR, f'invalid argument "{text}" for "{flag}" flag: {exc}'
                ) from None
        dial_timeout, command_timeout = timeouts
        endpoints = [e for e in args.endpoints.split(",") if e]
        ctx = Ctx(args, out, Printer(args.write_out, out), endpoints, dial_timeout, command_timeout)
        trio.run(handler, ctx)
    except CommandError as exc:
        out.err(f"Error: {exc.message}")
        return exc.code
    except _Exit as exc:
        return exc.code
    except errors.TrikvError as exc:
        out.err(f"Error: {error_text(exc)}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
