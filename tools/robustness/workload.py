"""The robustness workload: concurrent Trio clients that record every operation for the checkers.

All clients run in the runner's one trio run, so every `invoke` / `complete` / `received` is one
time.monotonic() clock. Each client has its own connection pool over every endpoint (starting on a
different one) and its own seeded RNG, so a seed fixes the operation mix (not the interleaving).

Recording rules (the contract in history.Op): ok True = answered with success; ok False = a typed refusal
the server guarantees was not applied (refused before proposing, or failed at apply with nothing written);
ok None = anything else (a timeout, a connection lost in flight, an unexpected error): the outcome is
unknown and the checkers resolve it. Put values are unique in a run: "<client>.<seq>".

Key space: KV_KEYS plain keys (puts, gets, deletes and multi-key compare-and-set txns) and LEASE_KEYS
keys that only leased puts write (so a lease revoke or expiry deleting them never surprises the register
model of the plain keys). Watchers watch the whole PREFIX from revision 1 and resume after any failure from
the revision after the last one they received.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

import trikv
from trikv.api import errors, rpc
from trikv.api import watch as wapi
from trikv.ops import SAFE_WRITE_RETRY, prefix_range_end
from trikv.tools.robustness.history import Event, History, Op, WatchResponse, WatchResume, WatchSpec

PREFIX = "r/"
KV_KEYS = [f"{PREFIX}k{i:02d}" for i in range(12)]
LEASE_KEYS = [f"{PREFIX}l{i:02d}" for i in range(6)]
LEASE_TTLS = (2, 3, 4)  # seconds; the server raises a TTL below ceil(1.5 x election timeout) to it
OP_TIMEOUT = 3.0  # the client's request deadline; the outer deadline adds a second for the unsent case

# Refusals that prove nothing was applied: refused at the door (no leader, not capable, learner, too many
# requests, malformed) or failed at apply with nothing written (lease not found, no space).
NOT_APPLIED: tuple[type[BaseException], ...] = (
    *SAFE_WRITE_RETRY,
    errors.TooManyRequestsError,
    errors.LeaseNotFoundError,
    errors.NoSpaceError,
    errors.InvalidRequestError,
    errors.LeaseTTLTooLargeError,
)


def outcome(exc: BaseException) -> bool | None:
    """False when the error proves the request was not applied, else None (unknown)."""
    return False if isinstance(exc, NOT_APPLIED) else None


@attrs.define
class Recorder:
    """The history under construction, plus what the nemesis and runner need to know about the clients."""

    history: History
    next_id: int = 0
    watched: dict[int, int] = attrs.Factory(dict)  # watcher -> last revision it is known to have received
    live_leases: dict[int, int] = attrs.Factory(dict)  # lease id -> ttl, while a client keeps it alive

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add(self, op: Op) -> None:
        self.history.ops.append(op)


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


@attrs.define
class Config:
    """How much load: the clients per kind and the pause between one client's operations."""

    kv_clients: int = 4
    lease_clients: int = 1
    watchers: int = 2
    think: float = 0.01  # max seconds a client waits between operations (uniform in [0, think])
    reads: float = 0.25  # the share of a KV client's operations that are gets
    pinned: bool = False  # each client talks to one member only (planted-bug runs: reads on a cut-off member)


async def _op(
    rec: Recorder,
    client: int,
    kind: str,
    call: Callable[[], Any],
    fill: Callable[[Any], dict[str, Any]],
    **fields: Any,
) -> Any:
    """Run one operation under a deadline and record it; returns the response or None."""
    op_id = rec.new_id()
    invoke = time.monotonic()
    resp: Any = None
    ok: bool | None = None
    extra: dict[str, Any] = {}
    complete: float | None = None
    try:
        with trio.move_on_after(OP_TIMEOUT + 1.0):
            resp = await call()
            ok, extra = True, fill(resp)
            complete = time.monotonic()
    except trio.Cancelled:
        rec.add(Op(op_id, client, kind, invoke, None, None, **fields))
        raise
    except Exception as exc:  # every failure is recorded: the checker decides what it means
        ok = outcome(exc)
        complete = time.monotonic()
        resp = None
    rec.add(Op(op_id, client, kind, invoke, complete, ok, **{**fields, **extra}))
    return resp if ok else None


def _header_rev(resp: Any) -> dict[str, Any]:
    return {"revision": resp.header.revision}


