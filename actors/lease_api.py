"""The typed Lease handlers (etcd's v3 Lease service), shared by every client surface.

Grant and revoke go through Raft (the grant's ID is chosen here, before proposing, so every member applies
the same one). Keep-alive and TimeToLive are answered by the leader's LeaseManager: a follower forwards them
over a peer link and relays the answer, as etcd's leader-forwarding does; they are never proposed. Leases
lists this member's table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from trikv.actors.kv import KVApi
from trikv.actors.lease import LeaseManager
from trikv.api import errors
from trikv.api.lease import (
    MAX_LEASE_TTL,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
    LeaseLeasesRequest,
    LeaseLeasesResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    LeaseStatus,
    LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
)

INT63 = (1 << 63) - 1

# requests a follower hands to the leader (and the leader serves for it)
FORWARDED = (LeaseKeepAliveRequest, LeaseTimeToLiveRequest)


def check_lease_request(req: Any) -> None:
    """etcd's static checks before proposing (the apply-time checks still run on every member)."""
    if isinstance(req, LeaseGrantRequest) and req.ttl > MAX_LEASE_TTL:
        raise errors.LeaseTTLTooLargeError()
    if isinstance(req, LeaseGrantRequest) and not -INT63 - 1 <= req.id <= INT63:
        # etcd's ID is an int64 (protobuf cannot carry more); a bigger one would fail at apply on every member
        raise errors.InvalidRequestError(f"etcdserver: lease ID {req.id} is not an int64")


class LeaseApi:
    def __init__(
        self,
        kv: KVApi,
        manager: LeaseManager,
        forward: Callable[[int, Any], Awaitable[Any]],
        new_id: Callable[[], int],
    ) -> None:
        self.kv, self.manager, self.forward, self.new_id = kv, manager, forward, new_id

    async def grant(self, req: LeaseGrantRequest) -> LeaseGrantResponse:
        check_lease_request(req)
        if req.id == 0:
            req = attrs.evolve(req, id=self.new_id() & INT63 or 1)
        resp = await self.kv.proposer.propose(req, op="lease_grant")
        if isinstance(resp, BaseException):
            raise resp
        return self.kv.stamp(resp)

    async def revoke(self, req: LeaseRevokeRequest) -> LeaseRevokeResponse:
        resp = await self.kv.proposer.propose(req, op="lease_revoke")
        if isinstance(resp, BaseException):
            raise resp
        return self.kv.stamp(resp)

    async def keep_alive(self, req: LeaseKeepAliveRequest) -> LeaseKeepAliveResponse:
        if not self._is_leader():
            return await self._forward(req)
        return await self.serve_forwarded(req)

    async def keep_alive_stream(
        self,
        first: LeaseKeepAliveRequest,
        inbound: trio.MemoryReceiveChannel[Any],
        emit: Callable[[Any], Awaitable[None]],
    ) -> None:
        """etcd's LeaseKeepAlive stream: one answer per keep-alive, in order; an error (no leader, ...) ends
        the stream and the client reopens it."""
        await emit(await self.keep_alive(first))
        async for req in inbound:
            await emit(await self.keep_alive(req))

    async def time_to_live(self, req: LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse:
        if not self._is_leader():
            return await self._forward(req)
        return await self.serve_forwarded(req)

    async def leases(self, req: LeaseLeasesRequest) -> LeaseLeasesResponse:
        ids = self.manager.leases()
        return LeaseLeasesResponse(header=self.kv.header(), leases=tuple(LeaseStatus(i) for i in ids))

    async def serve_forwarded(self, req: Any) -> Any:
        """On the leader: answer a keep-alive / TimeToLive (ours or one a follower forwarded)."""
        if isinstance(req, LeaseKeepAliveRequest):
            ttl = await self.manager.keep_alive(req.id)
            return LeaseKeepAliveResponse(header=self.kv.header(), id=req.id, ttl=ttl)
        if isinstance(req, LeaseTimeToLiveRequest):
            ttl, granted, keys = await self.manager.time_to_live(req.id, req.keys)
            return LeaseTimeToLiveResponse(
                header=self.kv.header(), id=req.id, ttl=ttl, granted_ttl=granted, keys=keys
            )
        raise errors.InvalidRequestError("etcdserver: request cannot be forwarded")

    def _is_leader(self) -> bool:
        return self.kv.raft_status.is_leader

    async def _forward(self, req: Any) -> Any:
        lead = self.kv.raft_status.lead
        if lead == 0:
            raise errors.NoLeaderError()
        resp = await self.forward(lead, req)
        if not isinstance(resp, (LeaseKeepAliveResponse, LeaseTimeToLiveResponse)):
            raise errors.InternalError()
        return resp  # the leader's answer as is, its header included (as etcd's forwarded keep-alive)


def lease_handlers(api: LeaseApi) -> dict[type, Callable[[Any], Awaitable[Any]]]:
    """The lease rows of the handlers table (actors/handlers.py)."""
    return {
        LeaseGrantRequest: api.grant,
        LeaseRevokeRequest: api.revoke,
        LeaseKeepAliveRequest: api.keep_alive,
        LeaseTimeToLiveRequest: api.time_to_live,
        LeaseLeasesRequest: api.leases,
    }


__all__ = ["FORWARDED", "LeaseApi", "check_lease_request", "lease_handlers"]
