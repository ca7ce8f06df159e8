"""Fuzz target: the snapshot file reader (tools/snapshot_file.py, tools/snapshot_restore.py) through the CLI.

tests/fixtures/snapshot-5keys.db was saved by `trikvctl snapshot save` (the page file plus its SHA-256
trailer). Each example copies it, mutates bytes (flip, truncate, extend, splice, zero, overwrite) and runs
`trikvctl snapshot status -w json` and `snapshot restore` (with or without --skip-hash-check) on the copy:
exit 0 with a status / a restored data dir, or exit 1 with one line `Error: ...` (etcd's wording) and nothing
half-built left behind. Never a traceback, never a hang; the fixture's sha256 is unchanged.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import budget, watchdog
from tests.fuzz.mutate import Mutation, Originals, mutate_file, mutations, sha256
from trikv.tools import trikvctl

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "snapshot-5keys.db"
PEER = "http://127.0.0.1:42380"


@pytest.fixture(scope="module")
def originals() -> Iterator[Originals]:
    fixture_hash = sha256(FIXTURE)
    with tempfile.TemporaryDirectory(prefix="trikv-fuzz-snap-") as tmp:
        root = Path(tmp) / "orig"
        root.mkdir()
        shutil.copy(FIXTURE, root / "snap.db")
        orig = Originals(root)
        orig.seal()
        yield orig
        orig.check()
    assert sha256(FIXTURE) == fixture_hash


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = trikvctl.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, out: str, err: str) -> None:
    assert code == 1, (code, out, err)
    text = err or out
    assert text.startswith("Error: ") and text.count("\n") == 1, text
    assert "Traceback" not in text


@budget(examples=150, deadline_ms=15_000)
@given(mutation=mutations, skip_hash=st.booleans())
@example(mutation=Mutation("flip", 0.5, 1), skip_hash=True)
@example(mutation=Mutation("truncate", 0.99, 0), skip_hash=True)  # the trailer cut: a page file without it
@example(mutation=Mutation("truncate", 0.0, 0), skip_hash=False)
def test_snapshot_file_reader(originals: Originals, mutation: Mutation, skip_hash: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="trikv-fuzz-snap-ex-") as tmp:
        snap = originals.copy_to(Path(tmp) / "copy") / "snap.db"
        mutate_file(snap, mutation, region=snap.stat().st_size)
        data = Path(tmp) / "restored"
        with watchdog(15):
            code, out, err = run("snapshot", "status", str(snap), "-w", "json")
            if code == 0:
                assert set(json.loads(out)) == {"hash", "revision", "totalKey", "totalSize"}
            else:
                one_line_error(code, out, err)
            argv = ["snapshot", "restore", str(snap), "--name", "r1", "--data-dir", str(data)]
            argv += ["--initial-cluster", f"r1={PEER}", "--initial-advertise-peer-urls", PEER]
            code, out, err = run(*argv, *(["--skip-hash-check"] if skip_hash else []))
            if code == 0:
                assert (data / "member" / "snap" / "db").exists()
            else:
                one_line_error(code, out, err)
                assert not data.exists()  # nothing half-built is left behind
    originals.check()
