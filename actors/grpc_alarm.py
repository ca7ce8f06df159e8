"""etcd 3.4's Maintenance.Alarm, Hash and HashKV over gRPC (shapes only, through the same Handlers).

An AlarmResponse goes out without a header, as etcd's does; etcdctl's `alarm list|disarm` and
`endpoint hashkv` then print against a trikv member exactly what they print against etcd.
"""

from __future__ import annotations

from typing import Any

from trikv.actors.grpc_call import CallContext, Method
from trikv.actors.grpcpb import rpc_pb2
from trikv.api import errors, rpc
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


def _header(h: rpc.ResponseHeader) -> Any:
    return rpc_pb2.ResponseHeader(
        cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision, raft_term=h.raft_term
    )


def alarm_methods(backend: Any) -> dict[str, Method]:
    """Alarm, Hash and HashKV of etcdserverpb.Maintenance; `backend` is the Handlers."""

    async def alarm(m: Any, ctx: CallContext) -> Any:
        try:
            req = AlarmRequest(AlarmAction(m.action), m.memberID, AlarmType(m.alarm))
        except ValueError:
            raise errors.InvalidRequestError("etcdserver: unknown alarm action or type") from None
        r: AlarmResponse = await backend.handle(req)
        out = rpc_pb2.AlarmResponse(
            alarms=[rpc_pb2.AlarmMember(memberID=a.member_id, alarm=a.alarm.name) for a in r.alarms]
        )
        if r.header is not None:
            out.header.CopyFrom(_header(r.header))
        return out

    async def hashkv(m: Any, ctx: CallContext) -> Any:
        r: HashKVResponse = await backend.handle(HashKVRequest(m.revision))
        return rpc_pb2.HashKVResponse(
            header=_header(r.header), hash=r.hash, compact_revision=r.compact_revision
        )

    async def hash_(m: Any, ctx: CallContext) -> Any:
        r: HashResponse = await backend.handle(HashRequest())
        return rpc_pb2.HashResponse(header=_header(r.header), hash=r.hash)

    return {
        "Alarm": Method(rpc_pb2.AlarmRequest, alarm),
        "HashKV": Method(rpc_pb2.HashKVRequest, hashkv),
        "Hash": Method(rpc_pb2.HashRequest, hash_),
    }


__all__ = ["alarm_methods"]
