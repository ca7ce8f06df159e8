"""Acceptance: a learner member (real processes on 127.0.0.1): what it refuses, and its promotion through
a follower, which forwards the request to the leader (etcd's promote forwarding)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import trikv
from tests.cluster.test_cluster import CONFIGS, find_leader
from trikv.api import errors, rpc
from trikv.tools.localcluster import Cluster


async def test_learner_refuses_writes_and_is_promoted_through_a_follower(tmp_path: Path) -> None:
    files = [CONFIGS / f"node{i}.yaml" for i in range(4)]
    c = Cluster(tmp_path, config_files=files)
    founders, learner = c.members[:3], c.members[3]
    for m in founders:
        m.start()
    for m in founders:
        m.wait_ready()
    try:
        c.members = founders
        leader = await find_leader(c)
        followers = [m for i, m in enumerate(founders) if i != leader]
        async with trikv.connect([m.endpoint for m in founders]) as cl:
            await cl.put("k", "v")
            added = await cl.member_add([f"http://127.0.0.1:{learner.peer_port}"], is_learner=True)
            assert added.member.is_learner
        learner.start()
        learner.wait_ready()
        async with trikv.connect([learner.endpoint]) as cl:
            with trio.fail_after(20):
                while not (await cl.get("k", serializable=True)).kvs:
                    await trio.sleep(0.1)
            assert (await cl.status()).is_learner
            for call in (
                lambda: cl.put("x", "1"),
                lambda: cl.txn().then(trikv.put_op("x", "1")).commit(),
                lambda: cl.get("k"),  # linearizable
                lambda: cl.member_list(),
            ):
                with pytest.raises(errors.NotSupportedForLearnerError) as exc:
                    await call()
                assert str(exc.value) == "etcdserver: rpc not supported for learner"
                assert exc.value.code == errors.GrpcCode.UNAVAILABLE
        # Only followers in the endpoint list: the promote is forwarded to the leader.
        async with trikv.connect([m.endpoint for m in followers]) as cl:
            with trio.fail_after(20):
                while True:
                    try:
                        resp = await cl.member_promote(added.member.id)
                        break
                    except errors.LearnerNotReadyError:
                        await trio.sleep(0.2)
            promoted = {m.id: m for m in resp.members}[added.member.id]
            assert not promoted.is_learner
            with pytest.raises(errors.MemberNotLearnerError):
                await cl.member_promote(added.member.id)
        async with trikv.connect([learner.endpoint]) as cl:
            await cl.put("after-promote", "1")  # now a voter: it takes writes
            got = await cl.get("after-promote")
            assert got.kvs[0].value == b"1"
            assert isinstance(got, rpc.RangeResponse)
    finally:
        for m in [*founders, learner]:
            m.kill()
