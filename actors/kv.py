"""The typed KV and maintenance handlers (etcd's v3 KV service and Status), shared by every client surface.

Requests reach these after the static checks (trikv.api.checks, in actors/handlers.py): what gets
proposed here is well-formed, and only state-dependent checks (compacted revision, lease existence, ...)
remain for apply on every member. Writes are proposed through Raft and answered when this member applies
them; linearizable reads wait for a ReadIndex round, serializable reads are answered locally.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from trikv.actors.alarmstore import alarm_errors
from trikv.actors.backend import Backend
from trikv.actors.events import (
    Inbox,
    Pending,
    Propose,
    ProposeConfChange,
    RaftStatus,
    ReadIndexWait,
    RequestIds,
    Waiters,
)
from trikv.api import errors, protocol, rpc
from trikv.api.internal import RaftRequest
from trikv.api.records import ConfChange
from trikv.storage import faults

ETCD_API_VERSION = "3.4.0"  # the etcd release whose API (Status, /version) trikv mirrors

# etcd's maxGapBetweenApplyAndCommitIndex: past this backlog new proposals are refused.
MAX_APPLY_BACKLOG = 5000
EXPIRY_STEP = 0.05  # seconds between sweeps of the request timeouts: a request may outlive its timeout by this

# The op name a proposal carries in its Raft entry (informational: apply dispatches on the payload's type).
_OP_NAMES: dict[type, str] = {
    rpc.PutRequest: "put",
    rpc.DeleteRangeRequest: "delete_range",
    rpc.TxnRequest: "txn",
    rpc.CompactionRequest: "compact",
}


@attrs.define
class Identity:
    member_id: int
    cluster_id: int


class Proposer:
    """Puts requests into the Raft log and waits for this member to apply them."""

    def __init__(
        self,
        ident: Identity,
        inbox: Inbox,
        waiters: Waiters,
        status: RaftStatus,
        ids: RequestIds,
        timeout: float,
    ) -> None:
        self.ident, self.inbox, self.waiters, self.status, self.ids = ident, inbox, waiters, status, ids
        self.timeout = timeout
        # Waiting requests and their deadlines. One timeout for all: insertion order is deadline order.
        self._deadlines: dict[Pending, float] = {}

    async def expire(self) -> None:
        """Ends the requests whose timeout passed with etcd's "request timed out" (a task of the Node's): one
        sweep every EXPIRY_STEP instead of a deadline scope per request, whose entry and exit cost ~8 us of
        a ~1.2 ms write on the request's path."""
        deadlines = self._deadlines
        while True:
            await trio.sleep(EXPIRY_STEP)
            now = trio.current_time()
            while deadlines:
                pending, at = next(iter(deadlines.items()))
                if at > now:
                    break
                del deadlines[pending]
                pending.resolve(errors.TimeoutError_())

    async def _wait(self, pending: Pending) -> Any:
        self._deadlines[pending] = trio.current_time() + self.timeout
        try:
            return await pending.wait()
        finally:
            self._deadlines.pop(pending, None)

    def _admit(self) -> None:
        if self.status.committed - self.status.applied > MAX_APPLY_BACKLOG:
            raise errors.TooManyRequestsError()

    async def propose(self, payload: Any, op: str | None = None) -> Any:
        self._admit()
        req_id = self.ids.next()
        pending = Pending()
        request = RaftRequest(self.ident.member_id, req_id, op or _OP_NAMES[type(payload)], payload)
        self.inbox.request(Propose(request, pending))  # TooManyRequestsError on a full inbox
        self.waiters.requests[req_id] = pending
        try:
            return await self._wait(pending)
        finally:
            self.waiters.requests.pop(req_id, None)

    async def propose_conf_change(self, change: ConfChange) -> None:
        self._admit()
        pending = Pending()
        self.inbox.request(ProposeConfChange(change, pending))
        try:
            await self._wait(pending)
        finally:
            self.waiters.conf_changes.pop(change.id, None)

    async def read_index(self) -> None:
        """Returns once this member has applied everything committed when the read arrived."""
        pending = Pending()
        self.inbox.request(ReadIndexWait(pending))
        await self._wait(pending)


class KVApi:
    def __init__(self, ident: Identity, status: RaftStatus, backend: Backend, proposer: Proposer) -> None:
        self.ident, self.raft_status, self.backend, self.proposer = ident, status, backend, proposer

    def header(self, revision: int | None = None) -> rpc.ResponseHeader:
        """The response header, stamped once here at the API edge."""
        rev = self.backend.revision if revision is None else revision
        return rpc.ResponseHeader(self.ident.cluster_id, self.ident.member_id, rev, self.raft_status.term)

    def stamp(self, resp: Any) -> Any:
        return attrs.evolve(resp, header=self.header(resp.header.revision))

    async def range(self, req: rpc.RangeRequest) -> rpc.RangeResponse:
        if not req.serializable and not (
            faults.ACTIVE is not None and faults.ACTIVE.plant("read_without_read_index")  # PLANTED BUG (tests)
        ):
            await self.proposer.read_index()
        return self.stamp(await self.backend.range(req))

    async def write(self, req: Any) -> Any:
        """put, delete_range, txn, compaction: through Raft."""
        result = await self.proposer.propose(req)
        if isinstance(result, BaseException):
            raise result
        return self.stamp(result)

    async def status(self, req: protocol.StatusRequest) -> protocol.StatusResponse:
        b, st = self.backend, self.raft_status
        return protocol.StatusResponse(
            header=self.header(),
            version=ETCD_API_VERSION,  # what etcdctl prints; trikv's own version is in /version
            db_size=b.pagefile.size(),
            leader=st.lead,
            raft_index=st.committed,
            raft_term=st.term,
            raft_applied_index=b.applied,
            errors=alarm_errors(b.applier.alarms),  # etcd: one line per active alarm
            db_size_in_use=b.pagefile.size_in_use(),
            is_learner=b.applier.is_learner(self.ident.member_id),
        )


__all__ = ["MAX_APPLY_BACKLOG", "Identity", "KVApi", "Proposer"]
