"""trikvctl: etcdctl 3.4's command line, environment, output formats and exit codes, for trikv.

Output matches etcdctl byte for byte where the shapes allow (see `ctl_print`), so scripts written for
etcdctl keep working. Exit codes are etcdctl's (ctlv3/command/error.go): 1 error, 2 bad connection,
3 invalid input, 4 bad feature (a valid flag with an unsupported value, e.g. `get -w table`), 5
interrupted, 6 I/O, 128 bad arguments. No Python traceback ever reaches the user: every failure is the
one `Error: ...` line etcdctl prints, and Ctrl-C ends the process by SIGINT, as a Go program dies.

Start-up cost matters for a CLI used in shell loops, so the unary commands here run on the blocking
transport (`trikv.blocking`) and never import trio; streaming commands (watch, lease keep-alive) may
use the Trio client when they arrive.
"""

from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "trikvctl":
    # Run as the program: a Ctrl-C while Python is still importing ends the process by SIGINT at once
    # (nothing to clean up yet) instead of printing an import-time KeyboardInterrupt trace. main()
    # gives SIGINT back to Python once there is something to clean up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

import argparse
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import trikv
from trikv.api import errors, rpc
from trikv.api.protocol import MemberAddResponse, MemberListResponse, StatusResponse
from trikv.blocking import BlockingClient
from trikv.ops import DeadlineExceededError, delete_op, get_op, put_op
from trikv.tools import ctl_check, ctl_lease, ctl_maintenance, ctl_snapshot, ctl_watch
from trikv.tools.ctl_print import (
    Out,
    Printer,
    dumps,
    go_duration,
    go_quote,
    humanize_bytes,
    j_header,
    j_member,
    j_member_add,
    j_member_list,
    j_status,
    parse_go_duration,
    render_table,
)

__all__ = [
    "STATUS_HEADER",
    "error_text",
    "go_duration",
    "go_quote",
    "humanize_bytes",
    "main",
    "parse_go_duration",
    "parse_uint64_hex",
    "render_table",
]

EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 5
EXIT_IO = 6
EXIT_BAD_ARGS = 128

API_VERSION = "3.4"
ENV_PREFIX = "ETCDCTL"
FORMATS = ("simple", "json", "protobuf", "fields", "table")

# What each command can print, as etcdctl 3.4's printers: anything else is "<fmt> not supported as
# output format" (exit 4). etcdctl refuses in its printer, after the request; here the refusal comes
# first, so a wrong -w changes nothing. `compaction` prints the same line whatever -w says.
_KV_FORMATS = frozenset({"simple", "json", "fields", "protobuf"})
_RPC_FORMATS = frozenset({"simple", "json", "protobuf"})
SUPPORTED_FORMATS: dict[str, frozenset[str]] = {
    "put": _KV_FORMATS,
    "get": _KV_FORMATS,
    "del": _KV_FORMATS,
    "txn": _KV_FORMATS,
    "compaction": frozenset(FORMATS),
    "endpoint health": frozenset({"simple", "json", "fields", "table"}),
    "endpoint status": frozenset({"simple", "json", "fields", "table"}),
    "member list": frozenset(FORMATS),
    "member add": _RPC_FORMATS,
    "member remove": _RPC_FORMATS,
    "member update": _RPC_FORMATS,
    # etcdctl 3.4 panics on any format but simple here (its printers lack MemberPromote); later
    # etcdctl prints pb.MemberPromoteResponse as JSON, which is what this does.
    "member promote": frozenset({"simple", "json"}),
    "move-leader": _RPC_FORMATS,
}
SUPPORTED_FORMATS.update(ctl_snapshot.FORMATS)
SUPPORTED_FORMATS.update(ctl_lease.FORMATS)
SUPPORTED_FORMATS.update(ctl_watch.FORMATS)
SUPPORTED_FORMATS.update(ctl_maintenance.FORMATS)

# Command-level boolean flags: cobra takes --flag=true/false as well as --flag.
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
        "--interactive",
    }
)
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


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


# --------------------------------------------------------------------------- global flags and ETCDCTL_*


class GlobalFlag:
    """One of etcdctl's global flags: settable on the command line or as ETCDCTL_<NAME>."""

    def __init__(
        self, name: str, kind: str, default: str, help_text: str, short: str = "", refuse: str = ""
    ) -> None:
        self.name = name
        self.kind = kind  # "str", "bool", "duration", "list"
        self.default = default
        self.help = help_text
        self.short = short
        self.refuse = refuse  # set: etcdctl's flag, refused with this line unless left at its default

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}_{self.dest.upper()}"


_NO_TLS = "TLS is not supported by trikv yet: use http:// endpoints"
_NO_AUTH = "authentication is not supported by trikv yet"
_NO_SRV = (
    "--discovery-srv is not supported by trikvctl (no DNS SRV discovery); "
    "list the members' client URLs in --endpoints or ETCDCTL_ENDPOINTS"
)

