"""The gateway's hand-written encoders of the KV shapes write what the generic proto3 rule writes."""

from __future__ import annotations

import itertools
import json
import random

from trikv.actors import gateway
from trikv.actors.gateway import _proto3, header_json, kv_json, put_json, range_json
from trikv.api import rpc


def generic_kv(kv: rpc.KeyValue) -> dict[str, object]:
    return _proto3(
        ("key", kv.key),
        ("create_revision", kv.create_revision),
        ("mod_revision", kv.mod_revision),
        ("version", kv.version),
        ("value", kv.value),
        ("lease", kv.lease),
    )


def generic_header(h: rpc.ResponseHeader) -> dict[str, object]:
    return _proto3(
        ("cluster_id", h.cluster_id),
        ("member_id", h.member_id),
        ("revision", h.revision),
        ("raft_term", h.raft_term),
    )


KVS = [
    rpc.KeyValue(k, c, m, v, val, lease)
    for k, c, m, v, val, lease in itertools.product(
        (b"", b"a/\xff"), (0, 7), (0, 9), (0, 1), (b"", b"<&>\x00" * 50), (0, 2**62 + 1)
    )
]
HEADERS = [rpc.ResponseHeader(*vals) for vals in itertools.product((0, 2**64 - 1), (0, 3), (0, 1), (0, 2))]


def test_kv_and_header_encoders_match_the_generic_rule() -> None:
    for kv in KVS:
        assert kv_json(kv) == generic_kv(kv)
        assert list(kv_json(kv)) == list(generic_kv(kv))  # field order too
    for h in HEADERS:
        assert header_json(h) == generic_header(h) and list(header_json(h)) == list(generic_header(h))


def test_range_and_put_encoders_match_the_generic_rule() -> None:
    for h, kvs, more, count in itertools.product(HEADERS[:3], ((), tuple(KVS[:3])), (False, True), (0, 3)):
        r = rpc.RangeResponse(h, kvs, more, count)
        want = _proto3(
            ("header", generic_header(h)),
            ("kvs", [generic_kv(kv) for kv in kvs]),
            ("more", more),
            ("count", count),
        )
        assert gateway.go_json(range_json(r)) == gateway.go_json(want)
    for prev in (None, KVS[0], KVS[-1]):
        p = rpc.PutResponse(HEADERS[-1], prev)
        want = _proto3(("header", generic_header(p.header)), ("prev_kv", prev and generic_kv(prev)))
        assert gateway.go_json(put_json(p)) == gateway.go_json(want)


def test_go_json_writes_what_json_writes_with_go_html_escapes() -> None:
    rnd = random.Random(7)
    chars = [chr(i) for i in range(0x250)] + ["\u2028", "\u2029", "\ue000", "\U0001f600", "\x7f"]
    for _ in range(3000):
        s = "".join(rnd.choice(chars) for _ in range(rnd.randrange(10)))
        obj = {"a": s, s: [1, True, False, None, -5, 2**63 - 1, {"x": s}], "n": ""}
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        for raw, esc in (
            ("<", "\\u003c"),
            (">", "\\u003e"),
            ("&", "\\u0026"),
            ("\u2028", "\\u2028"),
            ("\u2029", "\\u2029"),
        ):
            text = text.replace(raw, esc)
        assert gateway.go_json(obj) == text.encode()
