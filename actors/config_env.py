"""etcd's environment rules: `ETCD_<FLAG>` (or trikv's alias `TRIKV_<FLAG>`) for every flag.

As etcd 3.4 (pkg/flags SetFlagsFromEnv + verifyEnv): a variable whose flag is also on the command line is
refused, an unknown variable in the namespace is warned about, an empty one is not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trikv.actors.config_keys import OPTS, Kind, Opt
from trikv.actors.config_values import FALSE_TEXT, TRUE_TEXT
from trikv.api.errors import ConfigError

ENV_PREFIX = "TRIKV_"  # trikv's alias of etcd's prefix
ETCD_ENV_PREFIX = "ETCD_"
ENV_PREFIXES = (ETCD_ENV_PREFIX, ENV_PREFIX)
# TRIKV_* variables read elsewhere (not flags): never "unrecognized".
OTHER_TRIKV_ENV = frozenset(
    {"TRIKV_DEBUG_THIRD_PARTY", "TRIKV_TEST_REVISION_COMPACT_INTERVAL", "TRIKV_TEST_PLUGIN", "TRIKV_TEST_FAULTS"}
)


def env_name(prefix: str, key: str) -> str:
    return prefix + key.upper().replace("-", "_")


def is_config_env(name: str) -> bool:
    """A variable in etcd's or trikv's configuration namespace (ETCDCTL_* is etcdctl's, not ours)."""
    return name.startswith(ENV_PREFIXES) and name not in OTHER_TRIKV_ENV


def env_value(environ: Mapping[str, str], key: str) -> str:
    """`ETCD_<KEY>` or its alias `TRIKV_<KEY>`; both given with different values is an error."""
    etcd = environ.get(env_name(ETCD_ENV_PREFIX, key), "")
    ours = environ.get(env_name(ENV_PREFIX, key), "")
    if etcd and ours and etcd != ours:
        raise ConfigError(
            f"conflicting environment variables {env_name(ETCD_ENV_PREFIX, key)}={etcd} and "
            f"{env_name(ENV_PREFIX, key)}={ours} (one is an alias of the other: unset one)"
        )
    return etcd or ours


def from_env(
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
    warnings: list[str],
    notices: list[tuple[str, str, Mapping[str, str]]],
) -> tuple[dict[str, Any], set[str]]:
    """etcd's SetFlagsFromEnv + verifyEnv over ETCD_* and the TRIKV_* aliases."""
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    recognized: set[str] = set()
    for opt in OPTS.values():
        if not opt.as_flag:
            continue
        names = [env_name(p, opt.key) for p in ENV_PREFIXES]
        present = [n for n in names if n in environ]
        if not present:
            continue
        if opt.key in flags:
            # etcd 3.4 (pkg/flags verifyEnv) stops here: the variable would silently lose to the flag.
            raise ConfigError(
                f'conflicting environment variable "{present[0]}" is shadowed by corresponding command-line flag '
                "(either unset environment variable or disable flag)"
            )
        value = env_value(environ, opt.key)
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
        if is_config_env(name) and name not in recognized:
            warnings.append(f"unrecognized environment variable {name}={environ[name]}")
    return values, explicit


def _check_env_value(opt: Opt, name: str, value: str) -> None:
    """etcd names the variable, not the flag, when an environment value does not parse."""
    if opt.kind is Kind.INT:
        try:
            int(value.strip(), 10)
        except ValueError:
            raise ConfigError(f'invalid value "{value}" for {name}: expected an integer') from None
    elif opt.kind is Kind.BOOL and value.strip().lower() not in TRUE_TEXT | FALSE_TEXT:
        raise ConfigError(f'invalid value "{value}" for {name}: expected true or false')
