"""The Trio client against the real client server over in-memory members (tests/member_server.py,
tests/memory_cluster.py), over real loopback WebSockets."""

from __future__ import annotations

import functools
import socket
import subprocess
import sys

import pytest
import trio
import wsproto
import wsproto.events

import trikv
from trikv import client as tc
from trikv.actors.server import serve_clients
from trikv.api import errors, rpc
from trikv.client import DeadlineExceededError, MessageTooLargeError

from .member_server import DROP, HANG, running
from .memory_cluster import MemoryMember, Store


def free_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- pure helpers


def test_prefix_range_end_rules() -> None:
    assert tc.prefix_range_end(b"foo") == b"fop"
    assert tc.prefix_range_end(b"a\xff") == b"b"
    assert tc.prefix_range_end(b"\xff\xff") == b"\0"
    assert tc.key_range("", prefix=True) == (b"\0", b"\0")
    assert tc.key_range("k", from_key=True) == (b"k", b"\0")
    assert tc.key_range("", from_key=True) == (b"\0", b"\0")
    assert tc.key_range("a", "c") == (b"a", b"c")
    with pytest.raises(ValueError):
        tc.key_range("a", prefix=True, from_key=True)


def test_parse_endpoint() -> None:
    assert tc.parse_endpoint("127.0.0.1:2379") == "ws://127.0.0.1:2379/v3/ws"
    assert tc.parse_endpoint("http://127.0.0.1:12379") == "ws://127.0.0.1:12379/v3/ws"
    with pytest.raises(errors.ConfigError):
        tc.parse_endpoint("127.0.0.1")


def test_compare_helpers_build_compares() -> None:
    c = trikv.value("k") == "x"
    assert c == rpc.Compare(rpc.CompareResult.EQUAL, rpc.CompareTarget.VALUE, b"k", b"x")
    assert (trikv.version(b"k") > 0).result == rpc.CompareResult.GREATER
    assert (trikv.create_revision("k") < 5).target == rpc.CompareTarget.CREATE
    assert (trikv.mod_revision("k") != 3).result == rpc.CompareResult.NOT_EQUAL
    assert (trikv.lease("k") == 7).target_value == 7
    assert (trikv.value("p", prefix=True) == b"v").range_end == b"q"
    with pytest.raises(TypeError):
        trikv.version("k") == "1"  # noqa: B015


def test_dir_lists_the_lazy_public_names() -> None:
    names = dir(trikv)
    for name in ("connect", "Client", "Txn", "put_op", "value", "errors", "__version__"):
        assert name in names and name in trikv.__all__, name
    for name in trikv.__all__:
        assert name in names and getattr(trikv, name) is not None, name
    assert trikv.connect is tc.connect and trikv.errors is errors


def test_import_trikv_stays_free_of_trio() -> None:
    """The CLI and the server import `trikv`; trio and the WebSocket stack load only with the client."""
    code = (
        "import sys, trikv; names = dir(trikv); "
        "assert 'connect' in names; "
        "loaded = [m for m in ('trio', 'trio_websocket', 'trikv.client') if m in sys.modules]; "
        "assert not loaded, loaded; "
        "trikv.connect; assert 'trio' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- basic KV


async def test_put_get_delete_round_trip(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint]) as c:
        put = await c.put("foo", "bar")
        assert put.header.revision == 2 and put.prev_kv is None
        put2 = await c.put(b"foo", b"baz", prev_kv=True)
        assert put2.prev_kv is not None and put2.prev_kv.value == b"bar"
        await c.put("foo1", "v1")
        await c.put("fop", "x")
        got = await c.get("foo")
        assert [(kv.key, kv.value, kv.version) for kv in got.kvs] == [(b"foo", b"baz", 2)]
        pref = await c.get("foo", prefix=True)
        assert [kv.key for kv in pref.kvs] == [b"foo", b"foo1"]
        assert (await c.get("foo", prefix=True, count_only=True)).count == 2
        everything = await c.get("", from_key=True)
        assert [kv.key for kv in everything.kvs] == [b"foo", b"foo1", b"fop"]
        deleted = await c.delete("foo", prefix=True, prev_kv=True)
        assert deleted.deleted == 2 and {kv.key for kv in deleted.prev_kvs} == {b"foo", b"foo1"}
        assert (await c.get("foo")).kvs == ()


