"""Fuzz target: the client frame decoder (CBOR WebSocket, actors/wsession.py + trikv/api/codec.py).

Arbitrary frames (raw bytes, text, any CBOR value, items with registered shapes whose fields are right or
wrong) go to a real member over a real WebSocket. Every answer must be a typed item (`[id, OK|ERR|MORE, x]`,
an ERR carrying etcd's `{"code", "message"}`), no traceback may be logged, and a valid request must then
be answered on the same connection (unless the server closed it with a policy code) and on a new one.
"""

from __future__ import annotations

from typing import Any

import cbor2
import trio
import trio_websocket
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz import shapes
from tests.fuzz.conftest import Member, Tracebacks, budget
from trikv.api import codec, errors, lease, maintenance, protocol, rpc, snapshot, watch

PROBE_ID = 987654321
TIMEOUT = 15.0  # seconds per example before it counts as a hang

# Ops whose valid requests would reconfigure the one-member cluster out of quorum or raise a cluster-wide
# alarm: legitimate admin actions, not hostile input, so the structured items leave them out.
_RECONFIGURE = {"member_add", "member_update", "member_promote", "move_leader", maintenance.ALARM_OP}
OPS = sorted(op for op in protocol.OPS if op not in _RECONFIGURE)
STREAM_OPS = sorted(protocol.STREAM_OPS)
REQUEST_SHAPES = [
    *(protocol.OPS[op] for op in OPS),
    watch.WatchRequest,
    watch.WatchCreateRequest,
    lease.LeaseKeepAliveRequest,
    snapshot.SnapshotRequest,
    rpc.Compare,
]

items = st.tuples(
    st.one_of(st.integers(0, 5), shapes.INTS, shapes.SCALARS),  # id (the frame check wants an int)
    st.one_of(st.sampled_from([*OPS, *STREAM_OPS, protocol.STREAM_CLOSE]), shapes.SCALARS),  # op
    st.one_of(shapes.any_shape(REQUEST_SHAPES), shapes.any_shape(), shapes.any_value(6)),  # payload
).map(list)

# A well-formed item whose op matches its payload's shape: it gets past the decoder to the checks, the
# handlers and (when every field is right) the Raft log and the apply path.
deep_items = st.tuples(
    st.integers(1, 2**32),
    st.sampled_from(
        [(op, protocol.OPS[op]) for op in OPS] + [(op, s[0]) for op, s in protocol.STREAM_OPS.items()]
    ),
).flatmap(lambda t: st.tuples(st.just(t[0]), st.just(t[1][0]), shapes.typed(t[1][1])).map(list))

frames = st.one_of(
    st.lists(deep_items, min_size=1, max_size=3).map(shapes.dumps),
    st.lists(st.one_of(deep_items, items), min_size=1, max_size=3).map(shapes.dumps),
    st.binary(max_size=200),  # raw bytes
    st.text(max_size=40),  # a text message
    shapes.any_value().map(shapes.dumps),  # any CBOR value
    st.lists(items, min_size=0, max_size=4).map(shapes.dumps),  # a frame of items
    st.lists(items, min_size=1, max_size=3)
    .map(shapes.dumps)
    .flatmap(  # ... cut short or extended
        lambda b: st.sampled_from([b[: len(b) // 2], b[:-1], b + b"\x00", b + b"\xff"])
    ),
)


def probe_frame() -> bytes:
    return codec.encode([[PROBE_ID, "range", rpc.RangeRequest(key=b"fuzz-probe")]])


def check_item(item: Any) -> None:
    assert isinstance(item, list) and len(item) == 3, item
    request_id, status, payload = item
    assert isinstance(request_id, int)
    assert status in (protocol.OK, protocol.ERR, protocol.MORE), item
    if status == protocol.ERR:
        assert isinstance(payload, dict) and set(payload) == {"code", "message"}, payload
        assert isinstance(payload["message"], str) and payload["message"], payload
        assert payload["code"] not in (errors.GrpcCode.INTERNAL, errors.GrpcCode.UNKNOWN), payload


async def until_probe(ws: trio_websocket.WebSocketConnection) -> bool:
    """Read answers until the probe's; check each. False if the server closed the connection first."""
    while True:
        try:
            message = await ws.get_message()
        except trio_websocket.ConnectionClosed as closed:
            assert closed.reason is not None
            assert closed.reason.code in (1000, 1008, 1009), closed.reason  # normal, policy, too big
            return False
        assert isinstance(message, bytes)
        answer = codec.decode(message)
        assert isinstance(answer, list)
        for item in answer:
            check_item(item)
            if item[0] != PROBE_ID:  # what the examples reached (--hypothesis-show-statistics)
                event("ERR " + item[2]["message"][:40] if item[1] == protocol.ERR else f"answer {item[1]}")
            if item[0] == PROBE_ID:
                assert item[1] == protocol.OK and isinstance(item[2], rpc.RangeResponse), item
                return True


async def exchange(port: int, fuzz: list[bytes | str]) -> None:
    url = f"ws://127.0.0.1:{port}{protocol.WS_PATH}"
    with trio.fail_after(TIMEOUT):
        async with trio_websocket.open_websocket_url(url, max_message_size=1 << 26) as ws:
            for frame in fuzz:
                await ws.send_message(frame)
            await ws.send_message(probe_frame())
            same = await until_probe(ws)
        if not same:  # the server may close a connection that broke its contract; a new one must work
            async with trio_websocket.open_websocket_url(url, max_message_size=1 << 26) as ws:
                await ws.send_message(probe_frame())
                assert await until_probe(ws)


def _watch(**kw: Any) -> watch.WatchRequest:
    return watch.WatchRequest(create_request=watch.WatchCreateRequest(key=b"k", **kw))


_PUT = cbor2.CBORTag(codec._by_type[rpc.PutRequest][0], [b"k", b"v", 0, False, False, False])


@budget(examples=80, deadline_ms=20_000)
@given(fuzz=st.lists(frames, min_size=1, max_size=4))
@example(fuzz=[b""])
@example(fuzz=["text"])
@example(fuzz=[shapes.dumps([[1, "put", _PUT], [1, "put", _PUT]])])  # a duplicate id in one frame
@example(fuzz=[shapes.dumps([[2**64, "put", _PUT]])])  # an id beyond uint64
@example(fuzz=[shapes.dumps([[3, "watch", None], [3, "close", None], [3, "close", None]])])
@example(fuzz=[codec.encode([[4, "watch", _watch(start_revision=-5)]])])  # bug: killed the WatchHub
@example(
    fuzz=[codec.encode([[5, "hashkv", maintenance.HashKVRequest(revision=-1199)]])]
)  # bug: internal error
def test_client_frames(member: Member, module_tracebacks: Tracebacks, fuzz: list[bytes | str]) -> None:
    trio.run(exchange, member.client_port, fuzz)
    module_tracebacks.check()
    member.alive()
