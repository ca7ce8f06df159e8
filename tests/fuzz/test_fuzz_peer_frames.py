"""Fuzz target: the peer frame decoder (actors/peer_server.py, actors/peerwire.py, trikv/api/raftpb.py).

A real member's peer port gets, over a real WebSocket: arbitrary first frames (where the hello belongs);
a valid hello of a link kind followed by arbitrary frames, including Raft messages addressed from/to the
link whose fields are of their types or of any type; forwarded requests of any shape. The member must
refuse what is not well formed (closing the link, or answering a forward with a typed error), log no
traceback, stay up, and answer a cluster_info hello and a client request afterwards.
"""

from __future__ import annotations

from typing import Any

import attrs
import cbor2
import trio
import trio_websocket
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz import shapes
from tests.fuzz.conftest import Member, Tracebacks, budget
from tests.fuzz.test_fuzz_client_frames import PROBE_ID, check_item, probe_frame
from trikv.actors.peerwire import PEER_PATH
from trikv.api import codec, errors, lease, protocol, raftframe, raftpb
from trikv.api.internal import PeerHello, PeerHelloReply
from trikv.api.records import Entry, EntryType

TIMEOUT = 15.0
KINDS = ["stream", "snapshot", "forward", "snapshot_stream", "cluster_info", "bogus"]
MESSAGE_TAG = codec._by_type[raftpb.Message][0]


# A HUP (local-only: "campaign now") on the link, as the fuzzer first found it (`addressed` sets from/to).
LOCAL_HUP = cbor2.loads(codec.encode(raftpb.Message(raftpb.MessageType.HUP)))
# A proposal without entries (Raft refused it with a RaftError, logged as a traceback).
EMPTY_PROP = cbor2.loads(codec.encode(raftpb.Message(raftpb.MessageType.PROP)))
# An append whose term is None (the codec does not check field types: the Raft core raised a TypeError).
_APP = cbor2.loads(codec.encode(raftpb.Message(raftpb.MessageType.APP)))
UNTYPED_APP = cbor2.CBORTag(_APP.tag, [*_APP.value[:3], None, *_APP.value[4:]])


U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
binary_messages = st.builds(
    raftpb.Message,
    st.sampled_from(list(raftpb.MessageType)),
    U64,
    U64,
    st.one_of(st.integers(0, 5), U64),
    st.one_of(st.integers(0, 5), U64),
    st.one_of(st.integers(0, 50), U64),
    st.lists(
        st.builds(
            Entry, st.integers(0, 5), st.integers(0, 50), st.sampled_from(list(EntryType)), st.binary(max_size=40)
        ),
        max_size=3,
    ).map(tuple),
    st.one_of(st.integers(0, 50), U64),
    st.booleans(),
    U64,
    st.binary(max_size=16),
    st.none(),
    st.booleans(),
)


def raft_message() -> st.SearchStrategy[cbor2.CBORTag]:
    """A Raft message whose from/to `addressed` fills in (the strategy is built once: a shape strategy is
    large, and hypothesis validates a new one on every draw)."""
    return shapes.shape(raftpb.Message)


def addressed(tag: cbor2.CBORTag, member_id: int) -> cbor2.CBORTag:
    """The message on the link: from and to the member itself (the only member of its cluster)."""
    if len(tag.value) < 3:
        return tag
    return cbor2.CBORTag(MESSAGE_TAG, [tag.value[0], member_id, member_id, *tag.value[3:]])


@st.composite
def sessions(draw: st.DrawFn) -> tuple[str | None, list[bytes]]:
    """(hello kind or None for a fuzzed first frame, the frames that follow)."""
    kind = draw(st.one_of(st.none(), st.sampled_from(KINDS)))
    frame = st.one_of(
        st.binary(max_size=100),
        st.binary(max_size=100).map(lambda b: bytes([raftframe.BINARY]) + b),  # the binary Raft frame's marker
        shapes.any_value().map(shapes.dumps),
        shapes.any_shape().map(shapes.dumps),
        st.lists(shapes.any_shape([raftpb.Message]), max_size=3).map(shapes.dumps),
        st.sampled_from(
            [lease.LeaseKeepAliveRequest, lease.LeaseTimeToLiveRequest, protocol.MemberPromoteRequest]
        )
        .flatmap(shapes.shape)
        .map(shapes.dumps),
    )
    return kind, draw(st.lists(frame, min_size=1, max_size=3))