async def test_txn_success_and_failure_branches(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint]) as c:
        await c.put("user1", "bad")
        resp = await (
            c.txn()
            .if_(trikv.value("user1") == "bad", trikv.version("user1") > 0)
            .then(trikv.put_op("user1", "good"), trikv.get_op("user1"))
            .else_(trikv.delete_op("user1"))
            .commit()
        )
        assert resp.succeeded
        assert isinstance(resp.responses[1], rpc.RangeResponse)
        assert resp.responses[1].kvs[0].value == b"good"
        resp = await c.txn().if_(trikv.value("user1") == "bad").else_(trikv.get_op("user1")).commit()
        assert not resp.succeeded
        with pytest.raises(errors.ClientError):
            c.txn().then().if_()


async def test_status_member_list_and_compact(nursery: trio.Nursery) -> None:
    async with running(nursery, 2) as (a, b), trikv.connect([a.endpoint]) as c:
        st = await c.status()
        assert st.header.member_id == a.member_id and st.leader == a.member_id
        st_b = await c.status(b.url)
        assert st_b.header.member_id == b.member_id
        members = await c.member_list()
        assert [m.id for m in members.members] == [a.member_id, b.member_id]
        for i in range(3):
            await c.put("k", str(i))
        await c.compact(3)
        with pytest.raises(errors.CompactedError):
            await c.get("k", revision=2)
        with pytest.raises(errors.CompactedError):
            await c.compact(3)


async def test_server_errors_are_typed(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint]) as c:
        with pytest.raises(errors.EmptyKeyError):
            await c.put("", "v")
        with pytest.raises(errors.FutureRevError) as info:
            await c.get("k", revision=99)
        assert str(info.value) == "etcdserver: mvcc: required revision is a future revision"
        with pytest.raises(errors.KeyNotFoundError):
            await c.put("missing", ignore_value=True)


# --------------------------------------------------------------------------- multiplexing, coalescing


async def test_concurrent_requests_multiplexed_and_coalesced(nursery: trio.Nursery) -> None:
    async with running(nursery, reverse_replies=True) as (srv,), trikv.connect([srv.endpoint]) as c:
        results: dict[int, bytes] = {}

        async def one(i: int) -> None:
            await c.put(f"k{i:03}", f"v{i}")
            got = await c.get(f"k{i:03}")
            results[i] = got.kvs[0].value

        async with trio.open_nursery() as inner:
            for i in range(60):
                inner.start_soon(one, i)
        # Every caller got its own answer although the server answered each frame in reverse order.
        assert results == {i: f"v{i}".encode() for i in range(60)}
        # Requests queued in one scheduling tick shared a frame.
        put_frames = [f for f in srv.frames if "put" in f]
        assert sum(len(f) for f in put_frames) == 60
        assert len(put_frames) < 60 and max(len(f) for f in put_frames) > 1
        assert len(c._conns) == 1  # one WebSocket for everything


async def test_in_flight_requests_are_bounded_per_connection(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint], max_in_flight=4) as c:
        srv.inject("range", 0.3, 0.3, 0.3, 0.3)  # the first four are answered after 0.3 s
        got: list[bytes] = []

        async def one(i: int) -> None:
            await c.put(f"k{i}", f"v{i}")
            got.append((await c.get(f"k{i}")).kvs[0].value)

        async with trio.open_nursery() as inner:
            for i in range(10):
                inner.start_soon(one, i)
            await trio.sleep(0.15)
            # Four reads left the client; the six other callers wait for a slot (backpressure), unsent.
            assert srv.requests("range") == 4
            (conn,) = c._conns.values()
            assert len(conn._pending) == 4 and not conn._queued
        assert sorted(got) == sorted(f"v{i}".encode() for i in range(10))
        assert srv.requests("range") == 10
    with pytest.raises(errors.ConfigError):
        async with trikv.connect([srv.endpoint], max_in_flight=0):
            pass


