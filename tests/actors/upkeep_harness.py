"""In-process clusters for the upkeep tests: the harness's Cluster with configuration changes and
UpkeepSettings (test-only knobs) per member, and the corruption check asking members in memory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import trio

from tests.actors.harness import Cluster, inline
from trikv.actors.node import Node
from trikv.actors.upkeep import UpkeepSettings
from trikv.api.maintenance import HashKVRequest, HashKVResponse
from trikv.api.protocol import Member


class UpkeepCluster(Cluster):
    settings: UpkeepSettings | None = None

    async def start(self, name: str, cfg: Any = None) -> Node:
        if cfg is not None:
            self.cfgs[name] = cfg
        node = Node(
            self.cfgs[name],
            fs=self.fss[name],
            run_sync=inline,
            network=self.net,
            applier_cls=self.applier_cls,
            upkeep=self.settings,
        )
        self.nodes[name] = node
        await self._nursery.start(self._run, name, node)

        async def fetch(member: Member, req: HashKVRequest) -> HashKVResponse | None:
            """The corruption check's question, asked in memory (no client sockets in these tests)."""
            for other in self.running():
                if other.id == member.id:
                    try:
                        resp = await other.handlers.handle(req)
                    except Exception:
                        return None
                    assert isinstance(resp, HashKVResponse)
                    return resp
            return None

        node.upkeep.corruption.fetch = fetch
        return node

    def by_id(self, member_id: int) -> Node:
        return next(n for n in self.running() if n.id == member_id)


@contextlib.asynccontextmanager
async def upkeep_cluster(
    names: Sequence[str] = ("n1", "n2", "n3"), *, settings: UpkeepSettings | None = None, **changes: Any
) -> AsyncIterator[UpkeepCluster]:
    """A started cluster whose members' ServerConfig has `changes` (attrs.evolve) and `settings`."""
    async with trio.open_nursery() as nursery:
        c = UpkeepCluster(nursery, names)
        c.settings = settings
        c.cfgs = {n: attrs.evolve(cfg, **changes) for n, cfg in c.cfgs.items()}
        await c.start_all()
        try:
            yield c
        finally:
            nursery.cancel_scope.cancel()


__all__ = ["UpkeepCluster", "upkeep_cluster"]
