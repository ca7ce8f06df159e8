"""Server configuration: etcd's config-file keys, flags and environment, with etcd's defaults and checks.

Why etcd's surface and not our own: operators (and the seed tutorial) already have etcd YAML files, command
lines and `ETCD_*` environments (`trikvctl member add` prints one); trikv should start from them unchanged,
and refuse them with the same one-line reasons.

Sources, as etcd 3.4 (etcdmain/config.go, pkg/flags):
- `--config-file FILE` (else `ETCD_CONFIG_FILE` / `TRIKV_CONFIG_FILE`): the YAML file is the whole
  configuration; other flags and environment variables are ignored (etcd's info line is logged, and a
  warning names what was ignored).
- otherwise flags (`--key value`, `--key=value`, `-key value`; a flag given twice keeps the last value) over
  environment variables `ETCD_<KEY>` or their alias `TRIKV_<KEY>` (upper case, '-' -> '_'), over etcd's
  embedded defaults. Like etcd 3.4, a variable for a flag that is also on the command line is refused
  ("conflicting environment variable ... is shadowed by corresponding command-line flag"), an unknown
  `ETCD_*` / `TRIKV_*` variable is warned about ("unrecognized environment variable ETCD_FOO=bar").

Every key etcd 3.4 reads (and the 3.5/3.6 additions) is accepted; the ones trikv does not implement are
named in one warning in `ServerConfig.warnings` ("accepted and ignored"), except those whose value would
change what the member is (TLS, discovery, proxy, force-new-cluster): those refuse to start with one line
until they exist. A key etcd does not know is an error naming it.

`--help` / `--version` raise `HelpRequested` / `VersionRequested` (subclasses of `InfoRequested`, NOT errors):
the main prints `exc.text` on stdout and exits 0. Everything wrong raises `ConfigError` with one line.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import yaml

from trikv.actors import identity
from trikv.api.errors import ConfigError

__all__ = [
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

ENV_PREFIX = "TRIKV_"  # trikv's alias of etcd's prefix
ETCD_ENV_PREFIX = "ETCD_"
ENV_PREFIXES = (ETCD_ENV_PREFIX, ENV_PREFIX)
# TRIKV_* variables read elsewhere (not flags): never "unrecognized".
OTHER_TRIKV_ENV = frozenset({"TRIKV_DEBUG_THIRD_PARTY"})
CONFIG_FILE_LOADED = (
    "loaded server configuration, other configuration command line flags and environment variables will be "
    "ignored if provided"
)
DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024  # etcd's DefaultQuotaBytes
MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024  # etcd's MaxQuotaBytes: above it etcd only warns
MAX_ELECTION_MS = 50000  # etcd's maxElectionMs
LOG_LEVELS = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")


# --------------------------------------------------------------------------- --help / --version


class InfoRequested(Exception):
    """The command line asked for information instead of a server: print `text` on stdout, exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class HelpRequested(InfoRequested):
    """`--help` / `-h`."""


class VersionRequested(InfoRequested):
    """`--version`."""


def version_text() -> str:
    """What `trikv --version` prints, shaped like `etcd --version`."""
    from trikv import __version__

    return (
        f"trikv Version: {__version__}\n"
        f"Python Version: {platform.python_version()}\n"
        f"OS/Arch: {sys.platform}/{platform.machine()}"
    )


# --------------------------------------------------------------------------- option table


class Kind(enum.Enum):
    """How a value is written: decides YAML type checks and whether a bare flag takes an argument."""

    STR = "string"
    INT = "integer"
    BOOL = "boolean"
    URLS = "comma-separated URL list"
    LIST = "list of strings"
    ANY = "value"  # nested YAML (transport security, discovery config): accepted, not implemented


@attrs.frozen
class _Opt:
    key: str
    kind: Kind
    implemented: bool
    in_file: bool = True  # valid as a config-file key
    as_flag: bool = True  # valid as a flag / env var
    help: str = ""


def _impl(key: str, kind: Kind, help: str) -> _Opt:
    return _Opt(key, kind, True, help=help)


