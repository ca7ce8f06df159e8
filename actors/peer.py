"""Peer actors: Raft messages between members as CBOR frames over WebSocket.

Each member dials one *stream* connection to every other member and only sends on it; it receives on the
connections others dialled to it (etcd's rafthttp has the same one-way streams). Every connection opens
with a `PeerHello` carrying the cluster id and both member ids; the receiving side checks them before it
accepts a single Raft message, so members of a cluster built with another token can never talk to this
one. A `cluster_info` hello is answered before any id check (a joining member learns the membership).

Snapshots travel on their own short-lived connection, so a large page-file copy never delays heartbeats.
One Ready's messages to a member travel as one frame (every frame costs pure-Python framing time), written
by the Raft loop straight to the socket of the link (actors/peerlink.py) when nothing waits before them.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, HandshakeError

from trikv.actors import peerfaults, peerlink, snapstream
from trikv.actors.events import Inbox, SnapshotStatus, ToThread, to_thread
from trikv.actors.identity import format_id
from trikv.actors.logfields import member_fields
from trikv.actors.metrics import MemberMetrics, PeerSeries
from trikv.actors.peerwire import (
    MAX_PEER_MESSAGE,
    RECEIVE_BUFFER,
    REMOVED,
    ClusterView,
    as_bytes,
    exchange_hello,
    fetch_cluster_info,
    forward_to_leader,
    ws_url,
)
from trikv.api import codec, raftframe
from trikv.api.internal import PeerHello
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.storage import faults

log = logging.getLogger("trikv.peer")

QUEUE_LIMIT = 4096  # messages per peer before we drop (Raft retransmits) and report the peer unreachable
MAX_BATCH = 512  # messages coalesced into one frame
BUFFER_LIMIT = 64 << 20  # framed bytes the socket has not taken yet, beyond which new messages are dropped
PROBE_INTERVAL = 4.0  # seconds between round-trip probes of a peer stream (etcd's prober interval)


class Peer:
    """One remote member: a dialler with backoff and its stream link.

    `send` is called by the Raft loop with one Ready's messages for this member: while the link is up and
    nothing waits before them, they are encoded once, as one frame, and written to the socket right there
    (no queue, no task hop; what the kernel does not take stays buffered in the link, in order, for the
    writer task to flush). Otherwise (no link yet, a backlog, a test's fault plugin) they wait in a bounded
    queue that the writer task coalesces into frames. Either way messages to one member leave in order.
    """

    def __init__(
        self,
        transport: Transport,
        peer_id: int,
        urls: tuple[str, ...],
    ) -> None:
        self.transport = transport
        self.id = peer_id
        self.urls = urls
        self._queue: collections.deque[Message] = collections.deque()
        self._wake = trio.Event()
        self.link: peerlink.Link | None = None  # the stream, once its hello was accepted
        self.cancel_scope = trio.CancelScope()
        self.connected = False
        self._last_refusal = ""
        self._lost = False  # the stream was up once and went down (its return is logged at warn)
        self.series: PeerSeries | None = None if transport.metrics is None else transport.metrics.peer(peer_id)

    def _fields(self, **more: object) -> dict[str, object]:
        return member_fields(self.transport.id, remote_peer_id=format_id(self.id), **more)

    def enqueue(self, m: Message) -> None:
        self.send([m])

    def queued(self) -> int:
        return len(self._queue)

    def send(self, msgs: list[Message]) -> bool:
        """Messages for this member from one Ready (never blocks: a message that does not fit is dropped and
        the member reported unreachable; Raft retransmits). True when some of them wait for this peer's
        tasks (queued, buffered behind a full socket, or a snapshot), False when all are on the socket."""
        if any(m.type == MessageType.SNAP for m in msgs):
            for m in [m for m in msgs if m.type == MessageType.SNAP]:
                self.transport.nursery.start_soon(self._send_snapshot, m)
            msgs = [m for m in msgs if m.type != MessageType.SNAP]
            if not msgs:
                return True
        link = self.link
        if link is not None and not self._queue and faults.ACTIVE is None and link.buffered() < BUFFER_LIMIT:
            try:
                for i in range(0, len(msgs), MAX_BATCH):
                    frame = raftframe.encode(msgs[i : i + MAX_BATCH])
                    link.send_nowait(frame)
                    if self.series is not None:
                        self.series.sent_bytes.inc(len(frame))
            except ConnectionClosed:
                self._wake.set()  # the writer notices the broken link and redials
                return True
            if link.buffered():
                self._wake.set()
                return True
            return False
        for m in msgs:
            if len(self._queue) >= QUEUE_LIMIT:
                if self.series is not None:
                    self.series.sent_failures.inc()
                self.transport.unreachable(self.id)
                break
            self._queue.append(m)
        self._wake.set()
        return True

    async def run(self) -> None:
        backoff = 0.05
        with self.cancel_scope:
            while True:
                for url in self.urls:
                    try:
                        await self._stream(url)
                        backoff = 0.05
                    except (
                        OSError,
                        HandshakeError,
                        ConnectionClosed,
                        trio.TooSlowError,
                        codec.CodecError,
                    ) as exc:
                        if self.connected:
                            self._lost = True
                            log.warning(
                                "peer became inactive (message send to peer failed)",
                                extra=self._fields(error=str(exc) or type(exc).__name__),
                            )
                        self.connected = False
                        self.transport.unreachable(self.id)
                        self._drain()
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _drain(self) -> None:
        while self._queue:
            self._queue.popleft()
            if self.series is not None:  # a message the broken link never sent (etcd's sent failures)
                self.series.sent_failures.inc()

    async def _stream(self, url: str) -> None:
        t = self.transport
        link = await peerlink.connect(
            ws_url(url), connect_timeout=2, max_message=MAX_PEER_MESSAGE, receive_buffer=RECEIVE_BUFFER
        )
        try:
            reply = await exchange_hello(link, PeerHello("stream", t.cluster_id, t.id, self.id))
            if not reply.ok:
                if reply.error.startswith(REMOVED):
                    t.removed_self()
                if reply.error != self._last_refusal:
                    log.error("peer %s (%s) refused our connection: %s", format_id(self.id), url, reply.error)
                    self._last_refusal = reply.error
                raise ConnectionClosed(None)
            self._last_refusal = ""
            if not self.connected:
                if self._lost:  # back after an outage: at warn, like the loss
                    log.warning("peer became active", extra=self._fields(url=url))
                else:
                    log.info("established peer stream", extra=self._fields(url=url))
            self.connected = True
            await self._pump(link)
        finally:
            self.link = None
            await link.aclose()

    async def _pump(self, link: peerlink.Link) -> None:
        """The link's two tasks: the writer (queued messages, buffered bytes) and a reader for pongs and the
        close; the first one to see the link broken stops both and the dialler reconnects."""
        broken: list[BaseException] = []

        async def guarded(fn: Callable[[peerlink.Link], Awaitable[None]]) -> None:
            try:
                await fn(link)
            except (ConnectionClosed, codec.CodecError) as exc:
                broken.append(exc)
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(guarded, self._write)
            nursery.start_soon(guarded, self._read)
            if self.series is not None:
                nursery.start_soon(self._probe, link, self.series)
        if broken:
            raise broken[0]

    async def _write(self, link: peerlink.Link) -> None:
        self.link = link  # from here on the Raft loop may write to it directly
        while True:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                if faults.ACTIVE is not None:  # test plugin only: drop / delay / stall this link
                    batch = await peerfaults.filter_link(faults.ACTIVE.peer_out, self._name(), batch)
                    if not batch:
                        continue
                frame = raftframe.encode(batch)
                link.send_nowait(frame)
                if self.series is not None:
                    self.series.sent_bytes.inc(len(frame))
            await link.flush()
            if link.closed:
                raise ConnectionClosed(link.close_reason)
            if not self._queue and not link.buffered():
                await self._wake.wait()
                self._wake = trio.Event()

    async def _read(self, link: peerlink.Link) -> None:
        """Nothing but pongs and the close come back on a stream we dialled."""
        while True:
            await link.get_message()

    async def _probe(self, link: peerlink.Link, series: PeerSeries) -> None:
        """etcd's prober: the round trip of a ping on the live stream, observed every PROBE_INTERVAL."""
        try:
            while not link.closed:
                t0 = time.perf_counter()
                with trio.move_on_after(PROBE_INTERVAL):
                    await link.ping()
                    series.rtt.observe(time.perf_counter() - t0)
                await trio.sleep(PROBE_INTERVAL)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            return

    def _name(self) -> str:
        return peerfaults.member_name(self.transport.view.members(), self.id)

    async def _send_snapshot(self, m: Message) -> None:
        t = self.transport
        if faults.ACTIVE is not None:  # test plugin only: a failpoint (in a worker), the link's fate
            await t.run_sync(functools.partial(faults.ACTIVE.point, "snapshot.send"))
            if await peerfaults.decide(faults.ACTIVE.peer_out, self._name()) is None:
                t.snapshot_status(self.id, False)
                return
        if t.open_snapshot is not None:
            await self._stream_snapshot(m, t.open_snapshot)
            return
        ok = False
        try:
            data = t.snapshot_source()
            assert m.snapshot is not None
            msg = Message(
                m.type,
                to=m.to,
                frm=m.frm,
                term=m.term,
                log_term=m.log_term,
                index=m.index,
                commit=m.commit,
                snapshot=Snapshot(m.snapshot.meta, data),
            )
            log.info(
                "sending snapshot at index %d (%d bytes) to %s",
                m.snapshot.meta.index,
                len(data),
                format_id(self.id),
            )
            async with trio_websocket.open_websocket_url(
                ws_url(self.urls[0]), max_message_size=MAX_PEER_MESSAGE, connect_timeout=5
            ) as ws:
                reply = await exchange_hello(ws, PeerHello("snapshot", t.cluster_id, t.id, self.id))
                if reply.ok:
                    # Bounded: a half-open link must not leave the follower waiting for a status forever.
                    with trio.fail_after(60 + len(data) / (8 << 20)):
                        await ws.send_message(codec.encode([msg]))
                        ack = codec.decode(as_bytes(await ws.get_message()))
                    ok = bool(getattr(ack, "ok", False))
        except Exception as exc:  # any failure: Raft retries the snapshot later
            log.warning("failed to send snapshot to %s: %s", format_id(self.id), exc)
        t.snapshot_status(self.id, ok)

    async def _stream_snapshot(self, m: Message, open_snapshot: snapstream.OpenSnapshot) -> None:
        """The page file in bounded chunks from a pinned commit, read in worker threads (actors/snapstream.py)."""
        t = self.transport
        ok = False
        try:
            assert m.snapshot is not None
            snap = await open_snapshot()
            try:
                log.info(
                    "streaming snapshot at index %d (%d bytes) to %s",
                    m.snapshot.meta.index,
                    snap.size,
                    format_id(self.id),
                )
                async with trio_websocket.open_websocket_url(
                    ws_url(self.urls[0]), max_message_size=MAX_PEER_MESSAGE, connect_timeout=5
                ) as ws:
                    reply = await exchange_hello(ws, PeerHello(snapstream.STREAM_KIND, t.cluster_id, t.id, self.id))
                    if reply.ok:
                        ok = await snapstream.send_chunks(ws, m, snap, t.run_sync)
            finally:
                snap.close()
            log.info("sent snapshot at index %d to %s: %s", m.snapshot.meta.index, format_id(self.id), ok)
        except Exception as exc:  # any failure: Raft retries the snapshot later
            log.warning("failed to stream snapshot to %s: %s", format_id(self.id), exc)
        t.snapshot_status(self.id, ok)


class Transport:
    """Owns one Peer actor per remote member and keeps them in step with the applied membership."""

    def __init__(
        self,
        view: ClusterView,
        inbox: Inbox,
        *,
        snapshot_source: Callable[[], bytes],
        on_removed: Callable[[], None] = lambda: None,
        open_snapshot: snapstream.OpenSnapshot | None = None,
        run_sync: ToThread[Any] = to_thread,
    ) -> None:
        self.open_snapshot = open_snapshot  # streamed snapshots (else the whole file from snapshot_source)
        self.run_sync = run_sync
        self.on_removed = on_removed
        self.view = view
        self.id = view.member_id
        self.cluster_id = view.cluster_id
        self.inbox = inbox
        self.snapshot_source = snapshot_source
        self.peers: dict[int, Peer] = {}
        self.nursery: trio.Nursery
        self.metrics: MemberMetrics | None = None  # set by the Node

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.sync_members()
            await trio.sleep_forever()

    def sync_members(self) -> None:
        if not hasattr(self, "nursery"):
            return
        wanted = {mid: m for mid, m in self.view.members().items() if mid != self.id}
        for mid in list(self.peers):
            if mid not in wanted or self.peers[mid].urls != wanted[mid].peer_urls:
                self.peers.pop(mid).cancel_scope.cancel()
        for mid, m in wanted.items():
            if mid not in self.peers and m.peer_urls:
                peer = Peer(self, mid, m.peer_urls)
                self.peers[mid] = peer
                self.nursery.start_soon(peer.run)

    def send(self, msgs: list[Message]) -> bool:
        """One Ready's messages: one call (so one frame) per member, each member's in their order. True when
        some wait for a peer's tasks (the Raft loop then yields before a blocking fsync so they can go)."""
        if len(msgs) == 1:
            by_peer: dict[int, list[Message]] = {msgs[0].to: msgs}
        else:
            by_peer = {}
            for m in msgs:
                by_peer.setdefault(m.to, []).append(m)
        waiting = False
        for to, ms in by_peer.items():
            peer = self.peers.get(to)
            if peer is not None and peer.send(ms):
                waiting = True
        return waiting

    def removed_self(self) -> None:
        """A member told us we were removed (we may never apply our own removal: nobody sends it to us)."""
        self.on_removed()

    def unreachable(self, peer_id: int) -> None:
        self.inbox.unreachable(peer_id)

    def snapshot_status(self, peer_id: int, ok: bool) -> None:
        self.inbox.control(SnapshotStatus(peer_id, ok))

    def is_active(self, peer_id: int) -> bool:
        peer = self.peers.get(peer_id)
        return peer is not None and peer.connected


__all__ = [
    "QUEUE_LIMIT",
    "ClusterView",
    "Peer",
    "Transport",
    "fetch_cluster_info",
    "forward_to_leader",
]
