"""The test-only fault plugin: failpoints, planted bugs, peer faults and bent clocks from a control file.

Inert unless a member is started with ``TRIKV_TEST_PLUGIN=trikv.testing.plugin``: then `install()` (called by
actors/main.py before the node starts) reads the JSON control file named by ``TRIKV_TEST_FAULTS`` once,
sets `trikv.storage.faults.ACTIVE`, and a daemon thread re-reads the file whenever its mtime or size changes
(every 20 ms), so a harness steers a running member by rewriting the file (tmp + rename). The file's shape
is the robustness contract (every key optional)::

    {"failpoints": {"wal.after_fsync": "crash", "apply.before": "crash:3", "backend.commit.before": "sleep:0.5"},
     "plants": ["read_without_read_index"],
     "peers": {"out": {"node1": {"drop": 0.3, "delay": [0.01, 0.05]}, "*": {"drop": 1.0}},
               "in": {"node2": {"drop": 1.0}}},
     "stall": ["node1"],
     "clock": {"lessor": {"offset": 2.0, "rate": 1.5}, "ticker": {"rate": 0.5}},
     "seed": 42}

A missing file means no faults; a file that does not parse keeps the last good settings (a message on stderr).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from trikv.storage import faults

POLL = 0.02  # seconds between looks at the control file
FAULTS_ENV = "TRIKV_TEST_FAULTS"


class ControlError(ValueError):
    """The control file does not have the contract's shape."""


@attrs.frozen
class FailpointAction:
    kind: str  # "off" | "crash" | "sleep"
    at: int = 1  # crash at this hit (counted from when the action was set)
    seconds: float = 0.0


@attrs.frozen
class LinkRule:
    drop: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)


@attrs.frozen
class ClockRule:
    offset: float = 0.0
    rate: float = 1.0


@attrs.frozen
class Settings:
    failpoints: Mapping[str, FailpointAction] = attrs.Factory(dict)
    plants: frozenset[str] = frozenset()
    out: Mapping[str, LinkRule] = attrs.Factory(dict)
    inn: Mapping[str, LinkRule] = attrs.Factory(dict)
    stall: frozenset[str] = frozenset()
    clocks: Mapping[str, ClockRule] = attrs.Factory(dict)
    seed: int | None = None


def parse_failpoint(name: str, text: str) -> FailpointAction:
    if name not in faults.FAILPOINTS:
        raise ControlError(f"unknown failpoint {name!r}")
    kind, _, arg = str(text).partition(":")
    try:
        if kind == "off" and not arg:
            return FailpointAction("off")
        if kind == "crash":
            at = int(arg) if arg else 1
            if at < 1:
                raise ValueError
            return FailpointAction("crash", at=at)
        if kind == "sleep" and arg:
            seconds = float(arg)
            if seconds < 0:
                raise ValueError
            return FailpointAction("sleep", seconds=seconds)
    except ValueError:
        pass
    raise ControlError(f"failpoint {name}: {text!r} is not off, crash, crash:N or sleep:S")


def _link_rules(side: str, raw: Any) -> dict[str, LinkRule]:
    if not isinstance(raw, dict):
        raise ControlError(f"peers.{side} must be an object of member name -> rule")
    out = {}
    for name, rule in raw.items():
        if not isinstance(rule, dict) or set(rule) - {"drop", "delay"}:
            raise ControlError(f"peers.{side}.{name} must be {{'drop': p, 'delay': [min, max]}}")
        drop = float(rule.get("drop", 0.0))
        lo, hi = rule.get("delay", (0.0, 0.0))
        if not 0.0 <= drop <= 1.0 or not 0.0 <= float(lo) <= float(hi):
            raise ControlError(f"peers.{side}.{name}: drop must be in [0, 1] and delay a [min, max] range")
        out[str(name)] = LinkRule(drop, (float(lo), float(hi)))
    return out


def parse(doc: Any) -> Settings:
    """The control file's JSON as Settings (ControlError names what is wrong)."""
    if not isinstance(doc, dict):
        raise ControlError("the control file must hold a JSON object")
    unknown = set(doc) - {"failpoints", "plants", "peers", "stall", "clock", "seed"}
    if unknown:
        raise ControlError(f"unknown keys {sorted(unknown)}")
    fps = {name: parse_failpoint(name, text) for name, text in (doc.get("failpoints") or {}).items()}
    plants = frozenset(doc.get("plants") or ())
    if plants - set(faults.PLANTS):
        raise ControlError(f"unknown planted bugs {sorted(plants - set(faults.PLANTS))}")
    peers = doc.get("peers") or {}
    if not isinstance(peers, dict) or set(peers) - {"out", "in"}:
        raise ControlError("peers must be {'out': {...}, 'in': {...}}")
    clocks = {}
    for which, rule in (doc.get("clock") or {}).items():
        if which not in faults.CLOCKS or not isinstance(rule, dict) or set(rule) - {"offset", "rate"}:
            raise ControlError(f"clock.{which} must be one of {faults.CLOCKS} with offset and/or rate")
        rate = float(rule.get("rate", 1.0))
        if rate <= 0:
            raise ControlError(f"clock.{which}.rate must be > 0")
        clocks[which] = ClockRule(float(rule.get("offset", 0.0)), rate)
    seed = doc.get("seed")
    return Settings(
        failpoints=fps,
        plants=plants,
        out=_link_rules("out", peers.get("out") or {}),
        inn=_link_rules("in", peers.get("in") or {}),
        stall=frozenset(str(s) for s in doc.get("stall") or ()),
        clocks=clocks,
        seed=None if seed is None else int(seed),
    )


