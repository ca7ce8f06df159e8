"""The periodic corruption check on the leader (etcd's experimental-corrupt-check-time, checkHashKV).

Every interval the leader hashes its key space (HashKV at its current revision R), asks every other member
for HashKV at R, waits for a ReadIndex round and hashes again. It compares only like with like, as etcd:

- its own two hashes, when neither the revision nor the compact revision moved in between;
- a member answering with a newer revision, or a newer compact revision, than the leader's: mismatch;
- a member whose compact revision equals the leader's first one must have the same hash.

The first mismatch raises a CORRUPT alarm on that member through Raft; then every write is refused with
"etcdserver: corrupt cluster". Members are asked on their client URL (the CBOR WebSocket API, the way a
client asks); one that does not answer is skipped (its hash is compared next round).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import trio
import trio_websocket

from trikv.api import codec, errors, protocol
from trikv.api.maintenance import HASHKV_OP, AlarmType, HashKVRequest, HashKVResponse
from trikv.api.protocol import Member

log = logging.getLogger("trikv.corruptcheck")

FETCH_TIMEOUT = 5.0

Fetch = Callable[[Member, HashKVRequest], Awaitable[HashKVResponse | None]]


def _ws_url(client_url: str) -> str:
    rest = client_url.split("://", 1)[-1].rstrip("/")
    scheme = "wss" if client_url.startswith("https://") else "ws"
    return f"{scheme}://{rest}{protocol.WS_PATH}"


async def fetch_hashkv(
    member: Member, req: HashKVRequest, timeout: float = FETCH_TIMEOUT
) -> HashKVResponse | None:
    """HashKV from `member` through its first reachable client URL; None when none answers with a hash."""
    for url in member.client_urls:
        try:
            with trio.fail_after(timeout):
                async with trio_websocket.open_websocket_url(
                    _ws_url(url), connect_timeout=timeout, disconnect_timeout=1
                ) as ws:
                    await ws.send_message(protocol.encode_frame([[1, HASHKV_OP, req]]))
                    data = await ws.get_message()
                    items = protocol.decode_frame(data if isinstance(data, bytes) else data.encode())
        except (
            OSError,
            trio.TooSlowError,
            trio_websocket.HandshakeError,
            trio_websocket.ConnectionClosed,
            trio.BrokenResourceError,
        ) as exc:
            log.warning("could not get the hash of member %x from %s: %s", member.id, url, exc)
            continue
        except codec.CodecError as exc:
            log.warning("member %x sent a malformed hash answer: %s", member.id, exc)
            continue
        for _rid, status, result in items:
            if status == protocol.OK and isinstance(result, HashKVResponse):
                return result
            if isinstance(result, dict):
                log.warning("member %x could not hash its key space: %s", member.id, errors.from_wire(result))
        return None
    return None


class CorruptionChecker:
    """Runs the check every `interval` seconds while this member leads (never when interval <= 0)."""

    def __init__(
        self,
        member_id: int,
        interval: float,
        *,
        is_leader: Callable[[], bool],
        members: Callable[[], Mapping[int, Member]],
        local_hash: Callable[[HashKVRequest], Awaitable[HashKVResponse]],
        read_index: Callable[[], Awaitable[None]],
        raise_alarm: Callable[[AlarmType, int], None],
        fetch: Fetch = fetch_hashkv,
    ) -> None:
        self.member_id = member_id
        self.interval = interval
        self.is_leader = is_leader
        self.members = members
        self.local_hash = local_hash
        self.read_index = read_index
        self.raise_alarm = raise_alarm
        self.fetch = fetch
        self.checks = 0  # completed checks (tests)

    async def run(self) -> None:
        if self.interval <= 0:
            return
        while True:
            await trio.sleep(self.interval)
            if not self.is_leader():
                continue
            try:
                await self.check()
            except errors.TrikvError as exc:  # no leader, a timeout, a storage error: try next round
                log.warning("corruption check could not run: %s", exc)

    async def _peer_hashes(self, rev: int) -> list[HashKVResponse]:
        out: list[HashKVResponse] = []
        for mid, m in sorted(self.members().items()):
            if mid == self.member_id:
                continue
            resp = await self.fetch(m, HashKVRequest(rev))
            if resp is not None:
                out.append(resp)
        return out

    async def check(self) -> int | None:
        """One round; the member id a CORRUPT alarm was raised for, or None."""
        first = await self.local_hash(HashKVRequest())
        h, rev, crev = first.hash, first.header.revision, first.compact_revision
        peers = await self._peer_hashes(rev)
        await self.read_index()
        second = await self.local_hash(HashKVRequest())
        self.checks += 1
        suspects: list[tuple[int, str]] = []
        if second.hash != h and second.header.revision == rev and second.compact_revision == crev:
            suspects.append((self.member_id, f"local hash changed at revision {rev}: {h} then {second.hash}"))
        for p in peers:
            pid = p.header.member_id
            if p.header.revision > second.header.revision:
                suspects.append((pid, f"revision {p.header.revision} > leader's {second.header.revision}"))
            elif p.compact_revision > second.compact_revision:
                suspects.append(
                    (pid, f"compact revision {p.compact_revision} > leader's {second.compact_revision}")
                )
            elif p.compact_revision == crev and p.hash != h:
                suspects.append((pid, f"hash {p.hash} != leader's {h} at revision {rev}"))
        if not suspects:
            return None
        pid, why = suspects[0]  # etcd raises one alarm per round
        log.error("found data inconsistency with member %x (%s); raising CORRUPT", pid, why)
        self.raise_alarm(AlarmType.CORRUPT, pid)
        return pid


__all__ = ["CorruptionChecker", "fetch_hashkv"]
