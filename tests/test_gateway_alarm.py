"""The JSON gateway's alarm and hash routes: etcd 3.4.23's request dialect and answers
(tests/fixtures/etcd34_alarm_hashkv.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trikv.actors import gateway_alarm
from trikv.actors.gateway import ENDPOINTS, go_json
from trikv.actors.gateway_requests import BadRequestError
from trikv.api import rpc
from trikv.api.maintenance import (
    AlarmAction,
    AlarmMember,
    AlarmRequest,
    AlarmResponse,
    AlarmType,
    HashKVRequest,
    HashKVResponse,
    HashResponse,
)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "etcd34_alarm_hashkv.json").read_text())
MEMBER = FIXTURE["member_id"]
HEADER = rpc.ResponseHeader(FIXTURE["cluster_id"], MEMBER, 17, 2)


def test_routes_are_registered() -> None:
    for path in ("/v3/maintenance/alarm", "/v3/maintenance/hash", "/v3/maintenance/hashkv"):
        assert path in ENDPOINTS


def test_alarm_requests() -> None:
    assert gateway_alarm.alarm_request({}) == AlarmRequest()
    assert gateway_alarm.alarm_request({"action": "GET"}) == AlarmRequest()
    assert gateway_alarm.alarm_request(
        {"action": "DEACTIVATE", "memberID": str(MEMBER), "alarm": "NOSPACE"}
    ) == AlarmRequest(AlarmAction.DEACTIVATE, MEMBER, AlarmType.NOSPACE)
    assert gateway_alarm.alarm_request({"action": 1, "memberID": 18446744073709551615, "alarm": 2}) == (
        AlarmRequest(AlarmAction.ACTIVATE, (1 << 64) - 1, AlarmType.CORRUPT)
    )
    with pytest.raises(BadRequestError, match=r"unknown value \"SOON\" for enum etcdserverpb\.AlarmType"):
        gateway_alarm.alarm_request({"alarm": "SOON"})
    with pytest.raises(BadRequestError, match="of type uint64"):
        gateway_alarm.alarm_request({"memberID": "-1"})
    assert gateway_alarm.hashkv_request({"revision": "5"}) == HashKVRequest(5)


def test_answers_are_etcds() -> None:
    active = AlarmResponse(alarms=(AlarmMember(MEMBER, AlarmType.NOSPACE),))
    assert (
        go_json(gateway_alarm.alarm_json(active)).decode() == FIXTURE["gateway POST /v3/maintenance/alarm {}"]
    )
    assert (
        go_json(gateway_alarm.alarm_json(AlarmResponse())).decode()
        == (FIXTURE["gateway POST /v3/maintenance/alarm (none active)"])
    )
    assert (
        go_json(gateway_alarm.hash_json(HashResponse(HEADER, 2674271693))).decode()
        == (FIXTURE["gateway POST /v3/maintenance/hash {}"])
    )
    hkv = gateway_alarm.hashkv_json(HashKVResponse(HEADER, 5, -1))
    assert hkv == {
        "header": json.loads(FIXTURE["gateway POST /v3/maintenance/hash {}"])["header"],
        "hash": 5,
        "compact_revision": "-1",
    }
