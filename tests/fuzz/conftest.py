"""Fuzzing harness: hypothesis profiles and budgets, a hang watchdog, a traceback catcher, a real member.

Profiles: CI runs every target derandomized and database-less (the same examples on every run, nothing
written to .hypothesis) within its budget; `TRIKV_FUZZ=soak` (what `pytest -m soak tests/fuzz` sets for its
subprocess, see test_soak.py) multiplies every budget and draws fresh random examples.

A hang is a failure: every example runs under a deadline (hypothesis `deadline=`, which only judges an example
that finished) and a watchdog that interrupts one that never does (trio's fail_after in async code, SIGALRM
for sync code). A traceback is a failure too: the network surfaces contain every exception by logging it, so
`Tracebacks` collects each record logged with exc_info under the `trikv` loggers.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, Phase, settings

from trikv.actors.config import load_config
from trikv.actors.node import Node
from trikv.tools.localcluster import free_ports

SOAK = os.environ.get("TRIKV_FUZZ") == "soak"
SOAK_FACTOR = int(os.environ.get("TRIKV_FUZZ_FACTOR", "50"))  # budget multiplier under TRIKV_FUZZ=soak

settings.register_profile(
    "trikv-fuzz-ci",
    derandomize=True,  # reproducible: the same examples on every CI run
    database=None,
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain": it costs minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile(
    "trikv-fuzz-soak",
    parent=settings.get_profile("trikv-fuzz-ci"),
    derandomize=False,
)


def budget(examples: int, deadline_ms: int) -> settings:
    """A target's settings: `examples` in CI (x SOAK_FACTOR under TRIKV_FUZZ=soak), each within deadline_ms.

    Profiles are used as parents rather than loaded, so other tests' hypothesis settings stay untouched."""
    parent = settings.get_profile("trikv-fuzz-soak" if SOAK else "trikv-fuzz-ci")
    return settings(
        parent=parent,
        max_examples=examples * (SOAK_FACTOR if SOAK else 1),
        deadline=datetime.timedelta(milliseconds=deadline_ms),
    )


class Hang(Exception):
    """An example ran past its watchdog."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Interrupt sync code (run on the main thread) that runs longer than `seconds`: a hang is a failure."""

    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Tracebacks(logging.Handler):
    """Collects every record a `trikv` logger writes with exc_info: an exception the code did not expect."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            with self._lock:
                self.records.append(record)

    def check(self) -> None:
        """Fail with the first traceback logged since the last check."""
        with self._lock:
            records, self.records = self.records, []
        if records:
            r = records[0]
            text = logging.Formatter().formatException(r.exc_info) if r.exc_info else ""
            raise AssertionError(
                f"{len(records)} traceback(s) logged; first: {r.name}: {r.getMessage()}\n{text}"
            )


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    logger = logging.getLogger("trikv")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    handler.check()


@pytest.fixture(scope="module")
def module_tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    logger = logging.getLogger("trikv")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class Member:
    """A real single-member trikv (the Node with real files, sockets, Raft, gateway and gRPC) on 127.0.0.1,
    run by trio in a background thread, so that sync hypothesis tests can drive it over real sockets."""

    def __init__(self, data_dir: Path) -> None:
        self.client_port, self.peer_port = free_ports(2)
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        client_url = f"http://127.0.0.1:{self.client_port}"
        argv = [
            "--name=fuzz",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=fuzz={peer_url}",
            "--heartbeat-interval=50",
            "--election-timeout=500",
        ]
        self.cfg = load_config(argv, {})
        self.node = Node(self.cfg)
        self.failure: BaseException | None = None
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._thread_main, name="fuzz-member", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout) or self.failure is not None:
            raise RuntimeError(f"the member did not start: {self.failure!r}")

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.failure = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                await nursery.start(self.node.run)
                with trio.fail_after(30):
                    while not self.node.status.is_leader:
                        await trio.sleep(0.02)
                self._started.set()

    def alive(self) -> None:
        """Fail when the member's trio run has ended (an actor failed and took the member down)."""
        if self.failure is not None or not self._thread.is_alive():
            text = "".join(traceback.format_exception(self.failure)) if self.failure else ""
            raise AssertionError(f"the member stopped: {self.failure!r}\n{text}")

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a sync function on the member's trio thread (to read its state) and return its result."""
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def stop(self) -> None:
        if self._token is not None and self._scope is not None and self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._scope.cancel)
        self._thread.join(30)


@pytest.fixture(scope="module")
def member() -> Iterator[Member]:
    """A real member per fuzz module (one module's damage never shows up as another target's failure)."""
    data = Path(tempfile.mkdtemp(prefix="trikv-fuzz-"))
    m = Member(data / "member")
    try:
        m.start()
        yield m
        m.alive()
    finally:
        m.stop()
        shutil.rmtree(data, ignore_errors=True)
