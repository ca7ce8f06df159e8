"""trikvctl `lease grant|revoke|timetolive [--keys]|list|keep-alive [--once]` with etcdctl 3.4's lines,
JSON and exit codes (its lease_command.go and printers).

Unary commands use the blocking transport (trikv.blocking). `keep-alive` without --once renews every TTL/3
until the lease is gone ("lease ... expired or revoked.", exit 0) or the user interrupts it; each renewal is
one keep-alive request (etcdctl holds a stream; what it prints is the same). Commands take trikvctl's Ctx
and return the exit code.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any

from trikv.api import errors
from trikv.api.lease import (
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)
from trikv.api.rpc import ResponseHeader
from trikv.blocking import BlockingClient
from trikv.tools.ctl_print import dumps, go_quote, j_header

COMMAND_NAMES = ("lease",)
_FORMATS = frozenset({"simple", "json"})
FORMATS = {f"lease {name}": _FORMATS for name in ("grant", "revoke", "timetolive", "list", "keep-alive")}
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_BAD_ARGS = 128
RETRY_DELAY = 0.5  # seconds between keep-alive attempts after an error (the cluster may be electing)

Leaf = Callable[..., Any]


def add_parsers(sub: Any, leaf: Leaf, only: str | None, unused: Any, parser_class: type) -> None:
    """Register `lease ...` on trikvctl's parser (`leaf` adds one command with the global flags)."""
    lease = (sub if only in (None, "lease") else unused).add_parser(
        "lease", help="Lease related commands", description="Lease related commands"
    )
    lsub = lease.add_subparsers(dest="subcommand", parser_class=parser_class, metavar="SUBCOMMAND")
    p = leaf(lsub, "grant", "Creates leases", "lease")
    p.add_argument("args", nargs="*", metavar="<ttl>")
    p = leaf(lsub, "revoke", "Revokes leases", "lease")
    p.add_argument("args", nargs="*", metavar="<leaseID>")
    p = leaf(lsub, "timetolive", "Get lease information", "lease")
    p.add_argument("args", nargs="*", metavar="<leaseID>")
    p.add_argument("--keys", action="store_true", help="Get keys attached to this lease")
    leaf(lsub, "list", "List all active leases", "lease")
    p = leaf(lsub, "keep-alive", "Keeps leases alive (renew)", "lease")
    p.add_argument("args", nargs="*", metavar="<leaseID>")
    p.add_argument("--once", action="store_true", help="Resets the keep-alive time to its original value")


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _client(ctx: Any) -> BlockingClient:
    return BlockingClient(
        list(ctx.endpoints),
        dial_timeout=ctx.dial_timeout,
        request_timeout=ctx.command_timeout,
        log=ctx.out.err if ctx.args.debug else None,
    )


def _go_int(text: str, base: int) -> int | None:
    pattern = r"[+-]?[0-9]+" if base == 10 else r"[+-]?[0-9a-fA-F]+"
    if re.fullmatch(pattern, text):
        value = int(text, base)
        if -(2**63) <= value < 2**63:
            return value
    return None


def _parse_error(text: str, base: int) -> str:
    digits = r"[+-]?[0-9]+" if base == 10 else r"[+-]?[0-9a-fA-F]+"
    reason = "value out of range" if re.fullmatch(digits, text) else "invalid syntax"
    return f"strconv.ParseInt: parsing {go_quote(os.fsencode(text))}: {reason}"


def lease_arg(args: list[str], usage: str) -> int:
    if len(args) != 1:
        raise _Failed(EXIT_BAD_ARGS, usage)
    value = _go_int(args[0], 16)
    if value is None:
        raise _Failed(EXIT_BAD_ARGS, f"bad lease ID arg ({_parse_error(args[0], 16)}), expecting ID in Hex")
    return value


def _flat(h: ResponseHeader, **fields: Any) -> dict[str, Any]:
    """clientv3's lease responses embed *pb.ResponseHeader: its fields first, at the top level."""
    d = j_header(h)
    d.update(fields)
    return d


def _hex(lease_id: int) -> str:
    return f"{lease_id & 0xFFFFFFFFFFFFFFFF:016x}"


# --------------------------------------------------------------------------- commands


def _grant(ctx: Any) -> None:
    a = ctx.args
    if len(a.args) != 1:
        raise _Failed(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    ttl = _go_int(a.args[0], 10)
    if ttl is None:
        raise _Failed(EXIT_BAD_ARGS, f"bad TTL ({_parse_error(a.args[0], 10)})")
    try:
        with _client(ctx) as c:
            r = c.call("lease_grant", LeaseGrantRequest(ttl), LeaseGrantResponse, idempotent=False)
    except errors.EtcdError as exc:
        raise _Failed(EXIT_ERROR, f"failed to grant lease ({exc.text})") from None
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps(_flat(r.header, ID=r.id, TTL=r.ttl, Error=r.error)))
    else:
        ctx.out.line(f"lease {_hex(r.id)} granted with TTL({r.ttl}s)")


