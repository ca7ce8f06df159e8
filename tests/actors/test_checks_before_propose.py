"""etcd's static request checks run before proposing: a refused request never enters the Raft log, on the
leader or on a follower, and gets etcd's exact message and gRPC code."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from tests.actors.harness import cluster
from trikv.api.errors import EtcdError, GrpcCode
from trikv.api.rpc import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)

NO_KEY = "etcdserver: key is not provided"
VALUE = "etcdserver: value is provided"
LEASE = "etcdserver: lease is provided"
DUPLICATE = "etcdserver: duplicate key given in txn request"
TOO_MANY_OPS = "etcdserver: too many operations in txn request"


def cmp(key: bytes) -> Compare:
    return Compare(CompareResult.EQUAL, CompareTarget.VERSION, key, 0)


REFUSED: list[tuple[str, Any, str]] = [
    ("put empty key", PutRequest(b"", b"v"), NO_KEY),
    ("range empty key", RangeRequest(b""), NO_KEY),
    ("serializable range empty key", RangeRequest(b"", serializable=True), NO_KEY),
    ("delete empty key", DeleteRangeRequest(b""), NO_KEY),
    ("compare empty key", TxnRequest(compare=[cmp(b"")]), NO_KEY),
    ("txn put empty key", TxnRequest(success=[PutRequest(b"", b"v")]), NO_KEY),
    ("value with ignore_value", PutRequest(b"k", b"v", ignore_value=True), VALUE),
    ("lease with ignore_lease", PutRequest(b"k", b"v", lease=7, ignore_lease=True), LEASE),
    ("txn put twice", TxnRequest(success=[PutRequest(b"k", b"1"), PutRequest(b"k", b"2")]), DUPLICATE),
    (
        "txn put inside a delete range",
        TxnRequest(failure=[DeleteRangeRequest(b"a", b"z"), PutRequest(b"k", b"v")]),
        DUPLICATE,
    ),
    (
        "nested txn duplicate",
        TxnRequest(success=[PutRequest(b"k", b"1"), TxnRequest(success=[PutRequest(b"k", b"2")])]),
        DUPLICATE,
    ),
    ("129 ops", TxnRequest(success=[PutRequest(b"k%d" % i, b"v") for i in range(129)]), TOO_MANY_OPS),
]


@pytest.mark.parametrize(("case", "request_", "message"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_refused_before_proposing(
    autojump_clock: MockClock, case: str, request_: Any, message: str
) -> None:
    async with cluster() as c:
        lead = await c.settle()
        follower = c.followers(lead)[0]
        before = {n.id: n.raft.storage.last_index() for n in c.running()}
        for target in (lead, follower):
            with pytest.raises(EtcdError) as info:
                await target.handlers.handle(request_)
            assert info.value.text == message, case
            assert info.value.code == GrpcCode.INVALID_ARGUMENT
        await trio.sleep(3.0)  # heartbeats only: a proposal would have been appended and replicated by now
        assert {n.id: n.raft.storage.last_index() for n in c.running()} == before
        assert lead.status.committed == max(before.values())


async def test_128_ops_are_accepted(autojump_clock: MockClock) -> None:
    """The bound is etcd's default max-txn-ops (128): one op fewer is proposed and committed everywhere."""
    async with cluster() as c:
        lead = await c.settle()
        follower = c.followers(lead)[0]
        before = lead.raft.storage.last_index()
        txn = TxnRequest(success=[PutRequest(b"k%d" % i, b"v") for i in range(128)])
        resp = await follower.handlers.handle(txn)
        assert resp.succeeded and len(resp.responses) == 128
        await c.settle()
        assert all(n.raft.storage.last_index() == before + 1 for n in c.running())
