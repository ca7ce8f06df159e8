"""Options of the Raft simulation suite: replay one seed exactly, or soak many."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raft simulation")
    group.addoption("--raft-seed", type=int, default=None, help="replay one simulation seed (exactly)")
    group.addoption("--raft-soak", type=int, default=0, help="number of seeds for the soak test (-m soak)")


@pytest.fixture
def raft_seed(request: pytest.FixtureRequest) -> int | None:
    value = request.config.getoption("--raft-seed", default=None)
    return None if value is None else int(value)


@pytest.fixture
def raft_soak(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--raft-soak", default=0) or 0)
