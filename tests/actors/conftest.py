"""In-process actor tests: every test runs under trio's MockClock (autojump), nothing binds a socket."""

from __future__ import annotations

import pytest
from trio.testing import MockClock


@pytest.fixture
def mock_clock() -> MockClock:
    """Virtual time that jumps ahead whenever every task waits (pytest-trio picks the clock up by type)."""
    return MockClock(autojump_threshold=0)
