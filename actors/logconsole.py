"""zap's console encoding for a human at a terminal: tab-separated ts, LEVEL, caller, msg, then the fields as
one JSON object (what `etcd --log-format=console` prints). setup_logging picks it for a stderr/stdout that
is a terminal; files and pipes keep the JSON lines that tools (and tests) parse."""

from __future__ import annotations

import json
import logging
from typing import Any


class ConsoleFormatter(logging.Formatter):
    """`2026-12-07T04:56:49.123Z\tWARN\tactors/raftnode.py:250\telected leader\t{"leader": "..."}`."""

    def __init__(self, structured: logging.Formatter) -> None:
        super().__init__()
        self._json = structured  # logsetup's JsonFormatter: one JSON object per record

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = json.loads(self._json.format(record))
        head = [entry.pop("ts"), entry.pop("level").upper(), entry.pop("caller"), entry.pop("msg")]
        stack = entry.pop("stacktrace", None)
        line = "\t".join(str(x) for x in head)
        if entry:
            line += "\t" + json.dumps(entry, ensure_ascii=False)
        return line + ("\n" + stack if stack else "")


def is_terminal(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def pick_formatter(handler: logging.Handler, default: logging.Formatter) -> logging.Formatter:
    """Console lines for a terminal, the JSON formatter (`default`) for everything else."""
    if is_terminal(handler) and not isinstance(handler, logging.FileHandler):
        return ConsoleFormatter(default)
    return default


__all__ = ["ConsoleFormatter", "is_terminal", "pick_formatter"]
