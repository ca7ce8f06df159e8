"""What a robustness run observed: client operations, watch streams and faults, with JSONL dump/load.

The runner records these; the checkers (check_*.py) read them. Times are time.monotonic() seconds in the
harness process. One JSON object per line, its kind in "t": "meta" (seed, members, params), "op", "watch"
(a WatchResponse), "watch_spec", "watch_resume", "fault". Keys left at their default are omitted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

KV_KINDS = ("put", "delete", "get", "txn")
LEASE_KINDS = ("lease_grant", "lease_keepalive", "lease_revoke")
KINDS = KV_KINDS + LEASE_KINDS


def _pairs(value: Any) -> tuple[tuple[Any, Any], ...]:
    """JSON gives lists back; compares and puts are tuples of pairs (hashable, comparable)."""
    return tuple((a, b) for a, b in value)


@attrs.frozen
class Op:
    """One client operation: invoked at `invoke`, answered at `complete` (None = never answered).

    ok: True = succeeded, False = definitely not applied, None = unknown outcome (timeout, lost link).
    revision is the response header revision. A put's value is unique in the history. A get reports
    found / got_value / got_mod_revision. A txn compares (key, expected value or None = absent) and, when
    all hold, does its puts; `succeeded` says which branch ran. A put may carry a lease; lease ops carry
    lease and ttl. A delete records the number of keys deleted. `final` marks the runner's closing
    linearizable reads, taken after every fault healed and every other operation ended.
    """

    id: int
    client: int
    kind: str
    invoke: float
    complete: float | None = None
    ok: bool | None = None
    revision: int | None = None
    key: str = ""
    value: str | None = None
    serializable: bool = False
    found: bool | None = None
    got_value: str | None = None
    got_mod_revision: int | None = None
    compares: tuple[tuple[str, str | None], ...] = attrs.field(default=(), converter=_pairs)
    puts: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    succeeded: bool | None = None
    lease: int | None = None
    ttl: int | None = None
    deleted: int | None = None
    final: bool = False

    def keys(self) -> tuple[str, ...]:
        """Every key this op reads or writes (a txn touches its compares' and puts' keys)."""
        if self.kind == "txn":
            return tuple(sorted({k for k, _ in self.compares} | {k for k, _ in self.puts}))
        if self.kind in KV_KINDS:
            return (self.key,)
        return ()

    def is_write(self) -> bool:
        return self.kind in ("put", "delete", "txn")


@attrs.frozen
class Event:
    """A watch event as etcd sends it (a DELETE has value None, create_revision and version 0)."""

    type: str
    key: str
    value: str | None
    mod_revision: int
    create_revision: int = 0
    version: int = 0


def _events(value: Any) -> tuple[Event, ...]:
    return tuple(value)


@attrs.frozen
class WatchResponse:
    """One response on one watcher's stream, in the order received."""

    watcher: int
    received: float
    header_revision: int
    events: tuple[Event, ...] = attrs.field(default=(), converter=_events)
    progress: bool = False
    compact_revision: int = 0
    canceled: bool = False
    created: bool = False


@attrs.frozen
class WatchSpec:
    """A watcher: every key under `prefix`, from `start_revision` (0 = from now)."""

    watcher: int
    prefix: str
    start_revision: int


@attrs.frozen
class WatchResume:
    """The watcher's stream was re-created on `endpoint` at time `at`, from `start_revision`."""

    watcher: int
    at: float
    start_revision: int
    endpoint: str = ""


@attrs.frozen
class Fault:
    """A nemesis action: started at `at`, undone at `healed` (None = never, or not undoable: a SIGKILL)."""

    at: float
    kind: str
    target: str
    detail: str = ""
    healed: float | None = None


@attrs.define
class History:
    """Everything one run observed. `params` carries run settings the checkers need (see check_lease)."""

    ops: list[Op] = attrs.Factory(list)
    watches: list[WatchSpec] = attrs.Factory(list)
    resumes: list[WatchResume] = attrs.Factory(list)
    responses: list[WatchResponse] = attrs.Factory(list)
    faults: list[Fault] = attrs.Factory(list)
    seed: int = 0
    members: list[str] = attrs.Factory(list)
    params: dict[str, float] = attrs.Factory(dict)

    def dump(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for line in self.lines():
                f.write(line + "\n")

    def lines(self) -> list[str]:
        out = [json.dumps({"t": "meta", "seed": self.seed, "members": self.members, "params": self.params})]
        for tag, items in (
            ("op", self.ops),
            ("watch_spec", self.watches),
            ("watch_resume", self.resumes),
            ("watch", self.responses),
            ("fault", self.faults),
        ):
            for item in items:
                out.append(json.dumps({"t": tag, **_record(item)}))
        return out

    @classmethod
    def load(cls, path: str | Path) -> History:
        with open(path, encoding="utf-8") as f:
            return cls.from_lines(f)

    @classmethod
    def from_lines(cls, lines: Any) -> History:
        h = cls()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                tag = rec.pop("t")
                if tag == "meta":
                    h.seed = int(rec.get("seed", 0))
                    h.members = list(rec.get("members", []))
                    h.params = dict(rec.get("params", {}))
                elif tag == "op":
                    h.ops.append(Op(**rec))
                elif tag == "watch_spec":
                    h.watches.append(WatchSpec(**rec))
                elif tag == "watch_resume":
                    h.resumes.append(WatchResume(**rec))
                elif tag == "watch":
                    events = tuple(Event(**e) for e in rec.pop("events", ()))
                    h.responses.append(WatchResponse(events=events, **rec))
                elif tag == "fault":
                    h.faults.append(Fault(**rec))
                else:
                    raise ValueError(f"unknown record type {tag!r}")
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"history line {n}: {e}") from None
        return h

    def replace(self, **changes: Any) -> History:
        """A copy with some lists swapped (the minimizer builds sub-histories this way)."""
        return attrs.evolve(self, **changes)


def _record(item: Any) -> dict[str, Any]:
    """attrs fields as JSON, leaving out those still at their default (keeps lines short)."""
    out: dict[str, Any] = {}
    for f in attrs.fields(type(item)):
        v = getattr(item, f.name)
        if f.default is not attrs.NOTHING:
            factory = getattr(f.default, "factory", None)
            default = factory() if factory is not None else f.default
            if v == default:
                continue
        if f.name == "events":
            v = [_record(e) for e in v]
        out[f.name] = v
    return out
