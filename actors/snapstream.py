"""Raft snapshots streamed between members in bounded chunks, written and installed off the event loop.

A leader whose follower fell behind the log sends its page file: a `PageFileSnapshot` pins the last commit
(commits go on meanwhile and never reuse its pages), chunks of `CHUNK` bytes are read in worker threads and
sent as binary frames on a connection of their own (hello kind `snapshot_stream`), so heartbeats keep
flowing on the stream connections. The frames are: `[MsgSnap without data, total size]` (CBOR), then the
chunks; the receiver answers `PeerHelloReply(ok)` once the whole file is on its disk.

The receiver writes the chunks to `<db>.incoming.<n>` in worker threads and fsyncs it, then delivers the
MsgSnap to the Raft loop with a small token as its data (`STREAMED` + n) instead of the page file; the
Backend installs the named file (verify, rename over the page file, rebuild the key index) in a worker
thread. Peers can never name a file: a token arriving on an ordinary link is refused as malformed, and the
file name is built here from the number only.
"""

from __future__ import annotations

import functools
import logging
import posixpath
import re
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trikv.actors.events import Inbox, ToThread
from trikv.actors.peerlink import MessageLink
from trikv.api import codec
from trikv.api.internal import PeerHelloReply
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.storage.files import File, FileSystem
from trikv.storage.pagefile import PageFile
from trikv.storage.pagestream import PageFileSnapshot

log = logging.getLogger("trikv.snapstream")

STREAM_KIND = "snapshot_stream"
STREAMED = b"\x00trikv-streamed-snapshot:"
CHUNK = 1 << 20  # bytes per frame
MAX_SNAPSHOT = 1 << 40
_TOKEN = re.compile(rb"\x00trikv-streamed-snapshot:([0-9]{1,12})\Z")


def is_token(data: bytes) -> bool:
    return data.startswith(STREAMED)


def incoming_path(db_path: str, n: int) -> str:
    return f"{db_path}.incoming.{n}"


def received_file(db_path: str, data: bytes) -> str | None:
    """The file a streamed snapshot's token names (None: the data is the page file itself)."""
    m = _TOKEN.match(data)
    return incoming_path(db_path, int(m.group(1))) if m else None


