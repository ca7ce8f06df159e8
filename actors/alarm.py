"""The Alarm API (etcd's Maintenance.Alarm) and the task that raises this member's alarms through Raft.

GET is answered from this member's applied alarm store after a ReadIndex round (etcd proposes even a GET,
so its answer is linearizable: an alarm another member raised a moment ago is listed); ACTIVATE and
DEACTIVATE are proposed like writes and answered once applied, with the alarms they changed (etcd's
AlarmResponse, which carries no header).
The quota check and the corruption check never propose themselves: they call `AlarmRaiser.raise_alarm`,
which returns at once; the raiser's task proposes the alarm (once per member and type, retrying until it
is applied) so a refused client request never waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from trikv.actors.alarmstore import AlarmStore
from trikv.actors.kv import Proposer
from trikv.api import errors
from trikv.api.maintenance import ALARM_OP, AlarmAction, AlarmRequest, AlarmResponse, AlarmType

log = logging.getLogger("trikv.alarm")

RETRY_SECONDS = 0.5


class AlarmApi:
    """Typed handler of `AlarmRequest` (registered in the handlers table by actors/upkeep.py)."""

    def __init__(self, proposer: Proposer, alarms: Callable[[], AlarmStore]) -> None:
        self.proposer = proposer
        self.alarms = alarms

    async def alarm(self, req: AlarmRequest) -> AlarmResponse:
        if req.action == AlarmAction.GET:
            await self.proposer.read_index()
            return AlarmResponse(alarms=tuple(self.alarms().list(req.alarm)))
        if req.action not in (AlarmAction.ACTIVATE, AlarmAction.DEACTIVATE):
            raise errors.InvalidRequestError("etcdserver: unknown alarm action")
        result = await self.proposer.propose(req, op=ALARM_OP)
        if isinstance(result, BaseException):
            raise result
        if not isinstance(result, AlarmResponse):
            raise errors.InternalError()
        return result


class AlarmRaiser:
    """Proposes ACTIVATE for this member's alarms; `raise_alarm` never blocks (coalesced per type)."""

    def __init__(
        self,
        member_id: int,
        proposer: Proposer,
        alarms: Callable[[], AlarmStore],
        retry: float = RETRY_SECONDS,
    ) -> None:
        self.member_id = member_id
        self.proposer = proposer
        self.alarms = alarms
        self.retry = retry
        self._wanted: dict[tuple[int, AlarmType], None] = {}
        self._wake = trio.Event()
        self.raised = 0  # alarms proposed and applied (tests)

    def raise_alarm(self, alarm: AlarmType, member_id: int | None = None) -> None:
        """Ask for `alarm` on `member_id` (default: this member) to be activated cluster-wide."""
        self._wanted[(self.member_id if member_id is None else member_id, alarm)] = None
        self._wake.set()

    def _active(self, member_id: int, alarm: AlarmType) -> bool:
        return any(m.member_id == member_id for m in self.alarms().list(alarm))

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._wanted:
                member_id, alarm = next(iter(self._wanted))
                if self._active(member_id, alarm):
                    self._wanted.pop((member_id, alarm), None)
                    continue
                req = AlarmRequest(AlarmAction.ACTIVATE, member_id, alarm)
                try:
                    result = await self.proposer.propose(req, op=ALARM_OP)
                except errors.EtcdError as exc:
                    log.warning("could not raise alarm %s yet: %s", alarm.name, exc)
                    await trio.sleep(self.retry)
                    continue
                if isinstance(result, BaseException):
                    log.warning("could not raise alarm %s yet: %s", alarm.name, result)
                    await trio.sleep(self.retry)
                    continue
                log.warning("alarm raised: memberID:%d alarm:%s", member_id, alarm.name)
                self.raised += 1
                self._wanted.pop((member_id, alarm), None)


__all__ = ["AlarmApi", "AlarmRaiser"]