async def exchange(
    m: Member, kind: str | None, frames: list[bytes], typed: list[list[Any]], binary: list[bytes] = ()
) -> None:
    ident = m.node.ident
    url = f"ws://127.0.0.1:{m.peer_port}{PEER_PATH}"
    with trio.fail_after(TIMEOUT):
        async with trio_websocket.open_websocket_url(url, max_message_size=1 << 26) as ws:
            if kind is not None:
                await ws.send_message(
                    codec.encode(PeerHello(kind, ident.cluster_id, ident.member_id, ident.member_id))
                )
            try:
                for frame in [*frames, *(shapes.dumps(msgs) for msgs in typed), *binary]:
                    await ws.send_message(frame)
                with trio.move_on_after(0.05):  # the answers (hello reply, forwarded answers) or the close
                    while True:
                        await ws.get_message()
            except trio_websocket.ConnectionClosed:
                pass
        # the member still serves its peers and its clients
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.send_message(codec.encode(PeerHello("cluster_info", 0, 0, 0)))
            reply = codec.decode(await ws.get_message())
            assert isinstance(reply, PeerHelloReply) and reply.ok and reply.cluster_id == ident.cluster_id
        await client_probe(m)


async def client_probe(m: Member) -> None:
    """A client request is answered. A Raft message of a higher term legitimately deposes the leader (as any
    member's would): 'no leader' is asked again until the member has elected itself once more."""
    while True:
        async with trio_websocket.open_websocket_url(
            f"ws://127.0.0.1:{m.client_port}{protocol.WS_PATH}"
        ) as ws:
            await ws.send_message(probe_frame())
            answer = codec.decode(await ws.get_message())
        assert isinstance(answer, list) and len(answer) == 1, answer
        check_item(answer[0])
        _, status, payload = answer[0]
        if status == protocol.ERR and payload["code"] == errors.GrpcCode.UNAVAILABLE:
            await trio.sleep(0.05)
            continue
        assert answer[0][0] == PROBE_ID and status == protocol.OK, answer
        return


@budget(examples=40, deadline_ms=20_000)
@given(session=sessions())
@example(session=("forward", [b"\xff"]))  # bug: a forwarded frame that is not CBOR (traceback)
def test_peer_frames(
    member: Member, module_tracebacks: Tracebacks, session: tuple[str | None, list[bytes]]
) -> None:
    kind, frames = session
    trio.run(exchange, member, kind, frames, [])
    module_tracebacks.check()
    member.alive()


@budget(examples=80, deadline_ms=20_000)
@given(msgs=st.lists(st.lists(raft_message(), min_size=1, max_size=3), max_size=2))
@example(msgs=[[LOCAL_HUP]])  # bug: a local-only type from a link was logged by Raft with a traceback
@example(msgs=[[EMPTY_PROP]])  # bug: an empty proposal from a link was logged by Raft with a traceback
@example(msgs=[[UNTYPED_APP]])  # bug: an ill-typed field reached Raft (a TypeError, logged as a traceback)
def test_peer_raft_messages(member: Member, module_tracebacks: Tracebacks, msgs: list[list[Any]]) -> None:
    """Raft messages on a checked link: typed fields reach Raft, ill-typed ones are refused."""
    me = member.node.ident.member_id
    trio.run(exchange, member, "stream", [], [[addressed(m, me) for m in batch] for batch in msgs])
    module_tracebacks.check()
    member.alive()


@budget(examples=60, deadline_ms=20_000)
@given(msgs=st.lists(st.lists(binary_messages, min_size=1, max_size=3), max_size=2))
def test_peer_binary_raft_frames(
    member: Member, module_tracebacks: Tracebacks, msgs: list[list[raftpb.Message]]
) -> None:
    """Raft messages of every type and any uint64 fields in the binary layout reach Raft (or are refused as
    local-only / malformed proposals) without a traceback; the member stays up and serving."""
    me = member.node.ident.member_id
    frames = [raftframe.encode([attrs.evolve(m, to=me, frm=me) for m in batch]) for batch in msgs]
    assert all(f[0] == raftframe.BINARY for f in frames)
    trio.run(exchange, member, "stream", [], [], frames)
    module_tracebacks.check()
    member.alive()
