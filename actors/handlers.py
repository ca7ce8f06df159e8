"""One table from request type to its typed handler, shared by every client surface.

The CBOR WebSocket server, the JSON gateway (and later gRPC) only convert shapes and call `handle(request)`.
Here, before anything is proposed: etcd's static checks (trikv.api.checks), so nothing invalid enters the
Raft log, and the learner rule (a learner answers only Status and serializable Range, everything else
gets "etcdserver: rpc not supported for learner").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trikv.actors.alarmstore import health_problem
from trikv.actors.cluster import ClusterApi
from trikv.actors.kv import ETCD_API_VERSION, KVApi
from trikv.actors.lease_api import LeaseApi, check_lease_request, lease_handlers
from trikv.actors.metrics import MemberMetrics
from trikv.api import errors, protocol, rpc
from trikv.api.checks import check_request

CLUSTER_VERSION = "3.4.0"

Handler = Callable[[Any], Awaitable[Any]]
# A stream handler: (opening request, later client items, emit an answer). See wsession.Backend.stream.
StreamHandler = Callable[[Any, trio.MemoryReceiveChannel[Any], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class Handlers:
    """Implements the client server's Backend protocol (actors/server.py)."""

    def __init__(
        self,
        kv: KVApi,
        cluster: ClusterApi,
        *,
        version: str,
        max_txn_ops: int,
        leases: LeaseApi | None = None,
    ) -> None:
        self.kv, self.cluster = kv, cluster
        self._version = version
        self.max_txn_ops = max_txn_ops
        self.table: dict[type, Handler] = {
            rpc.RangeRequest: kv.range,
            rpc.PutRequest: kv.write,
            rpc.DeleteRangeRequest: kv.write,
            rpc.TxnRequest: kv.write,
            rpc.CompactionRequest: kv.write,
            protocol.StatusRequest: kv.status,
            protocol.MemberListRequest: cluster.member_list,
            protocol.MemberAddRequest: cluster.member_add,
            protocol.MemberRemoveRequest: cluster.member_remove,
            protocol.MemberUpdateRequest: cluster.member_update,
            protocol.MemberPromoteRequest: cluster.member_promote,
            protocol.MoveLeaderRequest: cluster.move_leader,
        }
        if leases is not None:
            self.table.update(lease_handlers(leases))
        # Streams by the type of their opening request (watch, lease keep-alive, snapshot register here).
        self.streams: dict[type, StreamHandler] = {}
        self.metrics: MemberMetrics | None = None  # set by the Node: every surface counts here, once

    def _learner_may(self, request: Any) -> bool:
        return isinstance(request, protocol.StatusRequest) or (
            isinstance(request, rpc.RangeRequest) and request.serializable
        )

    async def handle(self, request: Any) -> Any:
        if self.metrics is not None:
            return await self.metrics.unary(request, self._handle)
        return await self._handle(request)

    async def _handle(self, request: Any) -> Any:
        handler = self.table.get(type(request))
        if handler is None:
            raise errors.InvalidRequestError(f"etcdserver: unknown request {type(request).__name__}")
        if self.is_learner() and not self._learner_may(request):
            raise errors.NotSupportedForLearnerError()
        check_request(request, max_txn_ops=self.max_txn_ops)
        check_lease_request(request)
        return await handler(request)

    async def stream(
        self, first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: Callable[[Any], Awaitable[None]]
    ) -> None:
        if self.metrics is not None:
            return await self.metrics.stream(first, self._stream(first, inbound, emit))
        await self._stream(first, inbound, emit)

    async def _stream(
        self, first: Any, inbound: trio.MemoryReceiveChannel[Any], emit: Callable[[Any], Awaitable[None]]
    ) -> None:
        handler = self.streams.get(type(first))
        if handler is None:
            raise errors.InvalidRequestError(f"etcdserver: unknown stream {type(first).__name__}")
        if self.is_learner():
            raise errors.NotSupportedForLearnerError()  # etcd: every stream is refused on a learner
        await handler(first, inbound, emit)

    def is_learner(self) -> bool:
        return self.kv.backend.applier.is_learner(self.kv.ident.member_id)

    def has_leader(self) -> bool:
        """For gRPC's require-leader metadata (etcd's interceptor): does this member know a leader?"""
        return self.kv.raft_status.lead != 0

    async def health(self) -> tuple[bool, str]:
        alarm = health_problem(self.kv.backend.applier.alarms)  # etcd: any active alarm is unhealthy
        if alarm:
            return False, alarm
        if self.kv.raft_status.lead == 0:
            return False, "RAFT NO LEADER"
        try:
            await self.kv.range(rpc.RangeRequest(b"health"))
        except errors.EtcdError as exc:
            return False, str(exc)
        return True, ""

    def version(self) -> dict[str, str]:
        # Tools pick their API from `etcdserver` (etcd3gw: >= 3.4 -> /v3/), so it names the etcd release
        # whose API trikv serves; trikv's own version has its own field.
        return {"etcdserver": ETCD_API_VERSION, "etcdcluster": CLUSTER_VERSION, "trikv": self._version}


__all__ = ["CLUSTER_VERSION", "Handlers"]
