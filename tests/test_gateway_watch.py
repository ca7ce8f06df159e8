"""The gateway's watch shapes: grpc-gateway's JSON both ways, and the per-revision encoding cache giving
exactly the bytes of the plain encoder."""

from __future__ import annotations

import json

import pytest

from trikv.actors.gateway import go_json
from trikv.actors.gateway_requests import BadRequestError
from trikv.actors.gateway_watch import watch_requests, watch_response_json, watch_response_line
from trikv.api.rpc import KeyValue, ResponseHeader
from trikv.api.watch import Event, EventType, FilterType, WatchResponse

HEADER = ResponseHeader(cluster_id=7, member_id=9, revision=12, raft_term=2)


def test_requests_from_a_body_of_concatenated_objects() -> None:
    body = (
        b'{"create_request":{"key":"Zm9v","range_end":"Zm9w","start_revision":"3","prev_kv":true,'
        b'"filters":["NODELETE"],"watch_id":5}}\n{"progress_request":{}} {"cancel_request":{"watch_id":"5"}}'
    )
    create, progress, cancel = watch_requests(body)
    assert create.create_request is not None
    c = create.create_request
    assert (c.key, c.range_end, c.start_revision, c.prev_kv, c.watch_id) == (b"foo", b"fop", 3, True, 5)
    assert c.filters == (FilterType.NODELETE,)
    assert progress.progress_request is not None
    assert cancel.cancel_request is not None and cancel.cancel_request.watch_id == 5
    with pytest.raises(BadRequestError):
        watch_requests(b'{"create_request":{"key":1}}')
    with pytest.raises(BadRequestError):
        watch_requests(b"")


def test_response_lines_match_grpc_gateway_and_the_cache_changes_no_byte() -> None:
    events = (
        Event(EventType.PUT, KeyValue(b"foo", 3, 12, 2, b"bar<&>"), KeyValue(b"foo", 3, 3, 1, b"old")),
        Event(EventType.DELETE, KeyValue(b"foo/x", 0, 12, 0)),
    )
    for wid in (0, 5):
        resp = WatchResponse(HEADER, wid, events=events)
        line = watch_response_line(resp)
        assert line == go_json({"result": watch_response_json(resp)}) + b"\n"
        assert watch_response_line(resp) == line  # a cache hit
    obj = json.loads(watch_response_line(WatchResponse(HEADER, 5, events=events)))
    assert obj["result"]["watch_id"] == "5" and obj["result"]["header"]["revision"] == "12"
    assert obj["result"]["events"][1] == {"type": "DELETE", "kv": {"key": "Zm9vL3g=", "mod_revision": "12"}}
    created = watch_response_line(WatchResponse(HEADER, 0, created=True))
    assert json.loads(created) == {
        "result": {
            "header": {"cluster_id": "7", "member_id": "9", "revision": "12", "raft_term": "2"},
            "created": True,
        }
    }
