"""etcd 3.4's HTTP/JSON gateway, request side: JSON bodies -> typed request shapes.

Decoded the way jsonpb + encoding/json decode them: the first JSON value of the body (an empty body is
an empty request), original or lowerCamelCase field names, integers as numbers or strings, enums by
name or number, unknown fields ignored. What cannot be decoded is a BadRequestError (gRPC code 3) with
a message shaped like Go's, so a client sees the same text it would see from etcd.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import json
import re
from collections.abc import Callable
from typing import Any

from trikv.api import errors, protocol, rpc

_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)\Z")


class BadRequestError(errors.InvalidRequestError):
    """A body jsonpb would refuse: not JSON, or a value of the wrong type for its field."""


# --------------------------------------------------------------------------- Go-shaped JSON syntax errors


def _go_quote_char(c: str) -> str:
    """Go's encoding/json quoteChar: the offending character as Go prints it in syntax errors."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    if c in named:
        return f"'{named[c]}'"
    if c == "\\":
        return "'\\\\'"
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"'\\x{ord(c):02x}'"
    return f"'{c}'"


def _container_at(doc: str, pos: int) -> str:
    """'{' or '[': the innermost container open at pos (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for c in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append(c)
        elif c in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else "{"


def _go_syntax_message(doc: str, exc: json.JSONDecodeError) -> str:
    """Translate Python's JSON error into what Go's scanner says about the same input."""
    pos = exc.pos
    if exc.msg.startswith("Invalid \\escape"):
        pos += 1
    if pos >= len(doc) or exc.msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    c = doc[pos]
    if exc.msg.startswith("Expecting value"):
        literal = {"n": "null", "t": "true", "f": "false"}.get(c)
        if literal is None:
            return f"invalid character {_go_quote_char(c)} looking for beginning of value"
        for i, want in enumerate(literal):
            if pos + i >= len(doc):
                return "unexpected end of JSON input"
            if doc[pos + i] != want:
                return f"invalid character {_go_quote_char(doc[pos + i])} in literal {literal} (expecting '{want}')"
        return f"invalid character {_go_quote_char(doc[pos + len(literal)])} after top-level value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {_go_quote_char(c)} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {_go_quote_char(c)} after object key"
    if exc.msg.startswith("Expecting ','"):
        where = "object key:value pair" if _container_at(doc, pos) == "{" else "array element"
        return f"invalid character {_go_quote_char(c)} after {where}"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {_go_quote_char(c)} in string literal"
    if exc.msg.startswith("Invalid \\escape"):
        return f"invalid character {_go_quote_char(c)} in string escape code"
    return f"invalid character {_go_quote_char(c)} looking for beginning of value"


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)  # NaN / Infinity: Python extensions Go's decoder does not know


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_body(body: bytes) -> dict[str, Any]:
    """The request object: the first JSON value of the body, as Go's json.Decoder reads it."""
    doc = body.decode("utf-8", errors="replace")
    start = len(doc) - len(doc.lstrip(" \t\r\n"))
    if start == len(doc):
        return {}  # grpc-gateway treats an empty body (io.EOF) as an empty request
    try:
        value, _ = _DECODER.raw_decode(doc, start)
    except json.JSONDecodeError as exc:
        raise BadRequestError(_go_syntax_message(doc, exc)) from None
    except ValueError as exc:  # a NaN/Infinity literal
        raise BadRequestError(f"invalid character '{str(exc)[0]}' looking for beginning of value") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type map[string]json.RawMessage"
        )
    return value