_IMPLEMENTED = [
    _impl("name", Kind.STR, "Human-readable name for this member."),
    _impl("data-dir", Kind.STR, "Path to the data directory (default: <name>.trikv)."),
    _impl("wal-dir", Kind.STR, "Path to the dedicated wal directory (default: <data-dir>/member/wal)."),
    _impl("listen-peer-urls", Kind.URLS, "List of URLs to listen on for peer traffic."),
    _impl("listen-client-urls", Kind.URLS, "List of URLs to listen on for client traffic."),
    _impl("initial-advertise-peer-urls", Kind.URLS, "This member's peer URLs to advertise to the cluster."),
    _impl("advertise-client-urls", Kind.URLS, "This member's client URLs to advertise to the public."),
    _impl("initial-cluster", Kind.STR, "Initial cluster configuration for bootstrapping (name=url,...)."),
    _impl("initial-cluster-state", Kind.STR, "Initial cluster state ('new' or 'existing')."),
    _impl("initial-cluster-token", Kind.STR, "Initial cluster token for the cluster during bootstrap."),
    _impl("heartbeat-interval", Kind.INT, "Time (in milliseconds) of a heartbeat interval."),
    _impl("election-timeout", Kind.INT, "Time (in milliseconds) for an election to timeout."),
    _impl("snapshot-count", Kind.INT, "Number of committed transactions to trigger a snapshot to disk."),
    _impl(
        "quota-backend-bytes", Kind.INT, "Raise alarms when backend size exceeds the given quota (0 = 2 GiB)."
    ),
    _impl("max-request-bytes", Kind.INT, "Maximum client request size in bytes the server will accept."),
    _impl("max-txn-ops", Kind.INT, "Maximum number of operations permitted in a transaction."),
    _impl("max-wals", Kind.INT, "Maximum number of wal files to retain (0 is unlimited)."),
    _impl(
        "auto-compaction-mode", Kind.STR, "Interpret 'auto-compaction-retention' as 'periodic' or 'revision'."
    ),
    _impl(
        "auto-compaction-retention",
        Kind.STR,
        "Auto compaction retention ('0' = off; e.g. '1h', '5m', '1000').",
    ),
    _impl(
        "strict-reconfig-check", Kind.BOOL, "Reject reconfiguration requests that would cause quorum loss."
    ),
    _impl("enable-grpc-gateway", Kind.BOOL, "Enable the HTTP/JSON gateway (/v3/...)."),
    _impl("logger", Kind.STR, "Logger: 'zap' (structured JSON lines)."),
    _impl("log-level", Kind.STR, "Log level: debug, info, warn, error, panic, or fatal."),
    _impl("log-outputs", Kind.LIST, "Where to write logs: stderr, stdout, default, or file paths."),
]


_LEGACY_FLAGS = (
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
)

# Implemented keys whose value is parsed and checked but not acted on yet: named in the ignored warning.
_PARSED_NOT_ACTED_ON = ("quota-backend-bytes", "auto-compaction-mode", "auto-compaction-retention")


def _unimpl(kind: Kind, *keys: str, in_file: bool = True, as_flag: bool = True) -> list[_Opt]:
    return [_Opt(k, kind, False, in_file=in_file, as_flag=as_flag) for k in keys]


