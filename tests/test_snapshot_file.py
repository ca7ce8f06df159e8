"""Snapshot files offline: `snapshot status` on a known file, `snapshot restore` into a new data dir and
what it refuses (etcd's messages), through trikvctl's and trikvutl's command lines.

tests/fixtures/snapshot-5keys.db was saved with `trikvctl snapshot save` from a single member after five
puts (k1=v1 .. k5=v5, revisions 2..6); it ends with its SHA-256 trailer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trikv.actors.apply import CONF_STATE_KEY, MEMBERS_BUCKET
from trikv.api import codec, rpc
from trikv.api.records import ConfState
from trikv.storage.files import OsFileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile
from trikv.storage.wal import WAL
from trikv.tools import trikvctl, trikvutl
from trikv.tools.snapshot_file import status
from trikv.tools.snapshot_restore import restore_config

FIXTURE = Path(__file__).parent / "fixtures" / "snapshot-5keys.db"
PEER = "http://127.0.0.1:42380"


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = trikvctl.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def restore_argv(snap: str, data_dir: str, *extra: str, name: str = "r1") -> list[str]:
    return [
        "snapshot", "restore", snap, "--name", name, "--data-dir", data_dir,
        "--initial-cluster", f"r1={PEER}", "--initial-advertise-peer-urls", PEER,
        "--initial-cluster-token", "restored", *extra,
    ]  # fmt: skip


def test_status_of_a_known_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl(capsys, "snapshot", "status", str(FIXTURE)) == (0, "3fd10ab7, 6, 12, 49 kB\n", "")
    code, out, _ = ctl(capsys, "snapshot", "status", str(FIXTURE), "-w", "table")
    assert code == 0
    assert out.splitlines()[1] == "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |"
    assert out.splitlines()[3] == "| 3fd10ab7 |        6 |         12 |      49 kB |"
    code, out, _ = ctl(capsys, "snapshot", "status", str(FIXTURE), "-w", "json")
    assert json.loads(out) == {"hash": 0x3FD10AB7, "revision": 6, "totalKey": 12, "totalSize": 49152}
    # trikvutl shares the code
    assert trikvutl.main(["snapshot", "status", str(FIXTURE)]) == 0
    assert capsys.readouterr().out == "3fd10ab7, 6, 12, 49 kB\n"


def test_status_of_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    assert ctl(capsys, "snapshot", "status", str(missing)) == (
        1,
        "",
        f"Error: stat {missing}: no such file or directory\n",
    )


def test_restore_keeps_the_key_space_with_new_ids(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "r1"
    code, _, err = ctl(capsys, *restore_argv(str(FIXTURE), str(data)))
    assert code == 0, err
    cfg = restore_config(
        name="r1",
        data_dir=str(data),
        wal_dir="",
        initial_cluster=f"r1={PEER}",
        initial_cluster_token="restored",
        initial_advertise_peer_urls=PEER,
    )
    mid = cfg.initial_member_ids["r1"]
    fs = OsFileSystem()
    pf = PageFile.open(fs, str(cfg.db_path))
    kv = KVStore(pf)
    try:
        resp = kv.range(rpc.RangeRequest(b"k", range_end=b"l"))
        assert [(x.key, x.value, x.mod_revision) for x in resp.kvs] == [
            (b"k%d" % i, b"v%d" % i, i + 1) for i in range(1, 6)
        ]
        assert kv.current_revision == 6
        assert kv.consistent_index == 1  # the restore's commit index: one member
        assert codec.decode(kv.meta_get(CONF_STATE_KEY)) == ConfState((mid,))  # type: ignore[arg-type]
        assert int.from_bytes(kv.meta_get(b"member_id") or b"", "big") == mid
        with pf.read() as rx:
            members = [codec.decode(v) for _, v in rx.range(MEMBERS_BUCKET)]
        assert [(m.id, m.name, m.peer_urls) for m in members] == [(mid, "r1", (PEER,))]
    finally:
        kv.close()
        pf.close()
    wal, replay = WAL.open(fs, str(cfg.wal_dir))
    wal.close()
    assert replay.metadata.member_id == mid
    assert replay.snapshot is not None and replay.snapshot.index == 1
    assert replay.snapshot.conf_state == ConfState((mid,))
    assert replay.hard_state.commit == 1 and replay.hard_state.term == 1


def test_restore_refuses_an_existing_data_dir_and_an_unknown_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "r1"
    data.mkdir()
    assert ctl(capsys, *restore_argv(str(FIXTURE), str(data))) == (
        1,
        "",
        f'Error: data-dir "{data}" exists\n',
    )
    other = tmp_path / "r2"
    assert ctl(capsys, *restore_argv(str(FIXTURE), str(other), name="rX")) == (
        1,
        "",
        'Error: couldn\'t find local name "rX" in the initial cluster configuration\n',
    )
    assert not other.exists()


def _reachable_page(tmp_path: Path, body: bytes) -> int:
    """The first page whose corruption the page-file check notices (free pages may hold anything)."""
    probe = tmp_path / "probe.db"
    for page in range(2, (len(body) - 32) // 4096):
        raw = bytearray(body[:-32])
        raw[page * 4096 + 100] ^= 0x01
        probe.write_bytes(bytes(raw))
        if PageFile.check(OsFileSystem(), str(probe)):
            return page
    raise AssertionError("no reachable page found")


def test_restore_refuses_a_flipped_byte(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    body = FIXTURE.read_bytes()
    raw = bytearray(body)
    raw[_reachable_page(tmp_path, body) * 4096 + 100] ^= 0x01  # inside a page the state needs
    bad.write_bytes(bytes(raw))
    data = tmp_path / "r1"
    code, _, err = ctl(capsys, *restore_argv(str(bad), str(data)))
    assert code == 1
    assert err.startswith("Error: expected sha256 [") and ", got [" in err
    assert not data.exists()  # nothing half-built is left behind
    # without the hash check, the page-file check still refuses a corrupted reachable page
    code, _, err = ctl(capsys, *restore_argv(str(bad), str(data), "--skip-hash-check"))
    assert code == 1 and "is not a valid page file" in err, err
    assert not data.exists()


def test_restore_without_a_trailer_needs_skip_hash_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plain = tmp_path / "plain.db"
    plain.write_bytes(FIXTURE.read_bytes()[:-32])  # a page file copied as is: no SHA-256 trailer
    data = tmp_path / "r1"
    assert ctl(capsys, *restore_argv(str(plain), str(data))) == (
        1,
        "",
        "Error: snapshot missing hash but --skip-hash-check=false\n",
    )
    code, _, err = ctl(capsys, *restore_argv(str(plain), str(data), "--skip-hash-check"))
    assert code == 0, err
    assert status(str(data / "member" / "snap" / "db")).revision == 6


def test_trikvutl_restore_then_defrag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "r1"
    assert trikvutl.main(restore_argv(str(FIXTURE), str(data))) == 0
    assert trikvutl.main(["defrag", "--data-dir", str(data)]) == 0
    assert "Finished defragmenting" in capsys.readouterr().out
    shutil.rmtree(data)


def test_trikvutl_defrag_refuses_a_locked_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "r1"
    assert trikvutl.main(restore_argv(str(FIXTURE), str(data))) == 0
    capsys.readouterr()
    lock = OsFileSystem().lock(str(data / "member"))  # what a running member holds
    try:
        assert trikvutl.main(["defrag", "--data-dir", str(data)]) == 1
        assert "is in use by a running member" in capsys.readouterr().out
    finally:
        lock.release()


def test_save_needs_one_file_and_exactly_one_endpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    eps = "--endpoints=127.0.0.1:1,127.0.0.1:2"
    assert ctl(capsys, eps, "snapshot", "save", str(tmp_path / "x.db")) == (
        5,
        "",
        "Error: snapshot must be requested to one selected node, not multiple [127.0.0.1:1 127.0.0.1:2]\n",
    )
    assert ctl(capsys, "snapshot", "save") == (128, "", "Error: snapshot save expects one argument\n")
    assert not (tmp_path / "x.db.part").exists()


def test_leftover_incoming_snapshot_files_are_removed_at_start(tmp_path: Path) -> None:
    from trikv.actors.events import Inbox, to_thread
    from trikv.actors.snapstream import SnapshotReceiver

    db = tmp_path / "db"
    (tmp_path / "db.incoming.3").write_bytes(b"half a snapshot")
    (tmp_path / "db.other").write_bytes(b"kept")
    SnapshotReceiver(OsFileSystem(), str(db), Inbox(), to_thread)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.other"]


def test_status_only_reads(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    snap = tmp_path / "backup.db"
    snap.write_bytes(FIXTURE.read_bytes())
    neighbour = tmp_path / "backup.db.defrag"  # a name PageFile.open would clean up as its own leftover
    neighbour.write_bytes(b"someone else's file")
    snap.chmod(0o444)
    before = snap.read_bytes()
    assert ctl(capsys, "snapshot", "status", str(snap))[0] == 0
    assert snap.read_bytes() == before and neighbour.exists()
