"""trikvctl's output: etcdctl 3.4's printers (simple, json, fields, table, protobuf) byte for byte.

Kept apart from the command line so the formats can be read (and tested) on their own. Nothing here
imports trio or talks to the network.
"""

from __future__ import annotations

import binascii
import re
import sys
from collections.abc import Sequence
from typing import Any

from trikv.api import rpc
from trikv.api.protocol import (
    Member,
    MemberAddResponse,
    MemberListResponse,
    MoveLeaderResponse,
    StatusResponse,
)


class Out:
    """Bytes to stdout (keys and values are bytes, not necessarily UTF-8); text to stderr.

    Text that came from the command line may hold undecodable bytes as surrogates (PEP 383); they are
    written back as the bytes they were, as etcdctl would print them.
    """

    def write(self, raw: bytes) -> None:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(raw)
            buffer.flush()
        else:
            sys.stdout.write(raw.decode("utf-8", "replace"))

    def line(self, data: bytes | str = b"") -> None:
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        self.write(raw + b"\n")

    def err(self, text: str) -> None:
        sys.stderr.flush()
        raw = (text + "\n").encode("utf-8", "surrogateescape")
        buffer = getattr(sys.stderr, "buffer", None)
        if buffer is not None:
            buffer.write(raw)
            buffer.flush()
        else:
            sys.stderr.write(raw.decode("utf-8", "replace"))


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
    """Go's json.Marshal layout. json is imported here: only -w json pays for it."""
    import json

    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def hex_bytes(data: bytes) -> bytes:
    r"""etcdctl's --hex: every byte as \x and two lowercase hex digits (its addHexPrefix)."""
    return "".join(f"\\x{b:02x}" for b in data).encode()


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


_JSON_OPS = {
    rpc.RangeResponse: "ResponseRange",
    rpc.PutResponse: "ResponsePut",
    rpc.DeleteRangeResponse: "ResponseDeleteRange",
    rpc.TxnResponse: "ResponseTxn",
}


def j_txn(r: rpc.TxnResponse) -> dict[str, Any]:
    """pb.TxnResponse through Go's encoding/json: each op is {"Response": {"ResponsePut": {...}}}."""

    def one(sub: Any) -> dict[str, Any]:
        if isinstance(sub, rpc.RangeResponse):
            body = j_range(sub)
        elif isinstance(sub, rpc.PutResponse):
            body = j_put(sub)
        elif isinstance(sub, rpc.DeleteRangeResponse):
            body = j_delete(sub)
        else:
            body = j_txn(sub)
        return {"Response": {_JSON_OPS[type(sub)]: body}}

    out: dict[str, Any] = {"header": j_header(r.header)}
    if r.succeeded:
        out["succeeded"] = True
    if r.responses:
        out["responses"] = [one(sub) for sub in r.responses]
    return out


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


# --------------------------------------------------------------------------- protobuf (-w protobuf)
# etcdctl prints the gogo-protobuf encoding of the etcdserverpb response, with no newline. Proto3: zero
# scalars are left out; a present sub-message is written even when empty.


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # int64 -1 travels as ten bytes, like Go's uint64 cast
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _pb_int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value) if value else b""


def _pb_bytes(field: int, data: bytes, *, always: bool = False) -> bytes:
    if not data and not always:
        return b""
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _pb_str(field: int, text: str) -> bytes:
    return _pb_bytes(field, text.encode("utf-8", "surrogateescape"))


def pb_header(h: rpc.ResponseHeader) -> bytes:
    return (
        _pb_int(1, h.cluster_id) + _pb_int(2, h.member_id) + _pb_int(3, h.revision) + _pb_int(4, h.raft_term)
    )


def pb_kv(kv: rpc.KeyValue) -> bytes:
    return (
        _pb_bytes(1, kv.key)
        + _pb_int(2, kv.create_revision)
        + _pb_int(3, kv.mod_revision)
        + _pb_int(4, kv.version)
        + _pb_bytes(5, kv.value)
        + _pb_int(6, kv.lease)
    )


def pb_member(m: Member) -> bytes:
    return (
        _pb_int(1, m.id)
        + _pb_str(2, m.name)
        + b"".join(_pb_str(3, u) for u in m.peer_urls)
        + b"".join(_pb_str(4, u) for u in m.client_urls)
        + _pb_int(5, int(m.is_learner))
    )


def _pb_msgs(field: int, items: Sequence[bytes]) -> bytes:
    return b"".join(_pb_bytes(field, item, always=True) for item in items)


def pb_response(r: Any) -> bytes:
    """The etcdserverpb encoding of the responses trikvctl can print as protobuf."""
    out = _pb_bytes(1, pb_header(r.header), always=True)
    if isinstance(r, rpc.RangeResponse):
        out += _pb_msgs(2, [pb_kv(kv) for kv in r.kvs]) + _pb_int(3, int(r.more)) + _pb_int(4, r.count)
    elif isinstance(r, rpc.PutResponse):
        out += _pb_msgs(2, [pb_kv(r.prev_kv)] if r.prev_kv is not None else [])
    elif isinstance(r, rpc.DeleteRangeResponse):
        out += _pb_int(2, r.deleted) + _pb_msgs(3, [pb_kv(kv) for kv in r.prev_kvs])
    elif isinstance(r, rpc.TxnResponse):
        out += _pb_int(2, int(r.succeeded))
        for sub in r.responses:
            field = {rpc.RangeResponse: 1, rpc.PutResponse: 2, rpc.DeleteRangeResponse: 3, rpc.TxnResponse: 4}
            op = _pb_bytes(field[type(sub)], pb_response(sub), always=True)  # ResponseOp's oneof
            out += _pb_bytes(3, op, always=True)
    elif isinstance(r, MemberAddResponse):
        out += _pb_msgs(2, [pb_member(r.member)]) + _pb_msgs(3, [pb_member(m) for m in r.members])
    elif isinstance(r, MemberListResponse):
        out += _pb_msgs(2, [pb_member(m) for m in r.members])
    elif not isinstance(r, MoveLeaderResponse):
        raise TypeError(f"no protobuf encoding for {type(r).__name__}")
    return out