def _revoke(ctx: Any) -> None:
    lease_id = lease_arg(ctx.args.args, "lease revoke command needs 1 argument")
    try:
        with _client(ctx) as c:
            r = c.call("lease_revoke", LeaseRevokeRequest(lease_id), LeaseRevokeResponse, idempotent=False)
    except errors.EtcdError as exc:
        raise _Failed(EXIT_ERROR, f"failed to revoke lease ({exc.text})") from None
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps({"header": j_header(r.header)}))
    else:
        ctx.out.line(f"lease {_hex(lease_id)} revoked")


def _timetolive(ctx: Any) -> None:
    a = ctx.args
    lease_id = lease_arg(a.args, "lease timetolive command needs lease ID as argument")
    try:
        with _client(ctx) as c:
            req = LeaseTimeToLiveRequest(lease_id, a.keys)
            r = c.call("lease_timetolive", req, LeaseTimeToLiveResponse, idempotent=True)
    except errors.TrikvError as exc:
        raise _Failed(EXIT_BAD_CONNECTION, _text(exc)) from None
    if ctx.printer.fmt == "json":
        import base64

        keys = [base64.b64encode(k).decode() for k in r.keys] if r.keys else None
        ctx.out.line(dumps(_flat(r.header, id=r.id, ttl=r.ttl, **{"granted-ttl": r.granted_ttl}, keys=keys)))
        return
    if r.granted_ttl == 0 and r.ttl == -1:
        ctx.out.line(f"lease {_hex(r.id)} already expired")
        return
    line = f"lease {_hex(r.id)} granted with TTL({r.granted_ttl}s), remaining({r.ttl}s)".encode()
    if a.keys:
        line += b", attached keys([" + b" ".join(r.keys) + b"])"
    ctx.out.line(line)


def _list(ctx: Any) -> None:
    try:
        with _client(ctx) as c:
            r = c.call("lease_leases", LeaseLeasesRequest(), LeaseLeasesResponse, idempotent=True)
    except errors.TrikvError as exc:
        raise _Failed(EXIT_BAD_CONNECTION, _text(exc)) from None
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps(_flat(r.header, leases=[{"id": s.id} for s in r.leases])))
        return
    ctx.out.line(f"found {len(r.leases)} leases")
    for s in r.leases:
        ctx.out.line(_hex(s.id))


def _print_keepalive(ctx: Any, r: LeaseKeepAliveResponse) -> None:
    if ctx.printer.fmt == "json":
        ctx.out.line(dumps(_flat(r.header, ID=r.id, TTL=r.ttl)))
    else:
        ctx.out.line(f"lease {_hex(r.id)} keepalived with TTL({r.ttl})")


def _keepalive(ctx: Any) -> None:
    a = ctx.args
    lease_id = lease_arg(a.args, "lease keep-alive command needs lease ID as argument")
    req = LeaseKeepAliveRequest(lease_id)
    with _client(ctx) as c:
        if a.once:
            try:
                r = c.call("lease_keepalive_once", req, LeaseKeepAliveResponse, idempotent=True)
            except errors.TrikvError as exc:
                raise _Failed(EXIT_BAD_CONNECTION, _text(exc)) from None
            if r.ttl <= 0:
                raise _Failed(EXIT_BAD_CONNECTION, errors.LeaseNotFoundError().text)
            _print_keepalive(ctx, r)
            return
        while True:
            try:
                r = c.call("lease_keepalive_once", req, LeaseKeepAliveResponse, idempotent=True)
            except errors.TrikvError:
                time.sleep(RETRY_DELAY)  # clientv3 keeps retrying its stream while the cluster recovers
                continue
            if r.ttl <= 0:
                break
            _print_keepalive(ctx, r)
            time.sleep(max(r.ttl / 3.0, 0.5))
    if ctx.printer.fmt == "simple":
        ctx.out.line(f"lease {_hex(lease_id)} expired or revoked.")


def _text(exc: BaseException) -> str:
    if isinstance(exc, errors.EtcdError):
        return exc.text
    if isinstance(exc, errors.NoEndpointsError) or type(exc).__name__ == "DeadlineExceededError":
        return "context deadline exceeded"
    return str(exc)


def _coded(fn: Callable[[Any], None]) -> Callable[[Any], int]:
    def run(ctx: Any) -> int:
        try:
            fn(ctx)
        except _Failed as exc:
            ctx.out.err(f"Error: {exc.message}")
            return exc.code
        return 0

    return run


COMMANDS: dict[tuple[str, str | None], Callable[[Any], int]] = {
    ("lease", "grant"): _coded(_grant),
    ("lease", "revoke"): _coded(_revoke),
    ("lease", "timetolive"): _coded(_timetolive),
    ("lease", "list"): _coded(_list),
    ("lease", "keep-alive"): _coded(_keepalive),
}

__all__ = ["COMMANDS", "COMMAND_NAMES", "FORMATS", "add_parsers", "lease_arg"]
