"""Structured logging: one JSON object per line, shaped like etcd's zap output, on the stdlib `logging` module.

Why JSON lines like zap: operators grep/jq etcd logs by `msg` and fields; matching the shape
(`{"level","ts","caller","msg",...fields}`) keeps their tooling working. Why stdlib logging: every module
can keep `logging.getLogger(__name__)`; fields travel in `extra={"fields": {...}}`, which `log()` and
`FieldLogger` fill in for you.

    from trikv.actors.logsetup import get_logger
    lg = get_logger(__name__)
    lg.info("added member", member_id="8e9e05c52164694d", peer_urls=["http://127.0.0.1:2380"])
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from trikv.actors.logconsole import pick_formatter
from trikv.api.errors import ConfigError

__all__ = [
    "THIRD_PARTY_ENV",
    "THIRD_PARTY_LOGGERS",
    "FieldLogger",
    "JsonFormatter",
    "get_logger",
    "level_number",
    "log",
    "setup_logging",
]

# zap level name -> stdlib level. dpanic/panic/fatal all map to CRITICAL: we never panic on a log call.
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_RESERVED = ("level", "ts", "caller", "msg")


def level_number(level: str | int) -> int:
    """The stdlib level for a zap level name (or an int passed through)."""
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ConfigError(
            f"invalid log-level {level!r} (expected one of debug, info, warn, error, panic, fatal)"
        ) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    return str(value)


def _caller(record: logging.LogRecord) -> str:
    """zap's short caller: the file's directory and name, and the line."""
    parent = Path(record.pathname).parent.name
    return f"{parent}/{record.filename}:{record.lineno}" if parent else f"{record.filename}:{record.lineno}"


class JsonFormatter(logging.Formatter):
    """Formats a record as a zap-like JSON line: level, ts (ISO-8601 UTC, ms), caller, msg, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC)
        out: dict[str, Any] = {
            "level": _NAMES.get(record.levelno) or record.levelname.lower(),
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "caller": _caller(record),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                out[f"field.{key}" if key in _RESERVED else key] = value
        if record.exc_info and record.exc_info[1] is not None:
            out.setdefault("error", str(record.exc_info[1]) or type(record.exc_info[1]).__name__)
            out["stacktrace"] = self.formatException(record.exc_info)
        return json.dumps(out, default=_jsonable, ensure_ascii=False, separators=(",", ":"))


class _StdStream(logging.StreamHandler):
    """Writes to sys.stderr / sys.stdout as they are at emit time (so redirection and test capture work)."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self._which = which

    @property
    def stream(self) -> TextIO:
        return sys.stdout if self._which == "stdout" else sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_OURS = "_trikv_logsetup"


# Libraries under us that log per frame / per event at debug level.
THIRD_PARTY_LOGGERS = (
    "trio-websocket",
    "trio_websocket",
    "wsproto",
    "h11",
    "h2",
    "hpack",
    "hyperframe",
    "trio",
)
THIRD_PARTY_ENV = "TRIKV_DEBUG_THIRD_PARTY"


def _env_flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def setup_logging(
    level: str, outputs: Sequence[str], logger: str = "zap", *, third_party: bool | None = None
) -> None:
    """Send all logging (the root logger) as JSON lines to `outputs` at `level`; idempotent.

    outputs: "stderr", "stdout", "default" (= stderr), or file paths (appended to; the directory must
    exist). Raises ConfigError naming the first output that cannot be opened. Replaces only the handlers a
    previous call installed. Third-party loggers (THIRD_PARTY_LOGGERS) stay at warn or above even at debug
    level, unless `third_party` is true (default: the environment variable TRIKV_DEBUG_THIRD_PARTY=1).
    """
    if logger not in ("zap", "capnslog"):
        raise ConfigError(f"unknown logger option {logger!r} (only 'zap' is supported)")
    number = level_number(level)
    handlers: list[logging.Handler] = []
    try:
        for output in outputs or ["default"]:
            if output in ("default", "stderr", "stdout"):
                handlers.append(_StdStream("stdout" if output == "stdout" else "stderr"))
            elif output == "systemd/journal":
                raise ConfigError("log output 'systemd/journal' is not supported")
            else:
                try:
                    handlers.append(logging.FileHandler(output, mode="a", encoding="utf-8"))
                except OSError as e:
                    raise ConfigError(f"cannot open log output {output}: {e.strerror or e}") from None
    except ConfigError:
        for h in handlers:
            h.close()
        raise
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _OURS, False):
            root.removeHandler(h)
            h.close()
    formatter = JsonFormatter()
    for h in handlers:
        setattr(h, _OURS, True)
        h.setFormatter(pick_formatter(h, formatter))  # a terminal gets zap's console lines
        root.addHandler(h)
    root.setLevel(number)
    quiet = not (third_party if third_party is not None else _env_flag(os.environ.get(THIRD_PARTY_ENV, "")))
    for name in THIRD_PARTY_LOGGERS:
        # Their per-frame debug lines drown ours: warn and above unless asked for.
        logging.getLogger(name).setLevel(max(number, logging.WARNING) if quiet else logging.NOTSET)


def log(logger: logging.Logger | str, level: str | int, msg: str, /, **fields: Any) -> None:
    """Log `msg` with key=value `fields` (they become JSON keys). `logger` may be a name."""
    lg = logging.getLogger(logger) if isinstance(logger, str) else logger
    number = level_number(level)
    if lg.isEnabledFor(number):
        lg.log(number, msg, extra={"fields": fields}, stacklevel=2)


class FieldLogger:
    """A thin wrapper so modules write `lg.info("msg", key=value)`; `bind()` adds fixed fields."""

    __slots__ = ("_fields", "logger")

    def __init__(self, logger: logging.Logger, fields: Mapping[str, Any] | None = None) -> None:
        self.logger = logger
        self._fields = dict(fields or {})

    def bind(self, **fields: Any) -> FieldLogger:
        """A logger that adds `fields` to every line (e.g. local-member-id)."""
        return FieldLogger(self.logger, {**self._fields, **fields})

    def _log(self, number: int, msg: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self.logger.isEnabledFor(number):
            merged = {**self._fields, **fields} if self._fields else fields
            self.logger.log(number, msg, extra={"fields": merged}, stacklevel=3, exc_info=exc_info)

    def debug(self, msg: str, /, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, fields)

    def info(self, msg: str, /, **fields: Any) -> None:
        self._log(logging.INFO, msg, fields)

    def warning(self, msg: str, /, **fields: Any) -> None:
        self._log(logging.WARNING, msg, fields)

    warn = warning

    def error(self, msg: str, /, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields)

    def exception(self, msg: str, /, **fields: Any) -> None:
        """Log at error level with the current exception's message and stack trace."""
        self._log(logging.ERROR, msg, fields, exc_info=True)

    def critical(self, msg: str, /, **fields: Any) -> None:
        self._log(logging.CRITICAL, msg, fields)

    def is_enabled(self, level: str | int) -> bool:
        return self.logger.isEnabledFor(level_number(level))


def get_logger(name: str, **fields: Any) -> FieldLogger:
    """A FieldLogger over `logging.getLogger(name)`, with optional fixed fields."""
    return FieldLogger(logging.getLogger(name), fields)
