"""Ctrl-C and ``--resume`` for DPO, on both backends, through the real CLI: a run interrupted by
a real SIGINT after step 3 stops after that step, saves model and training state, exits 130,
and ``rlkit train dpo --resume RUN`` then continues it to exactly the run that was never
interrupted (same loss and learning rate at every step)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import rlkit_cmd

QUIET = {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
STEPS = 6
RATE = re.compile(r"Held-out preferred rate: (\d\.\d\d) -> (\d\.\d\d)")

#: runs the real CLI in-process, with SIGINT sent to itself once step ``STOP_AT`` is logged
INTERRUPT_AT = """
import os, signal, sys
from rlkit.runs import Run

original = Run.log

def log(self, step, metrics):
    original(self, step, metrics)
    if step == int(os.environ["STOP_AT"]):
        os.kill(os.getpid(), signal.SIGINT)

Run.log = log
from rlkit.cli import main

sys.argv = ["rlkit", *sys.argv[1:]]
main()
"""


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _interrupted(tmp_path: Path, *args: str, at: int) -> subprocess.CompletedProcess:
    script = tmp_path / "interrupt_at.py"
    script.write_text(INTERRUPT_AT)
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET, "STOP_AT": str(at)},
        timeout=300,
    )


@pytest.mark.parametrize("backend", ["native", "trl"])
def test_ctrl_c_then_resume_is_the_uninterrupted_run(tmp_path: Path, backend: str) -> None:
    args = ("train", "dpo", "--backend", backend, "--max-steps", str(STEPS))
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    full = rlkit_cmd(*args, "--eval-prompts", "3", "--out", str(whole), env=QUIET)
    assert full.returncode == 0, full.stderr

    first = _interrupted(tmp_path, *args, "--eval-prompts", "0", "--out", str(stopped), at=3)
    assert first.returncode == 130, first.stderr
    assert f"Continue with: rlkit train dpo --resume {stopped}" in first.stderr
    assert "Traceback" not in first.stderr
    done = len(_rows(stopped))
    assert 3 <= done < STEPS  # the step under way when Ctrl-C came was finished, no more
    assert (stopped / "model" / "model.safetensors").is_file()
    assert (stopped / "curves.png").is_file()

    resumed = rlkit_cmd("train", "dpo", "--resume", str(stopped), "--eval-prompts", "3", env=QUIET)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming {stopped} at step {done} of {STEPS}" in resumed.stdout
    a, b = _rows(whole), _rows(stopped)
    assert [r["step"] for r in b] == [r["step"] for r in a]
    for x, y in zip(a, b):
        for name in ("loss", "rewards/margins", "learning_rate"):
            assert float(y[name]) == pytest.approx(float(x[name]), abs=1e-6), (x["step"], name)
    # "before" is the original model's, not the checkpoint's: the same as the whole run's
    before_whole, before_resumed = RATE.search(full.stdout), RATE.search(resumed.stdout)
    assert before_whole and before_resumed
    assert before_resumed.group(1) == before_whole.group(1)


def test_resume_keeps_the_runs_settings(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("train", "dpo", "--backend", "native", "--eval-prompts", "0")
    assert rlkit_cmd(*args, "--max-steps", "2", "--out", str(run), env=QUIET).returncode == 0
    finished = rlkit_cmd("train", "dpo", "--resume", str(run), env=QUIET)
    assert finished.returncode == 2
    assert "has trained all 2 of its steps; pass --max-steps N with N > 2" in finished.stderr
    changed = rlkit_cmd("train", "dpo", "--resume", str(run), "--beta", "0.5", env=QUIET)
    assert changed.returncode == 2 and "drop --beta" in changed.stderr
    more = rlkit_cmd("train", "dpo", "--resume", str(run), "--max-steps", "3", env=QUIET)
    assert more.returncode == 0, more.stderr
    assert [r["step"] for r in _rows(run)] == ["1.0", "2.0", "3.0"]
    missing = rlkit_cmd("train", "dpo", "--resume", str(tmp_path / "nope"), env=QUIET)
    assert missing.returncode == 2 and "not a run directory" in missing.stderr
    assert "Traceback" not in missing.stderr + changed.stderr + finished.stderr
