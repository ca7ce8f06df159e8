"""The table of etcd's server keys and flags: for each, how its value is written, whether trikv implements
it, where it may appear (config file, flag / environment), its help line and etcd 3.4's default.

Why one table: the flag parser, the environment rules, the YAML loader, --help and the "accepted and
ignored" warning all read it, so a key is added (or implemented) in one place.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024  # etcd's DefaultQuotaBytes
MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024  # etcd's MaxQuotaBytes: above it etcd only warns
MAX_ELECTION_MS = 50000  # etcd's maxElectionMs
LOG_LEVELS = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")


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
class Opt:
    key: str
    kind: Kind
    implemented: bool
    in_file: bool = True  # valid as a config-file key
    as_flag: bool = True  # valid as a flag / env var
    help: str = ""


def _impl(key: str, kind: Kind, help: str) -> Opt:
    return Opt(key, kind, True, help=help)


IMPLEMENTED = [
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
        "experimental-corrupt-check-time",
        Kind.STR,
        "Duration of time between cluster corruption check passes ('0s' = off; e.g. '5m').",
    ),
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
    _impl("listen-metrics-urls", Kind.URLS, "List of URLs to listen on for the metrics and health endpoints."),
    _impl("metrics", Kind.STR, "Level of detail of /metrics: 'basic', or 'extensive' (default) with grpc histograms."),
    _impl("logger", Kind.STR, "Logger: 'zap' (structured JSON lines)."),
    _impl("log-level", Kind.STR, "Log level: debug, info, warn, error, panic, or fatal."),
    _impl("log-outputs", Kind.LIST, "Where to write logs: stderr, stdout, default, or file paths."),
]


LEGACY_FLAGS = (
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
PARSED_NOT_ACTED_ON: tuple[str, ...] = ()


def _unimpl(kind: Kind, *keys: str, in_file: bool = True, as_flag: bool = True) -> list[Opt]:
    return [Opt(k, kind, False, in_file=in_file, as_flag=as_flag) for k in keys]


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
    *_unimpl(Kind.BOOL, *LEGACY_FLAGS, in_file=False),
]

OPTS: dict[str, Opt] = {o.key: o for o in (*IMPLEMENTED, *_UNIMPLEMENTED)}
assert len(OPTS) == len(IMPLEMENTED) + len(_UNIMPLEMENTED), "duplicate option key"

# --------------------------------------------------------------------------- defaults

DEFAULTS: dict[str, Any] = {
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
    "experimental-corrupt-check-time": "0s",
    "strict-reconfig-check": True,
    "enable-grpc-gateway": True,
    "listen-metrics-urls": "",
    "metrics": "extensive",
    "logger": "zap",
    "log-level": "info",
    "log-outputs": ["default"],
}
DEFAULT_TEXT = {
    **{
        k: (",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v)
        for k, v in DEFAULTS.items()
    },
    "data-dir": "<name>.trikv",
    "wal-dir": "<data-dir>/member/wal",
    "initial-cluster": "<name>=<initial-advertise-peer-urls>",
}
