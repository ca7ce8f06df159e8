"""The three client surfaces behind one small interface, so a workload is written once.

A Session is one connection: CBOR (a trikv.client Client on one endpoint, shared by several benchmark
clients: requests multiplex), gRPC (one h2 connection, shared: calls are streams) or the JSON gateway (one
HTTP/1.1 connection, used by exactly one client: no pipelining). A watch or a keep-alive stream is opened
on a session; a gateway watch needs a connection of its own (its answer never ends).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

import trio

import trikv
from trikv.actors.grpcpb import rpc_pb2
from trikv.api import lease as lease_api
from trikv.api import watch as watch_api
from trikv.tools.benchmark.grpcconn import Call, GrpcConn
from trikv.tools.benchmark.httpconn import HttpConn

SHARED = ("cbor", "grpc")  # surfaces whose connections carry many clients (--conns applies)


class KeepAlive(Protocol):
    async def once(self, lease_id: int) -> int: ...


class Watch(Protocol):
    async def revisions(self) -> list[int]:
        """The mod revisions of the next batch of events."""
        ...


class Session(Protocol):
    async def put(self, key: bytes, value: bytes) -> int: ...
    async def range(self, key: bytes, serializable: bool) -> None: ...
    async def txn(self, puts: list[bytes], value: bytes, read: bytes | None, serializable: bool) -> None: ...
    async def grant(self, ttl: int) -> int: ...
    async def keepalive(self, stack: contextlib.AsyncExitStack, lease_id: int) -> KeepAlive: ...
    async def watch(self, stack: contextlib.AsyncExitStack, key: bytes, range_end: bytes) -> Watch: ...


# --------------------------------------------------------------------------- CBOR (trikv.client)


class CborKeepAlive:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def once(self, lease_id: int) -> int:
        await self._stream.send(lease_api.LeaseKeepAliveRequest(lease_id))
        return int((await self._stream.receive()).ttl)


class CborWatch:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def revisions(self) -> list[int]:
        resp = await self._stream.receive()
        if resp.canceled:
            raise RuntimeError(f"watch cancelled: {resp.cancel_reason}")
        return [ev.kv.mod_revision for ev in resp.events]


class CborSession:
    def __init__(self, client: trikv.Client) -> None:
        self._c = client

    async def put(self, key: bytes, value: bytes) -> int:
        return (await self._c.put(key, value)).header.revision

    async def range(self, key: bytes, serializable: bool) -> None:
        await self._c.get(key, serializable=serializable)

    async def txn(self, puts: list[bytes], value: bytes, read: bytes | None, serializable: bool) -> None:
        ops = [trikv.get_op(read, serializable=serializable)] if read is not None else []
        await self._c.txn().then(*ops, *(trikv.put_op(k, value) for k in puts)).commit()

    async def grant(self, ttl: int) -> int:
        return (await self._c.grant(ttl)).id

    async def keepalive(self, stack: contextlib.AsyncExitStack, lease_id: int) -> KeepAlive:
        stream = await stack.enter_async_context(
            self._c.stream(lease_api.KEEPALIVE_STREAM_OP, lease_api.LeaseKeepAliveRequest(lease_id))
        )
        await stream.receive()
        return CborKeepAlive(stream)

    async def watch(self, stack: contextlib.AsyncExitStack, key: bytes, range_end: bytes) -> Watch:
        create = watch_api.WatchCreateRequest(key, range_end)
        stream = await stack.enter_async_context(self._c.stream("watch", watch_api.WatchRequest(create)))
        created = await stream.receive()
        if not created.created:
            raise RuntimeError("watch not created")
        return CborWatch(stream)


# --------------------------------------------------------------------------- gRPC (h2)


class GrpcKeepAlive:
    def __init__(self, call: Call) -> None:
        self._call = call

    async def once(self, lease_id: int) -> int:
        await self._call.send(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id).SerializeToString())
        return int(rpc_pb2.LeaseKeepAliveResponse.FromString(await self._call.receive()).TTL)


class GrpcWatch:
    def __init__(self, call: Call) -> None:
        self._call = call

    async def revisions(self) -> list[int]:
        resp = rpc_pb2.WatchResponse.FromString(await self._call.receive())
        if resp.canceled:
            raise RuntimeError(f"watch cancelled: {resp.cancel_reason}")
        return [ev.kv.mod_revision for ev in resp.events]


class GrpcSession:
    def __init__(self, conn: GrpcConn) -> None:
        self._conn = conn

    async def put(self, key: bytes, value: bytes) -> int:
        body = rpc_pb2.PutRequest(key=key, value=value).SerializeToString()
        resp = rpc_pb2.PutResponse.FromString(await self._conn.unary("/etcdserverpb.KV/Put", body))
        return int(resp.header.revision)

    async def range(self, key: bytes, serializable: bool) -> None:
        body = rpc_pb2.RangeRequest(key=key, serializable=serializable).SerializeToString()
        await self._conn.unary("/etcdserverpb.KV/Range", body)

    async def txn(self, puts: list[bytes], value: bytes, read: bytes | None, serializable: bool) -> None:
        ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value)) for k in puts]
        if read is not None:
            ops.insert(
                0, rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=read, serializable=serializable))
            )
        await self._conn.unary("/etcdserverpb.KV/Txn", rpc_pb2.TxnRequest(success=ops).SerializeToString())

    async def grant(self, ttl: int) -> int:
        body = rpc_pb2.LeaseGrantRequest(TTL=ttl).SerializeToString()
        resp = rpc_pb2.LeaseGrantResponse.FromString(
            await self._conn.unary("/etcdserverpb.Lease/LeaseGrant", body)
        )
        if resp.error:
            raise RuntimeError(resp.error)
        return int(resp.ID)

    async def keepalive(self, stack: contextlib.AsyncExitStack, lease_id: int) -> KeepAlive:
        body = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id).SerializeToString()
        call = await self._conn.open_call("/etcdserverpb.Lease/LeaseKeepAlive", body)
        stack.push_async_callback(call.cancel)
        await call.receive()
        return GrpcKeepAlive(call)

    async def watch(self, stack: contextlib.AsyncExitStack, key: bytes, range_end: bytes) -> Watch:
        create = rpc_pb2.WatchCreateRequest(key=key, range_end=range_end)
        call = await self._conn.open_call(
            "/etcdserverpb.Watch/Watch", rpc_pb2.WatchRequest(create_request=create).SerializeToString()
        )
        stack.push_async_callback(call.cancel)
        if not rpc_pb2.WatchResponse.FromString(await call.receive()).created:
            raise RuntimeError("watch not created")
        return GrpcWatch(call)


# --------------------------------------------------------------------------- the JSON gateway (HTTP/1.1)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class GatewayKeepAlive:
    def __init__(self, conn: HttpConn) -> None:
        self._conn = conn

    async def once(self, lease_id: int) -> int:
        answer = json.loads(await self._conn.post("/v3/lease/keepalive", b'{"ID":%d}' % lease_id))
        return int(answer["result"].get("TTL", 0))


class GatewayWatch:
    def __init__(self, lines: AsyncIterator[bytes]) -> None:
        self._lines = lines

    async def revisions(self) -> list[int]:
        result = json.loads(await self._lines.__anext__()).get("result", {})
        if result.get("canceled"):
            raise RuntimeError(f"watch cancelled: {result.get('cancel_reason', '')}")
        return [int(ev["kv"]["mod_revision"]) for ev in result.get("events", ())]


class GatewaySession:
    def __init__(self, conn: HttpConn, endpoint: str) -> None:
        self._conn = conn
        self._endpoint = endpoint

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(await self._conn.post(path, json.dumps(body).encode()))
        return answer

    async def put(self, key: bytes, value: bytes) -> int:
        answer = await self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(answer["header"]["revision"])

    async def range(self, key: bytes, serializable: bool) -> None:
        body: dict[str, Any] = {"key": _b64(key)}
        if serializable:
            body["serializable"] = True
        await self._post("/v3/kv/range", body)

    async def txn(self, puts: list[bytes], value: bytes, read: bytes | None, serializable: bool) -> None:
        v = _b64(value)
        ops: list[dict[str, Any]] = [{"request_put": {"key": _b64(k), "value": v}} for k in puts]
        if read is not None:
            rng: dict[str, Any] = {"key": _b64(read)}
            if serializable:
                rng["serializable"] = True
            ops.insert(0, {"request_range": rng})
        await self._post("/v3/kv/txn", {"success": ops})

    async def grant(self, ttl: int) -> int:
        answer = await self._post("/v3/lease/grant", {"TTL": ttl})
        if answer.get("error"):
            raise RuntimeError(answer["error"])
        return int(answer["ID"])

    async def keepalive(self, stack: contextlib.AsyncExitStack, lease_id: int) -> KeepAlive:
        return GatewayKeepAlive(self._conn)

    async def watch(self, stack: contextlib.AsyncExitStack, key: bytes, range_end: bytes) -> Watch:
        conn = await HttpConn.open(self._endpoint)
        stack.push_async_callback(conn.aclose)
        body = json.dumps({"create_request": {"key": _b64(key), "range_end": _b64(range_end)}}).encode()
        lines = conn.stream("/v3/watch", body)
        stack.push_async_callback(lines.aclose)  # type: ignore[attr-defined]
        if not json.loads(await lines.__anext__()).get("result", {}).get("created"):
            raise RuntimeError("watch not created")
        return GatewayWatch(lines)


async def open_session(
    surface: str, endpoint: str, stack: contextlib.AsyncExitStack, nursery: trio.Nursery
) -> Session:
    """A connection of `surface` to `endpoint`, closed when `stack` unwinds."""
    if surface == "cbor":
        client = await stack.enter_async_context(trikv.connect([endpoint], request_timeout=30.0))
        return CborSession(client)
    if surface == "grpc":
        conn = await GrpcConn.open(endpoint, nursery)
        stack.push_async_callback(conn.aclose)
        return GrpcSession(conn)
    http = await HttpConn.open(endpoint)
    stack.push_async_callback(http.aclose)
    return GatewaySession(http, endpoint)


__all__ = ["SHARED", "KeepAlive", "Session", "Watch", "open_session"]
