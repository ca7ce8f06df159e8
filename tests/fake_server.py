"""A tiny in-process server speaking trikv's client protocol over a dict: FOR UNIT TESTS ONLY.

It exists so the client's multiplexing, coalescing, failover and retry rules can be tested over real
loopback WebSockets without a cluster. Faults are injected per op (`inject`), and every received frame
is recorded, so tests can assert what actually went over the wire.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio_websocket

from trikv.api import codec, errors, protocol, rpc
from trikv.api.protocol import Member, MemberListResponse, StatusResponse

DROP = "drop"  # fault: close the connection on receipt, without answering
HANG = "hang"  # fault: never answer this request


@attrs.define
class FakeStore:
    """A single-version key space (no history): just enough MVCC bookkeeping for headers and compares."""

    kvs: dict[bytes, rpc.KeyValue] = attrs.Factory(dict)
    revision: int = 1
    compacted: int = 0


@attrs.define
class FakeServer:
    store: FakeStore
    member_id: int = 0x1111
    cluster_id: int = 0xC1
    name: str = "fake"
    members: list[Member] = attrs.Factory(list)
    leader: int = 0x1111
    max_request_bytes: int = protocol.DEFAULT_MAX_REQUEST_BYTES
    reverse_replies: bool = False
    port: int = 0
    frames: list[list[str]] = attrs.Factory(list)  # ops per received frame
    peers: list[FakeServer] = attrs.Factory(list)  # the fake cluster, self included (move_leader)
    faults: dict[str, list[Any]] = attrs.Factory(dict)
    _connections: list[trio_websocket.WebSocketConnection] = attrs.Factory(list)
    _scope: trio.CancelScope | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, op: str, *faults: Any) -> None:
        """Queue faults for the next requests of `op`: an EtcdError to answer, DROP or HANG."""
        self.faults.setdefault(op, []).extend(faults)

    def requests(self, op: str) -> int:
        return sum(ops.count(op) for ops in self.frames)

    async def stop(self) -> None:
        """Close every connection and stop listening (a crashed node)."""
        await self.kick()
        if self._scope is not None:
            self._scope.cancel()

    async def kick(self) -> None:
        """Close every open connection but keep listening (a network blip)."""
        async with trio.open_nursery() as nursery:
            for ws in list(self._connections):
                nursery.start_soon(self._close, ws)

    @staticmethod
    async def _close(ws: trio_websocket.WebSocketConnection) -> None:
        with trio.move_on_after(0.5):
            await ws.aclose()

    # ----------------------------------------------------------------- serving

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                serve = functools.partial(
                    trio_websocket.serve_websocket,
                    max_message_size=self.max_request_bytes + protocol.FRAME_OVERHEAD_BYTES,
                )
                server = await nursery.start(serve, self._handle, "127.0.0.1", self.port, None)
                self.port = server.port
                task_status.started()

    async def _handle(self, request: trio_websocket.WebSocketRequest) -> None:
        if request.path != protocol.WS_PATH:
            await request.reject(404)
            return
        ws = await request.accept()
        self._connections.append(ws)
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    try:
                        data = await ws.get_message()
                    except trio_websocket.ConnectionClosed:
                        return
                    assert isinstance(data, bytes)
                    try:
                        items = protocol.decode_frame(data)
                    except codec.CodecError:
                        await ws.send_message(
                            protocol.encode_frame([protocol.error_item(0, errors.InvalidRequestError())])
                        )
                        continue
                    self.frames.append([str(item[1]) for item in items])
                    replies = []
                    for rid, op, payload in items:
                        fault = self._next_fault(op)
                        if fault == DROP:
                            await ws.aclose()
                            return
                        if fault == HANG:
                            continue
                        if isinstance(fault, errors.EtcdError):
                            replies.append(protocol.error_item(rid, fault))
                            continue
                        if isinstance(fault, (int, float)):
                            nursery.start_soon(self._reply_later, ws, fault, rid, op, payload)
                            continue
                        replies.append(self._answer(rid, op, payload))
                    if self.reverse_replies:
                        replies.reverse()
                    if replies:
                        try:
                            await ws.send_message(protocol.encode_frame(replies))
                        except trio_websocket.ConnectionClosed:
                            return
        finally:
            self._connections.remove(ws)

    async def _reply_later(
        self, ws: trio_websocket.WebSocketConnection, delay: float, rid: int, op: str, payload: Any
    ) -> None:
        await trio.sleep(delay)
        try:
            await ws.send_message(protocol.encode_frame([self._answer(rid, op, payload)]))
        except trio_websocket.ConnectionClosed:
            pass

    def _next_fault(self, op: str) -> Any:
        queue = self.faults.get(op)
        return queue.pop(0) if queue else None

    def _answer(self, rid: int, op: str, payload: Any) -> list[Any]:
        try:
            if len(codec.encode(payload)) > self.max_request_bytes:
                raise errors.RequestTooLargeError()
            return protocol.ok_item(rid, self.apply(op, payload))
        except errors.EtcdError as exc:
            return protocol.error_item(rid, exc)

    # ----------------------------------------------------------------- the dict state machine

    def header(self) -> rpc.ResponseHeader:
        return rpc.ResponseHeader(self.cluster_id, self.member_id, self.store.revision, 2)

    def apply(self, op: str, req: Any) -> Any:
        """Serve one request against the dict store (also used as a backend for actors.server)."""
        expected = protocol.OPS.get(op)
        well_typed = expected is not None and isinstance(req, expected)  # (no narrowing of `req`)
        if not well_typed:
            raise errors.InvalidRequestError(f"etcdserver: bad request for op {op!r}")
        if op == "status":
            return StatusResponse(
                self.header(),
                version="3.4.23",
                db_size=20480,
                leader=self.leader,
                raft_index=8,
                raft_term=2,
                raft_applied_index=8,
                db_size_in_use=16384,
            )
        if op == "member_list":
            members = self.members or [Member(self.member_id, self.name, (), (self.url,))]
            return MemberListResponse(attrs.evolve(self.header(), revision=0), members)
        if op in ("member_add", "member_remove", "member_update", "member_promote", "move_leader"):
            return self._cluster_op(op, req)
        if op == "compact":
            if req.revision <= self.store.compacted:
                raise errors.CompactedError()
            if req.revision > self.store.revision:
                raise errors.FutureRevError()
            self.store.compacted = req.revision
            return rpc.CompactionResponse(self.header())
        if op == "txn":
            return self._txn(req)
        return self._op(req)

    # ----------------------------------------------------------------- the cluster API (etcd's rules)

    def _cluster_header(self) -> rpc.ResponseHeader:
        return attrs.evolve(self.header(), revision=0)

    def _member_list(self) -> MemberListResponse:
        return MemberListResponse(self._cluster_header(), sorted(self.members, key=lambda m: m.id))

    def _check_urls(self, urls: tuple[str, ...], exclude: int = 0) -> None:
        if not urls or not all(re.fullmatch(r"https?://[^/:]+:\d+", u) for u in urls):
            raise errors.MemberBadURLsError()
        if any(m.id != exclude and set(m.peer_urls) & set(urls) for m in self.members):
            raise errors.PeerURLExistError()

    def _index(self, member_id: int) -> int:
        for i, m in enumerate(self.members):
            if m.id == member_id:
                return i
        raise errors.MemberNotFoundError()

    def _cluster_op(self, op: str, req: Any) -> Any:
        """Membership changes mutate the members list shared by the fake cluster (in place)."""
        if not self.members:
            self.members.append(Member(self.member_id, self.name, (), (self.url,)))
        if op == "member_add":
            urls = tuple(req.peer_urls)
            self._check_urls(urls)
            # Deterministic, so tests can expect the id: the first 8 bytes of sha1 over the URLs.
            mid = int.from_bytes(hashlib.sha1(",".join(urls).encode()).digest()[:8], "big")
            member = Member(mid, "", urls, (), req.is_learner)
            self.members.append(member)
            listed = self._member_list()
            return protocol.MemberAddResponse(listed.header, member, listed.members)
        if op == "move_leader":
            if self.leader != self.member_id:
                raise errors.NotLeaderError()
            voters = {m.id for m in self.members if not m.is_learner}
            if req.target_id not in voters or req.target_id == self.member_id:
                raise errors.BadLeaderTransfereeError()
            for server in self.peers or [self]:
                server.leader = req.target_id
            return protocol.MoveLeaderResponse(self._cluster_header())
        i = self._index(req.id)
        if op == "member_remove":
            del self.members[i]
        elif op == "member_update":
            urls = tuple(req.peer_urls)
            self._check_urls(urls, exclude=req.id)
            self.members[i] = attrs.evolve(self.members[i], peer_urls=urls)
        elif op == "member_promote":
            if not self.members[i].is_learner:
                raise errors.MemberNotLearnerError()
            self.members[i] = attrs.evolve(self.members[i], is_learner=False)
        return self._member_list()

    def _op(self, req: Any) -> Any:
        if isinstance(req, rpc.RangeRequest):
            return self._range(req)
        if isinstance(req, rpc.PutRequest):
            return self._put(req)
        if isinstance(req, rpc.DeleteRangeRequest):
            return self._delete(req)
        return self._txn(req)

    def _keys(self, key: bytes, end: bytes) -> list[bytes]:
        if not end:
            return [key] if key in self.store.kvs else []
        return sorted(k for k in self.store.kvs if k >= key and (end == b"\0" or k < end))

    def _range(self, req: rpc.RangeRequest) -> rpc.RangeResponse:
        if not req.key:
            raise errors.EmptyKeyError()
        if req.revision > self.store.revision:
            raise errors.FutureRevError()
        if 0 < req.revision < self.store.compacted:
            raise errors.CompactedError()
        kvs = [self.store.kvs[k] for k in self._keys(req.key, req.range_end)]
        if req.sort_order == rpc.SortOrder.DESCEND:
            kvs.reverse()
        count = len(kvs)
        if req.count_only:
            return rpc.RangeResponse(self.header(), (), False, count)
        more = bool(req.limit) and count > req.limit
        if req.limit:
            kvs = kvs[: req.limit]
        if req.keys_only:
            kvs = [attrs.evolve(kv, value=b"") for kv in kvs]
        return rpc.RangeResponse(self.header(), tuple(kvs), more, count)

    def _put(self, req: rpc.PutRequest) -> rpc.PutResponse:
        if not req.key:
            raise errors.EmptyKeyError()
        prev = self.store.kvs.get(req.key)
        if (req.ignore_value or req.ignore_lease) and prev is None:
            raise errors.KeyNotFoundError()
        self.store.revision += 1
        rev = self.store.revision
        value = prev.value if (req.ignore_value and prev) else req.value
        lease = prev.lease if (req.ignore_lease and prev) else req.lease
        self.store.kvs[req.key] = rpc.KeyValue(
            req.key,
            prev.create_revision if prev else rev,
            rev,
            (prev.version + 1) if prev else 1,
            value,
            lease,
        )
        return rpc.PutResponse(self.header(), prev if req.prev_kv else None)

    def _delete(self, req: rpc.DeleteRangeRequest) -> rpc.DeleteRangeResponse:
        keys = self._keys(req.key, req.range_end)
        prev = [self.store.kvs[k] for k in keys]
        if keys:
            self.store.revision += 1
            for k in keys:
                del self.store.kvs[k]
        return rpc.DeleteRangeResponse(self.header(), len(keys), tuple(prev) if req.prev_kv else ())

    def _compare(self, cmp: rpc.Compare) -> bool:
        kv = self.store.kvs.get(cmp.key)
        if cmp.target == rpc.CompareTarget.VALUE:
            if kv is None:
                return False
            actual: Any = kv.value
        else:
            field = {
                rpc.CompareTarget.VERSION: "version",
                rpc.CompareTarget.CREATE: "create_revision",
                rpc.CompareTarget.MOD: "mod_revision",
                rpc.CompareTarget.LEASE: "lease",
            }[cmp.target]
            actual = getattr(kv, field) if kv is not None else 0
        want = cmp.target_value
        return {
            rpc.CompareResult.EQUAL: actual == want,
            rpc.CompareResult.NOT_EQUAL: actual != want,
            rpc.CompareResult.GREATER: actual > want,
            rpc.CompareResult.LESS: actual < want,
        }[cmp.result]

    def _txn(self, req: rpc.TxnRequest) -> rpc.TxnResponse:
        ok = all(self._compare(c) for c in req.compare)
        responses = tuple(self._op(op) for op in (req.success if ok else req.failure))
        return rpc.TxnResponse(self.header(), ok, responses)


@asynccontextmanager
async def running(nursery: trio.Nursery, count: int = 1, **kwargs: Any) -> AsyncIterator[list[FakeServer]]:
    """Start `count` fake members sharing one store (one "cluster") on random free loopback ports."""
    store = FakeStore()
    servers = [FakeServer(store, member_id=0x1111 * (i + 1), name=f"fake{i}", **kwargs) for i in range(count)]
    for server in servers:
        await nursery.start(server.serve)
    members = [Member(s.member_id, s.name, (f"http://127.0.0.1:{s.port + 1}",), (s.url,)) for s in servers]
    for server in servers:
        server.members = members
        server.leader = servers[0].member_id
        server.peers = servers
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()