class _Clock:
    """A piecewise-linear clock: continuous when the rate changes, jumps only by a change of offset."""

    def __init__(self) -> None:
        self.rule = ClockRule()
        self.base_t: float | None = None  # anchored at the first reading after a change
        self.base_mapped = 0.0
        self.pending: ClockRule | None = None

    def map(self, t: float) -> float:
        if self.pending is not None:
            self.base_mapped = self._unshifted(t)
            self.base_t = t
            self.rule, self.pending = self.pending, None
        return self._unshifted(t) + self.rule.offset

    def _unshifted(self, t: float) -> float:
        if self.base_t is None:
            return t
        return self.base_mapped + (t - self.base_t) * self.rule.rate


class Plugin:
    """The FaultHooks the control file describes; thread-safe enough for one writer (the reload thread)."""

    def __init__(self, settings: Settings | None = None, *, kill: Any = None) -> None:
        self._kill = kill or (lambda: os.kill(os.getpid(), signal.SIGKILL))
        self._clocks = {which: _Clock() for which in faults.CLOCKS}
        self._lock = threading.Lock()
        self.settings = Settings()
        self._hits: dict[str, int] = {}
        self.rng = random.Random()
        self.apply(settings or Settings())

    def apply(self, settings: Settings) -> None:
        """Switch to new settings; a failpoint's crash:N counts hits from here when its action changed."""
        with self._lock:
            old = self.settings
            for name, action in settings.failpoints.items():
                if old.failpoints.get(name) != action:
                    self._hits[name] = 0
            if settings.seed is not None and settings.seed != old.seed:
                self.rng = random.Random(settings.seed)
            for which in faults.CLOCKS:
                rule = settings.clocks.get(which, ClockRule())
                clock = self._clocks[which]
                if rule != (clock.pending or clock.rule):
                    clock.pending = rule
            self.settings = settings

    # ---------------------------------------------------------------- FaultHooks

    def point(self, name: str) -> None:
        action = self.settings.failpoints.get(name)
        if action is None or action.kind == "off":
            return
        if action.kind == "sleep":
            time.sleep(action.seconds)
            return
        with self._lock:
            self._hits[name] = hit = self._hits.get(name, 0) + 1
        if hit >= action.at:
            print(f"trikv test plugin: crash at failpoint {name} (hit {hit})", file=sys.stderr, flush=True)
            self._kill()

    def plant(self, name: str) -> bool:
        return name in self.settings.plants

    def peer_out(self, to: str) -> float | None:
        return self._link(self.settings.out, to)

    def peer_in(self, frm: str) -> float | None:
        return self._link(self.settings.inn, frm)

    def _link(self, rules: Mapping[str, LinkRule], name: str) -> float | None:
        s = self.settings
        if name in s.stall or "*" in s.stall:
            return faults.HOLD
        rule = rules.get(name) or rules.get("*")
        if rule is None:
            return 0.0
        if rule.drop and (rule.drop >= 1.0 or self.rng.random() < rule.drop):
            return None
        lo, hi = rule.delay
        if hi <= 0:
            return 0.0
        return self.rng.uniform(lo, hi) or 0.0

    def clock(self, which: str, t: float) -> float:
        clock = self._clocks.get(which)
        return t if clock is None else clock.map(t)


def read_control(path: str) -> Settings:
    """The settings in `path`; no file = no faults. ControlError / OSError for a bad one."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return Settings()
    try:
        doc = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ControlError(f"not JSON: {exc}") from None
    return parse(doc)


class Watcher:
    """Re-reads the control file whenever its mtime or size changes (a daemon thread, POLL apart)."""

    def __init__(self, plugin: Plugin, path: str) -> None:
        self.plugin, self.path = plugin, path
        self._seen: tuple[int, int] | None = self._stat()
        self._stop = threading.Event()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def check(self) -> bool:
        """Reload if the file changed; True when new settings were applied."""
        now = self._stat()
        if now == self._seen:
            return False
        self._seen = now
        try:
            self.plugin.apply(read_control(self.path))
        except (ControlError, OSError, ValueError, TypeError) as exc:
            print(f"trikv test plugin: ignoring {self.path}: {exc}", file=sys.stderr, flush=True)
            return False
        return True

    def run(self) -> None:
        while not self._stop.wait(POLL):
            self.check()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="trikv-test-faults", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def install(environ: Mapping[str, str] | None = None) -> Plugin:
    """Called by actors/main.py before the node starts: read the control file once, set faults.ACTIVE, watch it."""
    env = os.environ if environ is None else environ
    path = env.get(FAULTS_ENV, "")
    plugin = Plugin(read_control(path) if path else Settings())
    faults.ACTIVE = plugin
    if path:
        Watcher(plugin, path).start()
    return plugin


__all__ = [
    "FAULTS_ENV",
    "ClockRule",
    "ControlError",
    "FailpointAction",
    "LinkRule",
    "Plugin",
    "Settings",
    "Watcher",
    "install",
    "parse",
    "read_control",
]
