"""etcd's structured log fields for stdlib `logging` calls (rendered by actors/logsetup.py's JsonFormatter).

Call sites stay plain `log.warning(msg, extra=member_fields(member_id, took=..., ...))`: keyword names
become etcd's field names (`remote_peer_id` -> `remote-peer-id`, `expected_duration` ->
`expected-duration`), and every line names the member that wrote it (`local-member-id`).
"""

from __future__ import annotations

from typing import Any

from trikv.actors.identity import format_id

SLOW_FDATASYNC = 1.0  # seconds: etcd's warnSyncDuration ("slow fdatasync")
SLOW_APPLY = 0.1  # seconds: etcd's warnApplyDuration ("apply request took too long")


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String() prints it (what etcd's took / expected-duration hold)."""
    if seconds == 0:
        return "0s"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f}ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:g}µs"
    if seconds < 1:
        return f"{round(seconds * 1e3, 6):g}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes < 1:
        return f"{round(secs, 9):g}s"
    hours, minutes = divmod(int(minutes), 60)
    head = f"{hours}h{minutes}m" if hours else f"{minutes}m"
    return f"{head}{round(secs, 9):g}s"


def member_fields(member_id: int, **fields: Any) -> dict[str, Any]:
    """`extra=` for a log call: local-member-id plus the given fields under etcd's hyphenated names."""
    out: dict[str, Any] = {"local-member-id": format_id(member_id)}
    for key, value in fields.items():
        out[key.replace("_", "-")] = value
    return {"fields": out}


__all__ = ["SLOW_APPLY", "SLOW_FDATASYNC", "go_duration", "member_fields"]
