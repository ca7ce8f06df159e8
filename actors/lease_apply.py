"""What committed lease entries, and puts naming a lease, do at apply on every member (etcd's apply.go).

A put (alone or in the branch a txn takes) naming a lease that does not exist fails here with
"etcdserver: requested lease not found": nothing is written and the revision does not move. Whatever a
member checked before proposing, this is the check that counts (a revoke committed just before the put wins).
A revoke deletes every key still attached to the lease at one revision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trikv.actors.lessor import Lessor
from trikv.api import errors, rpc
from trikv.api.lease import (
    LeaseCheckpointRequest,
    LeaseCheckpointResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
)
from trikv.storage.mvcc import ApplyBatch


def _grant(lessor: Lessor, batch: ApplyBatch, req: LeaseGrantRequest) -> LeaseGrantResponse:
    lease = lessor.grant(batch, req.id, req.ttl)
    return LeaseGrantResponse(header=rpc.ResponseHeader(revision=batch.revision), id=lease.id, ttl=lease.ttl)


def _revoke(lessor: Lessor, batch: ApplyBatch, req: LeaseRevokeRequest) -> LeaseRevokeResponse:
    keys = lessor.revoke(batch, req.id)
    if keys:  # one txn: every attached key goes at one revision
        batch.txn(rpc.TxnRequest(success=tuple(rpc.DeleteRangeRequest(k) for k in keys)))
    return LeaseRevokeResponse(header=rpc.ResponseHeader(revision=batch.revision))


def _checkpoint(lessor: Lessor, batch: ApplyBatch, req: LeaseCheckpointRequest) -> LeaseCheckpointResponse:
    for cp in req.checkpoints:
        lessor.checkpoint(batch, cp.id, cp.remaining_ttl)
    return LeaseCheckpointResponse(header=rpc.ResponseHeader(revision=batch.revision))


def _put(lessor: Lessor, batch: ApplyBatch, req: rpc.PutRequest) -> rpc.PutResponse:
    if req.lease and not lessor.exists(req.lease):
        raise errors.LeaseNotFoundError()
    resp = batch.put(req)
    if req.lease:
        lessor.attach(req.lease, req.key)
    return resp


def _taken_puts(batch: ApplyBatch, req: rpc.TxnRequest, path: list[Any]) -> list[rpc.PutRequest]:
    """The puts on the branches a txn takes (path: ApplyBatch's [succeeded, [nested paths]])."""
    out: list[rpc.PutRequest] = []
    nested = iter(path[1])
    for op in req.success if path[0] else req.failure:
        if isinstance(op, rpc.PutRequest):
            out.append(op)
        elif isinstance(op, rpc.TxnRequest):
            out.extend(_taken_puts(batch, op, next(nested)))
    return out


def _txn(lessor: Lessor, batch: ApplyBatch, req: rpc.TxnRequest) -> rpc.TxnResponse:
    puts = [p for p in _taken_puts(batch, req, batch._path(req)) if p.lease]
    for p in puts:
        if not lessor.exists(p.lease):
            raise errors.LeaseNotFoundError()
    resp = batch.txn(req)
    for p in puts:
        lessor.attach(p.lease, p.key)
    return resp


# payload type -> its effect with leases in the picture
LEASE_APPLY: dict[type, Callable[[Lessor, ApplyBatch, Any], Any]] = {
    LeaseGrantRequest: _grant,
    LeaseRevokeRequest: _revoke,
    LeaseCheckpointRequest: _checkpoint,
    rpc.PutRequest: _put,
    rpc.TxnRequest: _txn,
}


def apply_with_leases(lessor: Lessor, batch: ApplyBatch, payload: Any) -> Any:
    return LEASE_APPLY[type(payload)](lessor, batch, payload)


__all__ = ["LEASE_APPLY", "apply_with_leases"]
