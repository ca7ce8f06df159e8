"""trikvctl `alarm list|disarm` and `endpoint hashkv` print what etcdctl 3.4 prints, byte for byte, for the
same answers (tests/fixtures/etcd34_alarm_hashkv.json, captured from etcd 3.4.23). The server's answers come
from a stand-in client here; tests/cluster/test_quota_alarm.py runs the same commands against real members."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trikv.api import errors, rpc
from trikv.api.maintenance import (
    ALARM_OP,
    HASHKV_OP,
    AlarmAction,
    AlarmMember,
    AlarmRequest,
    AlarmResponse,
    AlarmType,
    HashKVRequest,
    HashKVResponse,
)
from trikv.tools import ctl_maintenance, trikvctl

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "etcd34_alarm_hashkv.json").read_text())
MEMBER = FIXTURE["member_id"]
HEADER = rpc.ResponseHeader(FIXTURE["cluster_id"], MEMBER, 17, 2)
EP = "127.0.0.1:32379"


class StandIn:
    """Answers like the member etcd's transcripts came from; records what was asked."""

    def __init__(self, active: list[AlarmMember]) -> None:
        self.active = list(active)
        self.asked: list[tuple[str, Any, str | None]] = []

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def call(
        self, op: str, payload: Any, expect: type, *, idempotent: bool, endpoint: str | None = None
    ) -> Any:
        self.asked.append((op, payload, endpoint))
        if op == ALARM_OP:
            if payload.action == AlarmAction.GET:
                return AlarmResponse(alarms=tuple(self.active))
            m = AlarmMember(payload.member_id, payload.alarm)
            self.active.remove(m)
            return AlarmResponse(alarms=(m,))
        assert op == HASHKV_OP
        if payload.revision > 17:
            raise errors.FutureRevError()
        return HashKVResponse(HEADER, 3014637208, -1)


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    s = StandIn([AlarmMember(MEMBER, AlarmType.NOSPACE)])
    monkeypatch.setattr(ctl_maintenance, "_client", lambda ctx, endpoints=None: s)
    return s


def ctl(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = trikvctl.main([f"--endpoints={EP}", *argv])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_alarm_list_formats(standin: StandIn, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert ctl(capsysbinary, "alarm", "list") == (0, FIXTURE["alarm list"].encode(), "")
    assert ctl(capsysbinary, "alarm", "list", "-w", "json") == (0, FIXTURE["alarm list -w json"].encode(), "")
    code, out, _ = ctl(capsysbinary, "alarm", "list", "-w", "protobuf")
    assert (code, out.hex()) == (0, FIXTURE["alarm list -w protobuf (hex)"])
    code, out, err = ctl(capsysbinary, "alarm", "list", "-w", "table")
    assert (code, out, err) == (4, b"", FIXTURE["alarm list -w table stderr"])
    assert standin.asked[0] == (ALARM_OP, AlarmRequest(), None)


def test_alarm_disarm_deactivates_each_alarm(
    standin: StandIn, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert ctl(capsysbinary, "alarm", "disarm") == (0, FIXTURE["alarm disarm"].encode(), "")
    assert standin.asked[1] == (
        ALARM_OP,
        AlarmRequest(AlarmAction.DEACTIVATE, MEMBER, AlarmType.NOSPACE),
        None,
    )
    assert ctl(capsysbinary, "alarm", "disarm", "-w", "json") == (
        0,
        FIXTURE["alarm disarm (none active) -w json"].encode(),
        "",
    )
    assert ctl(capsysbinary, "alarm", "list") == (0, FIXTURE["alarm list (none active)"].encode(), "")


def test_endpoint_hashkv_formats(standin: StandIn, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    for fmt, key in (
        ("simple", "endpoint hashkv"),
        ("json", "endpoint hashkv -w json"),
        ("table", "endpoint hashkv -w table"),
        ("fields", "endpoint hashkv -w fields"),
    ):
        assert ctl(capsysbinary, "endpoint", "hashkv", "-w", fmt) == (0, FIXTURE[key].encode(), ""), fmt
    assert standin.asked[-1] == (HASHKV_OP, HashKVRequest(0), EP)
    code, out, err = ctl(capsysbinary, "endpoint", "hashkv", "--rev", "300")
    assert (code, out, err) == (1, b"", FIXTURE["endpoint hashkv --rev 300 stderr"])
    assert standin.asked[-1] == (HASHKV_OP, HashKVRequest(300), EP)