GLOBAL_FLAGS = (
    GlobalFlag(
        "cacert",
        "str",
        "",
        "verify certificates of TLS-enabled secure servers using this CA bundle (not supported yet)",
        refuse=f"--cacert: {_NO_TLS}",
    ),
    GlobalFlag(
        "cert",
        "str",
        "",
        "identify secure client using this TLS certificate file (not supported yet)",
        refuse=f"--cert: {_NO_TLS}",
    ),
    GlobalFlag(
        "command-timeout", "duration", "5s", "timeout for short running command (excluding dial timeout)"
    ),
    GlobalFlag("debug", "bool", "false", "enable client-side debug logging"),
    GlobalFlag("dial-timeout", "duration", "2s", "dial timeout for client connections"),
    GlobalFlag(
        "discovery-srv",
        "str",
        "",
        "domain name to query for SRV records describing cluster endpoints (not supported by trikvctl: "
        "list the members' client URLs in --endpoints)",
        short="-d",
        refuse=_NO_SRV,
    ),
    GlobalFlag("discovery-srv-name", "str", "", "service name to query when using DNS discovery"),
    GlobalFlag(
        "endpoints",
        "list",
        "127.0.0.1:2379",
        "trikv endpoints: client URLs of cluster members (host:port or http://host:port), comma separated",
    ),
    GlobalFlag("hex", "bool", "false", "print byte strings as hex encoded strings"),
    GlobalFlag(
        "insecure-discovery", "bool", "true", "accept insecure SRV records describing cluster endpoints"
    ),
    GlobalFlag(
        "insecure-skip-tls-verify",
        "bool",
        "false",
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
    ),
    GlobalFlag(
        "insecure-transport",
        "bool",
        "true",
        "disable transport security for client connections",
        refuse=f"--insecure-transport=false: {_NO_TLS}",
    ),
    GlobalFlag("keepalive-time", "duration", "2s", "keepalive time for client connections"),
    GlobalFlag("keepalive-timeout", "duration", "6s", "keepalive timeout for client connections"),
    GlobalFlag(
        "key",
        "str",
        "",
        "identify secure client using this TLS key file (not supported yet)",
        refuse=f"--key: {_NO_TLS}",
    ),
    GlobalFlag(
        "password",
        "str",
        "",
        "password for authentication (not supported yet)",
        refuse=f"--password: {_NO_AUTH}",
    ),
    GlobalFlag(
        "user",
        "str",
        "",
        "username[:password] for authentication (not supported yet)",
        refuse=f"--user: {_NO_AUTH}",
    ),
    GlobalFlag(
        "write-out",
        "str",
        "simple",
        "set the output format (fields, json, protobuf, simple, table)",
        short="-w",
    ),
)
_GLOBAL_BOOLS = {f"--{f.name}" for f in GLOBAL_FLAGS if f.kind == "bool"}


def parse_go_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _now_capnslog() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}"


def apply_env(args: argparse.Namespace, out: Out, environ: dict[str, str]) -> None:
    """etcdctl's flags.SetPflagsFromEnv: ETCDCTL_<FLAG> sets each global flag the command line left unset.

    Only global flags are read from the environment; command flags never are. An ETCDCTL_* variable
    that names no global flag is warned about (capnslog's line, as etcdctl prints it). Where etcdctl
    3.4 stops with "conflicting environment variable ... is shadowed by corresponding command-line
    flag", the command-line flag wins here, so `--endpoints=$ETCDCTL_ENDPOINTS` style scripts work.
    A value that does not parse is an error here (etcdctl silently keeps the default).
    """
    known = {f.env for f in GLOBAL_FLAGS} | {f"{ENV_PREFIX}_API"}
    for flag in GLOBAL_FLAGS:
        if getattr(args, flag.dest, None) is not None:
            continue
        raw = environ.get(flag.env, "")
        value = raw if raw else flag.default
        if flag.kind == "bool":
            try:
                setattr(args, flag.dest, parse_go_bool(value))
            except ValueError as exc:
                raise CommandError(EXIT_ERROR, f'invalid value "{raw}" for {flag.env}: {exc}') from None
        else:
            setattr(args, flag.dest, value)
        if raw and flag.kind == "duration":
            try:
                parse_go_duration(raw)
            except ValueError as exc:
                raise CommandError(EXIT_ERROR, f'invalid value "{raw}" for {flag.env}: {exc}') from None
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX + "_") and name not in known:
            out.err(
                f"{_now_capnslog()} W | pkg/flags: unrecognized environment variable {name}={environ[name]}"
            )


def _go_flag_value(flag: GlobalFlag, value: Any) -> str:
    """How Go's pflag prints a flag's value (what --debug lists)."""
    if flag.kind == "bool":
        return "true" if value else "false"
    if flag.kind == "list":
        return "[" + ",".join(e.strip() for e in str(value).split(",")) + "]"
    if flag.kind == "duration":
        return go_duration(parse_go_duration(str(value)))
    return str(value)


# --------------------------------------------------------------------------- argument parsing


class _Unused:
    """Stands in for the parsers of commands that were not asked for: building them costs start-up time."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_parser(self, *args: Any, **kwargs: Any) -> _Unused:
        return self

    def add_subparsers(self, *args: Any, **kwargs: Any) -> _Unused:
        return self


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, sized without importing shutil (argparse builds one per add_argument)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(sys.stdout.fileno()).columns
        except (ValueError, OSError, AttributeError):
            columns = 80
        super().__init__(prog, indent_increment, max_help_position, width=columns - 2)


class _Parser(argparse.ArgumentParser):
    """argparse with cobra's error lines (every one exits 1 through etcdctl's ExitWithError)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        match = re.match(r"unrecognized arguments: (\S+)", message)
        if match:
            raise CommandError(EXIT_ERROR, f"unknown flag: {match.group(1)}")
        match = re.match(
            r"argument (?:command|subcommand|COMMAND|SUBCOMMAND): invalid choice: '([^']*)'", message
        )
        if match:
            raise CommandError(
                EXIT_ERROR,
                f'unknown command "{match.group(1)}" for "{self.prog}"\n'
                f"Run '{self.prog} --help' for usage.",
            )
        match = re.match(r"argument (?:-\w, )?(--[\w-]+): expected one argument", message)
        if match:
            raise CommandError(EXIT_ERROR, f"flag needs an argument: {match.group(1)}")
        match = re.match(r"argument (--[\w-]+): invalid int value: '(.*)'", message, re.S)
        if match:
            flag, text = match.groups()
            raise CommandError(
                EXIT_ERROR,
                f'invalid argument "{text}" for "{flag}" flag: strconv.ParseInt: parsing "{text}": invalid syntax',
            )
        raise CommandError(EXIT_ERROR, message)