def _bytes(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


# --------------------------------------------------------------------------- sending (the leader)


async def send_chunks(
    ws: MessageLink, m: Message, snap: PageFileSnapshot, run_sync: ToThread[Any]
) -> bool:
    """After the hello: the header, the chunks, then wait for the receiver's ack (bounded)."""
    assert m.snapshot is not None
    header = Message(
        m.type,
        to=m.to,
        frm=m.frm,
        term=m.term,
        log_term=m.log_term,
        index=m.index,
        commit=m.commit,
        snapshot=Snapshot(m.snapshot.meta, b""),
    )
    await ws.send_message(codec.encode([header, snap.size]))
    off = 0
    while off < snap.size:
        data: bytes = await run_sync(functools.partial(snap.read, off, CHUNK))
        with trio.fail_after(60):  # a stalled receiver must not pin the page file forever
            await ws.send_message(data)
        off += len(data)
    with trio.fail_after(60 + snap.size / (8 << 20)):
        ack = codec.decode(_bytes(await ws.get_message()))
    return bool(getattr(ack, "ok", False))


# --------------------------------------------------------------------------- receiving (the follower)


class SnapshotReceiver:
    """Receives streamed snapshots for one member: one at a time, each into its own numbered file."""

    def __init__(self, fs: FileSystem, db_path: str, inbox: Inbox, run_sync: ToThread[Any]) -> None:
        self.fs = fs
        self.db_path = db_path
        self.inbox = inbox
        self.run_sync = run_sync
        self._lock = trio.Lock()
        self._n = 0
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Files of streams a crash interrupted (or whose message was never installed) before a restart."""
        d, base = posixpath.split(self.db_path)
        try:
            names = self.fs.listdir(d or ".") if self.fs.exists(d or ".") else []
            for name in names:
                if name.startswith(base + ".incoming."):
                    self.fs.remove(posixpath.join(d, name))
        except OSError as exc:
            log.warning("could not remove leftover snapshot files next to %s: %s", self.db_path, exc)

    async def receive(self, ws: MessageLink, self_id: int, from_id: int) -> None:
        async with self._lock:
            with trio.fail_after(60):
                first = codec.decode(_bytes(await ws.get_message()))
            if not (isinstance(first, (list, tuple)) and len(first) == 2):
                raise codec.CodecError("snapshot stream header is not [message, size]")
            m, size = first
            if not isinstance(m, Message) or m.type != MessageType.SNAP or m.snapshot is None:
                raise codec.CodecError("snapshot stream header is not a snapshot message")
            if m.to != self_id or m.frm != from_id:
                raise codec.CodecError("snapshot stream header not addressed from/to this link")
            if not isinstance(size, int) or not 0 < size <= MAX_SNAPSHOT:
                raise codec.CodecError(f"snapshot stream of {size!r} bytes")
            self._n += 1
            n = self._n
            self._forget(n - 2)  # an older file nobody installed (its message was dropped)
            path = incoming_path(self.db_path, n)
            log.info("receiving snapshot at index %d (%d bytes) into %s", m.snapshot.meta.index, size, path)
            f: File = await self.run_sync(lambda: self._create(path))
            try:
                got = 0
                while got < size:
                    with trio.fail_after(60):
                        data = await ws.get_message()
                    if not isinstance(data, bytes) or got + len(data) > size:
                        raise codec.CodecError("snapshot stream chunk is not the expected bytes")
                    await self.run_sync(functools.partial(f.pwrite, data, got))
                    got += len(data)
                await self.run_sync(f.sync)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self.run_sync(f.close)
                    self._forget(n)
                raise
            await self.run_sync(f.close)
            problems = await self.run_sync(lambda: PageFile.check(self.fs, path))
            if problems:  # never hand the Raft loop a file it would fail to install: the leader retries
                self._forget(n)
                log.error("received snapshot is invalid, refusing it: %s", "; ".join(problems[:3]))
                await ws.send_message(codec.encode(PeerHelloReply(False, error="invalid snapshot")))
                return
            token = STREAMED + str(n).encode()
            self.inbox.deliver(
                Message(
                    m.type,
                    to=m.to,
                    frm=m.frm,
                    term=m.term,
                    log_term=m.log_term,
                    index=m.index,
                    commit=m.commit,
                    snapshot=Snapshot(m.snapshot.meta, token),
                )
            )
            await ws.send_message(codec.encode(PeerHelloReply(True)))

    def _create(self, path: str) -> File:
        self.fs.makedirs(posixpath.dirname(path) or ".")
        f = self.fs.open(path, create=True)
        f.truncate(0)
        return f

    def _forget(self, n: int) -> None:
        path = incoming_path(self.db_path, n)
        try:
            if n > 0 and self.fs.exists(path):
                self.fs.remove(path)
        except OSError:
            log.warning("could not remove %s", path)


# --------------------------------------------------------------------------- installing (the Backend)


class _FileReader:
    """A File as the binary stream `PageFile.replace_from` reads."""

    def __init__(self, f: File) -> None:
        self.f = f
        self.off = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self.f.size() - self.off
        data = self.f.pread(n, self.off)
        self.off += len(data)
        return data


def install_received(pf: PageFile, path: str) -> None:
    """Replace the page file with a received snapshot file (verified first), then remove that file.
    Blocking: runs in a worker thread."""
    fs = pf._fs
    f = fs.open(path)
    try:
        pf.replace_from(_FileReader(f))  # type: ignore[arg-type]
    finally:
        f.close()
        fs.remove(path)


OpenSnapshot = Callable[[], Awaitable[PageFileSnapshot]]

__all__ = [
    "CHUNK",
    "STREAMED",
    "STREAM_KIND",
    "OpenSnapshot",
    "SnapshotReceiver",
    "install_received",
    "is_token",
    "received_file",
    "send_chunks",
]
