"""etcd 3.4's JSON gateway for alarms and hashes: /v3/maintenance/alarm, /v3/maintenance/hash, .../hashkv.

Shapes as grpc-gateway writes them for etcd (checked against etcd 3.4.23): the AlarmResponse has no header
(`{}` when no alarm is active, else `{"alarms":[{"memberID":"<uint64 as string>","alarm":"NOSPACE"}]}`), a
Hash answer carries its uint32 hash as a JSON number, HashKV its int64 compact_revision as a string. etcd
3.4 routes /v3/maintenance/hash to Hash (its HashKV registration shares that path and is shadowed);
/v3/maintenance/hashkv serves HashKV, as later etcd versions do. Importing this module adds the routes to
actors.gateway's table.
"""

from __future__ import annotations

import re
from typing import Any

from trikv.actors.gateway import ENDPOINTS, header_json
from trikv.actors.gateway_requests import BadRequestError, _Fields
from trikv.api.maintenance import (
    AlarmAction,
    AlarmRequest,
    AlarmResponse,
    AlarmType,
    HashKVRequest,
    HashKVResponse,
    HashRequest,
    HashResponse,
)

_UINT = re.compile(r"(0|[1-9][0-9]*)\Z")


def _uint64(f: _Fields, name: str) -> int:
    value = f.raw(name)
    if value is None:
        return 0
    if isinstance(value, str) and _UINT.match(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number = value
    else:
        kind = (
            "string" if isinstance(value, str) else "number" if isinstance(value, (int, float)) else "value"
        )
        raise BadRequestError(
            f"json: cannot unmarshal {kind} into Go struct field {f.message}.{name} of type uint64"
        )
    if number >= 1 << 64:
        raise BadRequestError(
            f"json: cannot unmarshal number {value} into Go struct field {f.message}.{name} of type uint64"
        )
    return number


def alarm_request(obj: Any) -> AlarmRequest:
    f = _Fields(obj, "AlarmRequest")
    return AlarmRequest(
        action=f.enumeration("action", AlarmAction, "AlarmRequest_AlarmAction"),
        member_id=_uint64(f, "memberID"),
        alarm=f.enumeration("alarm", AlarmType, "AlarmType"),
    )


def hashkv_request(obj: Any) -> HashKVRequest:
    f = _Fields(obj, "HashKVRequest")
    return HashKVRequest(revision=f.int64("revision"))


def hash_request(obj: Any) -> HashRequest:
    _Fields(obj, "HashRequest")
    return HashRequest()


def alarm_json(r: AlarmResponse) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.header is not None:
        out["header"] = header_json(r.header)
    alarms = []
    for m in r.alarms:
        one: dict[str, Any] = {}
        if m.member_id:
            one["memberID"] = str(m.member_id)
        if m.alarm:
            one["alarm"] = m.alarm.name
        alarms.append(one)
    if alarms:
        out["alarms"] = alarms
    return out


def hash_json(r: HashResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header_json(r.header)}
    if r.hash:
        out["hash"] = r.hash
    return out


def hashkv_json(r: HashKVResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"header": header_json(r.header)}
    if r.hash:
        out["hash"] = r.hash
    if r.compact_revision:
        out["compact_revision"] = str(r.compact_revision)
    return out


ENDPOINTS.update(
    {
        "/v3/maintenance/alarm": (alarm_request, alarm_json),
        "/v3/maintenance/hash": (hash_request, hash_json),
        "/v3/maintenance/hashkv": (hashkv_request, hashkv_json),
    }
)

__all__ = ["alarm_json", "alarm_request", "hash_json", "hash_request", "hashkv_json", "hashkv_request"]
