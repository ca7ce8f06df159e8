"""Server configuration: etcd's config-file keys, flags and environment, with etcd's defaults and checks.

Why etcd's surface and not our own: operators (and the seed tutorial) already have etcd YAML files, command
lines and `ETCD_*` environments (`trikvctl member add` prints one); trikv should start from them unchanged,
and refuse them with the same one-line reasons (etcd 3.4 etcdmain/config.go, pkg/flags).

`--config-file FILE` (else `ETCD_CONFIG_FILE` / `TRIKV_CONFIG_FILE`) makes the YAML file the whole
configuration (config_file.py); otherwise flags (config_flags.py) over `ETCD_*` / `TRIKV_*` variables
(config_env.py) over etcd's defaults (config_keys.py, the table of every key). This module builds the
validated `ServerConfig` (config_server.py); what is refused or ignored is in config_unsupported.py. `--help` / `--version`
raise `InfoRequested` (not an error); everything wrong raises `ConfigError` with one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from trikv.actors.config_cluster import check_name, initial_cluster
from trikv.actors.config_env import (
    ENV_PREFIX,
    ENV_PREFIXES,
    ETCD_ENV_PREFIX,
    env_name,
    env_value,
    from_env,
    is_config_env,
)
from trikv.actors.config_file import CONFIG_FILE_LOADED, read_file
from trikv.actors.config_flags import (
    HelpRequested,
    InfoRequested,
    VersionRequested,
    help_text,
    parse_flags,
    version_text,
)
from trikv.actors.config_keys import (
    DEFAULT_QUOTA_BYTES,
    DEFAULTS,
    LOG_LEVELS,
    MAX_ELECTION_MS,
    MAX_QUOTA_BYTES,
)
from trikv.actors.config_server import ServerConfig
from trikv.actors.config_unsupported import check_tls, check_unsupported
from trikv.actors.config_values import (
    as_bool,
    as_int,
    as_str,
    as_str_list,
    check_urls,
    parse_duration,
    parse_retention,
)
from trikv.api.errors import ConfigError

__all__ = [
    "CONFIG_FILE_LOADED",
    "DEFAULT_QUOTA_BYTES",
    "ENV_PREFIX",
    "ETCD_ENV_PREFIX",
    "HelpRequested",
    "InfoRequested",
    "ServerConfig",
    "VersionRequested",
    "config_from_file",
    "help_text",
    "load_config",
    "version_text",
]


# --------------------------------------------------------------------------- sources


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    """Build the server configuration from the command line (without argv[0]) and the environment.

    Raises HelpRequested / VersionRequested for --help / --version, ConfigError (one line) for anything wrong.
    """
    flags, config_file = parse_flags(argv)
    warnings: list[str] = []
    notices: list[tuple[str, str, Mapping[str, str]]] = []
    if config_file is None:
        # Read on its own first (as etcd does): it decides whether the rest of the environment counts.
        config_file = env_value(environ, "config-file") or None
    if config_file is not None:
        notices.append(("info", CONFIG_FILE_LOADED, {"path": config_file}))
        if flags:
            given = ", ".join(f"--{k}" for k in flags)
            warnings.append(f"flags ignored because a config file is used ({config_file}): {given}")
        ignored = sorted(
            k
            for k in environ
            if is_config_env(k) and k not in (env_name(p, "config-file") for p in ENV_PREFIXES)
        )
        if ignored:
            warnings.append(
                f"environment variables ignored because a config file is used ({config_file}): {', '.join(ignored)}"
            )
        values, explicit = read_file(config_file, warnings)
    else:
        values, explicit = from_env(environ, flags, warnings, notices)
        values.update(flags)
        explicit.update(flags)
    return _build(values, explicit, warnings, config_file, notices)


def _build(
    values: dict[str, Any],
    explicit: set[str],
    warnings: list[str],
    config_file: str | None,
    notices: Sequence[tuple[str, str, Mapping[str, str]]] = (),
) -> ServerConfig:
    from_text = config_file is None  # flags/env are strings; YAML has real types
    check_unsupported(values, from_text, warnings)
    v = {k: (values[k] if values.get(k) is not None else d) for k, d in DEFAULTS.items()}

    def s(k: str) -> str:
        return as_str(k, v[k], from_text)

    def i(k: str, minimum: int = 0) -> int:
        return as_int(k, v[k], from_text, minimum=minimum)

    def b(k: str) -> bool:
        return as_bool(k, v[k], from_text)

    def urls(k: str, listen: bool) -> tuple[str, ...]:
        return check_urls(k, as_str_list(k, v[k], from_text), listen=listen)

    name = check_name(s("name"))
    data_dir = s("data-dir") or f"{name}.trikv"
    wal_dir = s("wal-dir")

    listen_peer = urls("listen-peer-urls", True)
    listen_client = urls("listen-client-urls", True)
    adv_peer = urls("initial-advertise-peer-urls", False)
    if "listen-client-urls" in explicit and "advertise-client-urls" not in explicit:
        raise ConfigError("--advertise-client-urls is required when --listen-client-urls is set explicitly")
    adv_client = urls("advertise-client-urls", False)

    state = s("initial-cluster-state") or "new"
    if state not in ("new", "existing"):
        raise ConfigError(
            f"unexpected clusterState {state!r} (initial-cluster-state must be 'new' or 'existing')"
        )
    token = s("initial-cluster-token")
    if not token:
        raise ConfigError("initial-cluster-token must not be empty")

    cluster = initial_cluster(s("initial-cluster"), name, adv_peer, token)
    check_tls(
        values,
        from_text,
        {"client": listen_client, "peer": listen_peer},
        {
            "advertise-client-urls": adv_client,
            "initial-advertise-peer-urls": adv_peer,
            "initial-cluster": tuple(u for us in cluster.values() for u in us),
        },
    )

    heartbeat = i("heartbeat-interval")
    election = i("election-timeout")
    if heartbeat <= 0:
        raise ConfigError(f"--heartbeat-interval must be >0 (set to {heartbeat}ms)")
    if election <= 0:
        raise ConfigError(f"--election-timeout must be >0 (set to {election}ms)")
    if 5 * heartbeat > election:
        raise ConfigError(
            f"--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]"
        )
    if election > MAX_ELECTION_MS:
        raise ConfigError(
            f"--election-timeout[{election}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
        )

    snapshot_count = i("snapshot-count")
    if snapshot_count == 0:
        snapshot_count = DEFAULTS["snapshot-count"]  # etcd: 0 means the default
    quota = i("quota-backend-bytes", minimum=-(1 << 62))
    if quota > MAX_QUOTA_BYTES:
        warnings.append(f"quota-backend-bytes {quota} exceeds the recommended maximum {MAX_QUOTA_BYTES}")
    max_request = i("max-request-bytes", minimum=1)
    max_txn_ops = i("max-txn-ops", minimum=1)
    max_wals = i("max-wals")

    mode = s("auto-compaction-mode") or "periodic"
    if mode not in ("periodic", "revision"):
        raise ConfigError(f"unknown auto-compaction-mode {mode!r} (expected 'periodic' or 'revision')")
    retention = s("auto-compaction-retention") or "0"
    parse_retention(mode, retention)
    corrupt_check = parse_duration("experimental-corrupt-check-time", s("experimental-corrupt-check-time"))
    corrupt_check_ms = round(1000 * corrupt_check)

    logger = s("logger") or "zap"
    if logger == "capnslog":
        warnings.append("logger 'capnslog' is not implemented; using 'zap' (JSON lines)")
        logger = "zap"
    if logger != "zap":
        raise ConfigError(f"unknown logger option {logger!r} (only 'zap' is supported)")
    level = (s("log-level") or "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"invalid log-level {level!r} (expected one of {', '.join(LOG_LEVELS)})")
    outputs = tuple(as_str_list("log-outputs", v["log-outputs"], from_text))
    if "systemd/journal" in outputs:
        raise ConfigError(
            "log-outputs 'systemd/journal' is not supported (use stderr, stdout or a file path)"
        )

    metrics_level = s("metrics") or "extensive"
    if metrics_level not in ("basic", "extensive"):
        raise ConfigError(f"unknown metrics option {metrics_level!r} (expected 'basic' or 'extensive')")
    listen_metrics = urls("listen-metrics-urls", True) if v["listen-metrics-urls"] else ()

    return ServerConfig(
        name=name,
        data_dir=data_dir,
        wal_dir_option=wal_dir,
        listen_peer_urls=listen_peer,
        listen_client_urls=listen_client,
        initial_advertise_peer_urls=adv_peer,
        advertise_client_urls=adv_client,
        initial_cluster=cluster,
        initial_cluster_state=state,
        initial_cluster_token=token,
        heartbeat_interval_ms=heartbeat,
        election_timeout_ms=election,
        snapshot_count=snapshot_count,
        quota_backend_bytes=quota,
        max_request_bytes=max_request,
        max_txn_ops=max_txn_ops,
        max_wals=max_wals,
        auto_compaction_mode=mode,
        auto_compaction_retention=retention,
        corrupt_check_time_ms=corrupt_check_ms,
        strict_reconfig_check=b("strict-reconfig-check"),
        enable_grpc_gateway=b("enable-grpc-gateway"),
        logger=logger,
        log_level=level,
        log_outputs=outputs,
        listen_metrics_urls=listen_metrics,
        metrics=metrics_level,
        config_file=config_file,
        warnings=tuple(warnings),
        notices=tuple(notices),
    )


def config_from_file(path: str | os.PathLike[str]) -> ServerConfig:
    """Shorthand for `load_config(["--config-file", path], {})` (tools and tests)."""
    return load_config(["--config-file", os.fspath(path)], {})
