"""Typed configuration values: strings, integers, booleans and lists as flags/environment (text) or YAML
(real types) spell them, URLs checked as etcd's types.NewURLs, and the auto-compaction retention.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from trikv.actors.config_keys import OPTS
from trikv.api.errors import ConfigError

# --------------------------------------------------------------------------- typed values


def as_str(key: str, v: Any, from_text: bool) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if key == "auto-compaction-retention" and isinstance(v, int) and not isinstance(v, bool):
        return str(v)  # etcd wants a string; a bare number is unambiguous, so accept it
    raise ConfigError(f"invalid value for {key}: expected a string, got {describe(v)}")


def as_int(key: str, v: Any, from_text: bool, *, minimum: int = 0) -> int:
    if isinstance(v, bool) or not (isinstance(v, int) or (from_text and isinstance(v, str))):
        raise ConfigError(f"invalid value for {key}: expected an integer, got {describe(v)}")
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


TRUE_TEXT = {"1", "t", "true", "yes", "on"}
FALSE_TEXT = {"0", "f", "false", "no", "off"}


def as_bool(key: str, v: Any, from_text: bool) -> bool:
    if isinstance(v, bool):
        return v
    if from_text and isinstance(v, str) and v.strip().lower() in TRUE_TEXT | FALSE_TEXT:
        return v.strip().lower() in TRUE_TEXT
    raise ConfigError(f"invalid value for {key}: expected true or false, got {describe(v)}")


def as_str_list(key: str, v: Any, from_text: bool) -> list[str]:
    if isinstance(v, str):
        items = [s.strip() for s in v.split(",")]
    elif isinstance(v, list) and all(isinstance(s, str) for s in v):
        items = [s.strip() for s in v]
    else:
        raise ConfigError(f"invalid value for {key}: expected a {OPTS[key].kind.value}, got {describe(v)}")
    if not items or any(not s for s in items):
        raise ConfigError(f"invalid value for {key}: empty entry in {v!r}")
    return items


def describe(v: Any) -> str:
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


def check_url(key: str, url: str, *, listen: bool) -> str:
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


def check_urls(key: str, urls: list[str], *, listen: bool) -> tuple[str, ...]:
    out = tuple(check_url(key, u, listen=listen) for u in urls)
    if len(set(out)) != len(out):
        raise ConfigError(f"invalid value for {key}: a URL is listed twice in {','.join(urls)!r}")
    return out


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or 0)


# --------------------------------------------------------------------------- compaction retention

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(key: str, text: str) -> float:
    """A Go duration ('90s', '1h30m', '0s'; a bare '0' too) in seconds; ConfigError naming `key` otherwise."""
    t = text.strip()
    if t == "0":
        return 0.0
    pos, seconds = 0, 0.0
    for m in _DURATION.finditer(t):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise ConfigError(f"invalid {key} {text!r}: expected a duration (e.g. '5m', '30s')")
    return seconds


def parse_retention(mode: str, text: str) -> tuple[str, float] | None:
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
