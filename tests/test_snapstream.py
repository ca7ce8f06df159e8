"""The streamed Raft snapshot protocol (actors/snapstream.py) over a real loopback WebSocket: a pinned page-file
commit is sent in chunks; the receiver writes it to its own file and hands the Raft loop a token naming it;
a corrupted stream is refused (ok=False) and nothing reaches the Raft loop; a token only names files of the
receiver's own numbering."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio_websocket

from trikv.actors import snapstream
from trikv.actors.events import Inbox, to_thread
from trikv.api import codec
from trikv.api.internal import PeerHelloReply
from trikv.api.raftpb import Message, MessageType, Snapshot
from trikv.api.records import SnapshotMeta
from trikv.storage.files import OsFileSystem
from trikv.storage.pagefile import PageFile
from trikv.storage.pagestream import PageFileSnapshot

HOST = "127.0.0.1"
LEADER, FOLLOWER = 1, 2


def source_file(tmp_path: Path) -> PageFile:
    pf = PageFile.open(OsFileSystem(), str(tmp_path / "leader.db"))
    w = pf.write()
    w.create_bucket(b"b")
    for i in range(3000):
        w.put(b"b", b"key%05d" % i, b"v" * 300)
    w.commit()
    return pf


def snap_message() -> Message:
    return Message(
        MessageType.SNAP, to=FOLLOWER, frm=LEADER, term=3, snapshot=Snapshot(SnapshotMeta(7, 3), b"")
    )


async def stream_once(
    tmp_path: Path, corrupt: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[bool, Inbox, str]:
    monkeypatch.setattr(snapstream, "CHUNK", 64 * 1024)  # several frames
    leader = source_file(tmp_path)
    inbox = Inbox()
    follower_db = str(tmp_path / "follower" / "db")
    receiver = snapstream.SnapshotReceiver(OsFileSystem(), follower_db, inbox, to_thread)

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await receiver.receive(ws, FOLLOWER, LEADER)
        except trio_websocket.ConnectionClosed:
            pass

    snap = PageFileSnapshot(leader)
    if corrupt:
        real_read = snap.read

        def bad_read(offset: int, n: int) -> bytes:
            data = bytearray(real_read(offset, n))
            if offset <= 3 * 4096 < offset + len(data):
                data[3 * 4096 - offset + 50] ^= 0xFF  # a byte inside a page the tree needs
            return bytes(data)

        snap.read = bad_read  # type: ignore[method-assign]
    try:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(trio_websocket.serve_websocket, handler, HOST, 0, None)
            port = server.port
            async with trio_websocket.open_websocket_url(
                f"ws://{HOST}:{port}/raft", max_message_size=1 << 30
            ) as ws:
                ok = await snapstream.send_chunks(ws, snap_message(), snap, to_thread)
            nursery.cancel_scope.cancel()
    finally:
        snap.close()
        leader.close()
    return ok, inbox, follower_db


async def test_a_streamed_snapshot_lands_in_a_file_the_token_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, inbox, follower_db = await stream_once(tmp_path, corrupt=False, monkeypatch=monkeypatch)
    assert ok
    m = inbox.receive_nowait()
    assert isinstance(m, Message) and m.type == MessageType.SNAP and m.snapshot is not None
    assert m.snapshot.meta == SnapshotMeta(7, 3) and snapstream.is_token(m.snapshot.data)
    path = snapstream.received_file(follower_db, m.snapshot.data)
    assert path is not None and Path(path).exists()
    assert PageFile.check(OsFileSystem(), path) == []
    pf = PageFile.open(OsFileSystem(), path)
    try:
        with pf.read() as rx:
            assert rx.get(b"b", b"key02999") == b"v" * 300
    finally:
        pf.close()


async def test_a_corrupted_stream_is_refused_and_never_reaches_raft(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, inbox, _ = await stream_once(tmp_path, corrupt=True, monkeypatch=monkeypatch)
    assert not ok
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()
    assert not list((tmp_path / "follower").glob("db.incoming.*"))  # the bad file is gone


def test_tokens_name_only_numbered_files_next_to_the_page_file() -> None:
    assert snapstream.received_file("/d/db", snapstream.STREAMED + b"12") == "/d/db.incoming.12"
    for data in (b"page file bytes", snapstream.STREAMED + b"../../etc/passwd", snapstream.STREAMED + b"1/2"):
        assert snapstream.received_file("/d/db", data) is None
    assert codec.decode(codec.encode(PeerHelloReply(False, error="invalid snapshot"))).ok is False
