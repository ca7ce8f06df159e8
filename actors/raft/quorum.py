"""Majority math over the current voters (one membership change at a time, so no joint quorums)."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping


class VoteResult(enum.IntEnum):
    PENDING = 0
    WON = 1
    LOST = 2


def quorum(n_voters: int) -> int:
    return n_voters // 2 + 1


def committed_index(voters: Collection[int], matches: Mapping[int, int]) -> int:
    """The highest index a majority of voters has durably matched."""
    if not voters:
        return 0
    srt = sorted([matches.get(v, 0) for v in voters], reverse=True)
    return srt[len(srt) // 2]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    granted = rejected = 0
    for v in voters:
        r = votes.get(v)
        if r is True:
            granted += 1
        elif r is False:
            rejected += 1
    q = quorum(len(voters))
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected < q:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Collection[int], acks: Collection[int]) -> bool:
    return sum(1 for v in voters if v in acks) >= quorum(len(voters))