# --------------------------------------------------------------------------- printers


def go_bool(value: bool) -> str:
    return "true" if value else "false"


class Printer:
    """etcdctl's display for one output format (and --hex, which only the simple format uses)."""

    def __init__(self, fmt: str, out: Out, *, is_hex: bool = False) -> None:
        self.fmt = fmt
        self.out = out
        self.is_hex = is_hex
        self.value_only = False

    def kv(self, kv: rpc.KeyValue) -> None:
        key, value = kv.key, kv.value
        if self.is_hex:
            key, value = hex_bytes(key), hex_bytes(value)
        if not self.value_only:
            self.out.line(key)
        self.out.line(value)

    def protobuf(self, r: Any) -> None:
        self.out.write(pb_response(r))

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
        elif self.fmt == "protobuf":
            self.protobuf(r)
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
        elif self.fmt == "protobuf":
            self.protobuf(r)
        elif self.fmt == "fields":
            self.f_header(r.header)
            for kv in r.kvs:
                self.f_kv("", kv)
            self.out.line(f'"More" : {go_bool(r.more)}')
            self.out.line(f'"Count" : {r.count}')
        else:
            for kv in r.kvs:
                self.kv(kv)

    def delete(self, r: rpc.DeleteRangeResponse) -> None:
        if self.fmt == "json":
            self.out.line(dumps(j_delete(r)))
        elif self.fmt == "protobuf":
            self.protobuf(r)
        elif self.fmt == "fields":
            self.f_header(r.header)
            self.out.line(f'"Deleted" : {r.deleted}')
            for kv in r.prev_kvs:
                self.f_kv("Prev", kv)
        else:
            self.out.line(str(r.deleted))
            for kv in r.prev_kvs:
                self.kv(kv)

    def txn(self, r: rpc.TxnResponse) -> None:
        if self.fmt == "json":
            self.out.line(dumps(j_txn(r)))
            return
        if self.fmt == "protobuf":
            self.protobuf(r)
            return
        if self.fmt == "fields":
            self.f_header(r.header)
            self.out.line(f'"Succeeded" : {go_bool(r.succeeded)}')
        else:
            self.out.line("SUCCESS" if r.succeeded else "FAILURE")
        for sub in r.responses:
            if self.fmt != "fields":
                self.out.line()
            if isinstance(sub, rpc.RangeResponse):
                self.get(sub)
            elif isinstance(sub, rpc.PutResponse):
                self.put(sub)
            elif isinstance(sub, rpc.DeleteRangeResponse):
                self.delete(sub)
            elif self.fmt == "fields":
                self.out.line(f'"Unknown" : {go_quote(repr(sub).encode())}')
            else:
                self.out.line(f"unexpected response {sub!r}")

    def member_list_fields(self, r: MemberListResponse) -> None:
        self.f_header(r.header)
        for m in r.members:
            self.out.line(f'"ID" : {m.id}')
            self.out.line(f'"Name" : {go_quote(m.name.encode())}')
            for url in m.peer_urls:
                self.out.line(f'"PeerURL" : {go_quote(url.encode())}')
            for url in m.client_urls:
                self.out.line(f'"ClientURL" : {go_quote(url.encode())}')
            self.out.line(f'"IsLearner" : {go_bool(m.is_learner)}')
            self.out.line()

    def endpoint_health_fields(self, health: Sequence[dict[str, Any]]) -> None:
        for h in health:
            self.out.line(f'"Endpoint" : {go_quote(h["endpoint"].encode())}')
            self.out.line(f'"Health" : {go_bool(h["health"])}')
            self.out.line(f'"Took" : {h["took"]}')
            self.out.line(f'"Error" : {h["error"]}')
            self.out.line()

    def endpoint_status_fields(self, statuses: Sequence[tuple[str, StatusResponse]]) -> None:
        for ep, s in statuses:
            self.f_header(s.header)
            self.out.line(f'"Version" : {go_quote(s.version.encode())}')
            self.out.line(f'"DBSize" : {s.db_size}')
            self.out.line(f'"Leader" : {s.leader}')
            self.out.line(f'"IsLearner" : {go_bool(s.is_learner)}')
            self.out.line(f'"RaftIndex" : {s.raft_index}')
            self.out.line(f'"RaftTerm" : {s.raft_term}')
            self.out.line(f'"RaftAppliedIndex" : {s.raft_applied_index}')
            self.out.line(f'"Errors" : [{" ".join(s.errors)}]')
            self.out.line(f'"Endpoint" : {go_quote(ep.encode())}')
            self.out.line()