async def test_abandoned_requests_give_their_slot_back(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint], max_in_flight=2) as c:
        srv.inject("range", HANG, HANG)
        with trio.move_on_after(0.2):
            async with trio.open_nursery() as inner:
                for i in range(5):  # two hang on the server, three wait for a slot; all are cancelled
                    inner.start_soon(c.get, f"k{i}")
        (conn,) = c._conns.values()
        assert not conn._pending and not conn._queued
        with trio.fail_after(1):
            await c.put("k", "v")
            assert (await c.get("k")).kvs[0].value == b"v"


# --------------------------------------------------------------------------- failover and retry rules


async def test_connection_loss_fails_sent_writes_at_once_and_holds_unsent_ones(nursery: trio.Nursery) -> None:
    """Sent writes are in doubt the moment their connection dies (not at the 10 s deadline) and are never
    sent elsewhere; a new write is held, unsent, while the other member still names the lost one as its
    leader (a follower would forward it to a dead leader), and goes out once it names a new leader."""
    async with (
        running(nursery, 2) as (a, b),
        trikv.connect([a.endpoint, b.endpoint], request_timeout=10) as c,
    ):
        await c.put("k", "v")  # the client now knows whom it talks to
        a.inject("put", HANG, HANG)
        in_doubt: list[float] = []

        async def hung_put(key: str) -> None:
            with pytest.raises(errors.OutcomeUnknownError) as info:
                await c.put(key, "x")
            assert info.value.__cause__ is not None
            in_doubt.append(trio.current_time())

        async with trio.open_nursery() as inner:
            inner.start_soon(hung_put, "h1")
            inner.start_soon(hung_put, "h2")
            with trio.fail_after(2):
                while a.requests("put") < 3:
                    await trio.sleep(0.01)
            lost_at = trio.current_time()
            await a.stop()
        assert len(in_doubt) == 2 and max(in_doubt) - lost_at < 1.0
        assert b.requests("put") == 0  # never retried elsewhere

        done: list[int] = []

        async def next_put(i: int) -> None:
            await c.put(f"n{i}", "v2")
            done.append(i)

        async with trio.open_nursery() as inner:
            for i in range(20):
                inner.start_soon(next_put, i)
            await trio.sleep(0.3)
            assert not done and b.requests("put") == 0
            # One leader probe per poll interval, however many requests are held.
            assert 1 <= b.requests("status") <= 0.3 / tc._LEADER_POLL + 2
            assert (await c.get("k", serializable=True)).kvs[0].value == b"v"  # needs no leader: not held
            b.leader = b.member_id  # the survivors elected b
            with trio.fail_after(1):
                while len(done) < 20:
                    await trio.sleep(0.01)
        assert b.requests("put") == 20
        assert (await c.get("n0")).kvs[0].value == b"v2"


async def test_a_blip_is_not_held(nursery: trio.Nursery) -> None:
    """The lost member's connection dropped but it still listens (a blip): nothing is held for it."""
    async with running(nursery, 2) as (a, b), trikv.connect([a.endpoint, b.endpoint]) as c:
        await c.put("k", "v")
        (lost,) = c._conns.values()
        await a.kick()
        with trio.fail_after(1):
            while not lost.dead:
                await trio.sleep(0.01)
        conn_b = await c._conn_for(tc.parse_endpoint(b.endpoint))
        assert conn_b is not None and c._lost  # b still names a as its leader
        with trio.fail_after(0.5):  # far below leader_loss_hold: a accepted a dial again
            await c._leader_gate(conn_b)
        assert not c._lost and b.requests("status") == 0


