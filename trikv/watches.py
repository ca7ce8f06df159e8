"""Watches in the Trio client: `async with client.watch(key, prefix=True) as events: async for ev in events:`.

A watch is one stream of WatchRequest / WatchResponse (trikv.api.watch). When the connection or the member
fails (the stream is lost, the member has no leader, the server ends it) the watch reopens on the next
endpoint from the revision after the last one received (or after the created response's header revision
when nothing came yet; never from 0), so the caller sees every event once and in order. Responses are
received whole (fragments are reassembled first), so a revision is never split across a resume.
A compacted start revision raises WatchCompactedError carrying the compact revision.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import trio

from trikv.api import errors
from trikv.api.watch import Event, WatchCreateRequest, WatchRequest, WatchResponse

log = logging.getLogger("trikv.watch")

WATCH_STREAM = "watch"
RETRY_DELAY = 0.1  # seconds before reopening on the next endpoint
COMPACTED_MESSAGE = "etcdserver: mvcc: required revision has been compacted"


class WatchClient(Protocol):
    """What a watch needs of trikv.client.Client."""

    endpoints: tuple[str, ...]

    def stream(
        self, op: str, payload: Any, endpoint: str | None = None
    ) -> AbstractAsyncContextManager[Any]: ...


class WatchCompactedError(errors.ClientError):
    """The watch's next revision was compacted away: the events in between are gone (etcd's ErrCompacted)."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(COMPACTED_MESSAGE)
        self.compact_revision = compact_revision


class WatchCanceledError(errors.ClientError):
    """The server refused or cancelled the watch for a reason resuming cannot fix."""


class Events:
    """The events of one watch, in revision order; `revision` is the last revision known delivered."""

    def __init__(self, client: WatchClient, create: WatchCreateRequest, require_leader: bool) -> None:
        self._client = client
        self._create = create
        self._require_leader = require_leader
        self._next_rev = create.start_revision  # 0 until the first created response
        self._pending: deque[Event] = deque()
        self._endpoint = 0
        self._stream: Any = None
        self._exit: Any = None
        self.revision = 0
        self.resumes = 0  # how many times the watch reopened (tests and tools report it)
        self.split_revisions = 0  # responses that began with the revision the previous one ended with
        # Told every response after the created one (events, progress, the compacted one): trikvctl prints
        # responses, not events.
        self.on_response: Callable[[WatchResponse], None] | None = None

    def __aiter__(self) -> Events:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            await self._fill()
        return self._pending.popleft()

    async def _fill(self) -> None:
        try:
            if self._stream is None:
                await self._open()
            self._take(await self._receive_whole())
            return
        except (WatchCompactedError, WatchCanceledError):
            raise
        except errors.EtcdError as exc:
            if not isinstance(exc, errors.UnavailableError):
                raise  # the request itself is wrong: another member would say the same
            reason: object = exc
        except Exception as exc:  # lost connection, no leader, unreachable member, the server ended it
            reason = exc or type(exc).__name__
        log.info("watch stream on %s ended (%s); resuming", self._current(), reason)
        await self._reopen()

    def _take(self, resp: WatchResponse) -> None:
        if self.on_response is not None and not resp.created and (resp.compact_revision or not resp.canceled):
            self.on_response(resp)
        if resp.compact_revision:
            raise WatchCompactedError(resp.compact_revision)
        if resp.created:
            if resp.canceled:
                raise WatchCanceledError(resp.cancel_reason)
            if self._next_rev == 0:
                self._next_rev = resp.header.revision + 1
            return
        if resp.canceled:
            if resp.cancel_reason:
                log.info("watch cancelled by the server (%s); resuming", resp.cancel_reason)
                raise _Resume()
            raise WatchCanceledError("watch is canceled by the server")
        if resp.events:
            if resp.events[0].kv.mod_revision <= self.revision:
                self.split_revisions += 1  # never expected: a revision is whole in one response
            self._pending.extend(resp.events)
            last = resp.events[-1].kv.mod_revision
            self._next_rev = max(self._next_rev, last + 1)
            self.revision = max(self.revision, last)
        elif resp.header.revision >= self._next_rev and self._next_rev:
            # a progress notification: every event up to it was delivered (trikv's bookmark guarantee)
            self._next_rev = resp.header.revision + 1
            self.revision = max(self.revision, resp.header.revision)

    async def _receive_whole(self) -> WatchResponse:
        """One response, fragments joined (etcd's client does the same before handing it out)."""
        parts: list[Event] = []
        while True:
            resp: WatchResponse = await self._stream.receive()
            if not resp.fragment:
                if parts:
                    parts.extend(resp.events)
                    return WatchResponse(resp.header, resp.watch_id, events=tuple(parts))
                return resp
            parts.extend(resp.events)

    def _current(self) -> str:
        eps = self._client.endpoints
        return eps[self._endpoint % len(eps)]

    async def _open(self) -> None:
        create = WatchCreateRequest(
            key=self._create.key,
            range_end=self._create.range_end,
            start_revision=self._next_rev,
            progress_notify=self._create.progress_notify,
            filters=self._create.filters,
            prev_kv=self._create.prev_kv,
            fragment=self._create.fragment,
        )
        cm = self._client.stream(
            WATCH_STREAM,
            WatchRequest(create_request=create, require_leader=self._require_leader),
            self._current(),
        )
        self._stream = await cm.__aenter__()
        self._exit = cm

    async def _close(self) -> None:
        cm, self._stream, self._exit = self._exit, None, None
        if cm is not None:
            with trio.CancelScope(shield=True):
                try:
                    await cm.__aexit__(None, None, None)
                except Exception:  # the connection is already gone
                    pass

    async def _reopen(self) -> None:
        await self._close()
        self._endpoint += 1
        self.resumes += 1
        await trio.sleep(RETRY_DELAY)

    async def aclose(self) -> None:
        await self._close()


class _Resume(errors.ClientError):
    """A cancel the next member can fix (e.g. this one lost its leader)."""


@asynccontextmanager
async def open_watch(
    client: WatchClient,
    key: bytes,
    range_end: bytes = b"",
    *,
    start_revision: int = 0,
    prev_kv: bool = False,
    filters: tuple[int, ...] = (),
    progress_notify: bool = False,
    fragment: bool = False,
    require_leader: bool = True,
) -> AsyncIterator[Events]:
    create = WatchCreateRequest(
        key,
        range_end,
        start_revision=start_revision,
        progress_notify=progress_notify,
        filters=filters,
        prev_kv=prev_kv,
        fragment=fragment,
    )
    events = Events(client, create, require_leader)
    try:
        yield events
    finally:
        await events.aclose()


__all__ = ["Events", "WatchCanceledError", "WatchClient", "WatchCompactedError", "open_watch"]
