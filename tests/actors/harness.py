"""Members of one test as in-process Nodes: MemoryDisk disks (the CrashFileSystem twin), MemNet links, an
inline executor for the blocking work, trio's MockClock.

`cluster(...)` is an async context manager yielding a `Cluster`; every wait is in virtual time (the tests
run under MockClock with autojump), so a wait that never ends fails after `WAIT` virtual seconds. Members
are configured as `trikv` would be from flags (load_config), with 127.0.0.1 URLs nothing binds.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import trio

from tests.actors.memnet import MemNet
from trikv.actors.apply import Applier
from trikv.actors.config import ServerConfig, load_config
from trikv.actors.node import Node
from trikv.api import rpc
from trikv.storage.files import CrashFile, CrashFileSystem, DirLock

T = TypeVar("T")

PEER_PORT = 32380  # nothing binds these: the URLs only name members
CLIENT_PORT = 32379
HEARTBEAT_MS = 100
ELECTION_MS = 1000
WAIT = 60.0  # virtual seconds any wait may take before the test fails
POLL = 0.02
PREALLOCATE_CAP = 1 << 20


class _CappedFile:
    """A CrashFile whose preallocation stops at PREALLOCATE_CAP (writes past it still grow the file)."""

    def __init__(self, f: CrashFile) -> None:
        self._f = f
        self.path = f.path

    def pread(self, size: int, offset: int) -> bytes:
        return self._f.pread(size, offset)

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        self._f.pwrite(data, offset)

    def size(self) -> int:
        return self._f.size()

    def truncate(self, size: int) -> None:
        self._f.truncate(size)

    def preallocate(self, size: int) -> None:
        self._f.preallocate(min(size, PREALLOCATE_CAP))

    def sync(self) -> None:
        self._f.sync()

    def close(self) -> None:
        self._f.close()


class MemoryDisk:
    """A member's disk: the CrashFileSystem twin with preallocation capped. Each WAL segment would otherwise
    hold 64 MiB of zeros twice (content and durable copy) per member; preallocation is only a hint to the
    WAL, which positions by what it wrote and reads a short file's end as the log's end."""

    def __init__(self, inner: CrashFileSystem | None = None) -> None:
        self.inner = inner or CrashFileSystem()

    def crash(self, rng: random.Random) -> MemoryDisk:
        """The disk after a power loss (this one is dead from now on: the member's next write fails)."""
        return MemoryDisk(self.inner.crash(rng))

    def open(self, path: str, create: bool = False) -> _CappedFile:
        return _CappedFile(self.inner.open(path, create))

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def listdir(self, path: str) -> list[str]:
        return self.inner.listdir(path)

    def makedirs(self, path: str) -> None:
        self.inner.makedirs(path)

    def rename(self, src: str, dst: str) -> None:
        self.inner.rename(src, dst)

    def remove(self, path: str) -> None:
        self.inner.remove(path)

    def rmtree(self, path: str) -> None:
        self.inner.rmtree(path)

    def sync_dir(self, path: str) -> None:
        self.inner.sync_dir(path)

    def lock(self, dirpath: str) -> DirLock:
        return self.inner.lock(dirpath)


async def inline(fn: Callable[[], T]) -> T:
    """The executor of the tests: blocking work runs on the event loop, so MockClock alone drives time."""
    await trio.lowlevel.checkpoint()
    return fn()


def peer_url(i: int) -> str:
    return f"http://127.0.0.1:{PEER_PORT + 10 * i}"


def member_config(
    name: str,
    cluster: Sequence[str],
    *,
    state: str = "new",
    snapshot_count: int | None = None,
) -> ServerConfig:
    """A member named `name` of the members `cluster` (names n1, n2, ...), data under /data/<name>."""
    index = {n: i for i, n in enumerate(cluster)}
    i = index[name]
    client = f"http://127.0.0.1:{CLIENT_PORT + 10 * i}"
    argv = [
        "--name", name,
        "--data-dir", f"/data/{name}",
        "--listen-peer-urls", peer_url(i),
        "--initial-advertise-peer-urls", peer_url(i),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--initial-cluster", ",".join(f"{n}={peer_url(j)}" for n, j in index.items()),
        "--initial-cluster-state", state,
        "--heartbeat-interval", str(HEARTBEAT_MS),
        "--election-timeout", str(ELECTION_MS),
    ]  # fmt: skip
    if snapshot_count is not None:
        argv += ["--snapshot-count", str(snapshot_count)]
    return load_config(argv, {})


async def wait_until(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(POLL)
        return
    raise AssertionError(f"timed out (virtual {timeout} s) waiting for {what}")


class Cluster:
    """Starts, stops and restarts members; each keeps its own MemoryDisk across restarts (until a power
    loss replaces it with its crash image)."""

    def __init__(
        self,
        nursery: trio.Nursery,
        names: Sequence[str],
        *,
        snapshot_count: int | None = None,
        applier_cls: type[Applier] = Applier,
    ) -> None:
        self._nursery = nursery
        self.names = list(names)
        self.net = MemNet()
        self.applier_cls = applier_cls
        self.cfgs = {n: member_config(n, names, snapshot_count=snapshot_count) for n in names}
        self.fss = {n: MemoryDisk() for n in names}
        self.nodes: dict[str, Node] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._stopped: dict[str, trio.Event] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, name: str, cfg: ServerConfig | None = None) -> Node:
        if cfg is not None:
            self.cfgs[name] = cfg
            self.fss.setdefault(name, MemoryDisk())
        node = Node(
            self.cfgs[name],
            fs=self.fss[name],
            run_sync=inline,
            network=self.net,
            applier_cls=self.applier_cls,
        )
        self.nodes[name] = node
        await self._nursery.start(self._run, name, node)
        return node

    async def _run(self, name: str, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        stopped = self._stopped[name] = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._scopes[name] = scope
                await node.run(task_status=task_status)
        finally:
            stopped.set()

    async def start_all(self) -> None:
        async with trio.open_nursery() as n:
            for name in self.names:
                n.start_soon(self.start, name)

    async def stop(self, name: str) -> None:
        """Cancel the member (its storage closes as on a process exit) and wait until it is gone."""
        self._scopes[name].cancel()
        await self._stopped[name].wait()
        del self.nodes[name]

    async def power_loss(self, name: str, seed: int) -> None:
        """The member's machine loses power: its disk keeps only what was synced (CrashFileSystem.crash);
        the member is stopped (its last writes fail on the dead disk) and its next start sees that image."""
        self.fss[name] = self.fss[name].crash(random.Random(seed))
        await self.stop(name)

    async def stop_all(self) -> None:
        for name in list(self.nodes):
            await self.stop(name)

    def running(self) -> list[Node]:
        return list(self.nodes.values())

    # ------------------------------------------------------------------ waits

    def _one_leader(self) -> Node | None:
        nodes = self.running()
        leaders = [n for n in nodes if n.status.is_leader]
        if len(leaders) != 1:
            return None
        lead = leaders[0]
        voters = [n for n in nodes if not n.handlers.is_learner()]
        if all(n.status.lead == lead.id and n.status.term == lead.status.term for n in voters):
            return lead
        return None

    async def leader(self) -> Node:
        """The one leader every running voter follows."""
        await wait_until(lambda: self._one_leader() is not None, "one leader")
        lead = self._one_leader()
        assert lead is not None
        return lead

    def followers(self, lead: Node) -> list[Node]:
        return [n for n in self.running() if n is not lead]

    async def settle(self) -> Node:
        """A leader that committed an entry of its term (a linearizable read needs one), every member
        published, and every running member applied all the leader committed."""
        lead = await self.leader()
        await lead.handlers.handle(rpc.RangeRequest(b"settle"))

        def settled() -> bool:
            commit = lead.status.committed
            members = lead.backend.applier.members
            return all(
                n.backend.applied >= commit and n.id in members and members[n.id].client_urls
                for n in self.running()
            )

        await wait_until(settled, "every member applied the leader's commit index")
        return lead

    def name_of(self, node: Node) -> str:
        return next(n for n, x in self.nodes.items() if x is node)


@contextlib.asynccontextmanager
async def cluster(names: Sequence[str] = ("n1", "n2", "n3"), **kw: Any) -> AsyncIterator[Cluster]:
    """A started cluster; every member is cancelled when the block ends."""
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, names, **kw)
        await c.start_all()
        try:
            yield c
        finally:
            nursery.cancel_scope.cancel()


async def put(node: Node, key: bytes, value: bytes) -> rpc.PutResponse:
    resp = await node.handlers.handle(rpc.PutRequest(key, value))
    assert isinstance(resp, rpc.PutResponse)
    return resp


async def get(node: Node, key: bytes) -> rpc.RangeResponse:
    """A serializable (local) read: what this member's page file holds."""
    resp = await node.handlers.handle(rpc.RangeRequest(key, serializable=True))
    assert isinstance(resp, rpc.RangeResponse)
    return resp


__all__ = [
    "Cluster",
    "cluster",
    "get",
    "inline",
    "member_config",
    "peer_url",
    "put",
    "wait_until",
]
