"""The corruption check's comparison rules (etcd's checkHashKV): only like is compared with like."""

from __future__ import annotations

from trikv.actors.corruptcheck import CorruptionChecker
from trikv.api import rpc
from trikv.api.maintenance import AlarmType, HashKVRequest, HashKVResponse
from trikv.api.protocol import Member

LEADER = 1


def resp(member: int, rev: int, h: int, crev: int = -1) -> HashKVResponse:
    return HashKVResponse(rpc.ResponseHeader(7, member, rev, 2), h, crev)


async def run_check(
    local: list[HashKVResponse], peers: dict[int, HashKVResponse | None]
) -> tuple[int | None, list]:
    raised: list[tuple[AlarmType, int]] = []
    asked: list[tuple[int, HashKVRequest]] = []
    local_answers = iter(local)

    async def local_hash(req: HashKVRequest) -> HashKVResponse:
        return next(local_answers)

    async def fetch(m: Member, req: HashKVRequest) -> HashKVResponse | None:
        asked.append((m.id, req))
        return peers[m.id]

    async def read_index() -> None:
        pass

    checker = CorruptionChecker(
        LEADER,
        1.0,
        is_leader=lambda: True,
        members=lambda: {i: Member(i) for i in (LEADER, *peers)},
        local_hash=local_hash,
        read_index=read_index,
        raise_alarm=lambda alarm, mid: raised.append((alarm, mid)),
        fetch=fetch,
    )
    found = await checker.check()
    assert all(
        req == HashKVRequest(local[0].header.revision) for _, req in asked
    )  # asked at the same revision
    assert [m for m, _ in asked] == sorted(peers)
    return found, raised


async def test_equal_hashes_raise_nothing() -> None:
    assert await run_check([resp(1, 10, 99), resp(1, 12, 55)], {2: resp(2, 12, 99), 3: None}) == (None, [])


async def test_different_hash_at_the_same_compact_revision() -> None:
    found, raised = await run_check(
        [resp(1, 10, 99, 4), resp(1, 10, 99, 4)], {2: resp(2, 10, 99, 4), 3: resp(3, 10, 98, 4)}
    )
    assert (found, raised) == (3, [(AlarmType.CORRUPT, 3)])


async def test_other_compact_revision_is_not_compared() -> None:
    assert await run_check([resp(1, 10, 99, 4), resp(1, 10, 99, 4)], {2: resp(2, 10, 12345, 3)}) == (None, [])


async def test_a_member_ahead_of_the_leader() -> None:
    found, _ = await run_check([resp(1, 10, 99), resp(1, 11, 50)], {2: resp(2, 12, 99)})
    assert found == 2  # newer revision than the leader's after a ReadIndex round
    found, _ = await run_check([resp(1, 10, 99, 4), resp(1, 11, 50, 4)], {2: resp(2, 11, 99, 6)})
    assert found == 2  # newer compact revision than the leader's


async def test_local_hash_changed_without_writes() -> None:
    found, raised = await run_check([resp(1, 10, 99, 4), resp(1, 10, 98, 4)], {2: resp(2, 10, 99, 4)})
    assert (found, raised) == (LEADER, [(AlarmType.CORRUPT, LEADER)])
