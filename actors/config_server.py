"""ServerConfig: a validated server configuration and what follows from it (Raft timing in ticks, etcd's
on-disk layout, the sockets to bind, member and cluster ids). Built only by config.load_config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from trikv.actors import identity
from trikv.actors.config_keys import DEFAULT_QUOTA_BYTES
from trikv.actors.config_values import host_port, parse_retention


def _frozen_cluster(value: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {str(k): tuple(v) for k, v in value.items()}


@attrs.frozen
class ServerConfig:
    """A validated server configuration. Durations are milliseconds, sizes bytes, URLs normalised strings."""

    name: str
    data_dir: str
    wal_dir_option: str  # as configured; "" means <data-dir>/member/wal (see `wal_dir`)
    listen_peer_urls: tuple[str, ...]
    listen_client_urls: tuple[str, ...]
    initial_advertise_peer_urls: tuple[str, ...]
    advertise_client_urls: tuple[str, ...]
    initial_cluster: dict[str, tuple[str, ...]] = attrs.field(converter=_frozen_cluster)
    initial_cluster_state: str = "new"
    initial_cluster_token: str = "etcd-cluster"
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    snapshot_count: int = 100000
    quota_backend_bytes: int = 0  # as configured: 0 = default 2 GiB, negative = no quota (see `quota_bytes`)
    max_request_bytes: int = 1572864
    max_txn_ops: int = 128
    max_wals: int = 5
    auto_compaction_mode: str = "periodic"
    auto_compaction_retention: str = "0"
    corrupt_check_time_ms: int = 0  # experimental-corrupt-check-time; 0 = no periodic corruption check
    strict_reconfig_check: bool = True
    enable_grpc_gateway: bool = True
    logger: str = "zap"
    log_level: str = "info"
    log_outputs: tuple[str, ...] = ("default",)
    listen_metrics_urls: tuple[str, ...] = ()
    metrics: str = (
        "extensive"  # etcd's default is 'basic'; trikv emits grpc_server_handling_seconds by default
    )
    config_file: str | None = None
    warnings: tuple[str, ...] = ()
    # (level, message, fields): what etcd logs while reading its configuration (e.g. "recognized and used
    # environment variable ..."); the main logs them once logging is set up.
    notices: tuple[tuple[str, str, Mapping[str, str]], ...] = ()
    # etcd's lease checkpoint interval (5 min; on by default here). Not a flag: in-process tests set it shorter.
    lease_checkpoint_interval_ms: int = 300_000

    # ---- raft timing: etcd ticks once per heartbeat interval; heartbeat = 1 tick
    @property
    def tick_ms(self) -> int:
        return self.heartbeat_interval_ms

    @property
    def election_ticks(self) -> int:
        return self.election_timeout_ms // self.heartbeat_interval_ms

    @property
    def heartbeat_ticks(self) -> int:
        return 1

    # ---- on-disk layout (etcd's): <data-dir>/member/{wal,snap/db}
    @property
    def member_dir(self) -> Path:
        return Path(self.data_dir) / "member"

    @property
    def wal_dir(self) -> Path:
        return Path(self.wal_dir_option) if self.wal_dir_option else self.member_dir / "wal"

    @property
    def snap_dir(self) -> Path:
        return self.member_dir / "snap"

    @property
    def db_path(self) -> Path:
        return self.snap_dir / "db"

    # ---- sockets
    @property
    def peer_listen(self) -> tuple[tuple[str, int], ...]:
        """(host, port) to bind for peer traffic, one per listen-peer-url."""
        return tuple(host_port(u) for u in self.listen_peer_urls)

    @property
    def metrics_listen(self) -> tuple[tuple[str, int], ...]:
        """(host, port) to bind for /metrics and /health, one per listen-metrics-url."""
        return tuple(host_port(u) for u in self.listen_metrics_urls)

    @property
    def client_listen(self) -> tuple[tuple[str, int], ...]:
        """(host, port) to bind for client traffic, one per listen-client-url."""
        return tuple(host_port(u) for u in self.listen_client_urls)

    # ---- limits and policies
    @property
    def quota_bytes(self) -> int | None:
        """The effective backend quota in bytes, or None when disabled (negative quota, as in etcd)."""
        if self.quota_backend_bytes < 0:
            return None
        return self.quota_backend_bytes or DEFAULT_QUOTA_BYTES

    @property
    def compaction_retention(self) -> tuple[str, float] | None:
        """None when auto compaction is off, else ('periodic', seconds) or ('revision', revisions)."""
        return parse_retention(self.auto_compaction_mode, self.auto_compaction_retention)

    # ---- identities
    @property
    def initial_member_ids(self) -> dict[str, int]:
        """{name: member id} of the initial cluster, as every founding member computes them."""
        return identity.initial_member_ids(self.initial_cluster, self.initial_cluster_token)

    @property
    def member_id(self) -> int:
        """This member's id when it bootstraps (for 'existing' the cluster's record is authoritative)."""
        return self.initial_member_ids[self.name]

    @property
    def cluster_id(self) -> int:
        """The cluster id a 'new' cluster derives from its initial members."""
        return identity.cluster_id(self.initial_member_ids.values())

    # ---- test helper
    def relocated(
        self,
        *,
        data_root: str | os.PathLike[str] | None = None,
        host: str | None = None,
        ports: Mapping[int, int] | None = None,
        **changes: Any,
    ) -> ServerConfig:
        """A copy moved elsewhere: URLs get `host` and ports mapped through `ports` (in every URL, including
        initial-cluster, so several relocated members still agree), data-dir becomes
        `<data_root>/<name>/data` and a configured wal-dir `<data_root>/<name>/wal`. `changes` are passed to
        attrs.evolve (field names, e.g. heartbeat_interval_ms=20). Not validated again: tests only.
        """

        def move(url: str) -> str:
            parts = urlsplit(url)
            h = host if host is not None else (parts.hostname or "")
            p = parts.port or 0
            p = ports.get(p, p) if ports else p
            hh = f"[{h}]" if ":" in h else h
            return f"{parts.scheme}://{hh}:{p}"

        def move_all(urls: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(move(u) for u in urls)

        new: dict[str, Any] = {
            "listen_peer_urls": move_all(self.listen_peer_urls),
            "listen_client_urls": move_all(self.listen_client_urls),
            "initial_advertise_peer_urls": move_all(self.initial_advertise_peer_urls),
            "advertise_client_urls": move_all(self.advertise_client_urls),
            "initial_cluster": {n: move_all(us) for n, us in self.initial_cluster.items()},
        }
        if data_root is not None:
            root = Path(data_root) / self.name
            new["data_dir"] = str(root / "data")
            new["wal_dir_option"] = str(root / "wal") if self.wal_dir_option else ""
        new.update(changes)
        return attrs.evolve(self, **new)


__all__ = ["ServerConfig"]
