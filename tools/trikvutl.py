"""trikvutl: offline tools for a member's data directory (etcdutl / etcd-dump-logs in one).

    trikvutl wal dump DIR                    one line per WAL record (DIR = the WAL directory)
    trikvutl check DIR [--wal-dir W]         verify WAL CRCs/structure and the page file; exit 1 on problems
    trikvutl defrag --data-dir DIR           rewrite the page file compactly (refused while a member runs)
    trikvutl snapshot status FILE [-w F]     hash, revision, total keys, total size of a snapshot file
    trikvutl snapshot restore FILE --name N --data-dir D --initial-cluster ... [--skip-hash-check]

Run these on a stopped member: they read without the WAL lock (dump/check never write) and defrag
rewrites the page file. Exit 0 when healthy, 1 with one line per problem on stdout, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import signal
import sys
from collections.abc import Sequence

from trikv.api.errors import CorruptionError, LockedError, TrikvError
from trikv.api.records import Entry, HardState, SnapshotMeta, WalMetadata
from trikv.storage.files import OsFileSystem
from trikv.storage.wal import (
    REC_ENTRY,
    REC_HARDSTATE,
    REC_METADATA,
    RECORD_TYPES,
    Record,
    parse_segment_name,
    scan_segment,
    verify,
)
from trikv.tools import ctl_snapshot
from trikv.tools.ctl_print import Out

EXIT_OK = 0
EXIT_PROBLEM = 1


def wal_dir_of(data_dir: str) -> str:
    return os.path.join(data_dir, "member", "wal")


def db_path_of(data_dir: str) -> str:
    return os.path.join(data_dir, "member", "snap", "db")


def _short_hex(data: bytes, limit: int = 16) -> str:
    return data[:limit].hex() + ("..." if len(data) > limit else "")


def format_record(rec: Record) -> str:
    """etcd-dump-logs style: record type, then term/index/entry type/data size and a short hex prefix."""
    v = rec.value
    name = RECORD_TYPES[rec.type]
    if rec.type == REC_ENTRY:
        assert isinstance(v, Entry)
        return (
            f"{rec.offset:>10} {name:<9} term={v.term} index={v.index} type={v.type.name} "
            f"size={len(v.data)} data={_short_hex(v.data)}"
        )
    if rec.type == REC_HARDSTATE:
        assert isinstance(v, HardState)
        return f"{rec.offset:>10} {name:<9} term={v.term} vote={v.vote} commit={v.commit}"
    if rec.type == REC_METADATA:
        assert isinstance(v, WalMetadata)
        return f"{rec.offset:>10} {name:<9} cluster_id={v.cluster_id:x} member_id={v.member_id:x}"
    assert isinstance(v, SnapshotMeta)
    cs = v.conf_state
    return (
        f"{rec.offset:>10} {name:<9} term={v.term} index={v.index} "
        f"voters={','.join(map(str, cs.voters))} learners={','.join(map(str, cs.learners))}"
    )


def wal_dump(dirpath: str) -> int:
    fs = OsFileSystem()
    if not fs.exists(dirpath):
        print(f"{dirpath}: no such directory")
        return EXIT_PROBLEM
    names = sorted(
        (n for n in fs.listdir(dirpath) if parse_segment_name(n)),
        key=lambda n: parse_segment_name(n)[0],  # type: ignore[index]
    )
    if not names:
        print(f"{dirpath}: no WAL segments")
        return EXIT_PROBLEM
    entries = 0
    for i, name in enumerate(names):
        path = posixpath.join(dirpath, name)
        f = fs.open(path)
        try:
            data = f.pread(f.size(), 0)
        finally:
            f.close()
        print(f"segment {name} ({len(data)} bytes)")
        try:
            scan = scan_segment(data, path, last=i == len(names) - 1)
        except CorruptionError as exc:
            print(str(exc))
            return EXIT_PROBLEM
        for rec in scan.records:
            entries += rec.type == REC_ENTRY
            print(format_record(rec))
        if scan.torn:
            print(f"{scan.end:>10} torn tail ({scan.torn}): recovery cuts the log here")
    print(f"{len(names)} segments, {entries} entries")
    return EXIT_OK


def check(data_dir: str, wal_dir: str | None) -> int:
    fs = OsFileSystem()
    problems: list[str] = []
    wdir = wal_dir or wal_dir_of(data_dir)
    if not fs.exists(wdir):
        problems.append(f"{wdir}: no WAL directory")
    else:
        problems += verify(fs, wdir)
    db = db_path_of(data_dir)
    try:
        from trikv.storage.pagefile import PageFile
    except ImportError:
        print(f"{db}: page file check unavailable (storage.pagefile not installed)", file=sys.stderr)
    else:
        if not fs.exists(db):
            problems.append(f"{db}: no page file")
        else:
            try:
                problems += PageFile.check(fs, db)
            except (OSError, TrikvError) as exc:
                problems.append(f"{db}: {exc}")
    for p in problems:
        print(p)
    if problems:
        return EXIT_PROBLEM
    print(f"{data_dir}: healthy")
    return EXIT_OK


def defrag(data_dir: str) -> int:
    from trikv.storage.pagefile import PageFile

    fs = OsFileSystem()
    db = db_path_of(data_dir)
    if not fs.exists(db):
        print(f"{db}: no page file")
        return EXIT_PROBLEM
    try:
        lock = fs.lock(os.path.dirname(os.path.dirname(db)))  # the member dir a running member holds
    except LockedError:
        print(f"Error: {data_dir} is in use by a running member; defragment it online with `trikvctl defrag`")
        return EXIT_PROBLEM
    try:
        pf = PageFile.open(fs, db)
        try:
            before = pf.size()
            pf.defrag()
            after = pf.size()
        finally:
            pf.close()
    finally:
        lock.release()
    print(f"Finished defragmenting {db}: {before} -> {after} bytes")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trikvutl", description="Offline tools for a trikv data directory.")
    sub = parser.add_subparsers(dest="command", required=True)
    wal = sub.add_parser("wal", help="WAL tools")
    wal_sub = wal.add_subparsers(dest="subcommand", required=True)
    dump = wal_sub.add_parser("dump", help="print every record of a WAL directory")
    dump.add_argument("dir", help="the WAL directory (e.g. DATA_DIR/member/wal)")
    chk = sub.add_parser("check", help="verify the WAL and the page file of a data directory")
    chk.add_argument("dir", help="the data directory")
    chk.add_argument("--wal-dir", default=None, help="WAL directory if not DATA_DIR/member/wal")
    dfg = sub.add_parser("defrag", help="rewrite the page file compactly (member must be stopped)")
    dfg.add_argument("--data-dir", required=True)
    snap = sub.add_parser("snapshot", help="snapshot files: status, restore (as trikvctl snapshot)")
    snap_sub = snap.add_subparsers(dest="subcommand", required=True)
    st = snap_sub.add_parser("status", help="hash, revision, total keys and total size of a snapshot file")
    st.add_argument("args", nargs="*", metavar="<filename>")
    st.add_argument("-w", "--write-out", default="simple", choices=("simple", "json", "table"))
    rs = snap_sub.add_parser("restore", help="a new member's data directory from a snapshot file")
    rs.add_argument("args", nargs="*", metavar="<filename>")
    ctl_snapshot.add_restore_flags(rs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends us quietly, like any Unix tool
    args = build_parser().parse_args(None if argv is None else list(argv))
    try:
        if args.command == "wal":
            return wal_dump(args.dir)
        if args.command == "check":
            return check(args.dir, args.wal_dir)
        if args.command == "snapshot":
            if args.subcommand == "status":
                return ctl_snapshot.run_status(args.args, args.write_out, Out())
            return ctl_snapshot.run_restore(args, Out())
        return defrag(args.data_dir)
    except (OSError, TrikvError) as exc:
        print(f"Error: {exc}")
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
