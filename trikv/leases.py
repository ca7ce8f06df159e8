"""Leases in the Trio client: `async with client.lease(ttl) as lease:` grants a lease, keeps it alive in a
background task and revokes it on exit (etcd's clientv3 concurrency.Session).

Keep-alives go out every TTL/3 on one LeaseKeepAlive stream (as etcd's client); a lost connection or a
stream the server ended is reopened on any endpoint (the client's failover), with a short back-off.
`lease.lost` is set no later than the send time of the last acknowledged keep-alive (or of the grant) plus
the TTL, on the client's monotonic clock, whether or not an error arrived: past that moment the server may
have revoked the lease, so whoever holds a lock under it must stop acting as its owner.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import trio

from trikv.api import errors
from trikv.api.lease import (
    KEEPALIVE_STREAM_OP,
    LeaseGrantResponse,
    LeaseKeepAliveRequest,
    LeaseKeepAliveResponse,
)

log = logging.getLogger("trikv.lease")

KEEPALIVE_STREAM = KEEPALIVE_STREAM_OP
RETRY_DELAY = 0.2  # seconds between attempts to reopen the keep-alive stream


class LeaseClient(Protocol):
    """What the keeper needs of trikv.client.Client."""

    async def grant(self, ttl: int, lease_id: int = 0) -> LeaseGrantResponse: ...
    async def revoke(self, lease_id: int) -> Any: ...
    def stream(
        self, op: str, payload: Any, endpoint: str | None = None
    ) -> AbstractAsyncContextManager[Any]: ...


class Lease:
    """A granted lease kept alive in the background; `lost` is set once it can no longer be trusted."""

    def __init__(self, lease_id: int, ttl: int, acked_at: float) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.lost = trio.Event()
        self.keepalives = 0  # acknowledged keep-alives (a metric)
        self._acked_at = acked_at  # send time of the last acknowledged keep-alive (or of the grant)
        self._deadline_moved = trio.Event()

    @property
    def deadline(self) -> float:
        """Until when the lease is known to be alive (client monotonic clock)."""
        return self._acked_at + self.ttl

    def _acked(self, sent_at: float, ttl: int) -> None:
        if ttl <= 0:
            self._lose("the lease expired or was revoked")
            return
        self.keepalives += 1
        if sent_at > self._acked_at:
            self._acked_at, self.ttl = sent_at, ttl
            self._deadline_moved.set()
            self._deadline_moved = trio.Event()

    def _lose(self, why: str) -> None:
        if not self.lost.is_set():
            log.warning("lease %016x lost: %s", self.id, why)
            self.lost.set()

    async def _watchdog(self) -> None:
        while not self.lost.is_set():
            with trio.move_on_at(self.deadline):
                await self._deadline_moved.wait()
                continue
            self._lose("no keep-alive acknowledged within the TTL")

    async def _keeper(self, client: LeaseClient) -> None:
        interval = max(self.ttl / 3.0, 0.05)
        while not self.lost.is_set():
            try:
                await self._keep_on_one_stream(client, interval)
            except (errors.TrikvError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.info("lease %016x keep-alive stream ended: %s; reopening", self.id, exc)
            except Exception as exc:  # StreamClosed / StreamLost and the like: reopen
                log.info("lease %016x keep-alive stream ended: %r; reopening", self.id, exc)
            await trio.sleep(RETRY_DELAY)

    async def _keep_on_one_stream(self, client: LeaseClient, interval: float) -> None:
        sent: collections.deque[float] = collections.deque()
        sent.append(trio.current_time())
        async with client.stream(KEEPALIVE_STREAM, LeaseKeepAliveRequest(self.id)) as st:
            async with trio.open_nursery() as nursery:

                async def send_every() -> None:
                    while True:
                        await trio.sleep(interval)
                        sent.append(trio.current_time())
                        await st.send(LeaseKeepAliveRequest(self.id))

                nursery.start_soon(send_every)
                while not self.lost.is_set():
                    resp = await st.receive()
                    if isinstance(resp, LeaseKeepAliveResponse):
                        self._acked(sent.popleft() if sent else trio.current_time(), resp.ttl)
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def hold_lease(client: LeaseClient, ttl: int) -> AsyncIterator[Lease]:
    """Grant a lease of `ttl` seconds, keep it alive while the block runs, revoke it on exit."""
    sent_at = trio.current_time()
    granted = await client.grant(ttl)
    if granted.error:
        raise errors.ClientError(granted.error)
    lease = Lease(granted.id, granted.ttl, sent_at)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lease._watchdog)
            nursery.start_soon(lease._keeper, client)
            try:
                yield lease
            finally:
                nursery.cancel_scope.cancel()
    finally:
        if not lease.lost.is_set():
            with trio.move_on_after(2.0, shield=True):
                try:
                    await client.revoke(lease.id)
                except errors.TrikvError as exc:
                    log.info("revoking lease %016x on exit failed: %s", lease.id, exc)
        lease.lost.set()


__all__ = ["KEEPALIVE_STREAM", "Lease", "LeaseClient", "hold_lease"]