# Keys etcd 3.3 .. 3.6 accept (server/embed/config.go Config/configJSON json tags, etcdmain flags, the v3.4
# proxy keys), which trikv does not implement. Names only: no code or text of etcd is reused.
_UNIMPLEMENTED = [
    *_unimpl(
        Kind.INT,
        "max-snapshots",
        "snapshot-catchup-entries",
        "experimental-snapshot-catchup-entries",
        "backend-batch-limit",
        "max-concurrent-streams",
        "self-signed-cert-validity",
        "bcrypt-cost",
        "auth-token-ttl",
        "max-learners",
        "experimental-max-learners",
        "compaction-batch-limit",
        "experimental-compaction-batch-limit",
        "bootstrap-defrag-threshold-megabytes",
        "experimental-bootstrap-defrag-threshold-megabytes",
        "distributed-tracing-sampling-rate",
        "experimental-distributed-tracing-sampling-rate",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
    ),
    *_unimpl(
        Kind.BOOL,
        "enable-v2",
        "enable-pprof",
        "force-new-cluster",
        "debug",
        "pre-vote",
        "initial-election-tick-advance",
        "unsafe-no-fsync",
        "enable-log-rotation",
        "disable-log-sampling",
        "memory-mlock",
        "experimental-memory-mlock",
        "experimental-initial-corrupt-check",
        "experimental-enable-lease-checkpoint",
        "experimental-enable-lease-checkpoint-persist",
        "experimental-txn-mode-write-with-shared-buffer",
        "experimental-compact-hash-check-enabled",
        "experimental-stop-grpc-service-on-defrag",
        "experimental-enable-distributed-tracing",
        "enable-distributed-tracing",
        "experimental-peer-skip-client-san-verification",
        "v2-deprecation-write-only",
    ),
    *_unimpl(
        Kind.STR,
        "discovery",
        "discovery-proxy",
        "discovery-srv",
        "discovery-srv-name",
        "discovery-token",
        "discovery-endpoints",
        "discovery-dial-timeout",
        "discovery-request-timeout",
        "discovery-keepalive-time",
        "discovery-keepalive-timeout",
        "discovery-cert",
        "discovery-key",
        "discovery-cacert",
        "discovery-user",
        "discovery-password",
        "backend-batch-interval",
        "backend-bbolt-freelist-type",
        "experimental-backend-bbolt-freelist-type",
        "tls-min-version",
        "tls-max-version",
        "grpc-keepalive-min-time",
        "grpc-keepalive-interval",
        "grpc-keepalive-timeout",
        "auth-token",
        "corrupt-check-time",
        "experimental-corrupt-check-time",
        "compact-hash-check-time",
        "experimental-compact-hash-check-time",
        "compaction-sleep-interval",
        "experimental-compaction-sleep-interval",
        "watch-progress-notify-interval",
        "experimental-watch-progress-notify-interval",
        "warning-apply-duration",
        "experimental-warning-apply-duration",
        "warning-unary-request-duration",
        "experimental-warning-unary-request-duration",
        "downgrade-check-time",
        "experimental-downgrade-check-time",
        "distributed-tracing-address",
        "experimental-distributed-tracing-address",
        "distributed-tracing-service-name",
        "experimental-distributed-tracing-service-name",
        "distributed-tracing-instance-id",
        "experimental-distributed-tracing-instance-id",
        "experimental-enable-v2v3",
        "experimental-wait-cluster-ready-timeout",
        "experimental-local-address",
        "metrics",
        "listen-metrics-urls",
        "listen-client-http-urls",
        "log-format",
        "log-rotation-config-json",
        "log-package-levels",
        "log-output",
        "cors",
        "host-whitelist",
        "proxy",
        "v2-deprecation",
        "feature-gates",
        "cipher-suites",
        "discovery-fallback",  # etcd 3.4 reads it from the file too (etcdmain configProxy)
    ),
    *_unimpl(
        Kind.ANY,
        "client-transport-security",
        "peer-transport-security",
        "socket-options",
        "discovery-config",
        as_flag=False,
    ),
    # Flags with no config-file key (the file spells TLS as the nested *-transport-security blocks).
    *_unimpl(
        Kind.STR,
        "cert-file",
        "key-file",
        "client-crl-file",
        "client-cert-file",
        "client-key-file",
        "client-cert-allowed-hostname",
        "trusted-ca-file",
        "ca-file",
        "peer-cert-file",
        "peer-key-file",
        "peer-client-cert-file",
        "peer-client-key-file",
        "peer-trusted-ca-file",
        "peer-ca-file",
        "peer-cert-allowed-cn",
        "peer-cert-allowed-hostname",
        "peer-crl-file",
        "raft-read-timeout",
        "raft-write-timeout",
        in_file=False,
    ),
    *_unimpl(
        Kind.BOOL,
        "client-cert-auth",
        "auto-tls",
        "peer-client-cert-auth",
        "peer-auto-tls",
        "socket-reuse-port",
        "socket-reuse-address",
        "discovery-insecure-transport",
        "discovery-insecure-skip-tls-verify",
        "peer-skip-client-san-verification",
        in_file=False,
    ),
    # etcd 0.4 flags etcd 3.4 still swallows (etcdmain `ignored`): bare, no value.
    *_unimpl(Kind.BOOL, *_LEGACY_FLAGS, in_file=False),
]

_OPTS: dict[str, _Opt] = {o.key: o for o in (*_IMPLEMENTED, *_UNIMPLEMENTED)}
assert len(_OPTS) == len(_IMPLEMENTED) + len(_UNIMPLEMENTED), "duplicate option key"