def _globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global flags, on the root parser (default None: unset) and on every command (suppressed)."""
    group = parser.add_argument_group("global options")
    for flag in GLOBAL_FLAGS:
        names = [f"--{flag.name}", *([flag.short] if flag.short else [])]
        default = None if top else argparse.SUPPRESS
        shown = flag.default or '""'
        text = f"{flag.help} (default {shown}; env {flag.env})"
        if flag.kind == "bool":
            group.add_argument(*names, dest=flag.dest, action="store_true", default=default, help=text)
            # --hex=false: _normalise_args turns it into this hidden spelling
            group.add_argument(
                f"--{flag.name}=false",
                dest=flag.dest,
                action="store_false",
                default=default,
                help=argparse.SUPPRESS,
            )
        else:
            metavar = {"duration": "DURATION", "list": "ENDPOINTS"}.get(flag.kind, "STRING")
            if flag.name == "write-out":
                metavar = "FORMAT"
            group.add_argument(*names, dest=flag.dest, default=default, metavar=metavar, help=text)


_COMMAND_NAMES: tuple[str, ...] = (
    "put",
    "get",
    "del",
    "txn",
    "compaction",
    "endpoint",
    "member",
    "move-leader",
    "version",
)
_COMMAND_NAMES += ctl_snapshot.COMMAND_NAMES
_COMMAND_NAMES += ctl_lease.COMMAND_NAMES
_COMMAND_NAMES += ctl_watch.COMMAND_NAMES
_COMMAND_NAMES += ctl_maintenance.COMMAND_NAMES
_COMMAND_NAMES += ctl_check.COMMAND_NAMES
_VALUE_FLAGS = frozenset(
    [f"--{f.name}" for f in GLOBAL_FLAGS if f.kind != "bool"] + [f.short for f in GLOBAL_FLAGS if f.short]
)


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of argv (the first word that is not a global flag or its value), if known."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            return None
        elif arg.startswith("-"):
            skip = arg in _VALUE_FLAGS
        else:
            return arg if arg in _COMMAND_NAMES else None
    return None


def build_parser(only: str | None = None, *, with_globals: bool = True) -> argparse.ArgumentParser:
    """The whole command line, or (`only`) just one command's part: building all of it costs ~8 ms,
    a tenth of a unary command's budget. Without globals: a txn op line (`put k v --prev-kv`)."""
    parser = _Parser(
        prog="trikvctl",
        description="A simple command line client for trikv (etcdctl's commands, flags and output).",
        epilog="Every global option can also be set as an environment variable ETCDCTL_<OPTION> "
        "(e.g. ETCDCTL_ENDPOINTS); an option on the command line wins.",
    )
    _globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    def leaf(parent: Any, name: str, help_text: str, group: str = "") -> Any:
        if only is not None and (group or name) != only:
            return _Unused()  # this command was not asked for
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        if with_globals:
            _globals(p, top=False)
        return p

    p = leaf(sub, "put", "Puts the given key into the store")
    p.add_argument("args", nargs="*", metavar="<key> <value>", help="the value may come from stdin instead")
    p.add_argument(
        "--prev-kv", action="store_true", help="return the previous key-value pair before modification"
    )
    p.add_argument("--lease", default="0", help="lease ID (in hexadecimal) to attach to the key")
    p.add_argument("--ignore-value", action="store_true", help="updates the key using its current value")
    p.add_argument("--ignore-lease", action="store_true", help="updates the key using its current lease")

    p = leaf(sub, "get", "Gets the key or a range of keys")
    p.add_argument("args", nargs="*", metavar="<key> [range_end]")
    p.add_argument("--consistency", default="l", help="Linearizable(l) or Serializable(s)")
    p.add_argument("--order", default="", help="Order of results; ASCEND or DESCEND (ASCEND by default)")
    p.add_argument("--sort-by", default="", help="Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION")
    p.add_argument("--limit", type=int, default=0, help="Maximum number of results")
    p.add_argument("--prefix", action="store_true", help="Get keys with matching prefix")
    p.add_argument(
        "--from-key",
        action="store_true",
        help="Get keys that are greater than or equal to the given key using byte compare",
    )
    p.add_argument("--rev", type=int, default=0, help="Specify the kv revision")
    p.add_argument("--keys-only", action="store_true", help="Get only the keys")
    p.add_argument("--count-only", action="store_true", help="Get only the count (with --write-out=fields)")
    p.add_argument(
        "--print-value-only",
        action="store_true",
        help='Only write values when using the "simple" output format',
    )

    p = leaf(sub, "del", "Removes the specified key or range of keys [key, range_end)")
    p.add_argument("args", nargs="*", metavar="<key> [range_end]")
    p.add_argument("--prefix", action="store_true", help="delete keys with matching prefix")
    p.add_argument("--prev-kv", action="store_true", help="return deleted key-value pairs")
    p.add_argument(
        "--from-key",
        action="store_true",
        help="delete keys that are greater than or equal to the given key using byte compare",
    )

    p = leaf(sub, "txn", "Txn processes all the requests in one transaction")
    p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("-i", "--interactive", action="store_true", help="Input transaction in interactive mode")

    p = leaf(sub, "compaction", "Compacts the event history in trikv")
    p.add_argument("args", nargs="*", metavar="<revision>")
    p.add_argument(
        "--physical",
        action="store_true",
        help="'true' to wait for compaction to physically remove all old revisions",
    )

    unused = _Unused()
    endpoint = (sub if only in (None, "endpoint") else unused).add_parser(
        "endpoint", help="Endpoint related commands", description="Endpoint related commands"
    )
    endpoint_sub = endpoint.add_subparsers(dest="subcommand", parser_class=_Parser, metavar="SUBCOMMAND")
    for name, text in (
        ("health", "Checks the healthiness of endpoints specified in `--endpoints` flag"),
        ("status", "Prints out the status of endpoints specified in `--endpoints` flag"),
    ):
        p = leaf(endpoint_sub, name, text, "endpoint")
        p.add_argument(
            "--cluster", action="store_true", help="use all endpoints from the cluster member list"
        )
    ctl_maintenance.add_endpoint_parsers(endpoint_sub, leaf)

    member = (sub if only in (None, "member") else unused).add_parser(
        "member", help="Membership related commands", description="Membership related commands"
    )
    member_sub = member.add_subparsers(dest="subcommand", parser_class=_Parser, metavar="SUBCOMMAND")
    leaf(member_sub, "list", "Lists all members in the cluster", "member")
    p = leaf(member_sub, "add", "Adds a member into the cluster", "member")
    p.add_argument("args", nargs="*", metavar="<memberName>")
    p.add_argument("--peer-urls", default="", help="comma separated peer URLs for the new member.")
    p.add_argument("--learner", action="store_true", help="indicates if the new member is raft learner")
    p = leaf(member_sub, "remove", "Removes a member from the cluster", "member")
    p.add_argument("args", nargs="*", metavar="<memberID>", help="the member ID in hexadecimal")
    p = leaf(member_sub, "update", "Updates a member in the cluster", "member")
    p.add_argument("args", nargs="*", metavar="<memberID>", help="the member ID in hexadecimal")
    p.add_argument("--peer-urls", default="", help="comma separated peer URLs for the updated member.")
    p = leaf(member_sub, "promote", "Promotes a non-voting member in the cluster", "member")
    p.add_argument("args", nargs="*", metavar="<memberID>", help="the member ID in hexadecimal")

    p = leaf(sub, "move-leader", "Transfers leadership to another trikv cluster member.")
    p.add_argument("args", nargs="*", metavar="<transferee-member-id>", help="the member ID in hexadecimal")

    ctl_snapshot.add_parsers(sub, leaf, only, unused, _Parser)
    ctl_lease.add_parsers(sub, leaf, only, unused, _Parser)
    ctl_watch.add_parsers(sub, leaf, only, unused, _Parser)
    ctl_maintenance.add_parsers(sub, leaf, only, unused, _Parser)
    ctl_check.add_parsers(sub, leaf, only, unused, _Parser)
    leaf(sub, "version", "Prints the version of trikvctl")
    return parser


