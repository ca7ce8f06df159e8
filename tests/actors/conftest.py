"""In-process actor tests: every test runs under trio's MockClock with autojump (pytest-trio's
`autojump_clock`), so no test depends on wall-clock time; nothing binds a socket (MemNet links members)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _virtual_time_only(request: pytest.FixtureRequest) -> None:
    """A test here that forgot the virtual clock would sleep through real election timeouts: refuse it."""
    if "autojump_clock" not in request.fixturenames:
        pytest.fail("tests/actors run under virtual time: request the `autojump_clock` fixture")