def help_text() -> str:
    """What `trikv --help` prints: usage plus the implemented options."""
    lines = [
        "Usage:",
        "",
        "  trikv [flags]",
        "    Start a trikv server.",
        "",
        "  trikv --config-file FILE",
        "    Start from an etcd-style YAML configuration file (ETCD_CONFIG_FILE works too). As with etcd, the",
        "    file is then the whole configuration: other flags and environment variables are ignored.",
        "",
        "  trikv --version | --help",
        "",
        f"Every flag can also be given as an environment variable {ETCD_ENV_PREFIX}<FLAG> (or {ENV_PREFIX}<FLAG>;",
        "upper case, '-' -> '_'), as with etcd; a variable and its flag must not both be given. A flag given",
        "twice keeps the last value. Other etcd flags are accepted and ignored with a warning.",
        "TRIKV_DEBUG_THIRD_PARTY=1 lets library loggers (websocket, HTTP) log below warn.",
        "",
        "Flags:",
    ]
    for o in _IMPLEMENTED:
        lines.append(f"  --{o.key}")
        text = o.help if "(default:" in o.help else f"{o.help} (default: {_DEFAULT_TEXT.get(o.key, '')!s})"
        if o.key in _PARSED_NOT_ACTED_ON:
            text += " [checked, not acted on yet]"
        lines.append(f"      {text}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the result


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
    strict_reconfig_check: bool = True
    enable_grpc_gateway: bool = True
    logger: str = "zap"
    log_level: str = "info"
    log_outputs: tuple[str, ...] = ("default",)
    config_file: str | None = None
    warnings: tuple[str, ...] = ()
    # (level, message, fields): what etcd logs while reading its configuration (e.g. "recognized and used
    # environment variable ..."); the main logs them once logging is set up.
    notices: tuple[tuple[str, str, Mapping[str, str]], ...] = ()

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
        return tuple(_host_port(u) for u in self.listen_peer_urls)

    @property
    def client_listen(self) -> tuple[tuple[str, int], ...]:
        """(host, port) to bind for client traffic, one per listen-client-url."""
        return tuple(_host_port(u) for u in self.listen_client_urls)

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
        return _parse_retention(self.auto_compaction_mode, self.auto_compaction_retention)

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


# --------------------------------------------------------------------------- defaults

_DEFAULTS: dict[str, Any] = {
    "name": "default",
    "data-dir": "",  # "" -> "<name>.trikv"
    "wal-dir": "",
    "listen-peer-urls": "http://127.0.0.1:2380",
    "listen-client-urls": "http://127.0.0.1:2379",
    "initial-advertise-peer-urls": "http://127.0.0.1:2380",
    "advertise-client-urls": "http://127.0.0.1:2379",
    "initial-cluster": "",  # "" -> "<name>=<initial-advertise-peer-urls>"
    "initial-cluster-state": "new",
    "initial-cluster-token": "etcd-cluster",
    "heartbeat-interval": 100,
    "election-timeout": 1000,
    "snapshot-count": 100000,
    "quota-backend-bytes": 0,
    "max-request-bytes": 1572864,
    "max-txn-ops": 128,
    "max-wals": 5,
    "auto-compaction-mode": "periodic",
    "auto-compaction-retention": "0",
    "strict-reconfig-check": True,
    "enable-grpc-gateway": True,
    "logger": "zap",
    "log-level": "info",
    "log-outputs": ["default"],
}
_DEFAULT_TEXT = {
    **{
        k: (",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v)
        for k, v in _DEFAULTS.items()
    },
    "data-dir": "<name>.trikv",
    "wal-dir": "<data-dir>/member/wal",
    "initial-cluster": "<name>=<initial-advertise-peer-urls>",
}


# --------------------------------------------------------------------------- sources


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    """Build the server configuration from the command line (without argv[0]) and the environment.

    Raises HelpRequested / VersionRequested for --help / --version, ConfigError (one line) for anything wrong.
    """
    flags, config_file = _parse_flags(argv)
    warnings: list[str] = []
    notices: list[tuple[str, str, Mapping[str, str]]] = []
    if config_file is None:
        # Read on its own first (as etcd does): it decides whether the rest of the environment counts.
        config_file = _env_value(environ, "config-file") or None
    if config_file is not None:
        notices.append(("info", CONFIG_FILE_LOADED, {"path": config_file}))
        if flags:
            given = ", ".join(f"--{k}" for k in flags)
            warnings.append(f"flags ignored because a config file is used ({config_file}): {given}")
        ignored = sorted(
            k
            for k in environ
            if _is_config_env(k) and k not in (_env_name(p, "config-file") for p in ENV_PREFIXES)
        )
        if ignored:
            warnings.append(
                f"environment variables ignored because a config file is used ({config_file}): {', '.join(ignored)}"
            )
        values, explicit = _read_file(config_file, warnings)
    else:
        values, explicit = _from_env(environ, flags, warnings, notices)
        values.update(flags)
        explicit.update(flags)
    return _build(values, explicit, warnings, config_file, notices)


def _env_name(prefix: str, key: str) -> str:
    return prefix + key.upper().replace("-", "_")


def _is_config_env(name: str) -> bool:
    """A variable in etcd's or trikv's configuration namespace (ETCDCTL_* is etcdctl's, not ours)."""
    return name.startswith(ENV_PREFIXES) and name not in OTHER_TRIKV_ENV


def _env_value(environ: Mapping[str, str], key: str) -> str:
    """`ETCD_<KEY>` or its alias `TRIKV_<KEY>`; both given with different values is an error."""
    etcd = environ.get(_env_name(ETCD_ENV_PREFIX, key), "")
    ours = environ.get(_env_name(ENV_PREFIX, key), "")
    if etcd and ours and etcd != ours:
        raise ConfigError(
            f"conflicting environment variables {_env_name(ETCD_ENV_PREFIX, key)}={etcd} and "
            f"{_env_name(ENV_PREFIX, key)}={ours} (one is an alias of the other: unset one)"
        )
    return etcd or ours


def _parse_flags(argv: Sequence[str]) -> tuple[dict[str, Any], str | None]:
    """Go-flag parsing as etcd's: -k v, --k v, --k=v; bare booleans; a flag given twice keeps the last value."""
    out: dict[str, Any] = {}
    config_file: str | None = None
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            if i < len(args):
                raise ConfigError(f"'{args[i]}' is not a valid flag (trikv takes only flags)")
            break
        if not arg.startswith("-") or arg in ("-", "---"):
            raise ConfigError(f"'{arg}' is not a valid flag (trikv takes only flags)")
        body = arg[2:] if arg.startswith("--") else arg[1:]
        key, eq, value = body.partition("=")
        if key in ("h", "help"):
            raise HelpRequested(help_text())
        if key == "version":
            raise VersionRequested(version_text())
        opt = _OPTS.get(key)
        if key != "config-file" and (opt is None or not opt.as_flag):
            raise ConfigError(f"flag provided but not defined: {arg.split('=', 1)[0]}")
        if not eq:
            if opt is not None and opt.kind is Kind.BOOL:
                value = "true"
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise ConfigError(f"flag needs an argument: {arg}")
        if key == "config-file":
            config_file = value or None  # etcd: an empty --config-file means none
            continue
        out.pop(key, None)  # keep the order of last appearance
        out[key] = value
    return out, config_file


def _from_env(
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
    warnings: list[str],
    notices: list[tuple[str, str, Mapping[str, str]]],
) -> tuple[dict[str, Any], set[str]]:
    """etcd's SetFlagsFromEnv + verifyEnv over ETCD_* and the TRIKV_* aliases."""
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    recognized: set[str] = set()
    for opt in _OPTS.values():
        if not opt.as_flag:
            continue
        names = [_env_name(p, opt.key) for p in ENV_PREFIXES]
        present = [n for n in names if n in environ]
        if not present:
            continue
        if opt.key in flags:
            # etcd 3.4 (pkg/flags verifyEnv) stops here: the variable would silently lose to the flag.
            raise ConfigError(
                f'conflicting environment variable "{present[0]}" is shadowed by corresponding command-line flag '
                "(either unset environment variable or disable flag)"
            )
        value = _env_value(environ, opt.key)
        if not value:
            continue  # etcd: an empty variable is not used (and so reported as unrecognized below)
        used = [n for n in present if environ[n]]
        _check_env_value(opt, used[0], value)
        recognized.update(used)
        for n in used:
            notices.append(("info", f"recognized and used environment variable {n}={environ[n]}", {}))
        values[opt.key] = value
        explicit.add(opt.key)
    for name in sorted(environ):
        if _is_config_env(name) and name not in recognized:
            warnings.append(f"unrecognized environment variable {name}={environ[name]}")
    return values, explicit


def _check_env_value(opt: _Opt, name: str, value: str) -> None:
    """etcd names the variable, not the flag, when an environment value does not parse."""
    if opt.kind is Kind.INT:
        try:
            int(value.strip(), 10)
        except ValueError:
            raise ConfigError(f'invalid value "{value}" for {name}: expected an integer') from None
    elif opt.kind is Kind.BOOL and value.strip().lower() not in _TRUE | _FALSE:
        raise ConfigError(f'invalid value "{value}" for {name}: expected true or false')


# --------------------------------------------------------------------------- the YAML file


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers keys given twice (YAML allows it silently; we at least warn)."""

    duplicates: list[str]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str) and key in seen:
            loader.duplicates.append(f"{key} (line {key_node.start_mark.line + 1})")
        if isinstance(key, str):
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_GLUED_LIST = re.compile(r"^\s*([A-Za-z0-9_.-]+):-\s*\S")


def _read_file(path: str, warnings: list[str]) -> tuple[dict[str, Any], set[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"cannot read config file {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read config file {path}: is a directory") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"cannot read config file {path}: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    return parse_config_text(text, path, warnings)


def parse_config_text(text: str, origin: str, warnings: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Parse the YAML of a config file into {key: value}; `origin` names the file in messages."""
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _GLUED_LIST.match(line)
        if m:
            # The seed tutorial's `log-outputs:- "stderr"`: the line break before the list item was lost.
            raise ConfigError(
                f"invalid YAML in {origin} line {lineno}: {line.strip()!r} has no space or line break after "
                f"'{m.group(1)}:' (write '{m.group(1)}: [stderr]', or '- \"stderr\"' on the next line)"
            )
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (e.context, e.problem) if x)
        if e.context_mark is not None and mark is not None and e.context_mark.line != mark.line:
            what += f" (the construct started at line {e.context_mark.line + 1})"
        raise ConfigError(f"invalid YAML in {origin}{where}: {what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {origin}: {' '.join(str(e).split())}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config file {origin}: the top level must be a mapping of keys to values")
    for dup in loader.duplicates:
        warnings.append(f"config key {dup} given twice in {origin}; the last value wins")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"invalid config key {key!r} in {origin}: keys must be strings")
        opt = _OPTS.get(key)
        if opt is None or not opt.in_file:
            raise ConfigError(f"unknown config key {key!r} in {origin}")
        if value is not None and key.endswith("-transport-security"):
            _check_security_block(key, value, origin)
        # `key:` with nothing after it keeps the default, as in etcd; it stays listed so that an
        # unimplemented key is still named in the "accepted and ignored" warning.
        values[key] = value
    return values, {k for k, v in values.items() if v is not None}


