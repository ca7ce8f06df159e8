"""The peer link's wire pieces, shared by every kind of peer connection (streams, snapshots, forwards,
cluster info): the path, the limits, the hello exchange, and the one-off dialers a member uses to ask a
peer something (a forwarded request to the leader, the membership when joining).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio
import trio_websocket
from trio_websocket import ConnectionClosed, HandshakeError

from trikv.actors.peerlink import MessageLink
from trikv.api import codec, errors
from trikv.api.internal import PeerHello, PeerHelloReply
from trikv.api.protocol import Member

log = logging.getLogger("trikv.peer")

PEER_PATH = "/raft"
MAX_PEER_MESSAGE = 1 << 30  # snapshots carry the whole page file
RECEIVE_BUFFER = 1 << 16
FORWARD_TIMEOUT = 10.0  # seconds for a forwarded request (a promote is one conf change)
REMOVED = "the member has been permanently removed from the cluster"  # etcd's errMemberRemoved


@attrs.frozen
class ClusterView:
    """What the peer actors know of the cluster: our ids and the applied membership (read live)."""

    member_id: int
    cluster_id: int
    members: Callable[[], Mapping[int, Member]]
    removed: Callable[[], set[int]]


def as_bytes(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


def ws_url(peer_url: str) -> str:
    if peer_url.startswith("https://"):
        return "wss://" + peer_url[len("https://") :].rstrip("/") + PEER_PATH
    return "ws://" + peer_url.removeprefix("http://").rstrip("/") + PEER_PATH


async def exchange_hello(ws: MessageLink, hello: PeerHello, timeout: float = 5.0) -> PeerHelloReply:
    await ws.send_message(codec.encode(hello))
    with trio.fail_after(timeout):
        data = await ws.get_message()
    reply = codec.decode(as_bytes(data))
    if not isinstance(reply, PeerHelloReply):
        raise codec.CodecError("peer answered the hello with something else")
    return reply



async def forward_to_leader(view: ClusterView, leader: int, request: Any) -> Any:
    """Send one request to the leader over a peer link and return its answer (or raise its error)."""
    member = view.members().get(leader)
    if member is None or not member.peer_urls:
        raise errors.NoLeaderError()
    try:
        async with trio_websocket.open_websocket_url(
            ws_url(member.peer_urls[0]),
            max_message_size=MAX_PEER_MESSAGE,
            connect_timeout=2,
            disconnect_timeout=1,
        ) as ws:
            reply = await exchange_hello(ws, PeerHello("forward", view.cluster_id, view.member_id, leader))
            if not reply.ok:
                raise errors.NoLeaderError()
            await ws.send_message(codec.encode(request))
            with trio.fail_after(FORWARD_TIMEOUT):
                answer = codec.decode(as_bytes(await ws.get_message()))
    except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError, codec.CodecError):
        raise errors.TimeoutError_() from None
    if not isinstance(answer, (list, tuple)) or len(answer) != 1:
        raise errors.InternalError()
    if isinstance(answer[0], dict):
        raise errors.from_wire(answer[0])
    return answer[0]


async def fetch_cluster_info(peer_urls: list[str], timeout: float = 2.0) -> PeerHelloReply | None:
    """Ask members, one after another, for the cluster id and membership (a joining member's first step)."""
    for url in peer_urls:
        try:
            async with trio_websocket.open_websocket_url(
                ws_url(url), max_message_size=MAX_PEER_MESSAGE, connect_timeout=timeout, disconnect_timeout=1
            ) as ws:
                reply = await exchange_hello(ws, PeerHello("cluster_info", 0, 0, 0), timeout)
                if reply.ok:
                    return reply
        except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError, codec.CodecError) as exc:
            log.warning("could not get cluster info from %s: %s", url, exc)
    return None


__all__ = [
    "FORWARD_TIMEOUT",
    "MAX_PEER_MESSAGE",
    "PEER_PATH",
    "RECEIVE_BUFFER",
    "REMOVED",
    "ClusterView",
    "as_bytes",
    "exchange_hello",
    "fetch_cluster_info",
    "forward_to_leader",
    "ws_url",
]
