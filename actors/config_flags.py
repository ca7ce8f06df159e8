"""The server's command line: etcd's Go-flag syntax, `--help` and `--version`.

`--help` / `--version` raise `HelpRequested` / `VersionRequested` (subclasses of `InfoRequested`, NOT errors):
the main prints `exc.text` on stdout and exits 0, as etcd does.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from typing import Any

from trikv.actors.config_env import ENV_PREFIX, ETCD_ENV_PREFIX
from trikv.actors.config_keys import DEFAULT_TEXT, IMPLEMENTED, OPTS, PARSED_NOT_ACTED_ON, Kind
from trikv.api.errors import ConfigError

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
    for o in IMPLEMENTED:
        lines.append(f"  --{o.key}")
        text = o.help if "(default:" in o.help else f"{o.help} (default: {DEFAULT_TEXT.get(o.key, '')!s})"
        if o.key in PARSED_NOT_ACTED_ON:
            text += " [checked, not acted on yet]"
        lines.append(f"      {text}")
    return "\n".join(lines)


def parse_flags(argv: Sequence[str]) -> tuple[dict[str, Any], str | None]:
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
        opt = OPTS.get(key)
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
