"""The public Trio client: `async with trikv.connect([...]) as c: await c.put(k, v)`.

One WebSocket per endpoint in use carries many concurrent requests, multiplexed by request id: callers
queue encoded items, a writer task coalesces everything queued in the same scheduling tick into one
frame (framing costs tens of microseconds per message in pure Python), a reader task dispatches response
items back to the waiting callers by id.

Bounds: at most `max_in_flight` requests per connection are queued or awaiting their answer. A caller
beyond that waits for a slot (backpressure, never an error and never an unbounded queue); the wait
counts against its request deadline, and a request that times out while waiting never left.

Retry rules (why they are strict, as etcd's clientv3, which retries a mutable request only when no
connection existed): reads (range, status, member_list) are retried on another endpoint or after a
reconnect, until the request deadline. Writes (put, delete, txn, compact, member changes) are retried
only when the request provably never reached a server (not sent before the connection died, or refused
by the server before proposing: no leader / not capable / learner). When a connection dies, every write
that may have left on it raises `OutcomeUnknownError` at once, with the cause chained: a blind retry of
an applied txn can turn a won lock into a lost one, and waiting for the deadline tells the caller nothing
more.

Failover after a lost member: a follower forwards a write to its leader, and a follower whose leader just
died keeps forwarding into the void until its election timeout, after which the write can only time out
on the server (outcome unknown). So after losing the connection to member M, a request that needs the
leader is held (not sent) on another endpoint until that endpoint names a live leader other than M, for
at most `LEADER_LOSS_HOLD` seconds after the loss (or until M accepts a dial again): the write stays
provably unsent, and goes out as soon as the survivors have elected a new leader.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import trio
import trio_websocket

from trikv.api import codec, errors, protocol, rpc
from trikv.api import lease as lease_api
from trikv.api.protocol import (
    MemberListRequest,
    MemberListResponse,
    StatusRequest,
    StatusResponse,
)

# Request building and the client-side errors are shared with the blocking transport (trikv.blocking):
# one class per error, so `except DeadlineExceededError` catches it from either transport.
from trikv.leases import Lease, hold_lease
from trikv.ops import (
    DEFAULT_MAX_RECV_BYTES,
    DEFAULT_MAX_SEND_BYTES,
    SAFE_WRITE_RETRY,
    DeadlineExceededError,
    KeyLike,
    MessageTooLargeError,
    array_header,
    delete_op,
    get_op,
    key_range,
    parse_endpoint,
    prefix_range_end,
    put_op,
    to_bytes,
)
from trikv.watches import Events, open_watch

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_RECV_BYTES",
    "DEFAULT_MAX_SEND_BYTES",
    "LEADER_LOSS_HOLD",
    "Client",
    "DeadlineExceededError",
    "KeepaliveTimeoutError",
    "KeyLike",
    "MessageTooLargeError",
    "Txn",
    "connect",
    "create_revision",
    "delete_op",
    "get_op",
    "key_range",
    "lease",
    "mod_revision",
    "parse_endpoint",
    "prefix_range_end",
    "put_op",
    "to_bytes",
    "value",
    "version",
]

T = TypeVar("T")

# Requests per connection that may be queued or awaiting their answer; callers beyond it wait for a slot.
DEFAULT_MAX_IN_FLIGHT = 1024
STREAM_BUFFER = 256  # answers buffered per stream before the connection's reader waits for its consumer

# How long after losing member M a request that needs the leader is held on an endpoint that still names M
# as its leader (or none): about two default election timeouts (1 s, randomised up to 2 s), plus a margin.
LEADER_LOSS_HOLD = 3.0
_LEADER_POLL = 0.05
_REDIAL_BUDGET = 0.1  # a lost member that accepts a connection this fast was a blip, not a death

_QUEUED, _SENT, _DONE, _ABANDONED = range(4)


class _NotSent(Exception):
    """Internal: the connection failed before this request left; any request may be retried."""


class KeepaliveTimeoutError(errors.ClientError):
    """The server stopped answering pings: the connection is treated as lost (a frozen or cut-off node)."""


class _LostAfterSend(Exception):
    """Internal: the connection failed after this request was (maybe) sent."""


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- one connection


class _Call:
    """One request in flight on one connection; `state` says whether it provably never left."""

    __slots__ = ("error", "event", "id", "item", "result", "state")

    def __init__(self, request_id: int, item: bytes) -> None:
        self.id = request_id
        self.item = item
        self.state = _QUEUED
        self.event = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Stream:
    """One bidirectional stream on a connection (etcd's Watch, LeaseKeepAlive, Snapshot): the opening
    request and later `send`s go out with the stream's id; every answer (status MORE) arrives in a bounded
    buffer. When the buffer is full the connection's reader waits (backpressure on the whole connection),
    so a consumer must keep reading. `receive()` raises the server's error, StreamClosed at the end, or
    StreamLost when the connection died (the feature decides how to resume elsewhere)."""

    def __init__(self, conn: _Conn, stream_id: int, op: str) -> None:
        self.conn = conn
        self.id = stream_id
        self.op = op
        self._send, self._recv = trio.open_memory_channel[tuple[int, Any]](STREAM_BUFFER)

    async def send(self, payload: Any) -> None:
        await self.conn.send_item(self.id, self.op, payload)

    async def receive(self) -> Any:
        try:
            status, result = await self._recv.receive()
        except trio.EndOfChannel:
            raise StreamLost(self.conn.error) from None
        if status == protocol.MORE:
            return result
        self.conn.streams.pop(self.id, None)
        if status == protocol.OK:
            raise StreamClosed()
        raise errors.from_wire(result if isinstance(result, dict) else {})

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except StreamClosed:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Tell the server this side is done (it ends the stream's handler); never raises."""
        if self.conn.streams.pop(self.id, None) is not None and not self.conn.dead:
            with trio.move_on_after(1.0):
                try:
                    await self.conn.send_item(self.id, protocol.STREAM_CLOSE, None)
                except (_NotSent, trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                    pass


class StreamClosed(Exception):
    """The server ended the stream normally."""


class StreamLost(errors.ClientError):
    """The connection carrying a stream died; what was not received is lost with it."""


class _Conn:
    """One WebSocket to one endpoint: a writer task coalesces queued items, a reader task dispatches.

    Bounded: a semaphore of `max_in_flight` slots is held by every request from queueing until its caller
    stops waiting, so `_queued` and `_pending` never hold more; callers beyond it wait (backpressure).
    """

    def __init__(
        self,
        url: str,
        max_send: int,
        max_recv: int,
        keepalive: tuple[float, float] | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_lost: Callable[[_Conn], None] | None = None,
    ) -> None:
        self.url = url
        self.keepalive = keepalive
        self.max_send = max_send
        self.max_recv = max_recv
        self.dead = False
        self.error: BaseException | None = None
        self.member_id = 0  # from the first answer's header: whom we lose if this connection dies
        self.leader_checked = -math.inf  # when this member last named a leader we had not lost
        self.probed_at = -math.inf  # when its last leader probe ended (one probe per poll interval)
        self.probe_lock = trio.Lock()
        self._on_lost = on_lost
        self._next_id = 1
        self._slots = trio.Semaphore(max_in_flight)
        self._queued: dict[int, _Call] = {}  # not yet taken by the writer, in arrival order
        self._wake_writer = trio.lowlevel.ParkingLot()
        self._pending: dict[int, _Call] = {}
        self._scope: trio.CancelScope | None = None
        self._closing = False
        self._ws: trio_websocket.WebSocketConnection | None = None
        self.streams: dict[int, Stream] = {}

    async def run(self, *, task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED) -> None:
        """Dial, report started(True) (or started(False) when the dial fails), then serve until closed."""
        started = False
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                ws = await trio_websocket.connect_websocket_url(
                    nursery, self.url, max_message_size=self.max_recv
                )
                self._ws = ws
                started = True
                task_status.started(True)
                nursery.start_soon(self._reader, ws)
                nursery.start_soon(self._writer, ws)
                if self.keepalive is not None:
                    nursery.start_soon(self._keepalive, ws, *self.keepalive)
        except* Exception as group:
            # Any failure of this connection ends it (callers see it as the cause); a Cancelled from
            # outside (client shutdown) still propagates.
            err: BaseException = group
            while isinstance(err, BaseExceptionGroup):
                err = err.exceptions[0]
            self.error = err
        finally:
            self._die()
        if not started:
            task_status.started(False)

    def _die(self) -> None:
        if self.dead:
            return
        self.dead = True
        if self.error is None:
            self.error = trio_websocket.ConnectionClosed(self._ws.closed if self._ws else None)
        # Every caller learns now, not at its deadline: unsent ones may go elsewhere, sent ones are in doubt.
        self._queued.clear()
        pending, self._pending = self._pending, {}
        for call in pending.values():
            if call.state == _QUEUED:
                call.error = _NotSent(self.error)
            elif call.state == _SENT:
                call.error = _LostAfterSend(self.error)
            else:
                continue
            call.state = _DONE
            call.event.set()
        streams, self.streams = self.streams, {}
        for st in streams.values():
            st._send.close()  # its reader sees StreamLost
        if self._on_lost is not None and self._ws is not None and not self._closing:
            self._on_lost(self)  # an open connection died (a failed dial loses nobody)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        # While close() runs the closing handshake, the WebSocket's own reader must stay alive.
        if self._scope is not None and not self._closing:
            self._scope.cancel()

    async def close(self) -> None:
        ws = self._ws
        if ws is not None and not self.dead:
            self._closing = True
            with trio.move_on_after(1.0):
                await ws.aclose()
        if self._scope is not None:
            self._scope.cancel()

    def new_call(self, item_tail: bytes) -> _Call:
        request_id = self._next_id
        self._next_id += 1
        return _Call(request_id, b"\x83" + codec.encode(request_id) + item_tail)

    async def open_stream(self, op: str, payload: Any) -> Stream:
        """Open a stream: its first request goes out now; answers arrive on the returned Stream."""
        if self.dead:
            raise _NotSent(self.error)
        stream_id = self._next_id
        self._next_id += 1
        stream = Stream(self, stream_id, op)
        self.streams[stream_id] = stream
        await self.send_item(stream_id, op, payload)
        return stream

    async def send_item(self, stream_id: int, op: str, payload: Any) -> None:
        """One more item of an open stream, sent directly (stream items are not answered one by one)."""
        if self.dead or self._ws is None:
            raise _NotSent(self.error)
        await self._ws.send_message(protocol.encode_frame([[stream_id, op, payload]]))

    async def request(self, call: _Call) -> Any:
        """Queue `call` and wait for its answer; raises _NotSent/_LostAfterSend or the server's error.

        Waits for one of the connection's in-flight slots first (backpressure when all are taken)."""
        if self.dead:
            raise _NotSent(self.error)
        try:
            self._slots.acquire_nowait()  # the common case costs no extra scheduling round
        except trio.WouldBlock:
            await self._slots.acquire()
            if self.dead:
                self._slots.release()
                raise _NotSent(self.error) from None
        try:
            self._pending[call.id] = call
            if not self._queued:
                self._wake_writer.unpark()  # the writer parks only on an empty queue: once per batch
            self._queued[call.id] = call
            try:
                await call.event.wait()
            except BaseException:
                if call.state == _QUEUED:
                    call.state = _ABANDONED
                self._queued.pop(call.id, None)
                self._pending.pop(call.id, None)
                raise
        finally:
            self._slots.release()
        if call.error is not None:
            raise call.error
        return call.result

    async def _writer(self, ws: trio_websocket.WebSocketConnection) -> None:
        try:
            while True:
                if not self._queued:
                    # No extra checkpoint needed after waking: trio runs this task in the batch after the
                    # one that queued the first request, so every request queued in that tick is here.
                    await self._wake_writer.park()
                    continue
                batch = list(self._queued.values())
                self._queued.clear()
                if ws.closed is not None:
                    # Known closed before a byte of this batch left: its calls stay QUEUED, and
                    # _die() reports them as never sent (safe to retry, even writes).
                    raise trio_websocket.ConnectionClosed(ws.closed)
                frame: list[bytes] = []
                size = 0
                for call in batch:
                    if call.state != _QUEUED:
                        continue
                    if frame and size + len(call.item) + 5 > self.max_send:
                        await self._send_frame(ws, frame)
                        frame, size = [], 0
                    frame.append(call.item)
                    size += len(call.item)
                    # Marked before the await: once send_message starts, the bytes may reach the server.
                    call.state = _SENT
                if frame:
                    await self._send_frame(ws, frame)
        except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._fail(exc)

    @staticmethod
    async def _send_frame(ws: trio_websocket.WebSocketConnection, items: list[bytes]) -> None:
        await ws.send_message(array_header(len(items)) + b"".join(items))

    async def _keepalive(self, ws: trio_websocket.WebSocketConnection, every: float, timeout: float) -> None:
        """etcd's client keepalive: a node that is alive but silent (frozen, cut off) gets no FIN, so
        without pings a request to it would wait for its deadline instead of failing over."""
        try:
            while True:
                await trio.sleep(every)
                with trio.move_on_after(timeout) as scope:
                    await ws.ping()
                if scope.cancelled_caught:
                    self._fail(KeepaliveTimeoutError(f"{self.url}: no pong within {timeout} s"))
                    return
        except trio_websocket.ConnectionClosed as exc:
            self._fail(exc)

    async def _reader(self, ws: trio_websocket.WebSocketConnection) -> None:
        try:
            while True:
                data = await ws.get_message()
                if not isinstance(data, bytes):
                    raise codec.CodecError("text frame on a binary protocol")
                for rid, status, result in protocol.decode_frame(data):
                    stream = self.streams.get(rid)
                    if stream is not None:
                        await stream._send.send((status, result))  # bounded: see Stream
                        continue
                    call = self._pending.pop(rid, None)
                    if call is None or call.state == _DONE:
                        continue  # a request we stopped waiting for, or id 0 (undecodable frame)
                    if status == protocol.OK:
                        call.result = result
                        if not self.member_id:
                            header = getattr(result, "header", None)
                            self.member_id = getattr(header, "member_id", 0)
                    else:
                        call.error = errors.from_wire(result if isinstance(result, dict) else {})
                    call.state = _DONE
                    call.event.set()
        except (trio_websocket.ConnectionClosed, codec.CodecError, ValueError) as exc:
            self._fail(exc)


# --------------------------------------------------------------------------- compares and ops


class _CompareTarget:
    """`value(k) == b"x"`, `version(k) > 0`: operator overloads that build an rpc.Compare."""

    __slots__ = ("key", "range_end", "target")

    def __init__(self, target: rpc.CompareTarget, key: KeyLike, range_end: bytes) -> None:
        self.target = target
        self.key = to_bytes(key)
        self.range_end = range_end

    def _cmp(self, result: rpc.CompareResult, other: Any) -> rpc.Compare:
        if self.target == rpc.CompareTarget.VALUE:
            value: int | bytes = to_bytes(other)
        elif isinstance(other, int) and not isinstance(other, bool):
            value = other
        else:
            raise TypeError(f"{self.target.name.lower()} compares against an int")
        return rpc.Compare(result, self.target, self.key, value, self.range_end)

    def __eq__(self, other: Any) -> rpc.Compare:  # type: ignore[override]
        return self._cmp(rpc.CompareResult.EQUAL, other)

    def __ne__(self, other: Any) -> rpc.Compare:  # type: ignore[override]
        return self._cmp(rpc.CompareResult.NOT_EQUAL, other)

    def __gt__(self, other: Any) -> rpc.Compare:
        return self._cmp(rpc.CompareResult.GREATER, other)

    def __lt__(self, other: Any) -> rpc.Compare:
        return self._cmp(rpc.CompareResult.LESS, other)

    __hash__ = None  # type: ignore[assignment]


def _target(
    target: rpc.CompareTarget, key: KeyLike, range_end: KeyLike | None, prefix: bool
) -> _CompareTarget:
    k, end = key_range(key, range_end, prefix=prefix)
    return _CompareTarget(target, k, end)


def value(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _CompareTarget:
    return _target(rpc.CompareTarget.VALUE, key, range_end, prefix)


def version(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _CompareTarget:
    return _target(rpc.CompareTarget.VERSION, key, range_end, prefix)


def create_revision(
    key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False
) -> _CompareTarget:
    return _target(rpc.CompareTarget.CREATE, key, range_end, prefix)


def mod_revision(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _CompareTarget:
    return _target(rpc.CompareTarget.MOD, key, range_end, prefix)


def lease(key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False) -> _CompareTarget:
    return _target(rpc.CompareTarget.LEASE, key, range_end, prefix)


class Txn:
    """etcd's txn builder: `c.txn().if_(...).then(...).else_(...)`, each part at most once, in order."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._stage = 0
        self._compare: list[rpc.Compare] = []
        self._success: list[rpc.RequestOp] = []
        self._failure: list[rpc.RequestOp] = []

    def _advance(self, stage: int, name: str) -> None:
        if self._stage >= stage:
            raise errors.ClientError(f"txn: {name} called out of order or twice")
        self._stage = stage

    def if_(self, *compares: rpc.Compare) -> Txn:
        self._advance(1, "if_")
        for cmp in compares:
            if not isinstance(cmp, rpc.Compare):
                raise TypeError(f"txn.if_ takes Compare objects, got {type(cmp).__name__}")
        self._compare.extend(compares)
        return self

    def then(self, *ops: rpc.RequestOp) -> Txn:
        self._advance(2, "then")
        self._success.extend(ops)
        return self

    def else_(self, *ops: rpc.RequestOp) -> Txn:
        self._advance(3, "else_")
        self._failure.extend(ops)
        return self

    def request(self) -> rpc.TxnRequest:
        # attrs' tuple converters confuse mypy about the accepted argument types.
        args: tuple[Any, Any, Any] = (self._compare, self._success, self._failure)
        return rpc.TxnRequest(*args)

    async def commit(self) -> rpc.TxnResponse:
        return await self._client._call("txn", self.request(), rpc.TxnResponse, idempotent=False)


# --------------------------------------------------------------------------- the client


class Client:
    """A connection pool over the given endpoints; create it with `trikv.connect`.

    At most `max_in_flight` requests per connection are queued or awaiting their answer; further callers
    wait for a slot (backpressure), within their request deadline.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        endpoints: Sequence[str],
        *,
        dial_timeout: float = 5.0,
        request_timeout: float | None = 5.0,
        max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
        max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES,
        keepalive_time: float | None = 2.0,
        keepalive_timeout: float = 6.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise errors.ConfigError(f"max_in_flight must be at least 1 (got {max_in_flight})")
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        if not endpoints:
            raise errors.ConfigError("no endpoints given")
        self.endpoints: tuple[str, ...] = tuple(endpoints)
        self._urls = [parse_endpoint(e) for e in self.endpoints]
        self._nursery = nursery
        self.dial_timeout = dial_timeout
        self.request_timeout = request_timeout
        self.max_send_bytes = max_send_bytes
        self.max_recv_bytes = max_recv_bytes
        self.keepalive = None if keepalive_time is None else (keepalive_time, keepalive_timeout)
        self.max_in_flight = max_in_flight
        self.leader_loss_hold = LEADER_LOSS_HOLD
        self._lost: dict[int, float] = {}  # member id -> when our connection to it died (see _leader_gate)
        self._member_of_url: dict[str, int] = {}
        self._active = 0
        self._conns: dict[str, _Conn] = {}
        self._dial_locks: dict[str, trio.Lock] = {}
        self._closed = False
        self._last_dial_error: BaseException | None = None

    # ----------------------------------------------------------------- connections

    @property
    def current_endpoint(self) -> str:
        """The endpoint normal requests go to now (changes on failover)."""
        return self.endpoints[self._active]

    async def _conn_for(self, url: str) -> _Conn | None:
        conn = self._conns.get(url)
        if conn is not None and not conn.dead:
            return conn
        lock = self._dial_locks.setdefault(url, trio.Lock())
        async with lock:
            conn = self._conns.get(url)
            if conn is not None and not conn.dead:
                return conn
            if self._closed:
                raise errors.ClientError("client is closed")
            conn = _Conn(
                url,
                self.max_send_bytes,
                self.max_recv_bytes,
                self.keepalive,
                max_in_flight=self.max_in_flight,
                on_lost=self._on_lost,
            )
            ok = False
            with trio.move_on_after(self.dial_timeout):
                ok = await self._nursery.start(conn.run)
            if not ok:
                self._last_dial_error = conn.error
                if not conn.dead:
                    await conn.close()
                return None
            self._conns[url] = conn
            self._lost.pop(self._member_of_url.get(url, 0), None)  # it answers again: not lost after all
            return conn

    def _on_lost(self, conn: _Conn) -> None:
        """An open connection died under us (not closed by us): remember whom we lost, for _leader_gate.
        One that died before its first answer is known only if an earlier lost one to its URL had
        answered; otherwise nothing is held (this client learns member ids from answers, not by asking)."""
        member_id = conn.member_id or self._member_of_url.get(conn.url, 0)
        if not self._closed and member_id:
            self._lost[member_id] = trio.current_time()
            self._member_of_url[conn.url] = member_id

    async def _leader_gate(self, conn: _Conn) -> None:
        """Hold a request that needs the leader while `conn`'s member names a member we just lost (or no
        leader): sent now, a write would be forwarded to a dead leader and could only time out on the
        server, in doubt. Held, it stays provably unsent until the survivors elect a new leader. Bounded
        by leader_loss_hold after the loss (a member that is alive but unreachable from here only)."""
        while True:
            now = trio.current_time()
            for mid, lost_at in list(self._lost.items()):
                if now - lost_at >= self.leader_loss_hold:
                    del self._lost[mid]
            if not self._lost or conn.leader_checked >= max(self._lost.values()):
                return
            async with conn.probe_lock:  # however many requests are held, one probe per poll interval
                if not self._lost or conn.leader_checked >= max(self._lost.values()):
                    continue  # another request's probe just cleared this member
                if trio.current_time() - conn.probed_at >= _LEADER_POLL:
                    asked_at = trio.current_time()
                    await self._redial_lost()
                    leader = await self._probe_leader(conn) if self._lost else None
                    conn.probed_at = trio.current_time()
                    if leader is None or (leader != 0 and leader not in self._lost):
                        conn.leader_checked = asked_at
                        continue
            await trio.sleep(_LEADER_POLL)

    async def _redial_lost(self) -> None:
        """A lost member whose endpoint answers a dial again is alive (the loss was a blip, and a follower
        forwarding to it is fine): _conn_for forgets it. A killed member refuses at once; costs nothing."""
        for url, member_id in list(self._member_of_url.items()):
            if member_id in self._lost:
                with trio.move_on_after(_REDIAL_BUDGET):
                    await self._conn_for(url)

    @staticmethod
    async def _probe_leader(conn: _Conn) -> int | None:
        """The leader `conn`'s member names (0: none), or None when it cannot say (then nothing is held)."""
        call = conn.new_call(codec.encode("status") + codec.encode(StatusRequest()))
        try:
            status = await conn.request(call)
        except _LostAfterSend as exc:
            raise _NotSent(*exc.args) from None  # the held request itself never left
        except errors.EtcdError:
            return None
        return status.leader if isinstance(status, StatusResponse) else None

    async def _any_conn(self) -> _Conn:
        n = len(self._urls)
        for k in range(n):
            idx = (self._active + k) % n
            conn = await self._conn_for(self._urls[idx])
            if conn is not None:
                self._active = idx
                return conn
        raise errors.NoEndpointsError(
            f"none of the endpoints could be reached: {', '.join(self.endpoints)}"
        ) from self._last_dial_error

    def _rotate(self, conn: _Conn | None) -> None:
        if conn is not None and self._urls[self._active] == conn.url:
            self._active = (self._active + 1) % len(self._urls)

    async def dial(self) -> None:
        """Connect to the first reachable endpoint within dial_timeout, or raise NoEndpointsError."""
        deadline = trio.current_time() + self.dial_timeout
        delay = 0.02
        while True:
            try:
                await self._any_conn()
                return
            except errors.NoEndpointsError:
                if trio.current_time() + delay >= deadline:
                    raise
            await trio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def aclose(self) -> None:
        self._closed = True
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            await conn.close()

    # ----------------------------------------------------------------- the request loop

    async def _call(
        self,
        op: str,
        payload: Any,
        expect: type[T],
        *,
        idempotent: bool,
        endpoint: str | None = None,
        timeout: float | None = None,
    ) -> T:
        tail = codec.encode(op) + codec.encode(payload)
        size = len(tail) + 11  # + item header, the widest request id, the frame header
        if size > self.max_send_bytes:
            raise MessageTooLargeError(size, self.max_send_bytes)
        needs_leader = (
            not idempotent
            or (isinstance(payload, rpc.RangeRequest) and not payload.serializable)
            or (isinstance(payload, MemberListRequest) and payload.linearizable)
        )
        timeout = self.request_timeout if timeout is None else timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        fixed_url = parse_endpoint(endpoint) if endpoint is not None else None
        last: BaseException | None = None
        delay = 0.02
        while True:
            conn: _Conn | None = None
            call: _Call | None = None
            with trio.move_on_at(deadline):
                try:
                    if fixed_url is not None:
                        conn = await self._conn_for(fixed_url)
                        if conn is None:
                            raise errors.NoEndpointsError(f"endpoint {endpoint} could not be reached")
                    else:
                        conn = await self._any_conn()
                    if needs_leader and self._lost:
                        await self._leader_gate(conn)
                    call = conn.new_call(tail)
                    result = await conn.request(call)
                    if not isinstance(result, expect):
                        raise errors.ClientError(
                            f"{op}: unexpected response {type(result).__name__} from {conn.url}"
                        )
                    return result
                except _NotSent as exc:
                    call = None  # provably never left: nothing in doubt
                    last = exc.args[0] if exc.args else exc
                except _LostAfterSend as exc:
                    cause = exc.args[0] if exc.args else exc
                    if not idempotent:
                        raise errors.OutcomeUnknownError(
                            f"{op}: connection to {conn.url if conn else '?'} lost after the request "
                            "was sent; it may or may not have been applied"
                        ) from cause
                    call = None
                    last = cause
                except errors.UnavailableError as exc:
                    if not idempotent and not isinstance(exc, SAFE_WRITE_RETRY):
                        raise errors.OutcomeUnknownError(
                            f"{op}: {exc.text}; the request may or may not have been applied"
                        ) from exc
                    call = None
                    last = exc
                except errors.NoEndpointsError as exc:
                    last = exc
                self._rotate(conn)
                await trio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            # The deadline passed.
            if call is not None and call.state == _SENT and not idempotent:
                raise errors.OutcomeUnknownError(
                    f"{op}: no answer before the deadline; it may or may not have been applied"
                ) from DeadlineExceededError()
            if isinstance(last, (errors.EtcdError, errors.NoEndpointsError)):
                raise last
            raise DeadlineExceededError() from last

    @asynccontextmanager
    async def stream(self, op: str, payload: Any, endpoint: str | None = None) -> AsyncIterator[Stream]:
        """Open a stream on one connection (a given endpoint, or the current one with failover for the
        opening only); it is closed on exit. Resuming after StreamLost is the caller's business."""
        deadline = trio.current_time() + (self.request_timeout or self.dial_timeout)
        while True:
            conn = (
                await self._conn_for(parse_endpoint(endpoint)) if endpoint is not None else await self._any_conn()
            )
            if conn is None:
                raise errors.NoEndpointsError(f"endpoint {endpoint} could not be reached")
            try:
                st = await conn.open_stream(op, payload)
                break
            except _NotSent as exc:
                self._rotate(conn)
                if endpoint is not None or trio.current_time() > deadline:
                    raise errors.NoEndpointsError(f"could not open a {op} stream") from exc
                await trio.sleep(0.05)
        try:
            yield st
        finally:
            with trio.CancelScope(shield=True):
                await st.aclose()

    def watch(
        self,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filters: tuple[int, ...] = (),
        progress_notify: bool = False,
        fragment: bool = False,
    ) -> AbstractAsyncContextManager[Events]:
        """`async with client.watch(key, prefix=True) as events: async for ev in events:` every event
        once, in order, resumed on another endpoint after a failure; see trikv.watches."""
        k, end = key_range(key, range_end, prefix=prefix, from_key=from_key)
        return open_watch(
            self,
            k,
            end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=filters,
            progress_notify=progress_notify,
            fragment=fragment,
        )

    # ----------------------------------------------------------------- the KV API

    async def put(
        self,
        key: KeyLike,
        value: KeyLike = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> rpc.PutResponse:
        req = put_op(
            key,
            value,
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )
        return await self._call("put", req, rpc.PutResponse, idempotent=False)

    async def get(
        self,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        revision: int = 0,
        limit: int = 0,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        sort_order: rpc.SortOrder = rpc.SortOrder.NONE,
        sort_target: rpc.SortTarget = rpc.SortTarget.KEY,
    ) -> rpc.RangeResponse:
        req = get_op(
            key,
            range_end,
            prefix=prefix,
            from_key=from_key,
            revision=revision,
            limit=limit,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            sort_order=sort_order,
            sort_target=sort_target,
        )
        return await self._call("range", req, rpc.RangeResponse, idempotent=True)

    async def delete(
        self,
        key: KeyLike,
        range_end: KeyLike | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
    ) -> rpc.DeleteRangeResponse:
        req = delete_op(key, range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
        return await self._call("delete_range", req, rpc.DeleteRangeResponse, idempotent=False)

    def txn(self) -> Txn:
        return Txn(self)

    async def compact(self, revision: int, physical: bool = False) -> rpc.CompactionResponse:
        req = rpc.CompactionRequest(revision, physical)
        return await self._call("compact", req, rpc.CompactionResponse, idempotent=False)

    async def status(self, endpoint: str | None = None) -> StatusResponse:
        """Status of the endpoint in use, or of `endpoint` (then no failover to another one)."""
        return await self._call("status", StatusRequest(), StatusResponse, idempotent=True, endpoint=endpoint)

    async def member_list(self, *, linearizable: bool = False) -> MemberListResponse:
        req = MemberListRequest(linearizable)
        return await self._call("member_list", req, MemberListResponse, idempotent=True)

    async def member_add(
        self, peer_urls: list[str], *, is_learner: bool = False
    ) -> protocol.MemberAddResponse:
        req = protocol.MemberAddRequest(tuple(peer_urls), is_learner)
        return await self._call("member_add", req, protocol.MemberAddResponse, idempotent=False)

    async def member_remove(self, member_id: int) -> MemberListResponse:
        req = protocol.MemberRemoveRequest(member_id)
        return await self._call("member_remove", req, MemberListResponse, idempotent=False)

    async def member_update(self, member_id: int, peer_urls: list[str]) -> MemberListResponse:
        req = protocol.MemberUpdateRequest(member_id, tuple(peer_urls))
        return await self._call("member_update", req, MemberListResponse, idempotent=False)

    async def member_promote(self, member_id: int) -> MemberListResponse:
        req = protocol.MemberPromoteRequest(member_id)
        return await self._call("member_promote", req, MemberListResponse, idempotent=False)

    async def move_leader(self, target_id: int) -> protocol.MoveLeaderResponse:
        req = protocol.MoveLeaderRequest(target_id)
        return await self._call("move_leader", req, protocol.MoveLeaderResponse, idempotent=False)

    # ----------------------------------------------------------------- leases (trikv.leases)

    async def grant(self, ttl: int, lease_id: int = 0) -> lease_api.LeaseGrantResponse:
        """Grant a lease of `ttl` seconds (raised to the server's minimum); `lease_id` 0: the server picks."""
        req = lease_api.LeaseGrantRequest(ttl, lease_id)
        return await self._call("lease_grant", req, lease_api.LeaseGrantResponse, idempotent=False)

    async def revoke(self, lease_id: int) -> lease_api.LeaseRevokeResponse:
        req = lease_api.LeaseRevokeRequest(lease_id)
        return await self._call("lease_revoke", req, lease_api.LeaseRevokeResponse, idempotent=False)

    async def keep_alive_once(self, lease_id: int) -> lease_api.LeaseKeepAliveResponse:
        """One keep-alive; TTL 0 in the answer: the lease is unknown or expired."""
        req = lease_api.LeaseKeepAliveRequest(lease_id)
        return await self._call("lease_keepalive_once", req, lease_api.LeaseKeepAliveResponse, idempotent=True)

    async def time_to_live(self, lease_id: int, *, keys: bool = False) -> lease_api.LeaseTimeToLiveResponse:
        """TTL -1 in the answer: the lease is unknown or expired."""
        req = lease_api.LeaseTimeToLiveRequest(lease_id, keys)
        return await self._call("lease_timetolive", req, lease_api.LeaseTimeToLiveResponse, idempotent=True)

    async def leases(self) -> lease_api.LeaseLeasesResponse:
        req = lease_api.LeaseLeasesRequest()
        return await self._call("lease_leases", req, lease_api.LeaseLeasesResponse, idempotent=True)

    def lease(self, ttl: int) -> AbstractAsyncContextManager[Lease]:
        """`async with client.lease(ttl) as lease:` granted, kept alive at TTL/3, revoked on exit; see
        trikv.leases for when `lease.lost` is set."""
        return hold_lease(self, ttl)


@asynccontextmanager
async def connect(
    endpoints: Iterable[str] | str = ("127.0.0.1:2379",),
    *,
    dial_timeout: float = 5.0,
    request_timeout: float | None = 5.0,
    max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
    max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES,
    keepalive_time: float | None = 2.0,
    keepalive_timeout: float = 6.0,
    lazy: bool = False,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> AsyncIterator[Client]:
    """Open a client; unless `lazy`, waits until one endpoint answers (NoEndpointsError otherwise).

    `max_in_flight` bounds the requests per connection that are queued or awaiting an answer; callers
    beyond it wait for a slot (backpressure)."""
    eps = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    try:
        async with trio.open_nursery() as nursery:
            client = Client(
                nursery,
                eps,
                dial_timeout=dial_timeout,
                request_timeout=request_timeout,
                max_send_bytes=max_send_bytes,
                max_recv_bytes=max_recv_bytes,
                keepalive_time=keepalive_time,
                keepalive_timeout=keepalive_timeout,
                max_in_flight=max_in_flight,
            )
            try:
                if not lazy:
                    await client.dial()
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Background tasks never raise, so a group holds the caller's own exception: hand it back bare,
        # so `except OutcomeUnknownError` works around `async with connect(...)`.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
