"""The test-only fault plugin (trikv.testing.plugin): control-file parsing, its decisions, reloads, install."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from trikv.storage import faults
from trikv.testing import plugin as fp


@pytest.fixture(autouse=True)
def _no_active_hooks() -> Iterator[None]:
    """Every test leaves the process as production has it: no hooks."""
    assert faults.ACTIVE is None
    yield
    faults.ACTIVE = None


def write(path: Path, doc: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def test_the_contract_example_parses() -> None:
    s = fp.parse(
        {
            "failpoints": {
                "wal.after_fsync": "crash",
                "backend.commit.before": "sleep:0.5",
                "apply.before": "crash:3",
            },
            "plants": ["read_without_read_index"],
            "peers": {
                "out": {"node1": {"drop": 0.3, "delay": [0.01, 0.05]}, "*": {"drop": 1.0}},
                "in": {"node2": {"drop": 1.0}},
            },
            "stall": ["node1"],
            "clock": {"lessor": {"offset": 2.0, "rate": 1.5}, "ticker": {"rate": 0.5}},
            "seed": 42,
        }
    )
    assert s.failpoints == {
        "wal.after_fsync": fp.FailpointAction("crash", at=1),
        "backend.commit.before": fp.FailpointAction("sleep", seconds=0.5),
        "apply.before": fp.FailpointAction("crash", at=3),
    }
    assert s.plants == {"read_without_read_index"}
    assert s.out == {"node1": fp.LinkRule(0.3, (0.01, 0.05)), "*": fp.LinkRule(1.0, (0.0, 0.0))}
    assert s.inn == {"node2": fp.LinkRule(1.0, (0.0, 0.0))}
    assert s.stall == {"node1"}
    assert s.clocks == {"lessor": fp.ClockRule(2.0, 1.5), "ticker": fp.ClockRule(0.0, 0.5)}
    assert s.seed == 42
    assert fp.parse({}) == fp.Settings()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"failpoints": {"wal.fsync": "crash"}}, "unknown failpoint 'wal.fsync'"),
        ({"failpoints": {"apply.before": "crash:0"}}, "not off, crash, crash:N or sleep:S"),
        ({"failpoints": {"apply.before": "sleep"}}, "not off, crash, crash:N or sleep:S"),
        ({"plants": ["reapply"]}, "unknown planted bugs ['reapply']"),
        ({"peers": {"out": {"n": {"drop": 2}}}}, "drop must be in [0, 1]"),
        ({"peers": {"sideways": {}}}, "peers must be"),
        ({"clock": {"wall": {"rate": 2}}}, "clock.wall"),
        ({"clock": {"ticker": {"rate": 0}}}, "rate must be > 0"),
        ({"nemesis": 1}, "unknown keys ['nemesis']"),
        ([], "must hold a JSON object"),
    ],
)
def test_a_bad_control_file_names_the_problem(doc: object, message: str) -> None:
    with pytest.raises(fp.ControlError) as err:
        fp.parse(doc)
    assert message in str(err.value)


def test_every_name_in_storage_faults_is_accepted() -> None:
    s = fp.parse({"failpoints": dict.fromkeys(faults.FAILPOINTS, "crash:2"), "plants": list(faults.PLANTS)})
    assert set(s.failpoints) == set(faults.FAILPOINTS) and s.plants == set(faults.PLANTS)
    p = fp.Plugin(s)
    assert all(p.plant(name) for name in faults.PLANTS)
    assert not fp.Plugin().plant("read_without_read_index")


def test_crash_n_kills_at_the_nth_hit_counted_from_when_it_was_set() -> None:
    kills: list[str] = []
    p = fp.Plugin(fp.parse({"failpoints": {"apply.before": "crash:3"}}), kill=lambda: kills.append("kill"))
    p.point("apply.before")
    p.point("apply.after")  # another point does not count
    p.point("apply.before")
    assert kills == []
    p.point("apply.before")
    assert kills == ["kill"]
    p.apply(fp.parse({"failpoints": {"apply.before": "crash:2"}}))  # a new action counts again from zero
    p.point("apply.before")
    assert kills == ["kill"]
    p.point("apply.before")
    assert kills == ["kill", "kill"]
    p.apply(fp.parse({"failpoints": {"apply.before": "off"}}))
    for _ in range(5):
        p.point("apply.before")
    assert len(kills) == 2


def test_sleep_blocks_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(fp.time, "sleep", slept.append)
    p = fp.Plugin(fp.parse({"failpoints": {"backend.commit.before": "sleep:0.25"}}))
    p.point("backend.commit.before")
    p.point("backend.commit.after")
    assert slept == [0.25]


def test_drop_and_delay_are_seeded_and_per_peer() -> None:
    doc = {"peers": {"out": {"n1": {"drop": 0.3, "delay": [0.01, 0.05]}, "*": {"drop": 1.0}}}, "seed": 7}

    def draws() -> list[float | None]:
        p = fp.Plugin(fp.parse(doc))
        return [p.peer_out("n1") for _ in range(400)]

    first = draws()
    assert first == draws()  # the same seed, the same decisions
    dropped = sum(d is None for d in first)
    assert 80 <= dropped <= 160, dropped  # ~30 % of 400
    delays = [d for d in first if d is not None]
    assert all(0.01 <= d <= 0.05 for d in delays)
    p = fp.Plugin(fp.parse(doc))
    assert all(p.peer_out("n2") is None for _ in range(50))  # "*" covers the others
    assert all(p.peer_in("n1") == 0.0 for _ in range(50))  # no "in" rule: pass
    other = fp.Plugin(fp.parse({**doc, "seed": 8}))
    assert [other.peer_out("n1") for _ in range(400)] != first


def test_one_way_loss_and_stall() -> None:
    p = fp.Plugin(fp.parse({"peers": {"in": {"n2": {"drop": 1.0}}}, "stall": ["n3"]}))
    assert p.peer_in("n2") is None and p.peer_out("n2") == 0.0
    assert p.peer_out("n3") == faults.HOLD and p.peer_in("n3") == faults.HOLD
    p.apply(fp.parse({}))
    assert p.peer_out("n3") == 0.0


def test_clock_offset_and_rate_stay_continuous_across_changes() -> None:
    p = fp.Plugin()
    assert p.clock("lessor", 100.0) == 100.0  # identity by default
    p.apply(fp.parse({"clock": {"lessor": {"offset": 2.0, "rate": 1.5}}}))
    assert p.clock("lessor", 110.0) == 112.0  # anchored at the first reading: the offset jumps, the rate runs
    assert p.clock("lessor", 114.0) == pytest.approx(110.0 + 4 * 1.5 + 2.0)
    assert p.clock("ticker", 114.0) == 114.0  # one clock at a time
    p.apply(
        fp.parse({"clock": {"lessor": {"rate": 0.5}}})
    )  # offset gone, rate halves: no jump but the offset
    assert p.clock("lessor", 116.0) == pytest.approx(110.0 + 6 * 1.5)
    assert p.clock("lessor", 120.0) == pytest.approx(110.0 + 6 * 1.5 + 4 * 0.5)
    p.apply(fp.parse({}))
    assert p.clock("lessor", 121.0) == pytest.approx(110.0 + 6 * 1.5 + 5 * 0.5)  # back to rate 1 from here
    assert p.clock("lessor", 122.0) - p.clock("lessor", 121.0) == pytest.approx(1.0)


def test_the_control_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    ctl = tmp_path / "faults.json"
    p = fp.Plugin()
    w = fp.Watcher(p, str(ctl))
    assert not w.check()  # no file yet: nothing
    write(ctl, {"plants": ["watch_skip_revision"]})
    assert w.check() and p.plant("watch_skip_revision")
    assert not w.check()  # unchanged: not re-read
    write(ctl, {"plants": ["watch_skip_revision"], "stall": ["node2"]})
    os.utime(ctl, ns=(1, 1))  # a changed size alone is enough
    assert w.check() and p.peer_out("node2") == faults.HOLD
    ctl.write_text("{broken")
    assert not w.check()  # a bad file keeps the last good settings
    assert p.plant("watch_skip_revision")
    ctl.unlink()
    assert w.check() and not p.plant("watch_skip_revision")  # removed: no faults


def test_install_sets_active_and_the_thread_follows_the_file(tmp_path: Path) -> None:
    import time

    ctl = tmp_path / "faults.json"
    write(ctl, {"plants": ["read_without_read_index"]})
    p = fp.install({fp.FAULTS_ENV: str(ctl)})
    assert faults.ACTIVE is p and p.plant("read_without_read_index")
    write(ctl, {"plants": ["reapply_after_restart", "read_without_read_index", "watch_skip_revision"]})
    deadline = time.monotonic() + 5
    while not p.plant("reapply_after_restart") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.plant("reapply_after_restart")


def test_install_refuses_a_bad_file(tmp_path: Path) -> None:
    ctl = tmp_path / "faults.json"
    write(ctl, {"plants": ["nope"]})
    with pytest.raises(fp.ControlError, match="nope"):
        fp.install({fp.FAULTS_ENV: str(ctl)})
    assert faults.ACTIVE is None