def _normalise_args(argv: Sequence[str]) -> list[str]:
    """cobra accepts --flag=true/false for boolean flags; argparse's store_true does not."""
    out: list[str] = []
    for arg in argv:
        name, eq, val = arg.partition("=")
        if eq and (name in _BOOL_FLAGS or name in _GLOBAL_BOOLS) and val in (*_GO_TRUE, *_GO_FALSE):
            if val in _GO_TRUE:
                out.append(name)
            elif name in _GLOBAL_BOOLS:
                out.append(f"{name}=false")  # explicit false: wins over ETCDCTL_<FLAG>
            continue
        out.append(arg)
    return out


# --------------------------------------------------------------------------- commands


class Ctx:
    """What every command gets: its arguments, the printer, and how to reach the cluster."""

    def __init__(
        self,
        args: argparse.Namespace,
        out: Out,
        printer: Printer,
        endpoints: list[str],
        dial_timeout: float,
        command_timeout: float,
    ) -> None:
        self.args = args
        self.out = out
        self.printer = printer
        self.endpoints = endpoints
        self.dial_timeout = dial_timeout
        self.command_timeout = command_timeout


def _client(ctx: Ctx, endpoints: Sequence[str] | None = None) -> BlockingClient:
    try:
        return BlockingClient(
            list(endpoints or ctx.endpoints),
            dial_timeout=ctx.dial_timeout,
            request_timeout=ctx.command_timeout,
            log=ctx.out.err if ctx.args.debug else None,
        )
    except errors.ConfigError as exc:  # clientv3.New refused the configuration
        raise CommandError(EXIT_BAD_CONNECTION, str(exc)) from None


def arg_bytes(text: str) -> bytes:
    """A command-line argument as the bytes the user typed, UTF-8 or not (etcdctl takes them as is)."""
    return os.fsencode(text)


def _read_stdin() -> bytes:
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    data = stream.read()
    return data.encode() if isinstance(data, str) else data


