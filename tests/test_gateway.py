"""The HTTP/JSON gateway over real loopback sockets, against an in-memory stand-in for the Node.

Expected bodies are etcd 3.4's own, captured with curl (the etcd 3.4 reference, "HTTP/JSON gateway"); the
fake backend starts from the state that cluster was in, so they match byte for byte.
"""

from __future__ import annotations

import base64
import functools
import json
import sys
from pathlib import Path
from typing import Any

import attrs
import h11
import pytest
import trio

from trikv.actors import gateway
from trikv.actors.gateway import gateway_routes
from trikv.actors.server import serve_clients
from trikv.api import errors, protocol, rpc

HOST = "127.0.0.1"
CLUSTER = 1622177361155699721
MEMBER = 13195394291058371180
# The load generator that drove etcd 3.4's HTTP/JSON gateway, copied verbatim (tests/fixtures/README.md).
LOAD_TOOL = Path(__file__).resolve().parent / "fixtures" / "etcd_load.py.txt"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeBackend:
    """A flat, single-version key space with etcd's revision bookkeeping; records every request it serves.

    Special keys: b"noleader" raises etcd's no-leader error, b"boom" raises a bug.
    """

    def __init__(self) -> None:
        self.rev = 9046
        self.compacted = 9000
        self.kv: dict[bytes, rpc.KeyValue] = {b"foo": rpc.KeyValue(b"foo", 35, 9046, 3, b"bar")}
        self.calls: list[tuple[str, Any]] = []

    def header(self, revision: int | None = None) -> rpc.ResponseHeader:
        rev = self.rev if revision is None else revision
        return rpc.ResponseHeader(cluster_id=CLUSTER, member_id=MEMBER, revision=rev, raft_term=6)

    async def handle(self, req: Any) -> Any:
        op = protocol.op_of(req)
        self.calls.append((op, req))
        key = getattr(req, "key", b"k")
        if key == b"noleader":
            raise errors.NoLeaderError()
        if key == b"boom":
            raise RuntimeError("backend bug")
        await trio.lowlevel.checkpoint()
        if op in ("put", "delete_range"):
            resp = self._write(req, self.rev + 1)
            return attrs.evolve(resp, header=self.header())
        if op == "range":
            return attrs.evolve(self._range(req), header=self.header())
        if op == "txn":
            return self._txn(req)
        if op == "compact":
            self.compacted = req.revision
            return rpc.CompactionResponse(self.header())
        if op == "status":
            return protocol.StatusResponse(
                self.header(),
                version="3.4.23",
                db_size=24576000,
                leader=MEMBER,
                raft_index=9109,
                raft_term=6,
                raft_applied_index=9109,
                db_size_in_use=24576000,
            )
        if op == "member_list":
            members = [
                protocol.Member(
                    id_, f"etcdnode{n}", (f"http://127.0.0.1:{p}2380",), (f"http://127.0.0.1:{p}2379",)
                )
                for id_, n, p in (
                    (11417610130673999598, 2, "2"),
                    (MEMBER, 0, ""),
                    (15985099378392235387, 1, "1"),
                )
            ]
            return protocol.MemberListResponse(attrs.evolve(self.header(), revision=0), tuple(members))
        raise AssertionError(op)

    def _keys(self, key: bytes, end: bytes) -> list[bytes]:
        if not end:
            return [key] if key in self.kv else []
        return sorted(k for k in self.kv if key <= k and (end == b"\0" or k < end))

    def _range(self, req: rpc.RangeRequest) -> rpc.RangeResponse:
        if 0 < req.revision <= self.compacted:
            raise errors.CompactedError()
        if req.revision > self.rev:
            raise errors.FutureRevError()
        keys = self._keys(req.key, req.range_end)
        if req.count_only:
            return rpc.RangeResponse(self.header(), (), False, len(keys))
        shown = keys[: req.limit] if req.limit else keys
        kvs = [self.kv[k] for k in shown]
        if req.keys_only:
            kvs = [attrs.evolve(kv, value=b"") for kv in kvs]
        return rpc.RangeResponse(self.header(), tuple(kvs), len(shown) < len(keys), len(keys))

    def _write(self, req: Any, rev: int) -> Any:
        """A put or delete at revision `rev` (a txn's writes share one revision)."""
        if not req.key:
            raise errors.EmptyKeyError()
        self.rev = rev
        if isinstance(req, rpc.PutRequest):
            prev = self.kv.get(req.key)
            create, version = (prev.create_revision, prev.version) if prev else (rev, 0)
            self.kv[req.key] = rpc.KeyValue(req.key, create, rev, version + 1, req.value, req.lease)
            return rpc.PutResponse(self.header(), prev if req.prev_kv else None)
        gone = [self.kv.pop(k) for k in self._keys(req.key, req.range_end)]
        return rpc.DeleteRangeResponse(self.header(), len(gone), tuple(gone) if req.prev_kv else ())

    def _holds(self, c: rpc.Compare) -> bool:
        kv = self.kv.get(c.key, rpc.KeyValue(c.key))
        actual = {
            rpc.CompareTarget.VERSION: kv.version,
            rpc.CompareTarget.CREATE: kv.create_revision,
            rpc.CompareTarget.MOD: kv.mod_revision,
            rpc.CompareTarget.VALUE: kv.value,
            rpc.CompareTarget.LEASE: kv.lease,
        }[c.target]
        want: Any = c.target_value
        return {
            rpc.CompareResult.EQUAL: actual == want,
            rpc.CompareResult.NOT_EQUAL: actual != want,
            rpc.CompareResult.GREATER: actual > want,
            rpc.CompareResult.LESS: actual < want,
        }[c.result]

    def _txn(self, req: rpc.TxnRequest, rev: int | None = None) -> rpc.TxnResponse:
        rev = self.rev + 1 if rev is None else rev
        ok = all(self._holds(c) for c in req.compare)
        results: list[Any] = []
        for op in req.success if ok else req.failure:
            if isinstance(op, rpc.RangeRequest):
                results.append(self._range(op))
            elif isinstance(op, rpc.TxnRequest):
                results.append(self._txn(op, rev))
            else:
                results.append(self._write(op, rev))
        inner = rpc.ResponseHeader(revision=self.rev)  # etcd: a txn's inner responses carry only the revision
        results = [attrs.evolve(r, header=inner) for r in results]
        return rpc.TxnResponse(self.header(), ok, tuple(results))

    async def health(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> dict[str, str]:
        return {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}


@attrs.define
class Server:
    port: int
    backend: FakeBackend


async def start(nursery: trio.Nursery, **kw: Any) -> Server:
    backend = FakeBackend()
    routes = gateway_routes(backend, **kw)
    port = await nursery.start(functools.partial(serve_clients, backend, HOST, 0, routes=routes, **kw))
    return Server(port, backend)


@pytest.fixture
async def server(nursery: trio.Nursery) -> Server:
    return await start(nursery)


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def request(port: int, path: str, body: bytes | str = b"", method: str = "POST") -> Reply:
    """One HTTP/1.1 exchange, parsed with h11 as a client."""
    data = body.encode() if isinstance(body, str) else body
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", f"{HOST}:{port}"), ("content-length", str(len(data))), ("connection", "close")]
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            out = conn.send(h11.Request(method=method, target=path, headers=headers)) or b""
            out += (conn.send(h11.Data(data=data)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            await stream.send_all(out)
            resp: h11.Response | None = None
            got = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    resp = event
                elif isinstance(event, h11.Data):
                    got += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
    assert resp is not None
    hdrs = {k.decode(): v.decode() for k, v in resp.headers}
    return Reply(resp.status_code, hdrs, bytes(got))


# --------------------------------------------------------------------------- etcd's own transcript

# (path, request body, etcd 3.4's response body) in the order they were captured; the state carries over.
TRANSCRIPT = [
    (
        "/v3/kv/put",
        '{"key":"Zm9v","value":"YmFy"}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9047","raft_term":"6"}}',
    ),
    (
        "/v3/kv/range",
        '{"key":"Zm9v"}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9047","raft_term":"6"},"kvs":[{"key":"Zm9v","create_revision":"35","mod_revision":"9047","version":"4","value":"YmFy"}],"count":"1"}',
    ),
    (
        "/v3/kv/range",
        '{"key":"Zm9v","serializable":true}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9047","raft_term":"6"},"kvs":[{"key":"Zm9v","create_revision":"35","mod_revision":"9047","version":"4","value":"YmFy"}],"count":"1"}',
    ),
    (
        "/v3/kv/range",
        '{"key":"bm9zdWNoa2V5"}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9047","raft_term":"6"}}',
    ),
    (
        "/v3/kv/range",
        '{"key":"Zm9v","range_end":"Zm9w","count_only":true}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9047","raft_term":"6"},"count":"1"}',
    ),
    (
        "/v3/kv/put",
        '{"key":"Zm9v","value":"YmFy","prev_kv":true}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9048","raft_term":"6"},"prev_kv":{"key":"Zm9v","create_revision":"35","mod_revision":"9047","version":"4","value":"YmFy"}}',
    ),
    (
        "/v3/kv/deleterange",
        '{"key":"Zm9v"}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9049","raft_term":"6"},"deleted":"1"}',
    ),
    (
        "/v3/kv/txn",
        '{"compare":[{"target":"CREATE","key":"Zm9v","create_revision":"0"}],"success":[{"request_put":{"key":"Zm9v","value":"YmFy"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9050","raft_term":"6"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"9050"}}}]}',
    ),
    (
        "/v3/kv/txn",
        '{"compare":[{"target":"CREATE","key":"Zm9v","create_revision":"0"}],"success":[{"request_put":{"key":"Zm9v","value":"YmFy"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}',
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9050","raft_term":"6"},"responses":[{"response_range":{"header":{"revision":"9050"},"kvs":[{"key":"Zm9v","create_revision":"9050","mod_revision":"9050","version":"1","value":"YmFy"}],"count":"1"}}]}',
    ),
    (
        "/v3/maintenance/status",
        "{}",
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","revision":"9050","raft_term":"6"},"version":"3.4.23","dbSize":"24576000","leader":"13195394291058371180","raftIndex":"9109","raftTerm":"6","raftAppliedIndex":"9109","dbSizeInUse":"24576000"}',
    ),
    (
        "/v3/cluster/member/list",
        "{}",
        '{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180","raft_term":"6"},"members":[{"ID":"11417610130673999598","name":"etcdnode2","peerURLs":["http://127.0.0.1:22380"],"clientURLs":["http://127.0.0.1:22379"]},{"ID":"13195394291058371180","name":"etcdnode0","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]},{"ID":"15985099378392235387","name":"etcdnode1","peerURLs":["http://127.0.0.1:12380"],"clientURLs":["http://127.0.0.1:12379"]}]}',
    ),
    (
        "/v3/kv/put",
        '{"key":""}',
        '{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}',
    ),
    (
        "/v3/kv/put",
        "not json",
        """{"error":"invalid character 'o' in literal null (expecting 'u')","message":"invalid character 'o' in literal null (expecting 'u')","code":3}""",
    ),
    (
        "/v3/kv/range",
        '{"key":"Zm9v","revision":3}',
        '{"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11}',
    ),
]


async def test_etcd_transcript_byte_for_byte(server: Server) -> None:
    for path, body, want in TRANSCRIPT:
        reply = await request(server.port, path, body)
        assert reply.body.decode() == want, (path, body)
        assert reply.status == (400 if '"error"' in want else 200), (path, body)
        assert reply.headers["content-type"] == "application/json"


async def test_requests_reach_the_backend_as_typed_shapes(server: Server) -> None:
    await request(
        server.port, "/v3/kv/range", '{"key":"Zm9v","range_end":"AA==","limit":"5","revision":9046}'
    )
    await request(server.port, "/v3/kv/put", '{"key":"YQ==","value":"Yg==","lease":"7","ignore_lease":true}')
    await request(server.port, "/v3/kv/compaction", '{"revision":"9001","physical":true}')
    assert server.backend.calls == [
        ("range", rpc.RangeRequest(b"foo", b"\0", limit=5, revision=9046)),
        ("put", rpc.PutRequest(b"a", b"b", lease=7, ignore_lease=True)),
        ("compact", rpc.CompactionRequest(9001, physical=True)),
    ]


async def test_jsonpb_leniency(server: Server) -> None:
    """camelCase names, enums by number, unknown fields, trailing bytes and URL-safe base64 all decode."""
    body = '{"key":"-_8=","rangeEnd":"Zm9w","sortOrder":2,"sortTarget":"MOD","keysOnly":true,"bogus":1,"minModRevision":null} trailing'
    reply = await request(server.port, "/v3/kv/range", body)
    assert reply.status == 200, reply
    assert server.backend.calls[-1] == (
        "range",
        rpc.RangeRequest(
            b"\xfb\xff",
            b"fop",
            sort_order=rpc.SortOrder.DESCEND,
            sort_target=rpc.SortTarget.MOD,
            keys_only=True,
        ),
    )
    # An empty body is an empty request (grpc-gateway ignores io.EOF): here, a put without a key.
    reply = await request(server.port, "/v3/kv/put", b"")
    assert reply.status == 400 and reply.json()["error"] == "etcdserver: key is not provided"


async def test_range_flags_and_omitted_fields(server: Server) -> None:
    for k in (b"a1", b"a2", b"a3"):
        await request(server.port, "/v3/kv/put", json.dumps({"key": b64(k), "value": b64(b"v")}))
    body = {"key": b64(b"a"), "range_end": b64(b"b"), "limit": 2, "keys_only": True}
    got = (await request(server.port, "/v3/kv/range", json.dumps(body))).json()
    assert got["more"] is True and got["count"] == "3"
    assert got["kvs"] == [
        {"key": b64(b"a1"), "create_revision": "9047", "mod_revision": "9047", "version": "1"},
        {"key": b64(b"a2"), "create_revision": "9048", "mod_revision": "9048", "version": "1"},
    ]
    body = {"key": b64(b"a"), "range_end": b64(b"b")}
    got = (await request(server.port, "/v3/kv/range", json.dumps(body))).json()
    assert "more" not in got and len(got["kvs"]) == 3 and "value" in got["kvs"][0]
    got = (
        await request(server.port, "/v3/kv/deleterange", json.dumps({"key": b64(b"zz"), "prev_kv": True}))
    ).json()
    assert set(got) == {"header"}  # nothing deleted: no "deleted", no "prev_kvs"


async def test_txn_compares_and_every_op(server: Server) -> None:
    foo = b64(b"foo")
    body = {
        "compare": [
            {"target": "VERSION", "result": "EQUAL", "key": foo, "version": "3"},
            {"target": "CREATE", "result": "LESS", "key": foo, "create_revision": 36},
            {"target": "MOD", "result": "GREATER", "key": foo, "mod_revision": "9045"},
            {"target": "VALUE", "result": "NOT_EQUAL", "key": foo, "value": b64(b"baz")},
            {"target": "LEASE", "key": foo, "lease": "0"},
        ],
        "success": [
            {"request_delete_range": {"key": foo, "prev_kv": True}},
            {"requestTxn": {"success": [{"request_put": {"key": b64(b"n"), "value": b64(b"v")}}]}},
        ],
    }
    reply = await request(server.port, "/v3/kv/txn", json.dumps(body))
    assert reply.status == 200, reply
    _, req = server.backend.calls[-1]
    assert req.compare == (
        rpc.Compare(rpc.CompareResult.EQUAL, rpc.CompareTarget.VERSION, b"foo", 3),
        rpc.Compare(rpc.CompareResult.LESS, rpc.CompareTarget.CREATE, b"foo", 36),
        rpc.Compare(rpc.CompareResult.GREATER, rpc.CompareTarget.MOD, b"foo", 9045),
        rpc.Compare(rpc.CompareResult.NOT_EQUAL, rpc.CompareTarget.VALUE, b"foo", b"baz"),
        rpc.Compare(rpc.CompareResult.EQUAL, rpc.CompareTarget.LEASE, b"foo", 0),
    )
    assert reply.body == (
        b'{"header":{"cluster_id":"1622177361155699721","member_id":"13195394291058371180",'
        b'"revision":"9047","raft_term":"6"},"succeeded":true,"responses":['
        b'{"response_delete_range":{"header":{"revision":"9047"},"deleted":"1","prev_kvs":[{"key":"Zm9v",'
        b'"create_revision":"35","mod_revision":"9046","version":"3","value":"YmFy"}]}},'
        b'{"response_txn":{"header":{"revision":"9047"},"succeeded":true,"responses":'
        b'[{"response_put":{"header":{"revision":"9047"}}}]}}]}'
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"key":}', "invalid character '}' looking for beginning of value"),
        ('{"key" "Zm9v"}', "invalid character '\"' after object key"),
        ('{"key":"Zm9v" "x":1}', "invalid character '\"' after object key:value pair"),
        ("{key:1}", "invalid character 'k' looking for beginning of object key string"),
        ('{"compare":[{} {}]}', "invalid character '{' after array element"),
        ('{"key":"Zm9v"', "unexpected end of JSON input"),
        ('{"key":"\\q"}', "invalid character 'q' in string escape code"),
        ('{"key":"a\nb"}', "invalid character '\\n' in string literal"),
        ('{"serializable":tru}', "invalid character '}' in literal true (expecting 'e')"),
        ("NaN", "invalid character 'N' looking for beginning of value"),
        ("[]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
        ('{"key":5}', "json: cannot unmarshal number into Go struct field RangeRequest.key of type []uint8"),
        (
            '{"key":"Zm9v","serializable":"yes"}',
            "json: cannot unmarshal string into Go struct field RangeRequest.serializable of type bool",
        ),
        (
            '{"key":"Zm9v","limit":1.5}',
            "json: cannot unmarshal number into Go struct field RangeRequest.limit of type int64",
        ),
        ('{"key":"Zm9v","limit":"ten"}', "RangeRequest.limit of type int64"),
        ('{"key":"Zm9v!"}', "illegal base64 data at input byte 4"),
        (
            '{"key":"Zm9v","sort_order":"UP"}',
            'unknown value "UP" for enum etcdserverpb.RangeRequest_SortOrder',
        ),
        ('{"key":"Zm9v","sort_target":9}', "unknown value 9 for enum etcdserverpb.RangeRequest_SortTarget"),
    ],
)
async def test_malformed_requests_are_400_code_3(server: Server, body: str, message: str) -> None:
    reply = await request(server.port, "/v3/kv/range", body)
    assert reply.status == 400
    got = reply.json()
    assert got["code"] == 3 and got["error"] == got["message"]
    assert message in got["error"]
    assert server.backend.calls == []  # refused at the edge


async def test_malformed_txn_parts(server: Server) -> None:
    bad = [
        (
            '{"compare":[{"target":"SIZE"}]}',
            'unknown value "SIZE" for enum etcdserverpb.Compare_CompareTarget',
        ),
        ('{"success":[{}]}', "etcdserver: key not found"),
        ('{"success":[{"request_put":{},"request_range":{}}]}', "exactly one request"),
        ('{"success":{"request_put":{}}}', "TxnRequest.success"),
        ('{"compare":[{"target":"MOD","mod_revision":"x"}]}', "Compare.mod_revision of type int64"),
    ]
    for body, message in bad:
        reply = await request(server.port, "/v3/kv/txn", body)
        assert reply.status == 400 and message in reply.json()["error"], (body, reply)
    assert server.backend.calls == []


async def test_backend_errors_map_to_grpc_gateway_statuses(server: Server) -> None:
    reply = await request(server.port, "/v3/kv/put", json.dumps({"key": b64(b"noleader")}))
    assert reply.status == 503
    assert reply.body == b'{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}'
    reply = await request(server.port, "/v3/kv/range", json.dumps({"key": b64(b"boom")}))
    assert reply.status == 500 and reply.json()["code"] == 13
    reply = await request(server.port, "/v3/kv/range", json.dumps({"key": b64(b"foo"), "revision": 99999}))
    assert reply.status == 400 and reply.json()["code"] == 11
    # The server keeps serving after all of them.
    assert (await request(server.port, "/v3/kv/range", '{"key":"Zm9v"}')).status == 200


async def test_methods_and_unknown_paths(server: Server) -> None:
    for path in gateway.ENDPOINTS:
        reply = await request(server.port, path, method="GET")
        assert (reply.status, reply.body) == (405, b"Method Not Allowed\n"), path
        assert reply.headers["allow"] == "POST"
    for path in ("/v3/watch", "/v3/lease/nope", "/v3/kv/nope", "/v3/"):
        reply = await request(server.port, path, "{}")
        assert (reply.status, reply.body) == (404, b"404 page not found\n"), path
    reply = await request(server.port, "/health", method="GET")
    assert reply.body == b'{"health":"true"}'
    assert server.backend.calls == []


async def test_request_too_large(nursery: trio.Nursery) -> None:
    srv = await start(nursery, max_request_bytes=1024)
    small = json.dumps({"key": b64(b"k"), "value": b64(b"v" * 500)})
    assert (await request(srv.port, "/v3/kv/put", small)).status == 200
    big = json.dumps({"key": b64(b"k"), "value": b64(b"v" * 2000)})
    reply = await request(srv.port, "/v3/kv/put", big)
    assert reply.status == 400 and reply.json()["error"] == "etcdserver: request is too large"
    assert len(srv.backend.calls) == 1


def test_go_json_escapes_like_go() -> None:
    assert (
        gateway.go_json({"name": "a<b>&c\u2028é"}) == '{"name":"a\\u003cb\\u003e\\u0026c\\u2028é"}'.encode()
    )


# --------------------------------------------------------------------------- etcd's own load tool


async def run_load_tool(port: int, op: str) -> dict[str, Any]:
    argv = [sys.executable, str(LOAD_TOOL), "--endpoints", f"{HOST}:{port}", "--op", op]
    argv += ["--procs", "1", "--clients", "4", "--duration", "1", "--keyspace", "20", "--json"]
    with trio.fail_after(60):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


async def test_etcd_load_tool_runs_clean(server: Server) -> None:
    puts = await run_load_tool(server.port, "put")
    assert puts["ops"] > 0 and puts["errors"] == 0, puts
    assert server.backend.kv[b"/bench/00000007"].value == b"x" * 256
    reads = await run_load_tool(server.port, "range-serializable")
    assert reads["ops"] > 0 and reads["errors"] == 0, reads
    ranges = [req for op, req in server.backend.calls if op == "range"]
    assert ranges and all(r.serializable and r.key.startswith(b"/bench/") for r in ranges)
