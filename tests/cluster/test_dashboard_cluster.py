"""Acceptance: GET /dashboard in a real headless browser (Debian's chromium, installed by .ci/run) against
three real members: the page renders by itself, shows the three members by name with the leader marked,
and a key the test wrote, with its value."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

import trikv
from tests.cluster.test_cluster import find_leader
from trikv.tools.localcluster import Cluster

pytestmark = pytest.mark.slow


def browser() -> str:
    """Debian's chromium: .ci/run installs it; a machine without it fails this test (never a skip)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no chromium on PATH: apt-get install -y chromium (as .ci/run does)")


def render(url: str, tmp: Path) -> str:
    """The DOM after the page's own scripts ran (no user action), as chromium --dump-dom prints it."""
    proc = subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


async def test_dashboard_in_headless_chromium(cluster: Cluster, tmp_path: Path) -> None:
    leader = cluster.members[await find_leader(cluster)]
    async with trikv.connect(cluster.endpoints) as c:
        await c.put("dash/key1", "hello-dashboard")
    follower = next(m for m in cluster.members if m is not leader)
    dom = await trio.to_thread.run_sync(render, f"http://{follower.endpoint}/dashboard", tmp_path)
    assert 'data-ready="true"' in dom, dom[-3000:]
    rows = re.findall(r'<tr class="(leader|)" data-member="([^"]*)">', dom)
    assert sorted(name for _, name in rows) == sorted(m.name for m in cluster.members), rows
    assert [name for cls, name in rows if cls == "leader"] == [leader.name]
    assert "<td>dash/key1</td><td>hello-dashboard</td>" in dom
    assert re.search(r'<td id="term">[1-9]\d*</td>', dom) and 'id="error"></span>' in dom
