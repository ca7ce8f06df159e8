"""etcd 3.4's gRPC services on trikv's typed handlers: the service table and protobuf <-> attrs shapes.

Only shapes are converted here: each method turns the protobuf request into trikv's request shape, calls
the same `Handlers.handle(request)` the CBOR and JSON surfaces call, and turns the answer back. Adding a
service later is one `_unary(...)` entry (or a streaming Method) plus its converters. Methods of services
whose issues have not landed (Auth) are simply absent: grpc_server
answers them UNIMPLEMENTED. Defragment and Snapshot live in actors/grpc_snapshot.py.

etcd's interceptors (v3rpc/interceptor.go): the learner filter lives in Handlers already; require-leader
("hasleader: true" metadata, set by clientv3.WithRequireLeader) refuses a unary call with
"etcdserver: no leader" while this member knows no leader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from trikv.actors.grpc_alarm import alarm_methods
from trikv.actors.grpc_call import CallContext, Method, Services
from trikv.actors.grpc_lease import lease_methods
from trikv.actors.grpc_snapshot import snapshot_methods
from trikv.actors.grpc_watch import watch_methods
from trikv.actors.grpcpb import kv_pb2, rpc_pb2
from trikv.api import errors, protocol, rpc

REQUIRE_LEADER_KEY = "hasleader"  # etcd's rpctypes.MetadataRequireLeaderKey


class Backend(Protocol):
    """What the gRPC surface calls (actors/handlers.py's Handlers implements it).

    `has_leader() -> bool`, when the backend has it, serves require-leader; without it every member is
    taken to know a leader.
    """

    async def handle(self, request: Any) -> Any: ...


# --------------------------------------------------------------------------- protobuf -> request shapes


def _enum(cls: Any, value: int, err: type[errors.EtcdError]) -> Any:
    """An enum field protobuf let through with a number etcd's enum does not have: a typed error, no bug."""
    try:
        return cls(value)
    except ValueError:
        raise err() from None


def range_request(m: Any) -> rpc.RangeRequest:
    return rpc.RangeRequest(
        key=m.key,
        range_end=m.range_end,
        limit=m.limit,
        revision=m.revision,
        sort_order=_enum(rpc.SortOrder, m.sort_order, errors.InvalidSortOptionError),
        sort_target=_enum(rpc.SortTarget, m.sort_target, errors.InvalidSortOptionError),
        serializable=m.serializable,
        keys_only=m.keys_only,
        count_only=m.count_only,
        min_mod_revision=m.min_mod_revision,
        max_mod_revision=m.max_mod_revision,
        min_create_revision=m.min_create_revision,
        max_create_revision=m.max_create_revision,
    )


def put_request(m: Any) -> rpc.PutRequest:
    return rpc.PutRequest(m.key, m.value, m.lease, m.prev_kv, m.ignore_value, m.ignore_lease)


def delete_range_request(m: Any) -> rpc.DeleteRangeRequest:
    return rpc.DeleteRangeRequest(m.key, m.range_end, m.prev_kv)


def compare(m: Any) -> rpc.Compare:
    which = m.WhichOneof("target_union")
    value: int | bytes = getattr(m, which) if which else (b"" if m.target == rpc.CompareTarget.VALUE else 0)
    result = _enum(rpc.CompareResult, m.result, errors.InvalidRequestError)
    return rpc.Compare(
        result, _enum(rpc.CompareTarget, m.target, errors.InvalidRequestError), m.key, value, m.range_end
    )


def request_op(m: Any) -> Any:
    which = m.WhichOneof("request")
    if which is None:  # etcd's apply treats an empty RequestOp as nothing; its checks refuse it first
        raise errors.InvalidRequestError("etcdserver: invalid request")
    return _REQUEST_OPS[which](getattr(m, which))


def txn_request(m: Any) -> rpc.TxnRequest:
    return rpc.TxnRequest(
        tuple(compare(c) for c in m.compare),
        tuple(request_op(op) for op in m.success),
        tuple(request_op(op) for op in m.failure),
    )


_REQUEST_OPS: dict[str, Callable[[Any], Any]] = {
    "request_range": range_request,
    "request_put": put_request,
    "request_delete_range": delete_range_request,
    "request_txn": txn_request,
}


# --------------------------------------------------------------------------- response shapes -> protobuf


def header_pb(h: rpc.ResponseHeader) -> Any:
    return rpc_pb2.ResponseHeader(
        cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision, raft_term=h.raft_term
    )


def kv_pb(kv: rpc.KeyValue) -> Any:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def range_pb(r: rpc.RangeResponse) -> Any:
    return rpc_pb2.RangeResponse(
        header=header_pb(r.header), kvs=[kv_pb(kv) for kv in r.kvs], more=r.more, count=r.count
    )


def put_pb(r: rpc.PutResponse) -> Any:
    out = rpc_pb2.PutResponse(header=header_pb(r.header))
    if r.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_pb(r.prev_kv))
    return out


def delete_range_pb(r: rpc.DeleteRangeResponse) -> Any:
    return rpc_pb2.DeleteRangeResponse(
        header=header_pb(r.header), deleted=r.deleted, prev_kvs=[kv_pb(kv) for kv in r.prev_kvs]
    )


def response_op_pb(r: Any) -> Any:
    if isinstance(r, rpc.RangeResponse):
        return rpc_pb2.ResponseOp(response_range=range_pb(r))
    if isinstance(r, rpc.PutResponse):
        return rpc_pb2.ResponseOp(response_put=put_pb(r))
    if isinstance(r, rpc.DeleteRangeResponse):
        return rpc_pb2.ResponseOp(response_delete_range=delete_range_pb(r))
    return rpc_pb2.ResponseOp(response_txn=txn_pb(r))


