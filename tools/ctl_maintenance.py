"""trikvctl `alarm list|disarm` and `endpoint hashkv [--cluster] [--rev N]`, with etcdctl 3.4's output.

Checked against etcdctl 3.4.23: an alarm prints as its proto text (`memberID:<decimal id> alarm:NOSPACE `,
trailing space included), nothing at all when none is active; `-w json` has no header (etcd's
AlarmResponse carries none) and the alarm type as a number, `{}` when empty; `alarm disarm` lists the
alarms it deactivated (etcd's client asks for the list, then deactivates each). `endpoint hashkv` prints
`<endpoint>, <hash>` per endpoint; a failing endpoint is reported on stderr as
"Failed to get the hash of endpoint E (err)", the others are printed, then `Error: err` and exit 1.
Heavy imports happen inside the commands, as in the rest of trikvctl.

Commands take trikvctl's Ctx (args, out, printer, endpoints, timeouts) and return the exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMAND_NAMES = ("alarm",)
FORMATS = {
    "alarm list": frozenset({"simple", "json", "protobuf", "fields"}),
    "alarm disarm": frozenset({"simple", "json", "protobuf", "fields"}),
    "endpoint hashkv": frozenset({"simple", "json", "fields", "table"}),
}
EXIT_ERROR = 1

Leaf = Callable[..., Any]


def add_parsers(sub: Any, leaf: Leaf, only: str | None, unused: Any, parser_class: type) -> None:
    """Register `alarm list|disarm` on trikvctl's parser (`leaf` adds one command with the global flags)."""
    alarm = (sub if only in (None, "alarm") else unused).add_parser(
        "alarm", help="Alarm related commands", description="Alarm related commands"
    )
    alarm_sub = alarm.add_subparsers(dest="subcommand", parser_class=parser_class, metavar="SUBCOMMAND")
    leaf(alarm_sub, "list", "Lists all alarms", "alarm")
    leaf(alarm_sub, "disarm", "Disarms all alarms", "alarm")


def add_endpoint_parsers(endpoint_sub: Any, leaf: Leaf) -> None:
    """`endpoint hashkv` under trikvctl's `endpoint` command."""
    p = leaf(
        endpoint_sub, "hashkv", "Prints the KV history hash for each endpoint in --endpoints", "endpoint"
    )
    p.add_argument("--cluster", action="store_true", help="use all endpoints from the cluster member list")
    p.add_argument("--rev", type=int, default=0, help="maximum revision to hash (default: all revisions)")


def _client(ctx: Any, endpoints: list[str] | None = None) -> Any:
    from trikv.blocking import BlockingClient

    return BlockingClient(
        list(endpoints or ctx.endpoints), dial_timeout=ctx.dial_timeout, request_timeout=ctx.command_timeout
    )


def _text(exc: BaseException) -> str:
    return getattr(exc, "text", None) or str(exc) or "context deadline exceeded"


# --------------------------------------------------------------------------- alarm


def _print_alarms(ctx: Any, alarms: Any) -> None:
    from trikv.tools.ctl_print import _pb_int, _pb_msgs, dumps

    fmt = ctx.printer.fmt
    if fmt == "json":
        body = [{"memberID": m.member_id, "alarm": int(m.alarm)} for m in alarms]
        ctx.out.line(dumps({"alarms": body} if body else {}))
    elif fmt == "protobuf":
        items = [_pb_int(1, m.member_id) + _pb_int(2, int(m.alarm)) for m in alarms]
        ctx.out.write(_pb_msgs(2, items))
    elif fmt == "fields":
        for m in alarms:
            ctx.out.line(f'"MemberID" : {m.member_id}')
            ctx.out.line(f'"AlarmType" : {m.alarm.name}')
    else:
        for m in alarms:
            ctx.out.line(m.describe())


def _alarm_list(ctx: Any) -> Any:
    from trikv.api.maintenance import ALARM_OP, AlarmRequest, AlarmResponse

    with _client(ctx) as c:
        return c.call(ALARM_OP, AlarmRequest(), AlarmResponse, idempotent=True).alarms


def cmd_alarm_list(ctx: Any) -> int:
    _print_alarms(ctx, _alarm_list(ctx))
    return 0


def cmd_alarm_disarm(ctx: Any) -> int:
    from trikv.api.maintenance import ALARM_OP, AlarmAction, AlarmRequest, AlarmResponse

    disarmed = []
    with _client(ctx) as c:
        active = c.call(ALARM_OP, AlarmRequest(), AlarmResponse, idempotent=True).alarms
        for m in active:
            req = AlarmRequest(AlarmAction.DEACTIVATE, m.member_id, m.alarm)
            disarmed.extend(c.call(ALARM_OP, req, AlarmResponse, idempotent=True).alarms)
    _print_alarms(ctx, disarmed)
    return 0


# --------------------------------------------------------------------------- endpoint hashkv


def _endpoints(ctx: Any) -> list[str] | None:
    from trikv.api import errors

    if not ctx.args.cluster:
        return list(ctx.endpoints)
    try:
        with _client(ctx) as c:
            members = c.member_list()
    except errors.TrikvError as exc:
        ctx.out.err(f"Error: failed to fetch endpoints from etcd cluster member list: {_text(exc)}")
        return None
    return [url for m in members.members for url in m.client_urls]


def cmd_endpoint_hashkv(ctx: Any) -> int:
    from trikv.api import errors
    from trikv.api.maintenance import HASHKV_OP, HashKVRequest, HashKVResponse
    from trikv.tools.ctl_print import dumps, j_header, render_table

    endpoints = _endpoints(ctx)
    if endpoints is None:
        return EXIT_ERROR
    results: list[tuple[str, HashKVResponse]] = []
    last_error = ""
    with _client(ctx, endpoints) as c:
        for ep in endpoints:
            try:
                req = HashKVRequest(ctx.args.rev)
                results.append((ep, c.call(HASHKV_OP, req, HashKVResponse, idempotent=True, endpoint=ep)))
            except errors.TrikvError as exc:
                last_error = _text(exc)
                ctx.out.err(f"Failed to get the hash of endpoint {ep} ({last_error})")
    fmt = ctx.printer.fmt
    if fmt == "json":
        body = []
        for ep, r in results:
            hkv: dict[str, Any] = {"header": j_header(r.header)}
            if r.hash:
                hkv["hash"] = r.hash
            if r.compact_revision:
                hkv["compact_revision"] = r.compact_revision
            body.append({"Endpoint": ep, "HashKV": hkv})
        ctx.out.line(dumps(body))
    elif fmt == "table":
        for line in render_table(["ENDPOINT", "HASH"], [[ep, str(r.hash)] for ep, r in results]):
            ctx.out.line(line)
    elif fmt == "fields":
        for ep, r in results:
            ctx.printer.f_header(r.header)
            ctx.out.line(f'"Endpoint" : "{ep}"')
            ctx.out.line(f'"Hash" : {r.hash}')
            ctx.out.line()
    else:
        for ep, r in results:
            ctx.out.line(f"{ep}, {r.hash}")
    if last_error:
        ctx.out.err(f"Error: {last_error}")
        return EXIT_ERROR
    return 0


COMMANDS: dict[tuple[str, str | None], Callable[[Any], int]] = {
    ("alarm", "list"): cmd_alarm_list,
    ("alarm", "disarm"): cmd_alarm_disarm,
    ("endpoint", "hashkv"): cmd_endpoint_hashkv,
}

__all__ = ["COMMANDS", "COMMAND_NAMES", "FORMATS", "add_endpoint_parsers", "add_parsers"]
