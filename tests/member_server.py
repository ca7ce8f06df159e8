"""The REAL client server (actors/server.py) in front of tests/memory_cluster.py's members, with faults:
FOR UNIT TESTS of the client's multiplexing, coalescing, failover and retry rules and trikvctl's outputs,
over real loopback WebSockets without starting processes.

Faults, per op (`inject`): an EtcdError to answer, DROP (the connection closes on receipt, no answer),
HANG (never answered), a number (answered after that many seconds). `reverse_replies` answers the requests
of each received frame last first. The ops of every received frame are recorded (`frames`, `requests`)
by a passive WebSocket parser on the connection's socket (`Tap`).
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import wsproto
import wsproto.events

from trikv.actors.server import ClientServer
from trikv.api import codec, errors, protocol
from trikv.api.protocol import Member

from .memory_cluster import MemoryMember, Store, seed_members

DROP = "drop"  # fault: close the connection on receipt, without answering
HANG = "hang"  # fault: never answer this request
REVERSE_WAIT = 0.5  # seconds a request waits for the rest of its frame before answering in reverse

_CONNECTION: contextvars.ContextVar[Tap] = contextvars.ContextVar("member_server_connection")


@attrs.define
class _Frame:
    """One received frame, while its requests wait to be answered last first (`reverse_replies`)."""

    payloads: list[Any]
    claimed: dict[int, trio.Event] = attrs.Factory(dict)  # position -> set once its answer went out
    full: trio.Event = attrs.Factory(trio.Event)


class Tap(trio.abc.Stream):
    """A client connection's socket, read through a passive WebSocket parser that records each frame."""

    def __init__(self, inner: trio.SocketStream, server: MemberServer) -> None:
        self.inner, self.server = inner, server
        self.socket = inner.socket  # for the server's log lines
        self._ws: wsproto.WSConnection | None = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._parts: list[bytes] = []
        self.waiting: list[_Frame] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self._observe(bytes(data))
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def abort(self) -> None:
        """Close the socket under the session: the client sees the connection die, nothing answered."""
        await trio.aclose_forcefully(self.inner)

    def _observe(self, data: bytes) -> None:
        if self._ws is None:  # plain HTTP, or a stream this parser gave up on
            return
        try:
            self._ws.receive_data(data or None)
            for event in self._ws.events():
                if isinstance(event, wsproto.events.Request):
                    self._ws.send(wsproto.events.AcceptConnection())  # what the real server answers
                elif isinstance(event, wsproto.events.BytesMessage):
                    self._parts.append(bytes(event.data))
                    if event.message_finished:
                        self._record(b"".join(self._parts))
                        self._parts = []
        except Exception:  # a passive observer: whatever it cannot parse, it stops watching
            self._ws = None

    def _record(self, message: bytes) -> None:
        try:
            items = protocol.decode_frame(message)
        except codec.CodecError:
            return
        self.server.frames.append([str(item[1]) for item in items])
        if self.server.reverse_replies:
            self.waiting.append(_Frame([item[2] for item in items]))

    async def in_reverse(self, request: Any) -> None:
        """Returns when every request after this one in its frame has been answered."""
        for frame in self.waiting:
            position = next(
                (i for i, p in enumerate(frame.payloads) if i not in frame.claimed and p == request), None
            )
            if position is not None:
                break
        else:
            return
        mine = frame.claimed[position] = trio.Event()
        if len(frame.claimed) == len(frame.payloads):
            frame.full.set()
            self.waiting.remove(frame)
        with trio.move_on_after(REVERSE_WAIT):  # a request the session refused never comes
            await frame.full.wait()
        later = [i for i in frame.claimed if i > position]
        if later:
            await frame.claimed[min(later)].wait()
        mine.set()  # the next one wakes after this answer was queued (the session queues it on return)


class _TappedServer(ClientServer):
    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        owner: MemberServer = self.backend  # type: ignore[assignment]
        tap = Tap(stream, owner)
        owner.connections.add(tap)
        _CONNECTION.set(tap)  # this task's context: the session's tasks inherit it
        try:
            await super()._handle_connection(tap)  # type: ignore[arg-type]
        finally:
            owner.connections.discard(tap)


class MemberServer:
    """One member on a free loopback port: the real ClientServer over `member.handlers`, plus faults."""

    def __init__(self, member: MemoryMember, *, reverse_replies: bool = False) -> None:
        self.member = member
        self.reverse_replies = reverse_replies
        self.port = 0
        self.frames: list[list[str]] = []  # ops per received frame
        self.faults: dict[str, list[Any]] = {}
        self.connections: set[Tap] = set()
        self._scope: trio.CancelScope | None = None

    @property
    def member_id(self) -> int:
        return self.member.member_id

    @property
    def name(self) -> str:
        return self.member.name

    @property
    def leader(self) -> int:
        return self.member.leader

    @leader.setter
    def leader(self, member_id: int) -> None:
        self.member.leader = member_id

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, op: str, *faults: Any) -> None:
        """Queue faults for the next requests of `op`: an EtcdError to answer, DROP, HANG or a delay."""
        self.faults.setdefault(op, []).extend(faults)

    def requests(self, op: str) -> int:
        return sum(ops.count(op) for ops in self.frames)

    async def stop(self) -> None:
        """Close every connection and stop listening (a crashed member)."""
        await self.kick()
        if self._scope is not None:
            self._scope.cancel()

    async def kick(self) -> None:
        """Close every open connection but keep listening (a network blip)."""
        for tap in list(self.connections):
            await tap.abort()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                server = _TappedServer(self)
                self.port = await nursery.start(server.serve, "127.0.0.1", self.port)
                task_status.started()

    # ---- the Backend protocol of actors/wsession.py, with the faults in front of the real handlers

    async def handle(self, request: Any) -> Any:
        queue = self.faults.get(protocol.op_of(request))
        fault = queue.pop(0) if queue else None
        if fault == DROP:
            await _CONNECTION.get().abort()
            await trio.sleep_forever()
        if fault == HANG:
            await trio.sleep_forever()
        if isinstance(fault, errors.EtcdError):
            raise fault
        if isinstance(fault, int | float):
            await trio.sleep(fault)
        answer = await self.member.handlers.handle(request)
        if self.reverse_replies:
            await _CONNECTION.get().in_reverse(request)
        return answer

    async def stream(self, first: Any, inbound: Any, emit: Any) -> None:
        await self.member.handlers.stream(first, inbound, emit)

    async def health(self) -> tuple[bool, str]:
        return await self.member.handlers.health()

    def version(self) -> dict[str, str]:
        return self.member.handlers.version()


@asynccontextmanager
async def running(nursery: trio.Nursery, count: int = 1, **kwargs: Any) -> AsyncIterator[list[MemberServer]]:
    """Start `count` members of one cluster (one store) on free loopback ports; the first one leads.

    Member i is `fake{i}` with id 0x1111 * (i + 1); its peer URL is its client port + 1 (never bound).
    """
    store = Store()
    servers = [
        MemberServer(MemoryMember(store, 0x1111 * (i + 1), f"fake{i}"), **kwargs) for i in range(count)
    ]
    for server in servers:
        await nursery.start(server.serve)
    await seed_members(
        store,
        [Member(s.member_id, s.name, (f"http://127.0.0.1:{s.port + 1}",), (s.url,)) for s in servers],
    )
    store.transfer_leader(servers[0].member_id)
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()
