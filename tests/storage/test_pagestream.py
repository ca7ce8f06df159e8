"""PageFileSnapshot: the image of one commit stays intact while later commits free and reuse pages (the page
file's pending-reader rule), and it is read through a handle of its own (a file renamed over the path, as
online defrag does, does not change it)."""

from __future__ import annotations

from pathlib import Path

from trikv.storage.files import OsFileSystem
from trikv.storage.pagecopy import CompactCopy
from trikv.storage.pagefile import PageFile
from trikv.storage.pagestream import PageFileSnapshot


def write_all(pf: PageFile, tag: bytes, n: int = 2000) -> None:
    w = pf.write()
    if b"b" not in w.buckets():
        w.create_bucket(b"b")
    for i in range(n):
        w.put(b"b", b"key%05d" % i, tag * 100)
    w.commit()


def image_contents(tmp_path: Path, snap: PageFileSnapshot) -> dict[bytes, bytes]:
    data = b"".join(snap.read(off, 10_000) for off in range(0, snap.size, 10_000))
    assert len(data) == snap.size
    path = tmp_path / "image.db"
    path.write_bytes(data)
    fs = OsFileSystem()
    assert PageFile.check(fs, str(path)) == []
    pf = PageFile.open(fs, str(path))
    try:
        with pf.read() as rx:
            return dict(rx.range(b"b"))
    finally:
        pf.close()


def test_the_pinned_commit_survives_commits_that_reuse_pages(tmp_path: Path) -> None:
    pf = PageFile.open(OsFileSystem(), str(tmp_path / "db"))
    try:
        write_all(pf, b"a")
        snap = PageFileSnapshot(pf)
        for round_ in range(20):  # each rewrite frees every leaf; without the pin they would be reused
            write_all(pf, bytes([ord("b") + round_ % 20]))
        got = image_contents(tmp_path, snap)
        assert got == {b"key%05d" % i: b"a" * 100 for i in range(2000)}
        snap.close()
        write_all(pf, b"z")  # closed: its pages may go now, and the file stays valid
        assert PageFile.check(OsFileSystem(), str(tmp_path / "db")) == []
    finally:
        pf.close()


def test_a_snapshot_keeps_reading_the_old_file_across_an_online_defrag(tmp_path: Path) -> None:
    pf = PageFile.open(OsFileSystem(), str(tmp_path / "db"))
    try:
        write_all(pf, b"a")
        snap = PageFileSnapshot(pf)
        copy = CompactCopy(pf)
        while not copy.step(500):
            pass
        copy.install(pf)  # renamed over the path; the owner reloads
        write_all(pf, b"c")  # the new file changes; the snapshot does not see it
        assert image_contents(tmp_path, snap) == {b"key%05d" % i: b"a" * 100 for i in range(2000)}
        snap.close()
    finally:
        pf.close()
