"""The PeerServer actor: accepts peer connections on listen-peer-urls, checks each hello (cluster id,
addressee, membership; a removed member is told so) and feeds checked Raft messages to the inbox. It also
serves `cluster_info` hellos (before any check), snapshot streams (to the SnapshotReceiver) and requests
a member forwards to us as leader (promote, lease keep-alive and TimeToLive).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import ConnectionClosed

from trikv.actors import peercheck, peerfaults, peerlink, snapstream
from trikv.actors.events import Inbox
from trikv.actors.identity import format_id
from trikv.actors.metrics import MemberMetrics
from trikv.actors.peerwire import (
    FORWARD_TIMEOUT,
    MAX_PEER_MESSAGE,
    PEER_PATH,
    RECEIVE_BUFFER,
    REMOVED,
    ClusterView,
    as_bytes,
)
from trikv.actors.raft.core import LOCAL_TYPES
from trikv.api import codec, errors, raftframe
from trikv.api.internal import PeerHello, PeerHelloReply
from trikv.api.lease import LeaseKeepAliveRequest, LeaseTimeToLiveRequest
from trikv.api.protocol import MemberPromoteRequest
from trikv.api.raftpb import Message, MessageType
from trikv.storage import faults

BINARY_FRAME = bytes([raftframe.BINARY])

log = logging.getLogger("trikv.peer")

# what a member may forward to the leader: etcd forwards promote, lease keep-alive and TimeToLive
FORWARDABLE = (MemberPromoteRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest)


class PeerServer:
    """Accepts peer connections on listen-peer-urls and feeds checked Raft messages to the Node's inbox."""

    def __init__(
        self,
        view: ClusterView,
        inbox: Inbox,
        forwarded: Callable[[Any], Awaitable[Any]] | None = None,
        receiver: snapstream.SnapshotReceiver | None = None,
    ) -> None:
        self.receiver = receiver  # streamed snapshots land here (actors/snapstream.py)
        self.forwarded = forwarded  # serves a request a member forwarded to us as leader (etcd: promote)
        self.view = view
        self.id = view.member_id
        self.cluster_id = view.cluster_id
        self.inbox = inbox
        self.members = view.members
        self.removed = view.removed
        self.metrics: MemberMetrics | None = None  # set by the Node

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(port)

    async def _handle(self, stream: trio.SocketStream) -> None:
        """A bad peer connection must never take the member down: log and drop it."""
        try:
            host, port = stream.socket.getpeername()[:2]
            remote = f"{host}:{port}"
        except OSError:
            remote = "?"
        try:
            link = await peerlink.accept(
                stream, PEER_PATH, timeout=5, max_message=MAX_PEER_MESSAGE, receive_buffer=RECEIVE_BUFFER
            )
            if link is None:
                await stream.aclose()
                return
            try:
                await self._handle_link(link, remote)
            finally:
                await link.aclose()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:
            log.exception("peer connection from %s failed", remote)

    async def _handle_link(self, ws: peerlink.Link, remote: str) -> None:
        try:
            with trio.fail_after(5):
                first = await ws.get_message()
            hello = codec.decode(as_bytes(first))
            if not isinstance(hello, PeerHello):
                raise codec.CodecError("first peer frame is not a hello")
        except (ConnectionClosed, trio.TooSlowError, codec.CodecError) as exc:
            log.warning("rejected peer connection from %s: %s", remote, exc)
            await ws.aclose()
            return
        if hello.kind == "cluster_info":
            await ws.send_message(
                codec.encode(
                    PeerHelloReply(
                        True,
                        cluster_id=self.cluster_id,
                        member_id=self.id,
                        members=tuple(self.members().values()),
                    )
                )
            )
            await ws.aclose()
            return
        problem = self._check(hello)
        if problem:
            log.error("rejected peer connection from %s: %s", format_id(hello.from_id), problem)
            await ws.send_message(codec.encode(PeerHelloReply(False, error=problem)))
            await ws.aclose()
            return
        await ws.send_message(
            codec.encode(PeerHelloReply(True, cluster_id=self.cluster_id, member_id=self.id))
        )
        if hello.kind == "forward":
            await self._serve_forwarded(ws)
            return
        if hello.kind == snapstream.STREAM_KIND and self.receiver is not None:
            try:
                await self.receiver.receive(ws, self.id, hello.from_id)
            except (codec.CodecError, trio.TooSlowError) as exc:
                log.error("dropping snapshot stream from %s: %s", format_id(hello.from_id), exc)
                await ws.aclose()
            return
        try:
            while True:
                data = await ws.get_message()
                if self.metrics is not None:
                    self.metrics.received_from(hello.from_id).inc(len(data))
                frame = as_bytes(data)
                msgs = raftframe.decode(frame)  # CodecError for anything but an array of messages
                # The binary layout yields well-typed fields by construction; the CBOR form is checked below.
                typed = frame[:1] == BINARY_FRAME
                if faults.ACTIVE is not None:  # test plugin only: drop / delay / stall this link
                    name = peerfaults.member_name(self.members(), hello.from_id)
                    msgs = await peerfaults.filter_link(faults.ACTIVE.peer_in, name, msgs)
                if hello.from_id in self.removed():
                    log.warning("closing the stream of removed member %s", format_id(hello.from_id))
                    await ws.aclose()  # it reconnects, and the hello check tells it it was removed
                    return
                for m in msgs:
                    if not isinstance(m, Message) or m.to != self.id or m.frm != hello.from_id:
                        raise codec.CodecError("peer frame holds a message not addressed from/to this link")
                    if not typed and not peercheck.well_typed(m):
                        raise codec.CodecError(f"Raft message {m.type.name} with a field of the wrong type")
                    if m.type in LOCAL_TYPES:  # as etcd's raft, which ignores them from the network
                        log.warning(
                            "ignoring Raft message %s from %s: a local-only type",
                            m.type.name,
                            format_id(hello.from_id),
                        )
                        continue
                    if m.type == MessageType.SNAP and (
                        m.snapshot is None or not m.snapshot.data or snapstream.is_token(m.snapshot.data)
                    ):
                        raise codec.CodecError("snapshot message without the page file")
                    self.inbox.deliver(m)  # a full inbox drops it and reports us unreachable
                if hello.kind == "snapshot":
                    await ws.send_message(codec.encode(PeerHelloReply(True)))
        except ConnectionClosed:
            return
        except codec.CodecError as exc:
            log.error("dropping peer connection from %s: malformed frame: %s", format_id(hello.from_id), exc)
            await ws.aclose()

    async def _serve_forwarded(self, ws: peerlink.Link) -> None:
        """Requests forwarded by a member, answered in order: a promote (as etcd forwards it), lease
        keep-alives and TimeToLive. A member may keep the link open for many (actors/lease_forward.py)."""
        while True:
            try:
                data = await ws.get_message()
            except ConnectionClosed:
                return
            await self._answer_forwarded(ws, data)

    async def _answer_forwarded(self, ws: peerlink.Link, data: str | bytes) -> None:
        with trio.fail_after(FORWARD_TIMEOUT):
            try:
                request = codec.decode(as_bytes(data))
            except codec.CodecError:
                request = None  # answered like any other request that cannot be forwarded
            if not isinstance(request, FORWARDABLE) or self.forwarded is None:
                answer: Any = errors.to_wire(
                    errors.InvalidRequestError("etcdserver: request cannot be forwarded")
                )
            else:
                try:
                    answer = await self.forwarded(request)
                except errors.EtcdError as err:
                    answer = errors.to_wire(err)
            await ws.send_message(codec.encode([answer]))

    def _check(self, hello: PeerHello) -> str:
        if hello.cluster_id != self.cluster_id:
            return (
                f"cluster ID mismatch: local cluster {format_id(self.cluster_id)}, "
                f"remote cluster {format_id(hello.cluster_id)} (member {format_id(hello.from_id)})"
            )
        if hello.to_id != self.id:
            return f"member ID mismatch: local member {format_id(self.id)}, addressed to {format_id(hello.to_id)}"
        if hello.from_id in self.removed():
            return f"{REMOVED} (member {format_id(hello.from_id)})"
        members = self.members()
        if members and hello.from_id not in members:
            return (
                f"member {format_id(hello.from_id)} is not a member of cluster {format_id(self.cluster_id)}"
            )
        return ""


__all__ = ["FORWARDABLE", "PeerServer"]