async def test_hold_after_a_lost_member_is_bounded(nursery: trio.Nursery) -> None:
    """A member unreachable from here only (b still follows it): the hold ends after leader_loss_hold."""
    async with running(nursery, 2) as (a, b), trikv.connect([a.endpoint, b.endpoint]) as c:
        await c.put("k", "v")
        c.leader_loss_hold = 0.3
        await a.stop()
        started = trio.current_time()
        with trio.fail_after(2):
            await c.put("k", "v2")
        assert trio.current_time() - started >= 0.2 and b.requests("put") == 1
        with trio.fail_after(0.5):  # the loss is forgotten: no more holds
            await c.put("k", "v3")


async def test_connect_skips_refused_endpoint(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,):
        async with trikv.connect([f"127.0.0.1:{free_port()}", srv.url], dial_timeout=2) as c:
            await c.put("a", "1")
            assert c.current_endpoint == srv.url


async def test_no_endpoints_error_when_all_refuse() -> None:
    with pytest.raises(errors.NoEndpointsError):
        async with trikv.connect([f"127.0.0.1:{free_port()}"], dial_timeout=0.3):
            pass


async def test_failover_to_second_endpoint_when_first_dies(nursery: trio.Nursery) -> None:
    async with running(nursery, 2) as (a, b), trikv.connect([a.endpoint, b.endpoint]) as c:
        await c.put("k", "v")
        assert c.current_endpoint == a.endpoint
        await a.stop()
        b.leader = b.member_id  # the survivors elected b
        got = await c.get("k")
        assert got.kvs[0].value == b"v" and got.header.member_id == b.member_id
        await c.put("k2", "v2")  # the next write goes to b: the old connection is known dead
        assert b.requests("put") == 1


async def test_read_is_retried_when_connection_drops_after_send(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint]) as c:
        await c.put("k", "v")
        srv.inject("range", DROP)
        got = await c.get("k")
        assert got.kvs[0].value == b"v"
        assert srv.requests("range") == 2  # sent, lost, sent again after reconnect


async def test_write_lost_after_send_is_outcome_unknown(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint]) as c:
        srv.inject("put", DROP)
        with pytest.raises(errors.OutcomeUnknownError) as info:
            await c.put("k", "v")
        assert info.value.__cause__ is not None
        assert srv.requests("put") == 1  # never blindly retried
        srv.inject("txn", DROP)
        with pytest.raises(errors.OutcomeUnknownError):
            await c.txn().then(trikv.put_op("k", "v")).commit()
        assert srv.requests("txn") == 1
        await c.put("k", "after")  # the client reconnects for the next request


async def test_write_retried_on_no_leader_only(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint]) as c:
        srv.inject("put", errors.NoLeaderError(), errors.NotCapableError())
        resp = await c.put("k", "v")
        assert resp.header.revision == 2
        assert srv.requests("put") == 3
        assert (await c.get("k")).kvs[0].version == 1  # applied exactly once

        srv.inject("put", errors.LeaderChangedError())
        with pytest.raises(errors.OutcomeUnknownError) as info:
            await c.put("k", "v2")
        assert isinstance(info.value.__cause__, errors.LeaderChangedError)
        srv.inject("delete_range", errors.TimeoutError_())
        with pytest.raises(errors.OutcomeUnknownError) as info:
            await c.delete("k")
        assert isinstance(info.value.__cause__, errors.TimeoutError_)

        srv.inject("range", errors.LeaderChangedError(), errors.TimeoutError_())
        assert (await c.get("k")).kvs[0].value == b"v"  # reads retry any unavailable error


