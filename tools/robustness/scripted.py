"""Scripted fault steps for the planted-bug runs: each sets up exactly what one bug needs to show, every time.

A seeded schedule finds a planted bug only when luck lines the clients' operations up with the fault; these
steps do the decisive operations themselves (recorded in the history like any client's, as client SCRIPTED)
while they hold the fault, so the run with the plant fails deterministically and the same run without it
must pass (runner.plant_config names the steps each plant's scenario uses).
"""

from __future__ import annotations

import random
import time
from typing import Any

import trio

import trikv
from trikv.tools.localcluster import Member
from trikv.tools.robustness.nemesis import Nemesis, Step
from trikv.tools.robustness.workload import KV_KEYS, LEASE_KEYS, KvClient, _header_rev, _op

SCRIPTED = 99  # the client id of the scripted steps' operations (workload clients are numbered from 0)
ISOLATE = {"out": {"*": {"drop": 1.0}}, "in": {"*": {"drop": 1.0}}}


class ScriptedNemesis(Nemesis):
    """A Nemesis that can also run the scripted steps (kinds isolate_kill, stale_read, lease_leader_change)."""

    async def do_isolate_kill(self, m: Member, step: Step, rng: random.Random) -> str:
        """Scripted only (planted-bug runs): cut the member off both ways, write through it (params["writes"]
        puts to distinct keys at once, recorded as client SCRIPTED's, answered or not within `hold`
        seconds), SIGKILL it while still cut off, heal its links and restart it. A correct member answers
        none of those puts (no quorum: unknown outcome, never applied); a member that acknowledges before
        a quorum has the entries has acknowledged writes the rest of the cluster never saw."""
        self.set_control(m, peers=ISOLATE)
        await trio.sleep(0.1)  # the plugin reads its control file every 20 ms
        acked = 0
        writes = int(step.params.get("writes", 0))
        if writes:
            writer = KvClient(self.rec, SCRIPTED, random.Random(f"{self.seed}/isolated"), 0.0)
            keys = rng.sample(KV_KEYS, min(writes, len(KV_KEYS)))
            async with trikv.connect([m.endpoint], request_timeout=step.hold, lazy=True) as c:
                async with trio.open_nursery() as n:
                    for key in keys:
                        n.start_soon(writer.put, c, key)
            acked = sum(1 for op in self.rec.history.ops if op.client == SCRIPTED and op.ok)
        else:
            await trio.sleep(step.hold)
        await self.kill(m)
        self.set_control(m)
        await trio.sleep(0.5)
        await self.restart(m)
        return f"isolated, {acked} of {writes} puts through it answered, SIGKILL, restarted"

    async def do_stale_read(self, m: Member, step: Step, rng: random.Random) -> str:
        """Scripted only (planted-bug runs): cut a follower off both ways, put params["writes"] keys through
        the leader, then read each of them through the cut-off follower, and heal after `hold` seconds. A
        correct follower cannot answer a linearizable read without the leader (ReadIndex): each read waits
        and fails; one that answers from its own state returns a value older than the acknowledged put."""
        leader = await self.leader()
        if leader is None or leader is m:
            return "no follower to cut off"
        self.set_control(m, peers=ISOLATE)
        await trio.sleep(0.1)  # the plugin reads its control file every 20 ms
        client = KvClient(self.rec, SCRIPTED, random.Random(f"{self.seed}/stale"), 0.0)
        keys = rng.sample(KV_KEYS, min(int(step.params.get("writes", 4)), len(KV_KEYS)))
        end = time.monotonic() + step.hold
        async with (
            trikv.connect([leader.endpoint], request_timeout=2.0, lazy=True) as via_leader,
            trikv.connect([m.endpoint], request_timeout=1.0, lazy=True) as via_cut_off,
        ):
            for key in keys:
                await client.put(via_leader, key)
            for key in keys:
                await client.get(via_cut_off, key)
        answered = sum(
            1 for op in self.rec.history.ops if op.client == SCRIPTED and op.kind == "get" and op.ok
        )
        await trio.sleep(max(0.0, end - time.monotonic()))
        self.set_control(m)
        return f"cut off; {len(keys)} puts through the leader, {answered} reads of them answered by {m.name}"

    async def do_lease_leader_change(self, m: Member, step: Step, rng: random.Random) -> str:
        """Scripted only (planted-bug runs): grant a lease of params["ttl"] seconds, put two lease keys
        under it, keep it alive, move the leadership from `m` (the leader) to another member, and go on
        keeping it alive every second for `hold` seconds, then revoke it. A correct new leader extends
        every lease it inherits; one that counts the TTL as spent deletes the keys a moment after a
        keep-alive was answered."""
        ttl = int(step.params.get("ttl", 6))
        lease = 0

        def granted(resp: Any) -> dict[str, Any]:
            return {"revision": resp.header.revision, "lease": resp.id, "ttl": resp.ttl}

        async def keep_alive(c: trikv.Client) -> Any:
            return await _op(
                self.rec,
                SCRIPTED,
                "lease_keepalive",
                lambda: c.keep_alive_once(lease),
                lambda r: {"revision": r.header.revision, "ttl": r.ttl},
                lease=lease,
            )

        endpoints = [o.endpoint for o in self.members]
        async with trikv.connect(endpoints, request_timeout=2.0, lazy=True) as c:
            resp = await _op(self.rec, SCRIPTED, "lease_grant", lambda: c.grant(ttl), granted, ttl=ttl)
            if resp is None:
                return "lease grant failed"
            lease = resp.id
            for i, key in enumerate(LEASE_KEYS[:2]):
                v = f"{SCRIPTED}.L{i}"

                async def put(key: str = key, v: str = v) -> Any:
                    return await c.put(key, v, lease=lease)

                await _op(self.rec, SCRIPTED, "put", put, _header_rev, key=key, value=v, lease=lease)
            await keep_alive(c)
            others = [o for o in self.members if o is not m and o.alive and o.name in self.ids]
            moved = bool(others) and await self.move_leader(m, rng.choice(others))
            end = time.monotonic() + step.hold
            kept = 0
            while time.monotonic() < end:
                await trio.sleep(1.0)
                ka = await keep_alive(c)
                if ka is not None and ka.ttl <= 0:
                    break  # gone: a correct cluster never gets here
                kept += ka is not None
            await _op(self.rec, SCRIPTED, "lease_revoke", lambda: c.revoke(lease), _header_rev, lease=lease)
        return f"lease {lease:x} (ttl {ttl}); leadership {'moved' if moved else 'NOT moved'}; {kept} keep-alives after"
