"""Acceptance: the test plugin's hooks in real member processes (TRIKV_TEST_PLUGIN=trikv.testing.plugin).

Each member reads its own control file (TRIKV_TEST_FAULTS), rewritten atomically while it runs: isolating a
member through the peer hooks costs it its leadership and its writes, clearing the file heals it; a crash
failpoint after the WAL fsync kills a member at the next put and it restarts with every acknowledged write;
the planted bugs read_without_read_index and put_ack_before_quorum_fsync change what a member answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import trikv
from trikv.api import errors
from trikv.tools.localcluster import Cluster, Member

pytestmark = pytest.mark.slow

ISOLATE = {"peers": {"out": {"*": {"drop": 1.0}}, "in": {"*": {"drop": 1.0}}}}
RELOAD = 0.3  # the plugin polls its file every 20 ms: comfortably past one poll on a loaded machine
FAILED = (errors.TrikvError, OSError, trio.TooSlowError)


def control(m: Member) -> Path:
    return Path(m.env["TRIKV_TEST_FAULTS"])


async def set_faults(m: Member, doc: dict[str, object] | None) -> None:
    path = control(m)
    if doc is None:
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
    await trio.sleep(RELOAD)


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, overrides={"log-level": "info"})
    for m in c.members:
        m.env = {
            "TRIKV_TEST_PLUGIN": "trikv.testing.plugin",
            "TRIKV_TEST_FAULTS": str(tmp_path / f"{m.name}.faults.json"),
        }
    c.start()
    try:
        yield c
    finally:
        c.stop()


async def view(m: Member) -> tuple[int, int] | None:
    """(member id, the leader it names) or None when it does not answer."""
    try:
        async with trikv.connect([m.endpoint], dial_timeout=1) as cl:
            with trio.fail_after(1):
                st = await cl.status(m.endpoint)
    except FAILED:
        return None
    return st.header.member_id, st.leader


async def agreed_leader(members: list[Member], timeout: float = 20.0) -> tuple[Member, dict[int, Member]]:
    """The member every one of `members` names as leader, with the id -> member map."""
    deadline = trio.current_time() + timeout
    while trio.current_time() < deadline:
        views = {m.name: await view(m) for m in members}
        ids = {v[0]: m for m, v in zip(members, views.values(), strict=True) if v is not None}
        leaders = {v[1] for v in views.values() if v is not None}
        if len(ids) == len(members) and len(leaders) == 1 and (lead := leaders.pop()) in ids:
            return ids[lead], ids
        await trio.sleep(0.1)
    raise AssertionError(f"no agreed leader among {[m.name for m in members]}")


async def outcome(endpoint: str, op: str, key: str, value: str = "", timeout: float = 4.0) -> object:
    """A put's response / a get's value (None = absent) through one endpoint only, or the exception."""
    try:
        async with trikv.connect([endpoint], dial_timeout=2, request_timeout=timeout) as cl:
            with trio.fail_after(timeout + 1):
                if op == "put":
                    return await cl.put(key, value)
                resp = await cl.get(key, serializable=op == "sget")
                return resp.kvs[0].value.decode() if resp.kvs else None
    except FAILED as exc:
        return exc


async def eventually(endpoint: str, op: str, key: str, want: object, timeout: float = 20.0) -> None:
    deadline = trio.current_time() + timeout
    got: object = None
    while trio.current_time() < deadline:
        got = await outcome(endpoint, op, key)
        if got == want:
            return
        await trio.sleep(0.2)
    raise AssertionError(f"{op} {key} at {endpoint}: {got!r}, expected {want!r}")


async def test_isolation_heals_and_a_stale_read_needs_the_plant(faulty: Cluster) -> None:
    lead, _ = await agreed_leader(faulty.members)
    others = [m for m in faulty.members if m is not lead]
    assert not isinstance(await outcome(lead.endpoint, "put", "k", "old"), BaseException)

    await set_faults(lead, ISOLATE)
    new_lead, _ = await agreed_leader(others)  # the other two elect one of them
    assert new_lead is not lead
    assert not isinstance(await outcome(new_lead.endpoint, "put", "k", "new"), BaseException)
    assert isinstance(await outcome(lead.endpoint, "put", "x", "1", timeout=3), BaseException)
    assert isinstance(
        await outcome(lead.endpoint, "get", "k", timeout=3), BaseException
    )  # no ReadIndex round

    await set_faults(lead, {**ISOLATE, "plants": ["read_without_read_index"]})
    assert await outcome(lead.endpoint, "get", "k") == "old"  # the isolated ex-leader answers stale data

    await set_faults(lead, None)
    await agreed_leader(faulty.members)  # all three agree on a leader again
    await eventually(lead.endpoint, "get", "k", "new")
    assert not isinstance(await outcome(lead.endpoint, "put", "x", "2"), BaseException)
    assert "crash at failpoint" not in faulty.logs()


async def test_crash_after_wal_fsync_then_acknowledged_before_quorum(faulty: Cluster) -> None:
    lead, _ = await agreed_leader(faulty.members)
    follower = next(m for m in faulty.members if m is not lead)
    acked = {f"a{i}": f"v{i}" for i in range(5)}
    for k, v in acked.items():
        assert not isinstance(await outcome(lead.endpoint, "put", k, v), BaseException)

    # A crash failpoint right after the follower's WAL fsync: the next put kills it (the others ack it).
    await set_faults(follower, {"failpoints": {"wal.after_fsync": "crash"}})
    assert not isinstance(await outcome(lead.endpoint, "put", "c", "1"), BaseException)
    acked["c"] = "1"
    with trio.fail_after(10):
        while follower.alive:
            await trio.sleep(0.05)
    assert "crash at failpoint wal.after_fsync" in follower.log_text()
    await set_faults(follower, None)
    follower.start()
    follower.wait_ready()
    for k, v in acked.items():
        await eventually(follower.endpoint, "sget", k, v)

    # The planted bug: an isolated leader acknowledges a put its followers never got; killed, it is lost.
    lead, _ = await agreed_leader(faulty.members)
    others = [m for m in faulty.members if m is not lead]
    await set_faults(lead, {**ISOLATE, "plants": ["put_ack_before_quorum_fsync"]})
    assert not isinstance(await outcome(lead.endpoint, "put", "q", "lost", timeout=0.8), BaseException)
    lead.kill()
    await agreed_leader(others)
    assert await outcome(others[0].endpoint, "get", "q") is None  # acknowledged, and gone
    await eventually(others[0].endpoint, "get", "c", "1")
