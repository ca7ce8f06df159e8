"""Shapes that live inside Raft entries and the peer protocol, never in front of a client.

A NORMAL entry's data is one `RaftRequest`: who proposed it (member id + request id, so exactly that member
answers the client when it applies the entry) and the op. Everything the apply path needs travels here:
apply is deterministic and never reads a clock or a random source.
"""

from __future__ import annotations

from typing import Any

import attrs

from trikv.api.codec import register
from trikv.api.records import as_tuple


@register(70)
@attrs.frozen(slots=True)
class RaftRequest:
    member_id: int
    request_id: int
    op: str
    payload: Any


@register(71)
@attrs.frozen(slots=True)
class MemberAttributes:
    """etcd's publish: a started member announces its name and client URLs through Raft."""

    member_id: int
    name: str
    client_urls: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@register(72)
@attrs.frozen(slots=True)
class PeerHello:
    """First frame on every peer connection; checked before anything else is accepted."""

    kind: str  # "stream" | "snapshot" | "cluster_info"
    cluster_id: int
    from_id: int
    to_id: int


@register(73)
@attrs.frozen(slots=True)
class PeerHelloReply:
    ok: bool
    error: str = ""
    cluster_id: int = 0
    member_id: int = 0
    members: tuple[Any, ...] = attrs.field(
        default=(), converter=as_tuple
    )  # protocol.Member, for cluster_info