class KvClient:
    """Puts, gets (linearizable and serializable), deletes and compare-and-set txns over KV_KEYS."""

    def __init__(
        self, rec: Recorder, cid: int, rng: random.Random, think: float, reads: float = 0.25
    ) -> None:
        self.rec, self.cid, self.rng, self.think, self.reads = rec, cid, rng, think, reads
        self.seq = 0
        self.seen: dict[str, str | None] = {}  # key -> the value this client last saw (None = absent)

    def value(self) -> str:
        self.seq += 1
        return f"{self.cid}.{self.seq}"

    async def run(self, c: trikv.Client, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            r = self.rng.random()
            key = self.rng.choice(KV_KEYS)
            if r < self.reads:
                await self.get(c, key, serializable=self.rng.random() < 0.3)
            elif r < self.reads + (1 - self.reads) * 0.45:
                await self.put(c, key)
            elif r < self.reads + (1 - self.reads) * 0.6:
                await self.delete(c, key)
            else:
                await self.cas(c)
            await trio.sleep(self.rng.uniform(0, self.think))

    async def put(self, c: trikv.Client, key: str) -> None:
        v = self.value()
        resp = await _op(self.rec, self.cid, "put", lambda: c.put(key, v), _header_rev, key=key, value=v)
        if resp is not None:
            self.seen[key] = v

    async def get(
        self, c: trikv.Client, key: str, *, serializable: bool = False, final: bool = False
    ) -> None:
        def fill(resp: rpc.RangeResponse) -> dict[str, Any]:
            kv = resp.kvs[0] if resp.kvs else None
            return {
                "revision": resp.header.revision,
                "found": kv is not None,
                "got_value": _s(kv.value) if kv is not None else None,
                "got_mod_revision": kv.mod_revision if kv is not None else None,
            }

        resp = await _op(
            self.rec,
            self.cid,
            "get",
            lambda: c.get(key, serializable=serializable),
            fill,
            key=key,
            serializable=serializable,
            final=final,
        )
        if resp is not None:
            self.seen[key] = _s(resp.kvs[0].value) if resp.kvs else None

    async def delete(self, c: trikv.Client, key: str) -> None:
        def fill(resp: rpc.DeleteRangeResponse) -> dict[str, Any]:
            return {"revision": resp.header.revision, "deleted": resp.deleted}

        resp = await _op(self.rec, self.cid, "delete", lambda: c.delete(key), fill, key=key)
        if resp is not None:
            self.seen[key] = None

    async def cas(self, c: trikv.Client) -> None:
        """Compare-and-set over 2-3 keys: if each holds what this client last saw, write all of them."""
        keys = sorted(self.rng.sample(KV_KEYS, self.rng.choice((2, 3))))
        compares = tuple((k, self.seen.get(k)) for k in keys)
        puts = tuple((k, self.value()) for k in keys)
        conds = [trikv.version(k) == 0 if v is None else trikv.value(k) == v for k, v in compares]
        ops = [trikv.put_op(k, v) for k, v in puts]

        def fill(resp: rpc.TxnResponse) -> dict[str, Any]:
            return {"revision": resp.header.revision, "succeeded": resp.succeeded}

        resp = await _op(
            self.rec,
            self.cid,
            "txn",
            lambda: c.txn().if_(*conds).then(*ops).commit(),
            fill,
            compares=compares,
            puts=puts,
        )
        if resp is None:
            return
        if resp.succeeded:
            self.seen.update(dict(puts))
        else:
            for k in keys:  # refresh what this client believes, so the next CAS has a chance
                self.seen.pop(k, None)
            await self.get(c, self.rng.choice(keys))


class LeaseClient:
    """Grant a lease, put LEASE_KEYS under it, keep it alive for a while, then revoke or abandon it."""

    def __init__(self, rec: Recorder, cid: int, rng: random.Random) -> None:
        self.rec, self.cid, self.rng = rec, cid, rng
        self.seq = 0

    async def run(self, c: trikv.Client, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            await self.one_lease(c, stop_at)
            await trio.sleep(self.rng.uniform(0, 0.2))

    async def one_lease(self, c: trikv.Client, stop_at: float) -> None:
        ttl = self.rng.choice(LEASE_TTLS)

        def granted(resp: Any) -> dict[str, Any]:
            return {"revision": resp.header.revision, "lease": resp.id, "ttl": resp.ttl}

        resp = await _op(self.rec, self.cid, "lease_grant", lambda: c.grant(ttl), granted, ttl=ttl)
        if resp is None or resp.error:
            return
        lease, ttl = resp.id, resp.ttl
        self.rec.live_leases[lease] = ttl
        try:
            for key in self.rng.sample(LEASE_KEYS, self.rng.choice((1, 2))):
                self.seq += 1
                v = f"{self.cid}.{self.seq}"

                async def leased_put(key: str = key, v: str = v) -> rpc.PutResponse:
                    return await c.put(key, v, lease=lease)

                await _op(
                    self.rec,
                    self.cid,
                    "put",
                    leased_put,
                    _header_rev,
                    key=key,
                    value=v,
                    lease=lease,
                )
            for _ in range(self.rng.randint(1, 4)):
                if time.monotonic() >= stop_at:
                    break
                await trio.sleep(ttl / 3)
                ka = await _op(
                    self.rec,
                    self.cid,
                    "lease_keepalive",
                    lambda: c.keep_alive_once(lease),
                    lambda r: {"revision": r.header.revision, "ttl": r.ttl},
                    lease=lease,
                )
                if ka is not None and ka.ttl <= 0:
                    return  # gone (expired or revoked): nothing more to do with it
        finally:
            self.rec.live_leases.pop(lease, None)
        if self.rng.random() < 0.6:
            await _op(self.rec, self.cid, "lease_revoke", lambda: c.revoke(lease), _header_rev, lease=lease)
        # else: abandoned; the server must delete its keys within TTL + election slack (liveness)


class Watcher:
    """A prefix watch from revision 1 that records every response and resumes after any failure."""

    def __init__(self, rec: Recorder, wid: int, endpoints: list[str]) -> None:
        self.rec, self.wid, self.endpoints = rec, wid, endpoints
        self.next_rev = 1
        self.turn = wid  # which endpoint next
        rec.history.watches.append(WatchSpec(wid, PREFIX, 1))
        rec.watched[wid] = 0

    async def run(self, c: trikv.Client) -> None:
        first = True
        while True:
            ep = self.endpoints[self.turn % len(self.endpoints)]
            self.turn += 1
            if not first:
                self.rec.history.resumes.append(WatchResume(self.wid, time.monotonic(), self.next_rev, ep))
            first = False
            try:
                if await self.stream(c, ep):
                    return  # compacted: the watch cannot go on
            except Exception:  # lost connection, no leader, member down: resume elsewhere
                pass
            await trio.sleep(0.1)

    async def stream(self, c: trikv.Client, ep: str) -> bool:
        key = PREFIX.encode()
        create = wapi.WatchCreateRequest(
            key, prefix_range_end(key), start_revision=self.next_rev, progress_notify=True
        )
        req = wapi.WatchRequest(create_request=create, require_leader=True)
        async with c.stream("watch", req, ep) as st, trio.open_nursery() as n:
            n.start_soon(self.ask_progress, st)
            while True:
                with trio.fail_after(10):  # progress answers come every second; the link's keepalive is 6 s
                    resp: wapi.WatchResponse = await st.receive()
                if self.record(resp) or resp.canceled:
                    n.cancel_scope.cancel()
                    return bool(resp.compact_revision)

    @staticmethod
    async def ask_progress(st: Any) -> None:
        """A progress request every second: answered once every event up to its revision was sent (the
        bookmark rule the watch checker tests), and it moves the resume point on when nothing happens."""
        while True:
            await trio.sleep(1.0)
            await st.send(wapi.WatchRequest(progress_request=wapi.WatchProgressRequest()))

    def record(self, resp: wapi.WatchResponse) -> bool:
        events = tuple(
            Event(
                "PUT" if e.type == wapi.EventType.PUT else "DELETE",
                _s(e.kv.key),
                _s(e.kv.value) if e.type == wapi.EventType.PUT else None,
                e.kv.mod_revision,
                e.kv.create_revision,
                e.kv.version,
            )
            for e in resp.events
        )
        progress = not events and not resp.created and not resp.canceled and not resp.compact_revision
        self.rec.history.responses.append(
            WatchResponse(
                self.wid,
                time.monotonic(),
                resp.header.revision,
                events,
                progress=progress,
                compact_revision=resp.compact_revision,
                canceled=resp.canceled,
                created=resp.created,
            )
        )
        if events:
            self.next_rev = max(self.next_rev, events[-1].mod_revision + 1)
        elif progress and resp.header.revision >= self.next_rev:
            self.next_rev = resp.header.revision + 1
        self.rec.watched[self.wid] = self.next_rev - 1
        return bool(resp.compact_revision)


def rotated(endpoints: list[str], k: int) -> list[str]:
    k %= len(endpoints)
    return endpoints[k:] + endpoints[:k]


async def run_clients(rec: Recorder, endpoints: list[str], seed: int, stop_at: float, cfg: Config) -> None:
    """The KV and lease clients until stop_at (each operation bounded, so this ends by stop_at + ~4 s)."""
    async with trio.open_nursery() as n:

        def eps(k: int) -> list[str]:
            return [endpoints[k % len(endpoints)]] if cfg.pinned else rotated(endpoints, k)

        for i in range(cfg.kv_clients):
            kv = KvClient(rec, i, random.Random(f"{seed}/kv/{i}"), cfg.think, cfg.reads)
            n.start_soon(_with_client, eps(i), kv.run, stop_at)
        for j in range(cfg.lease_clients):
            cid = cfg.kv_clients + j
            lc = LeaseClient(rec, cid, random.Random(f"{seed}/lease/{j}"))
            n.start_soon(_with_client, eps(cid), lc.run, stop_at)


async def _with_client(
    endpoints: list[str], body: Callable[[trikv.Client, float], Any], stop_at: float
) -> None:
    async with trikv.connect(endpoints, request_timeout=OP_TIMEOUT, lazy=True) as c:
        await body(c, stop_at)


async def final_reads(rec: Recorder, endpoints: list[str], cid: int) -> int:
    """Linearizable reads of every key after everything healed (marked final); returns the highest
    header revision seen, which the watchers must reach before they stop."""
    reader = KvClient(rec, cid, random.Random(0), 0.0)
    async with trikv.connect(endpoints, request_timeout=OP_TIMEOUT, lazy=True) as c:
        for key in KV_KEYS + LEASE_KEYS:
            for _ in range(5):  # a read may fail while the cluster settles; retry, each try recorded
                await reader.get(c, key, final=True)
                last = rec.history.ops[-1]
                if last.ok:
                    break
                await trio.sleep(0.5)
    return max((op.revision or 0) for op in rec.history.ops if op.final)
