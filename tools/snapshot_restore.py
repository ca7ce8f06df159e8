"""`snapshot restore`: a new member's data directory from a snapshot file (etcd 3.4's etcdctl restore).

The key space keeps its revisions, compaction state and leases (every bucket of the page file is kept);
the membership, the cluster and member ids come from the flags (`--initial-cluster`, the token), computed
exactly as a member bootstrapping a new cluster computes them (actors/config + actors/identity). The WAL
starts with a snapshot record at index N = number of members (etcd's commit index of a restore) carrying
the conf state of every listed member, and a hard state at term 1 committing it; the page file's
consistent index is set to N, so the first entries of the new cluster (N+1, ...) apply.

Refused, with etcd's messages: an existing data dir (or WAL dir), a --name missing from --initial-cluster,
a missing or wrong SHA-256 trailer (unless --skip-hash-check), and an image that is not a valid page file.
"""

from __future__ import annotations

import os
import shutil

from trikv.actors.apply import CONF_STATE_KEY, MEMBERS_BUCKET, REMOVED_BUCKET, member_key
from trikv.actors.config import ServerConfig, load_config
from trikv.actors.identity import cluster_id as compute_cluster_id
from trikv.api import codec
from trikv.api.errors import ConfigError
from trikv.api.protocol import Member
from trikv.api.records import ConfState, HardState, SnapshotMeta, WalMetadata
from trikv.storage.files import OsFileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile
from trikv.storage.wal import WAL
from trikv.tools.snapshot_file import SnapshotFileError, copy_image, verify_hash

RESTORE_TERM = 1


def restore_config(
    *,
    name: str,
    data_dir: str,
    wal_dir: str,
    initial_cluster: str,
    initial_cluster_token: str,
    initial_advertise_peer_urls: str,
) -> ServerConfig:
    """The member's configuration as `trikv` would read these flags (so the ids come out the same)."""
    argv = ["--name", name, "--initial-cluster", initial_cluster]
    argv += ["--initial-cluster-token", initial_cluster_token]
    argv += ["--initial-advertise-peer-urls", initial_advertise_peer_urls]
    if data_dir:
        argv += ["--data-dir", data_dir]
    if wal_dir:
        argv += ["--wal-dir", wal_dir]
    try:
        return load_config(argv, {})
    except ConfigError as exc:
        raise SnapshotFileError(str(exc)) from None


def restore(path: str, cfg: ServerConfig, *, skip_hash_check: bool = False) -> None:
    data_dir, wal_dir = str(cfg.data_dir), str(cfg.wal_dir)
    for d in (data_dir, wal_dir):
        if os.path.exists(d):
            raise SnapshotFileError(f'data-dir "{d}" exists' if d == data_dir else f'wal-dir "{d}" exists')
    size = verify_hash(path, skip_hash_check=skip_hash_check)
    created = [d for d in (data_dir, wal_dir) if d]
    try:
        _build(path, size, cfg)
    except BaseException:
        for d in created:
            shutil.rmtree(d, ignore_errors=True)
        raise


def _build(path: str, size: int, cfg: ServerConfig) -> None:
    fs = OsFileSystem()
    os.makedirs(str(cfg.snap_dir), exist_ok=True)
    db = str(cfg.db_path)
    copy_image(path, db, size)
    problems = PageFile.check(fs, db)
    if problems:
        raise SnapshotFileError(f"snapshot {path} is not a valid page file: " + "; ".join(problems[:3]))
    ids = cfg.initial_member_ids
    mid = ids[cfg.name]
    cid = compute_cluster_id(list(ids.values()))
    voters = tuple(sorted(ids.values()))
    commit = len(ids)
    pf = PageFile.open(fs, db)
    try:
        kv = KVStore(pf)
        try:
            with kv.write() as batch:
                for k, _ in list(batch.bucket_range(MEMBERS_BUCKET)):
                    batch.bucket_delete(MEMBERS_BUCKET, k)
                for k, _ in list(batch.bucket_range(REMOVED_BUCKET)):
                    batch.bucket_delete(REMOVED_BUCKET, k)
                for member_name, m in ids.items():
                    member = Member(m, member_name, tuple(cfg.initial_cluster[member_name]), ())
                    batch.bucket_put(MEMBERS_BUCKET, member_key(m), codec.encode(member))
                batch.meta_put(CONF_STATE_KEY, codec.encode(ConfState(voters)))
                batch.meta_put(b"cluster_id", cid.to_bytes(8, "big"))
                batch.meta_put(b"member_id", mid.to_bytes(8, "big"))
                batch.set_consistent_index(commit, RESTORE_TERM)
                batch.commit()
        finally:
            kv.close()
    finally:
        pf.close()
    os.makedirs(os.path.dirname(str(cfg.wal_dir).rstrip("/")) or ".", exist_ok=True)
    wal = WAL.create(fs, str(cfg.wal_dir), WalMetadata(cid, mid), max_wals=cfg.max_wals)
    try:
        wal.save_snapshot(SnapshotMeta(commit, RESTORE_TERM, ConfState(voters)))
        wal.append([], HardState(RESTORE_TERM, 0, commit))
        wal.sync()
    finally:
        wal.close()


__all__ = ["restore", "restore_config"]