def put_request(a: argparse.Namespace, *, stdin_value: bool = True) -> rpc.PutRequest:
    """etcdctl's getPutOp: the checked arguments of `put` (the value may come from stdin)."""
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not a.args:
        raise CommandError(EXIT_BAD_ARGS, usage)
    key = arg_bytes(a.args[0])
    if a.ignore_value and len(a.args) > 1:
        raise CommandError(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    value = b""
    if not a.ignore_value:
        if len(a.args) > 1:
            value = arg_bytes(a.args[1])
        elif stdin_value:
            try:
                value = _read_stdin()
            except (OSError, ValueError):
                value = b""
        if not value and len(a.args) < 2:
            raise CommandError(EXIT_BAD_ARGS, usage)
    return put_op(
        key,
        value,
        lease=parse_lease(a.lease),
        prev_kv=a.prev_kv,
        ignore_value=a.ignore_value,
        ignore_lease=a.ignore_lease,
    )


def cmd_put(ctx: Ctx) -> None:
    request = put_request(ctx.args)
    with _client(ctx) as c:
        resp = c.call("put", request, rpc.PutResponse, idempotent=False)
    ctx.printer.put(resp)


def parse_lease(text: str) -> int:
    """Go's strconv.ParseInt(text, 16, 64), refused with etcdctl's "bad lease ID" line (exit 128)."""
    reason = "invalid syntax"
    if re.fullmatch(r"[+-]?[0-9a-fA-F]+", text):
        value = int(text, 16)
        if -(2**63) <= value < 2**63:
            return value
        reason = "value out of range"
    raise CommandError(
        EXIT_BAD_ARGS,
        f"bad lease ID (strconv.ParseInt: parsing {go_quote(arg_bytes(text))}: {reason}), expecting ID in Hex",
    )


def _range_args(a: argparse.Namespace, name: str) -> tuple[bytes, bytes | None]:
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
        range_end = arg_bytes(a.args[1])
    return arg_bytes(a.args[0]), range_end


_SORT_TARGETS = {
    "": rpc.SortTarget.KEY,
    "KEY": rpc.SortTarget.KEY,
    "CREATE": rpc.SortTarget.CREATE,
    "MODIFY": rpc.SortTarget.MOD,
    "VALUE": rpc.SortTarget.VALUE,
    "VERSION": rpc.SortTarget.VERSION,
}
_SORT_ORDERS = {"": rpc.SortOrder.NONE, "ASCEND": rpc.SortOrder.ASCEND, "DESCEND": rpc.SortOrder.DESCEND}


def get_request(a: argparse.Namespace) -> rpc.RangeRequest:
    """etcdctl's getGetOp: the checked arguments of `get` as a range request."""
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
    return get_op(
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


def cmd_get(ctx: Ctx) -> None:
    a = ctx.args
    request = get_request(a)
    with _client(ctx) as c:
        resp = c.call("range", request, rpc.RangeResponse, idempotent=True)
    # etcdctl 3.5 checks these after the request, exactly like this.
    if a.count_only and ctx.printer.fmt != "fields":
        raise CommandError(EXIT_BAD_ARGS, "--count-only is only for `--write-out=fields`")
    if a.print_value_only:
        if ctx.printer.fmt != "simple":
            raise CommandError(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        ctx.printer.value_only = True
    ctx.printer.get(resp)


def del_request(a: argparse.Namespace) -> rpc.DeleteRangeRequest:
    key, range_end = _range_args(a, "del")
    return delete_op(key, range_end, prefix=a.prefix, from_key=a.from_key, prev_kv=a.prev_kv)


def cmd_del(ctx: Ctx) -> None:
    request = del_request(ctx.args)
    with _client(ctx) as c:
        resp = c.call("delete_range", request, rpc.DeleteRangeResponse, idempotent=False)
    ctx.printer.delete(resp)


# --------------------------------------------------------------------------- txn

_GO_ESCAPES = {"a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v"}
_GO_ESCAPES.update({"\\": b"\\", '"': b'"'})
_ARG_TOKEN = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?""")


def go_unquote(text: str) -> tuple[bytes, str] | None:
    """One Go quoted string at the start of `text` (fmt's %q scan: strconv's rules), and the rest.

    The bytes are the string's: escapes like \\xff give raw bytes; None when it is not a valid one.
    """
    text = text.lstrip(" \t")
    if text.startswith("`"):
        end = text.find("`", 1)
        return None if end < 0 else (arg_bytes(text[1:end]), text[end + 1 :])
    if not text.startswith('"'):
        return None
    out = bytearray()
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return bytes(out), text[i + 1 :]
        if ch == "\n":
            return None
        if ch != "\\":
            out += arg_bytes(ch)
            i += 1
            continue
        esc = text[i + 1 : i + 2]
        if esc in _GO_ESCAPES:
            out += _GO_ESCAPES[esc]
            i += 2
            continue
        width, base = {"x": (2, 16), "u": (4, 16), "U": (8, 16)}.get(esc, (3, 8) if esc.isdigit() else (0, 0))
        start = i + 1 if base == 8 else i + 2
        digits = text[start : start + width]
        if not width or len(digits) != width:
            return None
        try:
            number = int(digits, base)
        except ValueError:
            return None
        if esc in "uU":
            if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
                return None
            out += chr(number).encode()
        elif number > 0xFF:
            return None
        else:
            out.append(number)
        i = start + width
    return None


def argify(line: str) -> list[str]:
    """etcdctl's argify: split a txn op line into words; quoted words lose their quotes."""
    args = []
    for token in _ARG_TOKEN.findall(line):
        if token.startswith("'") and len(token) >= 2:
            token = token[1:-1]
        elif token.startswith('"'):
            parsed = go_unquote(token)
            if parsed is None or parsed[1]:
                raise CommandError(EXIT_INVALID_INPUT, "expected quoted string")
            token = os.fsdecode(parsed[0])
        args.append(token)
    return args


_CMP_RESULTS = {
    "=": rpc.CompareResult.EQUAL,
    "!=": rpc.CompareResult.NOT_EQUAL,
    ">": rpc.CompareResult.GREATER,
    "<": rpc.CompareResult.LESS,
}
_CMP_TARGETS = {
    "ver": rpc.CompareTarget.VERSION,
    "version": rpc.CompareTarget.VERSION,
    "c": rpc.CompareTarget.CREATE,
    "create": rpc.CompareTarget.CREATE,
    "m": rpc.CompareTarget.MOD,
    "mod": rpc.CompareTarget.MOD,
    "val": rpc.CompareTarget.VALUE,
    "value": rpc.CompareTarget.VALUE,
    "lease": rpc.CompareTarget.LEASE,
}


def parse_compare(line: str) -> rpc.Compare:
    """etcdctl's parseCompare: `<target>("<key>") <op> "<value>"`, e.g. `mod("k") > "0"`."""
    target, paren, rest = line.partition("(")
    if not paren:
        raise CommandError(EXIT_INVALID_INPUT, f"malformed comparison: {line}")
    key, op, value, found = b"", "", b"", 0
    parsed = go_unquote(rest)
    if parsed is not None:
        key, rest = parsed
        found = 1
        match = re.match(r"\)[ \t]*(\S+)", rest)
        if match:
            op, rest = match.group(1), rest[match.end() :]
            found = 2
            parsed = go_unquote(rest)
            if parsed is not None:
                value, found = parsed[0], 3
    if found != 3:
        raise CommandError(
            EXIT_INVALID_INPUT,
            f"malformed comparison: {line}; got {target}({go_quote(key)}) {op} {go_quote(value)}",
        )
    cmp_target = _CMP_TARGETS.get(target)
    if cmp_target is None:
        raise CommandError(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown target {target})")
    result = _CMP_RESULTS.get(op)
    if result is None:  # etcdctl 3.4 panics here
        raise CommandError(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown operator {op})")
    if cmp_target == rpc.CompareTarget.VALUE:
        return rpc.Compare(result, cmp_target, key, value)
    text = value.decode("utf-8", "surrogateescape")
    if not re.fullmatch(r"[+-]?[0-9]+", text) or not -(2**63) <= int(text) < 2**63:
        raise CommandError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}")
    return rpc.Compare(result, cmp_target, key, int(text))


def parse_request_op(line: str) -> rpc.RequestOp:
    """etcdctl's parseRequestUnion: a put, get or del line, with those commands' flags."""
    args = argify(line)
    if len(args) < 2:
        raise CommandError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}")
    name = args[0]
    if name not in ("put", "get", "del"):
        raise CommandError(EXIT_INVALID_INPUT, f"invalid txn request: {line}")
    try:
        ns = build_parser(name, with_globals=False).parse_args(_normalise_args(args))
    except (CommandError, SystemExit):
        raise CommandError(EXIT_INVALID_INPUT, f"invalid txn request: {line}") from None
    if name == "put":
        return put_request(ns, stdin_value=False)
    if name == "get":
        return get_request(ns)
    return del_request(ns)


def _read_section(parse: Callable[[str], Any]) -> list[Any]:
    """Lines up to an empty one. etcdctl 3.4 wants every section ended by an empty line: EOF is an error."""
    stream = getattr(sys.stdin, "buffer", None)
    items: list[Any] = []
    while True:
        raw = stream.readline() if stream is not None else sys.stdin.readline().encode()
        if not raw.endswith(b"\n"):
            raise CommandError(EXIT_INVALID_INPUT, "EOF")
        line = raw.decode("utf-8", "surrogateescape").strip()
        if not line:
            return items
        items.append(parse(line))


def cmd_txn(ctx: Ctx) -> None:
    a = ctx.args
    if a.args:
        raise CommandError(EXIT_BAD_ARGS, "txn command does not accept argument")

    def prompt(text: str) -> None:
        if a.interactive:
            ctx.out.line(text)

    prompt("compares:")
    compares = _read_section(parse_compare)
    prompt("success requests (get, put, del):")
    success = _read_section(parse_request_op)
    prompt("failure requests (get, put, del):")
    failure = _read_section(parse_request_op)
    request = rpc.TxnRequest(compares, success, failure)
    with _client(ctx) as c:
        resp = c.txn(request)
    ctx.printer.txn(resp)


def cmd_compaction(ctx: Ctx) -> None:
    a = ctx.args
    if len(a.args) != 1:
        raise CommandError(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        rev = int(a.args[0])
    except ValueError:
        raise CommandError(
            EXIT_BAD_ARGS, f"strconv.ParseInt: parsing {go_quote(arg_bytes(a.args[0]))}: invalid syntax"
        ) from None
    with _client(ctx) as c:
        c.compact(rev, physical=a.physical)
    ctx.out.line(f"compacted revision {rev}")


def _cluster_endpoints(ctx: Ctx) -> list[str]:
    if not ctx.args.cluster:
        return ctx.endpoints
    try:
        with _client(ctx) as c:
            members = c.member_list()
    except errors.TrikvError as exc:
        raise CommandError(
            EXIT_ERROR, f"failed to fetch endpoints from etcd cluster member list: {error_text(exc)}"
        ) from exc
    return [url for m in members.members for url in m.client_urls]


def cmd_endpoint_health(ctx: Ctx) -> None:
    import threading  # only this command probes in parallel

    endpoints = _cluster_endpoints(ctx)
    results: dict[int, dict[str, Any]] = {}

    def probe(i: int, ep: str) -> None:
        start = time.perf_counter()
        error = ""
        try:
            with _client(ctx, [ep]) as c:
                c.get(b"health")
        except errors.PermissionDeniedError:
            pass  # the request went through consensus: the member is healthy
        except (errors.TrikvError, CommandError) as exc:
            error = error_text(exc)
        took = go_duration(time.perf_counter() - start)
        results[i] = {"endpoint": ep, "health": not error, "took": took, "error": error}

    threads = [threading.Thread(target=probe, args=(i, ep), daemon=True) for i, ep in enumerate(endpoints)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
    elif fmt == "fields":
        ctx.printer.endpoint_health_fields(health)
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


def cmd_endpoint_status(ctx: Ctx) -> None:
    endpoints = _cluster_endpoints(ctx)
    statuses: list[tuple[str, StatusResponse]] = []
    failed = False
    with _client(ctx, endpoints) as c:
        for ep in endpoints:
            try:
                statuses.append((ep, c.status(ep)))
            except errors.TrikvError as exc:
                failed = True
                ctx.out.err(f"Failed to get the status of endpoint {ep} ({error_text(exc)})")
    fmt = ctx.printer.fmt
    if fmt == "json":
        ctx.out.line(dumps([{"Endpoint": ep, "Status": j_status(s)} for ep, s in statuses]))
    elif fmt == "table":
        for line in render_table(STATUS_HEADER, [_status_row(ep, s) for ep, s in statuses]):
            ctx.out.line(line)
    elif fmt == "fields":
        ctx.printer.endpoint_status_fields(statuses)
    else:
        for ep, s in statuses:
            ctx.out.line(", ".join(_status_row(ep, s)))
    if failed:
        raise _Exit(EXIT_ERROR)


def _member_row(m: Any) -> list[str]:
    return [
        f"{m.id:x}",
        "started" if m.name else "unstarted",
        m.name,
        ",".join(m.peer_urls),
        ",".join(m.client_urls),
        str(m.is_learner).lower(),
    ]


def cmd_member_list(ctx: Ctx) -> None:
    with _client(ctx) as c:
        resp: MemberListResponse = c.member_list()
    fmt = ctx.printer.fmt
    if fmt == "json":
        body = {"header": j_header(resp.header), "members": [j_member(m) for m in resp.members]}
        ctx.out.line(dumps(body))
    elif fmt == "protobuf":
        ctx.printer.protobuf(resp)
    elif fmt == "fields":
        ctx.printer.member_list_fields(resp)
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
            raise ValueError(f"strconv.ParseUint: parsing {go_quote(arg_bytes(text))}: value out of range")
    else:
        if text:
            return value
    raise ValueError(f"strconv.ParseUint: parsing {go_quote(arg_bytes(text))}: invalid syntax")


def _member_id_arg(args: Sequence[str]) -> int:
    """The one hex member ID of `member remove|update|promote`, checked as etcdctl does."""
    if len(args) != 1:
        raise CommandError(EXIT_BAD_ARGS, "member ID is not provided")
    try:
        return parse_uint64_hex(args[0])
    except ValueError as exc:
        raise CommandError(EXIT_BAD_ARGS, f"bad member ID arg ({exc}), expecting ID in Hex") from None


def _split_urls(text: str) -> list[str]:
    return text.split(",")  # as etcdctl: strings.Split, empty parts are left for the server to refuse


def cmd_member_add(ctx: Ctx) -> None:
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
    with _client(ctx) as c:
        resp: MemberAddResponse = c.member_add(_split_urls(a.peer_urls), is_learner=a.learner)
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps(j_member_add(resp)))
        return
    if ctx.printer.fmt == "protobuf":
        ctx.printer.protobuf(resp)
        return
    ctx.out.line(f"Member {resp.member.id:16x} added to cluster {resp.header.cluster_id:16x}")
    # What the new member needs to join, as etcdctl prints it: etcd's variable names, which a trikv
    # member reads as etcd does (and the same values as TRIKV_* or the YAML keys).
    conf = [
        f"{name if m.id == resp.member.id else m.name}={url}" for m in resp.members for url in m.peer_urls
    ]
    ctx.out.line()
    ctx.out.line(f"ETCD_NAME={go_quote(arg_bytes(name))}")
    ctx.out.line(f"ETCD_INITIAL_CLUSTER={go_quote(arg_bytes(','.join(conf)))}")
    ctx.out.line(f"ETCD_INITIAL_ADVERTISE_PEER_URLS={go_quote(arg_bytes(a.peer_urls))}")
    ctx.out.line('ETCD_INITIAL_CLUSTER_STATE="existing"')


def _member_changed(ctx: Ctx, member_id: int, verb: str, resp: MemberListResponse) -> None:
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps(j_member_list(resp)))
    elif ctx.printer.fmt == "protobuf":
        ctx.printer.protobuf(resp)
    else:
        ctx.out.line(f"Member {member_id:16x} {verb} cluster {resp.header.cluster_id:16x}")


def cmd_member_remove(ctx: Ctx) -> None:
    member_id = _member_id_arg(ctx.args.args)
    with _client(ctx) as c:
        resp = c.member_remove(member_id)
    _member_changed(ctx, member_id, "removed from", resp)


def cmd_member_update(ctx: Ctx) -> None:
    member_id = _member_id_arg(ctx.args.args)
    if not ctx.args.peer_urls:
        raise CommandError(EXIT_BAD_ARGS, "member peer urls not provided")
    with _client(ctx) as c:
        resp = c.member_update(member_id, _split_urls(ctx.args.peer_urls))
    _member_changed(ctx, member_id, "updated in", resp)


def cmd_member_promote(ctx: Ctx) -> None:
    member_id = _member_id_arg(ctx.args.args)
    with _client(ctx) as c:
        resp = c.member_promote(member_id)
    _member_changed(ctx, member_id, "promoted in", resp)


def cmd_move_leader(ctx: Ctx) -> None:
    """etcdctl's way: ask each endpoint in turn for its status and send the request to the leader."""
    a = ctx.args
    if len(a.args) != 1:
        raise CommandError(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    try:
        target = parse_uint64_hex(a.args[0])
    except ValueError as exc:
        raise CommandError(EXIT_BAD_ARGS, str(exc)) from None
    for ep in ctx.endpoints:
        with _client(ctx, [ep]) as c:
            status = c.status()
            if status.header.member_id != status.leader:
                continue
            resp = c.move_leader(target)
        if ctx.printer.fmt == "json":
            ctx.out.line(dumps({"header": j_header(resp.header)}))
        elif ctx.printer.fmt == "protobuf":
            ctx.printer.protobuf(resp)
        else:
            ctx.out.line(f"Leadership transferred from {status.leader:x} to {target:x}")
        return
    raise CommandError(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(ctx.endpoints)}]")


def cmd_version(ctx: Ctx) -> None:
    ctx.out.line(f"trikvctl version: {trikv.__version__}")
    ctx.out.line(f"API version: {API_VERSION}")


COMMANDS: dict[tuple[str, str | None], Callable[[Ctx], None]] = {
    ("put", None): cmd_put,
    ("get", None): cmd_get,
    ("del", None): cmd_del,
    ("txn", None): cmd_txn,
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


def _coded(fn: Callable[[Ctx], int]) -> Callable[[Ctx], None]:
    """A command that returns its exit code (tools/ctl_snapshot.py prints its own lines)."""

    def run(ctx: Ctx) -> None:
        code = fn(ctx)
        if code:
            raise _Exit(code)

    return run


COMMANDS.update({key: _coded(fn) for key, fn in ctl_snapshot.COMMANDS.items()})
COMMANDS.update({key: _coded(fn) for key, fn in ctl_lease.COMMANDS.items()})
COMMANDS.update({key: _coded(fn) for key, fn in ctl_watch.COMMANDS.items()})
COMMANDS.update({key: _coded(fn) for key, fn in ctl_maintenance.COMMANDS.items()})
COMMANDS.update({key: _coded(fn) for key, fn in ctl_check.COMMANDS.items()})


def error_text(exc: BaseException) -> str:
    """What etcdctl prints after `Error: ` for this failure."""
    if isinstance(exc, CommandError):
        return exc.message
    if isinstance(exc, errors.EtcdError):
        return exc.text
    if isinstance(exc, errors.NoEndpointsError) or type(exc).__name__ == "DeadlineExceededError":
        return "context deadline exceeded"  # the blocking transport's or the Trio client's deadline
    cause = exc.__cause__
    if (
        isinstance(exc, errors.OutcomeUnknownError)
        and cause is not None
        and (
            isinstance(cause, (errors.EtcdError, DeadlineExceededError))
            or type(cause).__name__ == "DeadlineExceededError"
        )
    ):
        return error_text(cause)  # what etcdctl shows: the server's error or the deadline
    return str(exc)


def _prepare(args: argparse.Namespace, command: str, out: Out) -> Ctx:
    """etcdctl's clientConfigFromCmd: environment, --debug, endpoints, timeouts and the printer."""
    apply_env(args, out, dict(os.environ))
    if args.debug:
        for flag in GLOBAL_FLAGS:
            out.err(f"{flag.env}={_go_flag_value(flag, getattr(args, flag.dest))}")
    for flag in GLOBAL_FLAGS:
        value = getattr(args, flag.dest)
        default = parse_go_bool(flag.default) if flag.kind == "bool" else flag.default
        if flag.refuse and value != default:
            raise CommandError(EXIT_BAD_FEATURE, flag.refuse)
    timeouts = []
    for option, text in (("--dial-timeout", args.dial_timeout), ("--command-timeout", args.command_timeout)):
        try:
            timeouts.append(parse_go_duration(text))
        except ValueError as exc:
            raise CommandError(EXIT_ERROR, f'invalid argument "{text}" for "{option}" flag: {exc}') from None
    for option, text in (
        ("--keepalive-time", args.keepalive_time),
        ("--keepalive-timeout", args.keepalive_timeout),
    ):
        try:
            parse_go_duration(text)  # accepted and checked: unary commands finish within --command-timeout
        except ValueError as exc:
            raise CommandError(EXIT_ERROR, f'invalid argument "{text}" for "{option}" flag: {exc}') from None
    fmt = args.write_out
    if fmt not in FORMATS:
        raise CommandError(EXIT_BAD_FEATURE, "unsupported output format")
    if fmt not in SUPPORTED_FORMATS.get(command, frozenset(FORMATS)):
        raise CommandError(EXIT_BAD_FEATURE, f"{fmt} not supported as output format")
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    if not endpoints:
        raise CommandError(EXIT_BAD_CONNECTION, "etcdclient: no available endpoints")
    dial_timeout, command_timeout = timeouts
    return Ctx(args, out, Printer(fmt, out, is_hex=args.hex), endpoints, dial_timeout, command_timeout)


def run(argv: Sequence[str], out: Out) -> int:
    """Parse and run one command; every expected failure becomes etcdctl's line and exit code."""
    try:
        api = os.environ.get(f"{ENV_PREFIX}_API", "")
        if api not in ("", "3"):
            out.err(f"unsupported API version {api}")
            return EXIT_ERROR
        argv = _normalise_args(argv)
        parser = build_parser(command_of(argv))
        args = parser.parse_args(argv)
        command = getattr(args, "command", None)
        if command is None:
            parser.print_help()
            return 0
        key = (command, getattr(args, "subcommand", None))
        handler = COMMANDS.get(key)
        if handler is None:  # `trikvctl member`: cobra prints the command's help
            parser.parse_args([command, "--help"])
            return 0
        name = " ".join(k for k in key if k)
        if handler is cmd_version:
            ctx = Ctx(args, out, Printer("simple", out), [], 0.0, 0.0)
        else:
            ctx = _prepare(args, name, out)
        handler(ctx)
    except CommandError as exc:
        out.err(f"Error: {exc.message}")
        return exc.code
    except _Exit as exc:
        return exc.code
    except errors.TrikvError as exc:
        out.err(f"Error: {error_text(exc)}")
        return EXIT_ERROR
    return 0


def _die_by_sigint() -> NoReturn:
    """Ctrl-C: end the way the shell expects (killed by SIGINT, status 130), not with exit 1 or a trace."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)  # the signal is delivered at once; this is never reached in practice
    os._exit(128 + signal.SIGINT)


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown (a few ms of freeing modules nobody will use again):
    the output is flushed here and the sockets are already closed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or EXIT_IO
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. Given argv (tests), it returns the exit code; as a program it never traces."""
    as_program = argv is None
    if as_program:
        if hasattr(signal, "SIGPIPE"):
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends us quietly, like any Unix tool
        if signal.getsignal(signal.SIGINT) is signal.SIG_DFL:
            # Ctrl-C from here on raises KeyboardInterrupt, so open sockets close before we die by SIGINT
            # (a SIGINT the parent shell ignores, as for `cmd &`, stays ignored).
            signal.signal(signal.SIGINT, signal.default_int_handler)
    out = Out()
    try:
        code = run(sys.argv[1:] if argv is None else list(argv), out)
        if as_program:
            _exit_now(code)
        return code
    except SystemExit as exc:  # --help
        if as_program:
            _exit_now(exc.code if isinstance(exc.code, int) else 0)
        raise
    except KeyboardInterrupt:
        # The blocking client's `with` blocks closed their sockets while this unwound.
        if as_program:
            _die_by_sigint()
        return 128 + signal.SIGINT
    except BrokenPipeError:
        return EXIT_IO
    except OSError as exc:
        out.err(f"Error: {exc}")
        return EXIT_IO
    except Exception as exc:  # a bug: still one line, never a traceback
        out.err(f"Error: {exc!r}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
