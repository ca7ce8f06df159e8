"""The wheel `pip install .` builds: only `trikv` at top level, every module of the tree in it, the console
scripts wired to functions that exist.

Why: an install once put top-level `actors`, `storage` and `tools` into site-packages (colliding with other
distributions and users' folders), and pyproject.toml lists the packages explicitly, so a new subpackage
missing from that list would install a trikv that fails on import.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"trikv", "trikvctl", "trikvutl"}
_SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".*_cache",
    ".hypothesis",
    "tests",
    "*.trikv",
)


def _source_modules() -> set[str]:
    """Every .py the package is made of, as wheel paths (the symlinked actors/, storage/, tools/ followed)."""
    out = set()
    for folder, dirs, files in os.walk(ROOT / "trikv", followlinks=True):  # Path.rglob skips symlinks
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = Path(folder).relative_to(ROOT / "trikv")
        out.update(("trikv" / rel / f).as_posix() for f in files if f.endswith(".py"))
    return out


def test_wheel_has_only_trikv_every_module_and_the_console_scripts(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the working tree
    shutil.copytree(ROOT, src, symlinks=True, ignore=_SKIP)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("trikv-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        ep_text = zf.read(entry_points).decode()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"trikv"}, sorted(top)
    modules = _source_modules()
    assert "trikv/actors/raft/core.py" in modules and "trikv/storage/wal.py" in modules
    missing = modules - names
    assert not missing, f"modules left out of the wheel (pyproject.toml packages?): {sorted(missing)}"
    eps = configparser.ConfigParser()
    eps.read_string(ep_text)
    scripts = dict(eps["console_scripts"])
    assert set(scripts) == SCRIPTS
    for target in scripts.values():
        module, _, func = target.partition(":")
        path = module.replace(".", "/") + ".py"
        assert path in names, target
        assert f"def {func}(" in (ROOT / path).read_text(encoding="utf-8"), target
