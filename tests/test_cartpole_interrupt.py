"""Ctrl-C leaves a usable checkpoint and a valid run directory; `--resume` continues it.

The native case sends a real SIGINT to the installed `rlkit` console script."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from click.testing import CliRunner
from conftest import interrupt_training, rlkit_cmd

from rlkit.cli import cli
from rlkit.runs import read_metrics


def test_ctrl_c_in_a_real_process_then_eval_and_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "cartpole", "--backend", "native", "--timesteps", "100000000"]
    stopped = interrupt_training([*args, "--out", str(run)], run, rows=3)
    err = stopped.stderr
    assert stopped.returncode == 130, err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1].split("\r")[-1]
    assert message.startswith("Interrupted at ") and f"--resume {run}" in message
    assert (run / "model" / "checkpoint.pt").is_file() and (run / "curves.png").is_file()
    rows = read_metrics(run / "metrics.csv")
    done = int(rows[-1]["timesteps"])

    evaluation = rlkit_cmd("eval", str(run), "--episodes", "2")
    assert evaluation.returncode == 0 and evaluation.stdout.startswith("Mean reward: ")

    result = CliRunner().invoke(
        cli,
        [
            "train",
            "cartpole",
            "--resume",
            str(run),
            "--timesteps",
            str(done + 1024),
            "--eval-episodes",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    resumed = read_metrics(run / "metrics.csv")
    assert resumed[: len(rows)] == rows and resumed[-1]["timesteps"] >= done + 1024


def test_ctrl_c_during_sb3_training_saves_and_resumes(tmp_path: Path, monkeypatch) -> None:
    """A real SIGINT after SB3's first update: the session's handler lets SB3 stop before
    its next rollout takes a step, so the saved model has trained exactly 2048 steps."""
    from rlkit.progress import ProgressBar

    original = ProgressBar.on_metrics

    def ctrl_c(self, trainer, step, metrics):
        original(self, trainer, step, metrics)
        os.kill(os.getpid(), signal.SIGINT)

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(ProgressBar, "on_metrics", ctrl_c)
        result = CliRunner().invoke(
            cli,
            ["train", "cartpole", "--backend", "sb3", "--timesteps", "80000", "--out", str(run)],
        )
    assert result.exit_code == 130, result.output
    assert "Interrupted at 2048 timesteps" in result.output
    assert f"Continue with: rlkit train cartpole --resume {run}" in result.output
    assert (run / "model" / "model.zip").is_file() and (run / "curves.png").is_file()
    result = CliRunner().invoke(
        cli,
        ["train", "cartpole", "--resume", str(run), "--timesteps", "4096", "--eval-episodes", "1"],
    )
    assert result.exit_code == 0, result.output
    assert f"Resuming {run} at timestep 2048 of 4096" in result.output
    assert [r["timesteps"] for r in read_metrics(run / "metrics.csv")] == [2048.0, 4096.0]
