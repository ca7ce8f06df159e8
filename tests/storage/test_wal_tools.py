"""trikvutl: wal dump, check (WAL + page file), defrag on a real data directory."""

from __future__ import annotations

import os

from trikv.api.records import ConfState, Entry, EntryType, HardState, SnapshotMeta, WalMetadata
from trikv.storage.files import OsFileSystem
from trikv.storage.wal import WAL, scan_segment
from trikv.tools.trikvutl import db_path_of, main, wal_dir_of


def make_data_dir(root: str) -> str:
    fs = OsFileSystem()
    fs.makedirs(os.path.join(root, "member"))
    wal = WAL.create(fs, wal_dir_of(root), WalMetadata(0xABC, 0x12), segment_size=4096)
    wal.append([Entry(2, i, EntryType.NORMAL, bytes([i]) * 30) for i in range(1, 40)], HardState(2, 0x12, 30))
    wal.save_snapshot(SnapshotMeta(10, 2, ConfState((1, 2), (3,))))
    wal.sync()
    wal.close()
    fs.makedirs(os.path.dirname(db_path_of(root)))
    from trikv.storage.pagefile import PageFile

    pf = PageFile.open(fs, db_path_of(root))
    with pf.write() as tx:
        tx.create_bucket(b"b")
        for i in range(300):
            tx.put(b"b", b"%05d" % i, b"v" * 100)
        tx.commit()
    with pf.write() as tx:
        for i in range(0, 300, 2):
            tx.delete(b"b", b"%05d" % i)
        tx.commit()
    pf.close()
    return root


def test_wal_dump_prints_one_line_per_record(tmp_path, capsys):
    root = make_data_dir(str(tmp_path))
    assert main(["wal", "dump", wal_dir_of(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    entries = [line for line in out if " entry " in line]
    assert len(entries) == 39
    assert "term=2 index=1 type=NORMAL size=30 data=01010101010101010101010101010101..." in entries[0]
    assert any("metadata" in line and "cluster_id=abc member_id=12" in line for line in out)
    assert any("hardstate term=2 vote=18 commit=30" in line for line in out)
    assert any("snapshot  term=2 index=10 voters=1,2 learners=3" in line for line in out)
    assert out[-1].endswith("39 entries")


def test_check_healthy_then_names_each_problem(tmp_path, capsys):
    root = make_data_dir(str(tmp_path))
    assert main(["check", root]) == 0
    assert capsys.readouterr().out.strip().endswith("healthy")

    # Flip a byte inside an entry of the first (sealed) segment.
    wdir = wal_dir_of(root)
    first = os.path.join(wdir, sorted(os.listdir(wdir))[0])
    with open(first, "rb") as fh:
        data = fh.read()
    rec = scan_segment(data, first, last=False).records[4]
    with open(first, "r+b") as fh:
        fh.seek(rec.offset + 20)
        fh.write(bytes([data[rec.offset + 20] ^ 0xFF]))
    assert main(["check", root]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert first in lines[0] and f"offset {rec.offset}" in lines[0]


def test_check_reports_a_damaged_page_file(tmp_path, capsys):
    root = make_data_dir(str(tmp_path))
    db = db_path_of(root)
    size = os.path.getsize(db)
    with open(db, "r+b") as fh:  # damage every page but the two meta pages: in-use ones are hit
        for page in range(2, size // 4096):
            fh.seek(page * 4096 + 100)
            fh.write(b"\xde\xad\xbe\xef")
    assert main(["check", root, "--wal-dir", wal_dir_of(root)]) == 1
    out = capsys.readouterr().out
    assert db in out


def test_check_missing_wal_dir(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 1
    assert "no WAL directory" in capsys.readouterr().out


def test_defrag_shrinks_and_keeps_contents(tmp_path, capsys):
    root = make_data_dir(str(tmp_path))
    from trikv.storage.pagefile import PageFile

    fs = OsFileSystem()
    before = os.path.getsize(db_path_of(root))
    assert main(["defrag", "--data-dir", root]) == 0
    assert "Finished defragmenting" in capsys.readouterr().out
    assert os.path.getsize(db_path_of(root)) <= before
    pf = PageFile.open(fs, db_path_of(root))
    with pf.read() as tx:
        assert [k for k, _ in tx.range(b"b")] == [b"%05d" % i for i in range(1, 300, 2)]
    pf.close()
    assert main(["check", root]) == 0


def test_a_torn_tail_is_shown_by_dump_and_is_not_a_problem_for_check(tmp_path, capsys):
    root = make_data_dir(str(tmp_path))
    wdir = wal_dir_of(root)
    last = os.path.join(wdir, sorted(os.listdir(wdir))[-1])
    with open(last, "rb") as fh:
        data = fh.read()
    end = scan_segment(data, last, last=True).end
    with open(last, "r+b") as fh:  # half a record: a power loss in the middle of a write
        fh.seek(end)
        fh.write(b"\x40\x00\x00\x00\xa7\x5e\x02\x01\x02")
    assert main(["wal", "dump", wdir]) == 0
    out = capsys.readouterr().out
    assert f"{end:>10} torn tail (crc mismatch)" in out
    assert main(["check", root]) == 0


def test_module_runs_as_a_program(tmp_path):
    import subprocess
    import sys

    root = make_data_dir(str(tmp_path))
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res = subprocess.run(
        [sys.executable, "-m", "trikv.tools.trikvutl", "check", root],
        cwd=here,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "healthy" in res.stdout
