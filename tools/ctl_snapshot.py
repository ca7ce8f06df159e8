"""trikvctl `snapshot save|status|restore` and `defrag`; trikvutl's `snapshot status|restore` share this code.

etcdctl 3.4's arguments, lines and exit codes. `snapshot save` streams Maintenance.Snapshot from exactly
one endpoint into FILE.part (progress on stderr for large snapshots), checks the SHA-256 trailer the member
sent against what arrived, syncs and renames it to FILE. `defrag` asks each endpoint (or every member with
--cluster) to defragment online. Heavy imports (trio, the client, storage) happen inside the commands, so
loading this module costs the unary commands nothing.

Commands take trikvctl's Ctx (args, out, printer.fmt, endpoints, timeouts) and return the exit code.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

COMMAND_NAMES = ("snapshot", "defrag")
FORMATS = {"snapshot status": frozenset({"simple", "json", "table"})}
EXIT_ERROR = 1
EXIT_INTERRUPTED = 5  # etcdctl: snapshot save against more than one endpoint
EXIT_BAD_ARGS = 128
PROGRESS_MIN_BYTES = 16 << 20  # snapshots at least this large report progress on stderr
PROGRESS_EVERY = 1.0  # seconds between progress lines

Leaf = Callable[..., Any]


def add_parsers(sub: Any, leaf: Leaf, only: str | None, unused: Any, parser_class: type) -> None:
    """Register the commands on trikvctl's parser (`leaf` adds one command with the global flags)."""
    snap = (sub if only in (None, "snapshot") else unused).add_parser(
        "snapshot", help="Manages trikv node snapshots", description="Manages trikv node snapshots"
    )
    snap_sub = snap.add_subparsers(dest="subcommand", parser_class=parser_class, metavar="SUBCOMMAND")
    p = leaf(snap_sub, "save", "Stores a trikv node backend snapshot to a given file", "snapshot")
    p.add_argument("args", nargs="*", metavar="<filename>")
    p = leaf(snap_sub, "status", "Gets backend snapshot status of a given file", "snapshot")
    p.add_argument("args", nargs="*", metavar="<filename>")
    p = leaf(snap_sub, "restore", "Restores a trikv member snapshot to a trikv directory", "snapshot")
    p.add_argument("args", nargs="*", metavar="<filename>")
    add_restore_flags(p)
    p = leaf(sub, "defrag", "Defragments the storage of the trikv members with given endpoints")
    p.add_argument("--cluster", action="store_true", help="use all endpoints from the cluster member list")


def add_restore_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default="", help="Path to the data directory")
    p.add_argument("--wal-dir", default="", help="Path to the WAL directory (use --data-dir if none given)")
    p.add_argument(
        "--initial-cluster",
        default="default=http://localhost:2380",
        help="Initial cluster configuration for restore bootstrap",
    )
    p.add_argument(
        "--initial-cluster-token", default="etcd-cluster", help="Initial cluster token for the cluster"
    )
    p.add_argument(
        "--initial-advertise-peer-urls",
        default="http://localhost:2380",
        help="List of this member's peer URLs to advertise to the rest of the cluster",
    )
    p.add_argument("--name", default="default", help="Human-readable name for this member")
    p.add_argument("--skip-hash-check", action="store_true", help="Ignore snapshot integrity hash value")


# --------------------------------------------------------------------------- status and restore (offline)


def status_lines(path: str, fmt: str) -> list[str]:
    """What `snapshot status FILE -w fmt` prints (raises SnapshotFileError)."""
    import json

    from trikv.tools.ctl_print import humanize_bytes, render_table
    from trikv.tools.snapshot_file import status

    st = status(path)
    if fmt == "json":
        return [json.dumps(st.as_json(), separators=(",", ":"))]
    row = [f"{st.hash:x}", str(st.revision), str(st.total_key), humanize_bytes(st.total_size)]
    if fmt == "table":
        return render_table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], [row])
    return [", ".join(row)]


def run_status(args: list[str], fmt: str, out: Any) -> int:
    from trikv.tools.snapshot_file import SnapshotFileError

    if len(args) != 1:
        out.err("Error: snapshot status requires exactly one argument")
        return EXIT_BAD_ARGS
    try:
        for line in status_lines(args[0], fmt):
            out.line(line)
    except (SnapshotFileError, OSError) as exc:
        out.err(f"Error: {exc}")
        return EXIT_ERROR
    return 0


def run_restore(a: argparse.Namespace, out: Any) -> int:
    from trikv.api.errors import TrikvError
    from trikv.tools.snapshot_file import SnapshotFileError
    from trikv.tools.snapshot_restore import restore, restore_config

    if len(a.args) != 1:
        out.err("Error: snapshot restore requires exactly one argument")
        return EXIT_BAD_ARGS
    path = a.args[0]
    try:
        cfg = restore_config(
            name=a.name,
            data_dir=a.data_dir,
            wal_dir=a.wal_dir,
            initial_cluster=a.initial_cluster,
            initial_cluster_token=a.initial_cluster_token,
            initial_advertise_peer_urls=a.initial_advertise_peer_urls,
        )
        restore(path, cfg, skip_hash_check=a.skip_hash_check)
    except (SnapshotFileError, TrikvError, OSError) as exc:
        out.err(f"Error: {exc}")
        return EXIT_ERROR
    out.err(
        f"restored snapshot {path} into data-dir {cfg.data_dir} (wal-dir {cfg.wal_dir}): "
        f"member {cfg.initial_member_ids[cfg.name]:x} of a new cluster of {len(cfg.initial_cluster)}"
    )
    return 0


