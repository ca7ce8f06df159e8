"""Watch responses are encoded once per revision for every watcher of the same shape: the hand-built CBOR
and protobuf bytes must be exactly what the generic encoders write, and the hub's live runs must keep
revisions whole within their bounds."""

from __future__ import annotations

import pytest

from trikv.actors import grpc_watch
from trikv.actors.watchers import event_size, runs
from trikv.api import codec, protocol
from trikv.api import watch as watch_api
from trikv.api.rpc import KeyValue, ResponseHeader
from trikv.api.watch import Event, EventType, WatchResponse

H = ResponseHeader(cluster_id=11, member_id=22, revision=33, raft_term=4)
PUT = Event(EventType.PUT, KeyValue(b"k", 2, 3, 1, b"v" * 40, 9))
TOMB = Event(EventType.DELETE, KeyValue(b"k", mod_revision=4), KeyValue(b"k", 2, 3, 1, b"v"))
RESPONSES = [
    WatchResponse(H, 5, events=(PUT, TOMB)),
    WatchResponse(H, 0, events=(PUT,)),
    WatchResponse(H, 1 << 40, events=(TOMB,), fragment=True),
    WatchResponse(H, -1),  # progress
    WatchResponse(H, 3, created=True),
    WatchResponse(H, 3, canceled=True, compact_revision=8, cancel_reason="x"),
]


def _generic_cbor(obj: object) -> bytes:
    fast = codec._encoders.pop(WatchResponse)
    try:
        return codec.encode(obj)
    finally:
        codec.register_encoder(WatchResponse, fast)


@pytest.mark.parametrize("resp", RESPONSES)
def test_cbor_fast_path_writes_the_generic_bytes(resp: WatchResponse) -> None:
    frame = [[7, protocol.MORE, resp], [8, protocol.MORE, resp]]
    fast = protocol.encode_frame(frame)
    assert fast == _generic_cbor(frame)
    assert protocol.decode_frame(fast)[1][2] == resp


@pytest.mark.parametrize("resp", RESPONSES)
def test_grpc_wire_bytes_are_the_protobuf_encoding(resp: WatchResponse) -> None:
    assert grpc_watch.watch_response_wire(resp).SerializeToString() == (
        grpc_watch.watch_response_pb(resp).SerializeToString()
    )


def test_shared_events_are_encoded_once() -> None:
    calls: list[object] = []
    cache = watch_api.IdentityCache(size=2)
    events = (PUT, TOMB)

    def build(obj: object) -> bytes:
        calls.append(obj)
        return codec.encode(obj)

    for _ in range(3):
        cache.get(events, build)
    assert len(calls) == 1
    cache.get((PUT,), build)
    cache.get((TOMB,), build)  # evicts the oldest entry
    cache.get(events, build)
    assert len(calls) == 4


def test_the_cache_is_bounded_in_bytes() -> None:
    cache = watch_api.IdentityCache(size=1000, max_bytes=100)
    held = [tuple([PUT] * i) for i in range(1, 30)]
    for obj in held:
        cache.get(obj, lambda o: b"x" * 30)
    assert cache.bytes <= 100 and len(cache._entries) == 3  # the newest three


def _ev(rev: int, key: bytes = b"k", size: int = 10) -> Event:
    return Event(EventType.PUT, KeyValue(key, rev, rev, 1, b"x" * size))


def test_runs_keep_revisions_whole_within_the_bounds() -> None:
    evs = [_ev(r, b"k%d" % i) for r in range(1, 11) for i in range(3)]  # 10 revisions of 3 events
    whole = list(runs(evs, 1000, 10**9))
    assert whole == [evs] and whole[0] is evs  # one run: no copy
    by_count = list(runs(evs, 7, 10**9))
    assert [len(r) for r in by_count] == [6, 6, 6, 6, 6]
    per_rev = event_size(evs[0]) * 3
    by_bytes = list(runs(evs, 1000, per_rev * 2))
    assert [len(r) for r in by_bytes] == [6] * 5
    assert [ev for r in by_bytes for ev in r] == evs
    for split in (by_count, by_bytes):
        seen = [{ev.kv.mod_revision for ev in r} for r in split]
        assert sum(len(s) for s in seen) == len(set().union(*seen)) == 10  # no revision in two runs
    big = [_ev(1, size=5000), _ev(2)]  # a revision larger than the bound travels alone
    assert [len(r) for r in runs(big, 1000, 100)] == [1, 1]