_SECURITY_KEYS = {
    # etcd 3.4 securityConfig, plus the 3.5/3.6 additions
    "cert-file": Kind.STR,
    "key-file": Kind.STR,
    "client-cert-file": Kind.STR,
    "client-key-file": Kind.STR,
    "client-cert-auth": Kind.BOOL,
    "trusted-ca-file": Kind.STR,
    "auto-tls": Kind.BOOL,
    "allowed-cn": Kind.LIST,
    "allowed-hostname": Kind.LIST,
    "skip-client-san-verification": Kind.BOOL,
}


def _check_security_block(key: str, value: Any, origin: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"invalid value for {key} in {origin}: expected a mapping, got {_describe(value)}")
    for sub, v in value.items():
        kind = _SECURITY_KEYS.get(sub) if isinstance(sub, str) else None
        if kind is None:
            raise ConfigError(f"unknown key {sub!r} in {key} in {origin}")
        if kind is Kind.BOOL:
            ok = v is None or isinstance(v, bool)
        elif kind is Kind.LIST:
            ok = (
                v is None
                or isinstance(v, str)
                or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            )
        else:
            ok = v is None or isinstance(v, str)
        if not ok:
            raise ConfigError(
                f"invalid value for {key}.{sub} in {origin}: expected a {kind.value}, got {_describe(v)}"
            )


