"""etcd 3.4's Maintenance.Defragment (unary) and Maintenance.Snapshot (server stream) over gRPC.

Shapes only: the protobuf request becomes trikv's request shape and goes through the same Handlers
(`handle` for Defragment, `stream` for Snapshot) the CBOR and JSON surfaces use; each SnapshotResponse is
sent as etcd's (`remaining_bytes`, `blob`; the last blob is the SHA-256 trailer), so etcdctl's
`snapshot save` and `defrag` work against a trikv member.
"""

from __future__ import annotations

from typing import Any

import trio

from trikv.actors.grpc_call import CallContext, Emit, Method
from trikv.actors.grpcpb import rpc_pb2
from trikv.api import rpc
from trikv.api.snapshot import DefragmentRequest, SnapshotRequest, SnapshotResponse


def _header(h: rpc.ResponseHeader) -> Any:
    return rpc_pb2.ResponseHeader(
        cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision, raft_term=h.raft_term
    )


def snapshot_methods(backend: Any) -> dict[str, Method]:
    """Defragment and Snapshot of etcdserverpb.Maintenance; `backend` is the Handlers (it serves
    `handle(request)` and `stream(first, inbound, emit)`)."""

    async def defragment(request: Any, ctx: CallContext) -> Any:
        r = await backend.handle(DefragmentRequest())
        return rpc_pb2.DefragmentResponse(header=_header(r.header))

    async def snapshot(requests: Any, emit: Emit, ctx: CallContext) -> None:
        async def out(r: SnapshotResponse) -> None:
            await emit(
                rpc_pb2.SnapshotResponse(
                    header=_header(r.header), remaining_bytes=r.remaining_bytes, blob=r.blob
                )
            )

        send, recv = trio.open_memory_channel[Any](0)
        async with send:  # a server stream: nothing more comes from the client
            await backend.stream(SnapshotRequest(), recv, out)

    return {
        "Defragment": Method(rpc_pb2.DefragmentRequest, defragment),
        "Snapshot": Method(rpc_pb2.SnapshotRequest, snapshot, streaming=True),
    }


__all__ = ["snapshot_methods"]