def txn_pb(r: rpc.TxnResponse) -> Any:
    return rpc_pb2.TxnResponse(
        header=header_pb(r.header), succeeded=r.succeeded, responses=[response_op_pb(x) for x in r.responses]
    )


def compaction_pb(r: rpc.CompactionResponse) -> Any:
    return rpc_pb2.CompactionResponse(header=header_pb(r.header))


def member_pb(m: protocol.Member) -> Any:
    return rpc_pb2.Member(
        ID=m.id,
        name=m.name,
        peerURLs=list(m.peer_urls),
        clientURLs=list(m.client_urls),
        isLearner=m.is_learner,
    )


def members_pb(pb_type: Any) -> Callable[[protocol.MemberListResponse], Any]:
    """MemberList/Remove/Update/Promote answer the same shape: a header and the members."""

    def convert(r: protocol.MemberListResponse) -> Any:
        return pb_type(header=header_pb(r.header), members=[member_pb(m) for m in r.members])

    return convert


def member_add_pb(r: protocol.MemberAddResponse) -> Any:
    return rpc_pb2.MemberAddResponse(
        header=header_pb(r.header), member=member_pb(r.member), members=[member_pb(m) for m in r.members]
    )


def status_pb(r: protocol.StatusResponse) -> Any:
    return rpc_pb2.StatusResponse(
        header=header_pb(r.header),
        version=r.version,
        dbSize=r.db_size,
        leader=r.leader,
        raftIndex=r.raft_index,
        raftTerm=r.raft_term,
        raftAppliedIndex=r.raft_applied_index,
        errors=list(r.errors),
        dbSizeInUse=r.db_size_in_use,
        isLearner=r.is_learner,
    )


def move_leader_pb(r: protocol.MoveLeaderResponse) -> Any:
    return rpc_pb2.MoveLeaderResponse(header=header_pb(r.header))


# --------------------------------------------------------------------------- the service table


def _unary(
    backend: Backend,
    pb_request: type[Any],
    to_shape: Callable[[Any], Any],
    to_pb: Callable[[Any], Any],
    max_request_bytes: int | None = None,
) -> Method:
    """`max_request_bytes` for requests etcd proposes through Raft: it refuses a marshalled proposal above
    max-request-bytes with "request is too large" (larger messages never got past the transport)."""
    has_leader: Callable[[], bool] = getattr(backend, "has_leader", lambda: True)

    async def call(request: Any, ctx: CallContext) -> Any:
        if ctx.metadata.get(REQUIRE_LEADER_KEY) == "true" and not has_leader():
            raise errors.NoLeaderError()
        if max_request_bytes is not None and request.ByteSize() > max_request_bytes:
            raise errors.RequestTooLargeError()
        return to_pb(await backend.handle(to_shape(request)))

    return Method(pb_request, call)


def services(backend: Backend, max_request_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES) -> Services:
    """etcd's service table: "etcdserverpb.KV" -> "Range" -> Method, for this member's handlers."""
    P = rpc_pb2
    u = _unary
    size = max_request_bytes
    return {
        "etcdserverpb.KV": {
            "Range": u(backend, P.RangeRequest, range_request, range_pb),
            "Put": u(backend, P.PutRequest, put_request, put_pb, size),
            "DeleteRange": u(backend, P.DeleteRangeRequest, delete_range_request, delete_range_pb, size),
            "Txn": u(backend, P.TxnRequest, txn_request, txn_pb, size),
            "Compact": u(
                backend,
                P.CompactionRequest,
                lambda m: rpc.CompactionRequest(m.revision, m.physical),
                compaction_pb,
            ),
        },
        "etcdserverpb.Cluster": {
            "MemberAdd": u(
                backend,
                P.MemberAddRequest,
                lambda m: protocol.MemberAddRequest(tuple(m.peerURLs), m.isLearner),
                member_add_pb,
            ),
            "MemberRemove": u(
                backend,
                P.MemberRemoveRequest,
                lambda m: protocol.MemberRemoveRequest(m.ID),
                members_pb(P.MemberRemoveResponse),
            ),
            "MemberUpdate": u(
                backend,
                P.MemberUpdateRequest,
                lambda m: protocol.MemberUpdateRequest(m.ID, tuple(m.peerURLs)),
                members_pb(P.MemberUpdateResponse),
            ),
            "MemberList": u(
                backend,
                P.MemberListRequest,
                lambda m: protocol.MemberListRequest(),
                members_pb(P.MemberListResponse),
            ),
            "MemberPromote": u(
                backend,
                P.MemberPromoteRequest,
                lambda m: protocol.MemberPromoteRequest(m.ID),
                members_pb(P.MemberPromoteResponse),
            ),
        },
        "etcdserverpb.Maintenance": {
            "Status": u(backend, P.StatusRequest, lambda m: protocol.StatusRequest(), status_pb),
            "MoveLeader": u(
                backend, P.MoveLeaderRequest, lambda m: protocol.MoveLeaderRequest(m.targetID), move_leader_pb
            ),
            **snapshot_methods(backend),  # Defragment, Snapshot (actors/grpc_snapshot.py)
            **alarm_methods(backend),  # Alarm, Hash, HashKV (actors/grpc_alarm.py)
        },
        # Present so that their unbuilt methods say "unknown method", as grpc-go says for a known service.
        "etcdserverpb.Watch": watch_methods(backend),  # actors/grpc_watch.py
        "etcdserverpb.Lease": lease_methods(backend, _unary),  # actors/grpc_lease.py
        "etcdserverpb.Auth": {},
    }


__all__ = ["REQUIRE_LEADER_KEY", "Backend", "services"]
