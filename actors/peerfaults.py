"""The peer links' fault hook (storage/faults.py): drop, delay or hold Raft messages of one link.

Called by the Peer writer (send side, `peer_out`) and the PeerServer reader (receive side, `peer_in`) only
when a test plugin is installed (`faults.ACTIVE is not None`). A delay holds the link's stream, not one
message, so messages to one peer stay in order (FIFO); a stalled link holds everything until it is cleared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import trio

from trikv.actors.identity import format_id
from trikv.api.protocol import Member
from trikv.storage import faults

M = TypeVar("M")


def member_name(members: Mapping[int, Member], member_id: int) -> str:
    """The name the control file uses for a member (its id in hex until it has published a name)."""
    m = members.get(member_id)
    return m.name if m is not None and m.name else format_id(member_id)


async def decide(hook: Callable[[str], float | None], name: str) -> float | None:
    """One message's fate: None = drop, else the delay in seconds; a stalled link waits here until cleared."""
    d = hook(name)
    while d is not None and d == faults.HOLD:
        await trio.sleep(faults.HOLD_POLL)
        d = hook(name)
    return d


async def filter_link(hook: Callable[[str], float | None], name: str, msgs: Sequence[M]) -> list[M]:
    """The messages that survive the hook, after the longest delay any of them drew (the stream waits)."""
    kept: list[M] = []
    delay = 0.0
    for m in msgs:
        d = await decide(hook, name)
        if d is None:
            continue
        kept.append(m)
        delay = max(delay, d)
    if delay > 0:
        await trio.sleep(delay)
    return kept


__all__ = ["decide", "filter_link", "member_name"]
