"""The YAML configuration file: etcd's keys with YAML types, its nested *-transport-security blocks, and
one-line reasons for the mistakes seen in the wild (the seed tutorial's `log-outputs:- "stderr"`).

Every key of etcd's sample file (etcd.conf.yml.sample) is accepted; a key etcd does not know is an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from trikv.actors.config_keys import OPTS, Kind
from trikv.actors.config_values import describe
from trikv.api.errors import ConfigError

CONFIG_FILE_LOADED = (
    "loaded server configuration, other configuration command line flags and environment variables will be "
    "ignored if provided"
)


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


def read_file(path: str, warnings: list[str]) -> tuple[dict[str, Any], set[str]]:
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
    try:
        loader = _Loader(text)  # its reader refuses control characters already here
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {origin}: {' '.join(str(e).split())}") from None
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
        opt = OPTS.get(key)
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
        raise ConfigError(f"invalid value for {key} in {origin}: expected a mapping, got {describe(value)}")
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
                f"invalid value for {key}.{sub} in {origin}: expected a {kind.value}, got {describe(v)}"
            )
