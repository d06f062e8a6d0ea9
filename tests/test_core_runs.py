"""Run directories: config, wide metrics.csv that grows columns, reopening, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlkit.errors import UsageError
from rlkit.plotting import smooth
from rlkit.runs import Run, read_metrics


def test_config_records_settings_and_versions(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "r", "cartpole", "native", {"lr": 3e-4, "path": tmp_path})
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["task"] == "cartpole" and config["backend"] == "native"
    assert config["settings"]["lr"] == 3e-4
    assert config["settings"]["path"] == str(tmp_path)
    assert {"python", "rlkit", "torch"} <= set(config["versions"])
    run.close()


def test_metrics_grow_columns_and_reopen(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "r", "t", "b", {}, x_metric="timesteps")
    run.log(1, {"timesteps": 100, "loss": 0.5})
    run.log(2, {"timesteps": 200, "loss": 0.4, "episode_reward": 20.0})
    run.log(3, {"timesteps": 300, "loss": 0.3})
    run.close()
    rows = read_metrics(tmp_path / "r" / "metrics.csv")
    assert [r["timesteps"] for r in rows] == [100, 200, 300]
    assert "episode_reward" not in rows[0] and rows[1]["episode_reward"] == 20.0
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "timesteps", "loss", "episode_reward"]

    again = Run.open(tmp_path / "r")  # resume: appends after what is there
    again.log(4, {"timesteps": 400, "loss": 0.2})
    again.close()
    assert len(read_metrics(tmp_path / "r" / "metrics.csv")) == 4


def test_create_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    Run.create(tmp_path / "r", "t", "b", {}).close()
    with pytest.raises(UsageError, match="already holds a run"):
        Run.create(tmp_path / "r", "t", "b", {})


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "no such folder"),
        (lambda p: p.mkdir(), "has no config.json"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text("{not json")), "unreadable"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text("[]")), "not an rlkit run"),
    ],
)
def test_open_bad_run_dirs_fail_in_one_line(tmp_path: Path, setup, message: str) -> None:
    path = tmp_path / "bad"
    setup(path)
    with pytest.raises(UsageError, match=message) as info:
        Run.open(path)
    assert "\n" not in info.value.message


def test_smooth_is_a_trailing_mean() -> None:
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