def cmd_snapshot_status(ctx: Any) -> int:
    return run_status(ctx.args.args, ctx.printer.fmt, ctx.out)


def cmd_snapshot_restore(ctx: Any) -> int:
    return run_restore(ctx.args, ctx.out)


# --------------------------------------------------------------------------- save (a stream)


def cmd_snapshot_save(ctx: Any) -> int:
    a = ctx.args
    if len(a.args) != 1:
        ctx.out.err("Error: snapshot save expects one argument")
        return EXIT_BAD_ARGS
    if len(ctx.endpoints) != 1:
        ctx.out.err(
            f"Error: snapshot must be requested to one selected node, not multiple [{' '.join(ctx.endpoints)}]"
        )
        return EXIT_INTERRUPTED
    import trio

    from trikv.api.errors import TrikvError

    path = a.args[0]
    part = path + ".part"
    try:
        size = trio.run(_save, ctx.endpoints[0], part, ctx.dial_timeout, ctx.out)
        os.replace(part, path)
    except (TrikvError, OSError) as exc:
        _remove_quietly(part)
        text = getattr(exc, "text", None) or str(exc) or type(exc).__name__
        ctx.out.err(f"Error: {text}")
        return EXIT_ERROR
    except BaseException:
        _remove_quietly(part)
        raise
    from trikv.tools.ctl_print import humanize_bytes

    ctx.out.err(f"fetched snapshot from {ctx.endpoints[0]}: {humanize_bytes(size)}")
    ctx.out.line(f"Snapshot saved at {path}")
    return 0


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


async def _save(endpoint: str, part: str, dial_timeout: float, out: Any) -> int:
    """Stream the snapshot into `part` (synced); returns its size. The trailer must match what arrived."""
    import hashlib

    import trikv
    from trikv.api import errors
    from trikv.api.snapshot import HASH_SIZE, SNAPSHOT_OP, SnapshotRequest, SnapshotResponse

    digest = hashlib.sha256()
    got = 0
    trailer: bytes | None = None
    last_report = time.monotonic()
    async with trikv.connect([endpoint], dial_timeout=dial_timeout) as client:
        async with client.stream(SNAPSHOT_OP, SnapshotRequest(), endpoint=endpoint) as st:
            with open(part, "wb") as f:
                async for r in st:
                    if not isinstance(r, SnapshotResponse):
                        raise errors.ClientError(f"unexpected {type(r).__name__} in a snapshot stream")
                    f.write(r.blob)
                    if r.remaining_bytes == 0:
                        trailer = r.blob
                        break
                    digest.update(r.blob)
                    got += len(r.blob)
                    total = got + r.remaining_bytes
                    now = time.monotonic()
                    if total >= PROGRESS_MIN_BYTES and now - last_report >= PROGRESS_EVERY:
                        last_report = now
                        out.err(f"fetching snapshot from {endpoint}: {got} of {total} bytes")
                f.flush()
                os.fsync(f.fileno())
    if trailer is None:
        raise errors.ClientError("snapshot stream ended before its SHA-256 trailer")
    if len(trailer) != HASH_SIZE or trailer != digest.digest():
        raise errors.ClientError("snapshot stream's SHA-256 trailer does not match the data received")
    return got + HASH_SIZE


# --------------------------------------------------------------------------- defrag


def cmd_defrag(ctx: Any) -> int:
    from trikv.api import errors
    from trikv.api.snapshot import DEFRAGMENT_OP, DefragmentRequest, DefragmentResponse
    from trikv.blocking import BlockingClient

    def client(endpoints: list[str]) -> BlockingClient:
        return BlockingClient(endpoints, dial_timeout=ctx.dial_timeout, request_timeout=ctx.command_timeout)

    endpoints = list(ctx.endpoints)
    if ctx.args.cluster:
        try:
            with client(endpoints) as c:
                members = c.member_list()
        except errors.TrikvError as exc:
            text = getattr(exc, "text", None) or str(exc)
            ctx.out.err(f"Error: failed to fetch endpoints from etcd cluster member list: {text}")
            return EXIT_ERROR
        endpoints = [url for m in members.members for url in m.client_urls]
    failed = False
    with client(endpoints) as c:
        for ep in endpoints:
            try:
                c.call(DEFRAGMENT_OP, DefragmentRequest(), DefragmentResponse, idempotent=True, endpoint=ep)
            except errors.TrikvError as exc:
                failed = True
                text = getattr(exc, "text", None) or str(exc) or "context deadline exceeded"
                ctx.out.err(f"Failed to defragment etcd member[{ep}] ({text})")
                continue
            ctx.out.line(f"Finished defragmenting etcd member[{ep}]")
    return EXIT_ERROR if failed else 0


COMMANDS: dict[tuple[str, str | None], Callable[[Any], int]] = {
    ("snapshot", "save"): cmd_snapshot_save,
    ("snapshot", "status"): cmd_snapshot_status,
    ("snapshot", "restore"): cmd_snapshot_restore,
    ("defrag", None): cmd_defrag,
}

__all__ = [
    "COMMANDS",
    "COMMAND_NAMES",
    "FORMATS",
    "add_parsers",
    "add_restore_flags",
    "run_restore",
    "run_status",
]
