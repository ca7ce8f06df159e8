"""Opening a member's storage: restart from the WAL, bootstrap a new cluster, or join an existing one.

etcd's rules: with a WAL, the ids and the log come from it and initial-cluster is ignored; without one,
`initial-cluster-state: new` derives the ids from the config and bootstraps the conf state, `existing`
asks the listed peers for the membership first (`discover`) and starts with an empty log.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import attrs

from trikv.actors import raft
from trikv.actors.apply import MEMBERS_BUCKET, Applier, member_key
from trikv.actors.config import ServerConfig
from trikv.actors.identity import cluster_id as compute_cluster_id
from trikv.actors.identity import format_id
from trikv.actors.peerwire import fetch_cluster_info
from trikv.api import codec, errors
from trikv.api.internal import PeerHelloReply
from trikv.api.protocol import Member
from trikv.api.raftpb import Snapshot
from trikv.api.records import WalMetadata
from trikv.storage.files import FileSystem
from trikv.storage.mvcc import KVStore
from trikv.storage.pagefile import PageFile
from trikv.storage.wal import WAL

log = logging.getLogger("trikv.bootstrap")


@attrs.define
class Opened:
    """Everything a member owns on disk, opened and consistent with each other."""

    member_id: int
    cluster_id: int
    wal: WAL
    pagefile: PageFile
    kv: KVStore
    applier: Applier
    storage: raft.MemoryStorage
    raw: raft.RawNode
    applied: int
    snapshot_index: int
    locks: list[Any]


async def discover(cfg: ServerConfig, fs: FileSystem) -> PeerHelloReply | None:
    """A member joining an existing cluster asks the listed peers who is in it."""
    if cfg.initial_cluster_state != "existing" or WAL.exists(fs, str(cfg.wal_dir)):
        return None
    own = set(cfg.initial_advertise_peer_urls)
    urls = [u for urls in cfg.initial_cluster.values() for u in urls if u not in own]
    info = await fetch_cluster_info(urls)
    if info is None:
        raise errors.ConfigError(
            "could not reach any other member of initial-cluster to join (initial-cluster-state: existing)"
        )
    return info


def raft_config(cfg: ServerConfig, member_id: int, applied: int) -> raft.Config:
    return raft.Config(
        id=member_id,
        election_tick=cfg.election_ticks,
        heartbeat_tick=cfg.heartbeat_ticks,
        rng=random.Random(),
        max_size_per_msg=1 << 20,
        max_inflight_msgs=256,
        check_quorum=True,
        pre_vote=True,
        applied=applied,
    )


def open_storage(
    cfg: ServerConfig, fs: FileSystem, join_info: PeerHelloReply | None, applier_cls: type[Applier] = Applier
) -> Opened:
    member_dir, wal_dir = str(cfg.member_dir), str(cfg.wal_dir)
    for d in (member_dir, str(cfg.snap_dir)):
        fs.makedirs(d)
    locks = [fs.lock(member_dir)]
    fs.makedirs(str(cfg.wal_dir.parent))
    pagefile = PageFile.open(fs, str(cfg.db_path))
    kv = KVStore(pagefile)
    storage = raft.MemoryStorage()
    applied = snapshot_index = 0
    bootstrap = False
    if WAL.exists(fs, wal_dir):
        wal, replay = WAL.open(fs, wal_dir, max_wals=cfg.max_wals)
        mid, cid = replay.metadata.member_id, replay.metadata.cluster_id
        if replay.snapshot is not None:
            storage.apply_snapshot(Snapshot(replay.snapshot, b""))
            applied = snapshot_index = replay.snapshot.index
        storage.set_hard_state(replay.hard_state)
        storage.append(replay.entries)
        # Killed between creating the WAL and persisting the bootstrap entries: start over, the ids are
        # derived from the config and come out the same.
        bootstrap = (
            replay.snapshot is None
            and not replay.entries
            and replay.hard_state.is_empty()
            and cfg.initial_cluster_state == "new"
            and cfg.initial_member_ids.get(cfg.name) == mid
        )
        log.info(
            "restarting member %s in cluster %s: term %d, commit %d, %d WAL entries, consistent index %d",
            format_id(mid),
            format_id(cid),
            replay.hard_state.term,
            replay.hard_state.commit,
            len(replay.entries),
            kv.consistent_index,
        )
    elif cfg.initial_cluster_state == "existing":
        assert join_info is not None
        mid, cid = _join(cfg, kv, join_info)
        wal = WAL.create(fs, wal_dir, WalMetadata(cid, mid), max_wals=cfg.max_wals)
    else:
        ids = cfg.initial_member_ids
        mid = ids[cfg.name]
        cid = compute_cluster_id(list(ids.values()))
        wal = WAL.create(fs, wal_dir, WalMetadata(cid, mid), max_wals=cfg.max_wals)
        bootstrap = True
        log.info(
            "starting member %s in new cluster %s (%d members)", format_id(mid), format_id(cid), len(ids)
        )
    raw = raft.RawNode(raft_config(cfg, mid, applied), storage)
    if bootstrap:
        contexts = {
            m: codec.encode(Member(m, name, tuple(cfg.initial_cluster[name]), ()))
            for name, m in cfg.initial_member_ids.items()
        }
        raw.bootstrap(sorted(contexts), contexts)
    stamp_identity(kv, cid, mid, str(cfg.db_path))
    return Opened(mid, cid, wal, pagefile, kv, applier_cls(kv, mid), storage, raw, applied, snapshot_index, locks)


def _join(cfg: ServerConfig, kv: KVStore, info: PeerHelloReply) -> tuple[int, int]:
    """Take our id from the membership a peer told us; start with an empty log and let the leader send
    entries or a snapshot (etcd's join)."""
    own = set(cfg.initial_advertise_peer_urls)
    mine = [m for m in info.members if set(m.peer_urls) & own]
    if not mine:
        raise errors.ConfigError(
            f"member with peer URLs {','.join(sorted(own))} is not in cluster "
            f"{format_id(info.cluster_id)}; add it first with `trikvctl member add`"
        )
    # The membership goes into the page file BEFORE the WAL exists: a member killed before the leader's
    # first entries arrive restarts knowing whom to answer (the leader's records replace it).
    with kv.write() as batch:
        for m in info.members:
            batch.bucket_put(MEMBERS_BUCKET, member_key(m.id), codec.encode(m))
        batch.commit()
    log.info(
        "joining cluster %s as member %s (%d members)",
        format_id(info.cluster_id),
        format_id(mine[0].id),
        len(info.members),
    )
    return mine[0].id, info.cluster_id


def stamp_identity(kv: KVStore, cluster_id: int, member_id: int, path: str) -> None:
    """The page file carries the ids too (etcd keeps them in its backend): a page file of another cluster
    next to this WAL is refused instead of silently mixed in. The member id is (re)written: a page file
    installed from the leader's snapshot arrives with the leader's."""
    cid = kv.meta_get(b"cluster_id")
    if cid is not None and int.from_bytes(cid, "big") != cluster_id:
        raise errors.CorruptionError(
            path,
            0,
            f"page file belongs to cluster {format_id(int.from_bytes(cid, 'big'))}, "
            f"the WAL to cluster {format_id(cluster_id)}",
        )
    mid = kv.meta_get(b"member_id")
    if cid is None or mid is None or int.from_bytes(mid, "big") != member_id:
        with kv.write() as batch:
            batch.meta_put(b"cluster_id", cluster_id.to_bytes(8, "big"))
            batch.meta_put(b"member_id", member_id.to_bytes(8, "big"))
            batch.commit()


__all__ = ["Opened", "discover", "open_storage", "raft_config", "stamp_identity"]
