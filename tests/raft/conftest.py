"""Options of the Raft simulation suite: replay one seed exactly, or soak many."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raft simulation")
    group.addoption("--raft-seed", type=int, default=None, help="replay one simulation seed (exactly)")
    group.addoption("--raft-soak", type=int, default=0, help="number of seeds for the soak test (-m soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Replay mode is chosen at collection, not by skipping: with --raft-seed the seed chunks are deselected
    (only test_replay_seed replays), without it test_replay_seed is. A clean run reports no skips."""
    replay = config.getoption("--raft-seed", default=None) is not None

    def unwanted(item: pytest.Item) -> bool:
        if not item.nodeid.startswith("tests/raft/test_simulation.py::"):
            return False
        name = item.name.split("[")[0]
        return name == ("test_simulation_chunk" if replay else "test_replay_seed")

    drop = [item for item in items if unwanted(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if not unwanted(item)]


@pytest.fixture
def raft_seed(request: pytest.FixtureRequest) -> int | None:
    value = request.config.getoption("--raft-seed", default=None)
    return None if value is None else int(value)


@pytest.fixture
def raft_soak(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--raft-soak", default=0) or 0)