# --------------------------------------------------------------------------- proto3 JSON -> request shapes


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@functools.cache
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Fields:
    """The fields of one JSON request object, looked up by proto name or lowerCamelCase (jsonpb accepts both)."""

    def __init__(self, obj: Any, message: str) -> None:
        if not isinstance(obj, dict):
            if obj is not None:
                raise BadRequestError(
                    f"json: cannot unmarshal {_json_kind(obj)} into Go value of type etcdserverpb.{message}"
                )
            obj = {}
        self.obj: dict[str, Any] = obj
        self.message = message

    def raw(self, name: str) -> Any:
        value = self.obj.get(name)
        if value is None:
            value = self.obj.get(_camel(name))
        return value

    def has(self, name: str) -> bool:
        return self.raw(name) is not None

    def _wrong(self, name: str, value: Any, go_type: str) -> BadRequestError:
        return BadRequestError(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
            f"{self.message}.{name} of type {go_type}"
        )

    def int64(self, name: str) -> int:
        value = self.raw(name)
        if value is None:
            return 0
        if isinstance(value, str) and _INT_TEXT.match(value):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise self._wrong(name, value, "int64")
        if not _INT64[0] <= number <= _INT64[1]:
            raise BadRequestError(
                f"json: cannot unmarshal number {value} into Go struct field "
                f"{self.message}.{name} of type int64"
            )
        return number

    def boolean(self, name: str) -> bool:
        value = self.raw(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._wrong(name, value, "bool")
        return value

    def octets(self, name: str) -> bytes:
        value = self.raw(name)
        if value is None:
            return b""
        if not isinstance(value, str):
            raise self._wrong(name, value, "[]uint8")
        return _b64decode(value)

    def enumeration(self, name: str, cls: type[enum.IntEnum], go_type: str) -> Any:
        value = self.raw(name)
        if value is None:
            return cls(0)
        if isinstance(value, str) and value in cls.__members__:
            return cls[value]
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        raise BadRequestError(f"unknown value {json.dumps(value)} for enum etcdserverpb.{go_type}")

    def array(self, name: str) -> list[Any]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(name, value, "[]*etcdserverpb." + name)
        return value


def _b64decode(text: str) -> bytes:
    """Standard base64, or URL-safe (jsonpb falls back to it); Go's message when neither decodes."""
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")
    bad = next((i for i, c in enumerate(text) if c not in alphabet), len(text) - len(text) % 4)
    raise BadRequestError(f"illegal base64 data at input byte {bad}")


def range_request(obj: Any) -> rpc.RangeRequest:
    f = _Fields(obj, "RangeRequest")
    return rpc.RangeRequest(
        key=f.octets("key"),
        range_end=f.octets("range_end"),
        limit=f.int64("limit"),
        revision=f.int64("revision"),
        sort_order=f.enumeration("sort_order", rpc.SortOrder, "RangeRequest_SortOrder"),
        sort_target=f.enumeration("sort_target", rpc.SortTarget, "RangeRequest_SortTarget"),
        serializable=f.boolean("serializable"),
        keys_only=f.boolean("keys_only"),
        count_only=f.boolean("count_only"),
        min_mod_revision=f.int64("min_mod_revision"),
        max_mod_revision=f.int64("max_mod_revision"),
        min_create_revision=f.int64("min_create_revision"),
        max_create_revision=f.int64("max_create_revision"),
    )


def put_request(obj: Any) -> rpc.PutRequest:
    f = _Fields(obj, "PutRequest")
    return rpc.PutRequest(
        key=f.octets("key"),
        value=f.octets("value"),
        lease=f.int64("lease"),
        prev_kv=f.boolean("prev_kv"),
        ignore_value=f.boolean("ignore_value"),
        ignore_lease=f.boolean("ignore_lease"),
    )


def delete_range_request(obj: Any) -> rpc.DeleteRangeRequest:
    f = _Fields(obj, "DeleteRangeRequest")
    return rpc.DeleteRangeRequest(
        key=f.octets("key"), range_end=f.octets("range_end"), prev_kv=f.boolean("prev_kv")
    )


_UNION_FIELD = {
    rpc.CompareTarget.VERSION: "version",
    rpc.CompareTarget.CREATE: "create_revision",
    rpc.CompareTarget.MOD: "mod_revision",
    rpc.CompareTarget.LEASE: "lease",
}


def compare(obj: Any) -> rpc.Compare:
    """A Compare; `target_value` comes from the target_union member that `target` names."""
    f = _Fields(obj, "Compare")
    target = f.enumeration("target", rpc.CompareTarget, "Compare_CompareTarget")
    chosen: int | bytes
    if target == rpc.CompareTarget.VALUE:
        chosen = f.octets("value")
    else:
        chosen = f.int64(_UNION_FIELD[target])
    return rpc.Compare(
        result=f.enumeration("result", rpc.CompareResult, "Compare_CompareResult"),
        target=target,
        key=f.octets("key"),
        target_value=chosen,
        range_end=f.octets("range_end"),
    )


_REQUEST_OPS: dict[str, Callable[[Any], Any]] = {}


def request_op(obj: Any) -> Any:
    """One RequestOp: exactly one of request_range / request_put / request_delete_range / request_txn."""
    f = _Fields(obj, "RequestOp")
    present = [name for name in _REQUEST_OPS if f.has(name)]
    if not present:
        raise errors.KeyNotFoundError()  # etcd's checkRequestOp answers an empty op so
    if len(present) > 1:  # jsonpb would keep one of them at random (Go map order); refuse instead
        raise BadRequestError("etcdserver: a txn RequestOp must hold exactly one request")
    return _REQUEST_OPS[present[0]](f.raw(present[0]))


def txn_request(obj: Any) -> rpc.TxnRequest:
    f = _Fields(obj, "TxnRequest")
    return rpc.TxnRequest(
        compare=tuple(compare(c) for c in f.array("compare")),
        success=tuple(request_op(op) for op in f.array("success")),
        failure=tuple(request_op(op) for op in f.array("failure")),
    )


_REQUEST_OPS.update(
    {
        "request_range": range_request,
        "request_put": put_request,
        "request_delete_range": delete_range_request,
        "request_txn": txn_request,
    }
)


def compaction_request(obj: Any) -> rpc.CompactionRequest:
    f = _Fields(obj, "CompactionRequest")
    return rpc.CompactionRequest(revision=f.int64("revision"), physical=f.boolean("physical"))


def status_request(obj: Any) -> protocol.StatusRequest:
    _Fields(obj, "StatusRequest")
    return protocol.StatusRequest()


def member_list_request(obj: Any) -> protocol.MemberListRequest:
    f = _Fields(obj, "MemberListRequest")
    return protocol.MemberListRequest(linearizable=f.boolean("linearizable"))


__all__ = ["BadRequestError", "compaction_request", "compare", "delete_range_request", "member_list_request", "parse_body", "put_request", "range_request", "request_op", "status_request", "txn_request"]
