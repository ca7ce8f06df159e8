"""The deeper fuzz profile for manual runs: `pytest -m soak tests/fuzz/test_soak.py` reruns every fuzz target
with TRIKV_FUZZ=soak (50x the CI budgets, fresh random examples; TRIKV_FUZZ_FACTOR changes the factor)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.soak
def test_fuzz_soak() -> None:
    env = dict(os.environ, TRIKV_FUZZ="soak")
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(HERE),
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not soak or soak",
    ]
    argv += ["--deselect", f"{HERE / 'test_soak.py'}::test_fuzz_soak"]
    assert subprocess.run(argv, env=env, cwd=HERE.parent.parent, check=False).returncode == 0