# --------------------------------------------------------------------------- typed values


def _as_str(key: str, v: Any, from_text: bool) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if key == "auto-compaction-retention" and isinstance(v, int) and not isinstance(v, bool):
        return str(v)  # etcd wants a string; a bare number is unambiguous, so accept it
    raise ConfigError(f"invalid value for {key}: expected a string, got {_describe(v)}")


def _as_int(key: str, v: Any, from_text: bool, *, minimum: int = 0) -> int:
    if isinstance(v, bool) or not (isinstance(v, int) or (from_text and isinstance(v, str))):
        raise ConfigError(f"invalid value for {key}: expected an integer, got {_describe(v)}")
    if isinstance(v, str):
        try:
            v = int(v.strip(), 10)
        except ValueError:
            raise ConfigError(f"invalid value for {key}: {v!r} is not an integer") from None
    if v < minimum:
        raise ConfigError(f"invalid value for {key}: {v} is below {minimum}")
    if v >= 1 << 63:
        raise ConfigError(f"invalid value for {key}: {v} is out of range")
    return int(v)


_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off"}


def _as_bool(key: str, v: Any, from_text: bool) -> bool:
    if isinstance(v, bool):
        return v
    if from_text and isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise ConfigError(f"invalid value for {key}: expected true or false, got {_describe(v)}")


def _as_str_list(key: str, v: Any, from_text: bool) -> list[str]:
    if isinstance(v, str):
        items = [s.strip() for s in v.split(",")]
    elif isinstance(v, list) and all(isinstance(s, str) for s in v):
        items = [s.strip() for s in v]
    else:
        raise ConfigError(f"invalid value for {key}: expected a {_OPTS[key].kind.value}, got {_describe(v)}")
    if not items or any(not s for s in items):
        raise ConfigError(f"invalid value for {key}: empty entry in {v!r}")
    return items


def _describe(v: Any) -> str:
    kind = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }.get(type(v), type(v).__name__)
    if v is None:
        return "nothing"
    return f"{kind} {v!r}" if not isinstance(v, dict | list) or len(repr(v)) < 60 else kind


# --------------------------------------------------------------------------- URL checks


