"""Upkeep: a member's self-protection and housekeeping, wired into a Node in one place.

- the backend quota (actors/quota.py) in front of the write handlers and after every applied batch;
- the Alarm API and the alarm raiser (actors/alarm.py), HashKV / Hash (actors/hashkv.py);
- auto-compaction (actors/autocompact.py), run by the Compactor, proposing through the handlers table;
- the periodic corruption check on the leader (actors/corruptcheck.py).

`UpkeepSettings` holds the test-only knobs (a fake clock for auto-compaction, a shorter revision-mode
interval); production never sets them: its defaults are etcd's, and a real process reads the one knob from
`TRIKV_TEST_REVISION_COMPACT_INTERVAL` only when a test exported it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from trikv.actors import gateway_alarm  # noqa: F401 - adds the alarm/hash routes to the JSON gateway
from trikv.actors.alarm import AlarmApi, AlarmRaiser
from trikv.actors.alarmstore import AlarmStore
from trikv.actors.autocompact import REVISION_INTERVAL, Clock, policy
from trikv.actors.backend import Backend
from trikv.actors.compactor import Compactor
from trikv.actors.config import ServerConfig
from trikv.actors.corruptcheck import CorruptionChecker
from trikv.actors.events import RaftStatus
from trikv.actors.handlers import Handlers
from trikv.actors.hashkv import HashApi
from trikv.actors.kv import KVApi, Proposer
from trikv.actors.quota import Quota
from trikv.api import rpc
from trikv.api.errors import ConfigError
from trikv.api.maintenance import AlarmRequest, HashKVRequest, HashRequest

log = logging.getLogger("trikv.upkeep")

REVISION_INTERVAL_ENV = "TRIKV_TEST_REVISION_COMPACT_INTERVAL"

# Write handlers behind the quota / CORRUPT checks (the lease shapes by name: they belong to the lease service).
GUARDED = frozenset(
    {
        "PutRequest",
        "DeleteRangeRequest",
        "TxnRequest",
        "CompactionRequest",
        "LeaseGrantRequest",
        "LeaseRevokeRequest",
    }
)


@attrs.frozen
class UpkeepSettings:
    """Test-only knobs; the defaults are production's (etcd's)."""

    revision_interval: float = REVISION_INTERVAL
    clock: Clock | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> UpkeepSettings:
        text = environ.get(REVISION_INTERVAL_ENV)
        if not text:
            return cls()
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise ConfigError(
                f"invalid {REVISION_INTERVAL_ENV}={text!r}: expected a positive number of seconds"
            )
        return cls(revision_interval=seconds)


class Upkeep:
    def __init__(
        self,
        cfg: ServerConfig,
        *,
        member_id: int,
        status: RaftStatus,
        backend: Backend,
        proposer: Proposer,
        kv: KVApi,
        handlers: Handlers,
        compactor: Compactor,
        settings: UpkeepSettings | None = None,
    ) -> None:
        settings = settings or UpkeepSettings()

        def alarms() -> AlarmStore:
            return backend.applier.alarms  # the Applier is rebuilt when a snapshot is installed

        self.raiser = AlarmRaiser(member_id, proposer, alarms)
        self.alarm_api = AlarmApi(proposer, alarms)
        self.hashes = HashApi(kv)
        self.quota = Quota(cfg.quota_bytes, lambda: backend.pagefile.size(), alarms, self.raiser.raise_alarm)
        backend.after_apply = self.quota.after_apply
        table = handlers.table
        for t, h in list(table.items()):
            if t.__name__ in GUARDED:
                table[t] = self.quota.guard(h)
        table[AlarmRequest] = self.alarm_api.alarm
        table[HashKVRequest] = self.hashes.hashkv
        table[HashRequest] = self.hashes.hash

        async def compact(rev: int) -> Any:
            return await handlers.handle(rpc.CompactionRequest(rev))

        compactor.auto = policy(
            cfg.compaction_retention,
            lambda: backend.revision,
            compact,
            lambda: status.is_leader,
            clock=settings.clock,
            revision_interval=settings.revision_interval,
        )
        self.corruption = CorruptionChecker(
            member_id,
            cfg.corrupt_check_time_ms / 1000.0,
            is_leader=lambda: status.is_leader,
            members=lambda: backend.applier.members,
            local_hash=self.hashes.hashkv,
            read_index=proposer.read_index,
            raise_alarm=lambda alarm, mid: self.raiser.raise_alarm(alarm, mid),
        )

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.raiser.run)
            nursery.start_soon(self.corruption.run)


__all__ = ["REVISION_INTERVAL_ENV", "Upkeep", "UpkeepSettings"]