async def test_write_in_flight_at_deadline_is_outcome_unknown(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint], request_timeout=0.3) as c:
        srv.inject("put", HANG)
        with pytest.raises(errors.OutcomeUnknownError):
            await c.put("k", "v")
        srv.inject("range", HANG)
        with pytest.raises(DeadlineExceededError):
            await c.get("k")
        srv.inject("range", errors.NoLeaderError(), *[errors.NoLeaderError()] * 50)
        with pytest.raises(errors.NoLeaderError):  # the last server error, not a bare timeout
            await c.get("k")


async def test_too_large_request_fails_locally(nursery: trio.Nursery) -> None:
    async with running(nursery) as (srv,), trikv.connect([srv.endpoint]) as c:
        with pytest.raises(MessageTooLargeError) as info:
            await c.put("big", b"a" * 2097152)
        assert "trying to send message larger than max" in str(info.value)
        assert "vs. 2097152)" in str(info.value)
        assert srv.requests("put") == 0
        with pytest.raises(errors.RequestTooLargeError):  # the server's own limit (1.5 MiB)
            await c.put("big", b"a" * 1_600_000)
        await c.put("big", b"a" * 1_500_000)
        assert len((await c.get("big")).kvs[0].value) == 1_500_000


async def _frozen_node(stream: trio.SocketStream) -> None:
    """Completes the WebSocket handshake, then never reads again: a SIGSTOPped node (no FIN, no pong)."""
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    while True:
        ws.receive_data(await stream.receive_some(65536))
        for event in ws.events():
            if isinstance(event, wsproto.events.Request):
                await stream.send_all(ws.send(wsproto.events.AcceptConnection()))
                await trio.sleep_forever()


async def test_keepalive_fails_over_from_a_frozen_node(nursery: trio.Nursery) -> None:
    serve = functools.partial(trio.serve_tcp, host="127.0.0.1")
    listeners = await nursery.start(serve, _frozen_node, 0)
    frozen = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    async with running(nursery) as (srv,):
        await srv.kick()
        async with trikv.connect(
            [frozen, srv.endpoint], keepalive_time=0.05, keepalive_timeout=0.1, request_timeout=10
        ) as c:
            assert c.current_endpoint == frozen
            with trio.fail_after(3):  # far below the request deadline: the ping noticed, not the timeout
                got = await c.get("k")
            assert got.header.member_id == srv.member_id
            assert c.current_endpoint == srv.endpoint


# --------------------------------------------------------------------------- against the real client server


async def test_interop_with_actors_server(nursery: trio.Nursery) -> None:
    member = MemoryMember(Store(), 0x1111, "fake0")
    member.leader = member.member_id
    port = await nursery.start(serve_clients, member.handlers, "127.0.0.1", 0)
    async with trikv.connect([f"127.0.0.1:{port}"]) as c:
        results: dict[int, bytes] = {}

        async def one(i: int) -> None:
            await c.put(f"k{i:03}", f"v{i}")
            results[i] = (await c.get(f"k{i:03}")).kvs[0].value

        async with trio.open_nursery() as inner:
            for i in range(100):
                inner.start_soon(one, i)
        assert results == {i: f"v{i}".encode() for i in range(100)}
        assert (await c.get("k", prefix=True, count_only=True)).count == 100
        resp = (
            await c.txn().if_(trikv.value("k000") == "v0").then(trikv.delete_op("k0", prefix=True)).commit()
        )
        assert resp.succeeded and isinstance(resp.responses[0], rpc.DeleteRangeResponse)
        assert resp.responses[0].deleted == 100
        with pytest.raises(errors.EmptyKeyError):
            await c.get("")
        with pytest.raises(MessageTooLargeError):
            await c.put("big", b"a" * 2097152)
        with pytest.raises(errors.RequestTooLargeError):
            await c.put("big", b"a" * 1_600_000)
        await c.put("big", b"a" * 1_500_000)
        assert len((await c.get("big")).kvs[0].value) == 1_500_000
        assert (await c.status()).version == "3.4.23"