def _check_url(key: str, url: str, *, listen: bool) -> str:
    """Validate one URL as etcd's types.NewURLs does; returns it normalised to scheme://host:port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"invalid URL {url!r} in {key}: {e}") from None
    if parts.scheme in ("unix", "unixs"):
        raise ConfigError(
            f"invalid URL {url!r} in {key}: unix socket URLs are not supported by trikv (use http://IP:PORT)"
        )
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"invalid URL {url!r} in {key}: URL scheme must be http or https")
    host = parts.hostname
    if not host or port is None or parts.netloc.endswith(":"):
        raise ConfigError(f'invalid URL {url!r} in {key}: URL address does not have the form "host:port"')
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"invalid URL {url!r} in {key}: URL must not contain a path")
    if parts.username is not None:
        raise ConfigError(f"invalid URL {url!r} in {key}: URL must not contain user information")
    if port == 0 and not listen and key != "advertise-client-urls":  # etcd accepts a client one (0.0.0.0:0)
        raise ConfigError(f"invalid URL {url!r} in {key}: an advertised URL needs a real port, not 0")
    if listen and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(
                f"invalid URL {url!r} in {key}: expected an IP address (or localhost) to listen on"
            ) from None
    hh = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{hh}:{port}"


def _check_urls(key: str, urls: list[str], *, listen: bool) -> tuple[str, ...]:
    out = tuple(_check_url(key, u, listen=listen) for u in urls)
    if len(set(out)) != len(out):
        raise ConfigError(f"invalid value for {key}: a URL is listed twice in {','.join(urls)!r}")
    return out


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or 0)


# --------------------------------------------------------------------------- compaction retention

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_retention(mode: str, text: str) -> tuple[str, float] | None:
    t = text.strip()
    if mode == "revision":
        try:
            n = int(t, 10)
        except ValueError:
            raise ConfigError(
                f"invalid auto-compaction-retention {text!r}: revision mode needs a number of revisions"
            ) from None
        if n < 0:
            raise ConfigError(f"invalid auto-compaction-retention {text!r}: negative")
        return None if n == 0 else ("revision", float(n))
    # periodic: a bare number means hours (etcd), else a Go duration such as 1h30m or 90s
    try:
        hours = int(t, 10)
    except ValueError:
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(t):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT_S[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise ConfigError(
                f"invalid auto-compaction-retention {text!r}: expected hours (e.g. '1') or a duration (e.g. '30m')"
            ) from None
        return None if seconds == 0 else ("periodic", seconds)
    if hours < 0:
        raise ConfigError(f"invalid auto-compaction-retention {text!r}: negative")
    return None if hours == 0 else ("periodic", hours * 3600.0)


# --------------------------------------------------------------------------- build + validate


_REFUSED_WHEN_SET = {
    # key -> why; these change what the member is, so ignoring them would start something else.
    "discovery": "discovery is not implemented in trikv: bootstrap with --initial-cluster",
    "discovery-srv": "DNS discovery is not implemented in trikv: bootstrap with --initial-cluster",
    "discovery-endpoints": "discovery is not implemented in trikv: bootstrap with --initial-cluster",
    "force-new-cluster": "--force-new-cluster is not implemented in trikv",
}
_TLS_FLAGS = {
    "client": ("cert-file", "key-file", "auto-tls", "client-transport-security"),
    "peer": ("peer-cert-file", "peer-key-file", "peer-auto-tls", "peer-transport-security"),
}


def _is_set(key: str, value: Any, from_text: bool) -> bool:
    """Whether an unimplemented option asks for something (a non-empty string, a true boolean)."""
    if value is None:
        return False
    if _OPTS[key].kind is Kind.BOOL:
        return _as_bool(key, value, from_text)
    return bool(str(value).strip())


def _unsupported(values: dict[str, Any], from_text: bool, warnings: list[str]) -> None:
    """Refuse what cannot be ignored safely; name everything else that is accepted and ignored, once."""
    for key, why in _REFUSED_WHEN_SET.items():
        if key in values and _is_set(key, values[key], from_text):
            raise ConfigError(f"{why} ({_spell(key, from_text)} is set)")
    proxy = values.get("proxy")
    if proxy is not None and str(proxy).strip() not in ("", "off"):
        raise ConfigError(
            f"proxy mode is not implemented in trikv ({_spell('proxy', from_text)} is {proxy!r})"
        )
    ignored: list[str] = []
    for key in values:
        if key in _LEGACY_FLAGS:
            warnings.append(f'flag "-{key}" is no longer supported - ignoring.')  # etcd's words
        elif not _OPTS[key].implemented or key in _PARSED_NOT_ACTED_ON:
            ignored.append(_spell(key, from_text))
    if ignored:
        what = "flags / environment variables" if from_text else "config keys"
        warnings.append(f"{what} accepted and ignored (not implemented by trikv yet): {', '.join(ignored)}")


def _spell(key: str, from_text: bool) -> str:
    return f"--{key}" if from_text else key


def _check_tls(
    values: dict[str, Any],
    from_text: bool,
    listen: dict[str, tuple[str, ...]],
    advertised: dict[str, tuple[str, ...]],
) -> None:
    """Until trikv has TLS: never plaintext on an https URL, never a silently ignored certificate."""
    for side, (cert_key, key_key, auto_key, block_key) in _TLS_FLAGS.items():
        block = values.get(block_key) or {}
        auto = (auto_key in values and _is_set(auto_key, values[auto_key], from_text)) or block.get(
            "auto-tls"
        ) is True
        if auto:
            where = f"--{auto_key}" if from_text else f"{block_key} auto-tls"
            raise ConfigError(
                f"{where} is not supported: trikv does not implement TLS yet (use http:// URLs)"
            )
        given = [f"--{k}" for k in (cert_key, key_key) if k in values and _is_set(k, values[k], from_text)]
        given += [f"{block_key} {k}" for k in ("cert-file", "key-file") if block.get(k)]
        if given:
            raise ConfigError(
                f"TLS is not implemented in trikv yet: {', '.join(given)} cannot be used (remove it and use http:// URLs)"
            )
        for url in listen[side]:
            if url.startswith("https://"):
                flags = "--cert-file, --key-file" if side == "client" else "--peer-cert-file, --peer-key-file"
                raise ConfigError(
                    f"TLS key/cert ({flags}) must be provided for {side} url {url} with HTTPS scheme"
                )
    for key, urls in advertised.items():
        for url in urls:
            if url.startswith("https://"):
                raise ConfigError(
                    f"https URL {url} in {key}: trikv does not implement TLS yet (use http:// URLs)"
                )


def _build(
    values: dict[str, Any],
    explicit: set[str],
    warnings: list[str],
    config_file: str | None,
    notices: Sequence[tuple[str, str, Mapping[str, str]]] = (),
) -> ServerConfig:
    from_text = config_file is None  # flags/env are strings; YAML has real types
    _unsupported(values, from_text, warnings)
    v = {k: (values[k] if values.get(k) is not None else d) for k, d in _DEFAULTS.items()}

    def s(k: str) -> str:
        return _as_str(k, v[k], from_text)

    def i(k: str, minimum: int = 0) -> int:
        return _as_int(k, v[k], from_text, minimum=minimum)

    def b(k: str) -> bool:
        return _as_bool(k, v[k], from_text)

    def urls(k: str, listen: bool) -> tuple[str, ...]:
        return _check_urls(k, _as_str_list(k, v[k], from_text), listen=listen)

    name = s("name")
    if not name:
        name = "default"  # etcd: an empty name in a file keeps the default
    if any(c in name for c in ",=") or name != name.strip():
        raise ConfigError(
            f"invalid name {name!r}: a member name must not contain ',' or '=' or surrounding spaces"
        )
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

    cluster_text = s("initial-cluster")
    if cluster_text:
        raw_cluster = identity.parse_initial_cluster(cluster_text)
        cluster = {n: _check_urls("initial-cluster", list(us), listen=False) for n, us in raw_cluster.items()}
    else:
        cluster = {name: adv_peer}
    owners: dict[str, str] = {}
    for member, member_urls in cluster.items():
        for u in member_urls:
            if u in owners:
                raise ConfigError(
                    f"initial cluster {cluster_text!r} has duplicate url {u} ({owners[u]} and {member})"
                )
            owners[u] = member
    if name not in cluster:
        raise ConfigError(f'couldn\'t find local name "{name}" in the initial cluster configuration')
    if sorted(cluster[name]) != sorted(adv_peer):
        mine = ",".join(f"{name}={u}" for u in cluster[name])
        raise ConfigError(
            f"--initial-cluster has {mine} but missing from --initial-advertise-peer-urls={','.join(adv_peer)} "
            "(the URL lists differ)"
        )
    identity.initial_member_ids(cluster, token)  # rejects two members with the same URLs
    _check_tls(
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
        snapshot_count = _DEFAULTS["snapshot-count"]  # etcd: 0 means the default
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
    _parse_retention(mode, retention)

    logger = s("logger") or "zap"
    if logger == "capnslog":
        warnings.append("logger 'capnslog' is not implemented; using 'zap' (JSON lines)")
        logger = "zap"
    if logger != "zap":
        raise ConfigError(f"unknown logger option {logger!r} (only 'zap' is supported)")
    level = (s("log-level") or "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"invalid log-level {level!r} (expected one of {', '.join(LOG_LEVELS)})")
    outputs = tuple(_as_str_list("log-outputs", v["log-outputs"], from_text))
    if "systemd/journal" in outputs:
        raise ConfigError(
            "log-outputs 'systemd/journal' is not supported (use stderr, stdout or a file path)"
        )

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
        strict_reconfig_check=b("strict-reconfig-check"),
        enable_grpc_gateway=b("enable-grpc-gateway"),
        logger=logger,
        log_level=level,
        log_outputs=outputs,
        config_file=config_file,
        warnings=tuple(warnings),
        notices=tuple(notices),
    )


def config_from_file(path: str | os.PathLike[str]) -> ServerConfig:
    """Shorthand for `load_config(["--config-file", path], {})` (tools and tests)."""
    return load_config(["--config-file", os.fspath(path)], {})
