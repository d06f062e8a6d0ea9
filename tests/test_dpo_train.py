"""Real DPO trainings on the built-in model: seconds-long runs through the CLI on both backends
(the student's own loss included), the run directory they leave, ``rlkit eval`` on it, and
the default settings moving the held-out preferred rate from about 50% to at least 90%."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import rlkit_cmd
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.native import NativeDPOTrainer
from rlkit_dpo.trl_backend import TRLTrainer
from test_dpo_loss import STUDENT_DPO, write_student_workspace

from rlkit.errors import UsageError
from rlkit.runs import Run

QUIET = {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
RATE = re.compile(r"Held-out preferred rate: (\d\.\d\d) -> (\d\.\d\d)")
TRL_NAMES = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins")
STUB_DPO = """
def sequence_log_probs(logits, input_ids, completion_mask):
    raise NotImplementedError()


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
             ref_rejected_logps, beta=0.1):
    raise NotImplementedError()
"""


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _check_run_directory(run: Path, backend: str, steps: int) -> None:
    config = json.loads((run / "config.json").read_text())
    assert (config["task"], config["backend"]) == ("dpo", backend)
    assert config["settings"]["max_steps"] == steps
    rows = _metrics(run)
    assert len(rows) == steps
    assert all(name in rows[0] for name in TRL_NAMES)
    assert float(rows[0]["loss"]) == pytest.approx(math.log(2), abs=1e-5)  # step 0: π = π_ref
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert float(rows[-1]["rewards/margins"]) > 0
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "curves.png").stat().st_size > 10_000
    assert (run / "model" / "config.json").is_file()
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "model" / "tokenizer.json").is_file()


def test_native_run_then_eval(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = rlkit_cmd(
        "train",
        "dpo",
        "--backend",
        "native",
        "--max-steps",
        "6",
        "--eval-prompts",
        "8",
        "--out",
        str(run),
        env=QUIET,
    )
    assert result.returncode == 0, result.stderr
    trained = RATE.search(result.stdout)
    assert trained, result.stdout
    assert "before DPO" in result.stdout and "after DPO" in result.stdout
    _check_run_directory(run, "native", 6)
    evaluation = json.loads((run / "eval.json").read_text())
    assert len(evaluation["before"]) == len(evaluation["after"]) == 8
    assert evaluation["training"]["train_pairs"] == 6 * 8

    again = rlkit_cmd("eval", str(run), env=QUIET)  # default --episodes: the run's prompts
    assert again.returncode == 0, again.stderr
    assert RATE.search(again.stdout).group(0) == trained.group(0)  # same seed, same answers
    # -n 10 means ten prompts (it once meant "all": 10 was the CLI's default)
    other = rlkit_cmd("eval", str(run), "-n", "10", env=QUIET)
    assert other.returncode == 0, other.stderr
    assert "10 held-out prompts" in other.stdout


def test_trl_run_with_the_students_loss(tmp_path: Path) -> None:
    workspace = write_student_workspace(tmp_path / "ws", STUDENT_DPO)
    run = tmp_path / "run"
    result = rlkit_cmd(
        "train",
        "dpo",
        "--path",
        str(workspace),
        "--max-steps",
        "4",
        "--eval-prompts",
        "4",
        "--out",
        str(run),
        env=QUIET,
    )
    assert result.returncode == 0, result.stderr
    assert RATE.search(result.stdout), result.stdout
    _check_run_directory(run, "trl", 4)
    settings = json.loads((run / "config.json").read_text())["settings"]
    assert settings["impl"] == "student" and settings["path"] == str(workspace)
    again = rlkit_cmd("eval", str(run), "-n", "2", env=QUIET)
    assert again.returncode == 0, again.stderr
    assert "2 held-out prompts" in again.stdout


@pytest.mark.parametrize("backend", ["native", "trl"])
def test_unfinished_exercise_stops_in_one_line(tmp_path: Path, backend: str) -> None:
    workspace = write_student_workspace(tmp_path / "ws", STUB_DPO)
    run = tmp_path / "run"
    result = rlkit_cmd(
        "train", "dpo", "--backend", backend, "--path", str(workspace), "--out", str(run), env=QUIET
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "dpo.sequence_log_probs is not implemented" in result.stderr
    assert not run.exists()


@pytest.mark.parametrize("trainer_cls", [NativeDPOTrainer, TRLTrainer], ids=["native", "trl"])
def test_default_run_reaches_90_percent(trainer_cls: type) -> None:
    """The default settings on the default task: about half polite before, >= 90% after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = trainer_cls(DPOSettings())
        trainer.snapshot_reference()
        summary = trainer.train()
        result = trainer.evaluate()
    finally:
        torch.set_num_threads(threads)
    assert summary["steps"] == 126 and summary["loss"] < 0.2
    assert 0.3 <= result.metrics["preferred_rate_before"] <= 0.7
    assert result.metrics["preferred_rate_after"] >= 0.9
    assert result.metrics["heldout_reward_accuracy"] >= 0.9


def test_eval_needs_a_trained_model(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", "dpo", "native", DPOSettings().to_dict())
    with pytest.raises(UsageError, match="no trained model"):
        NativeDPOTrainer.load(run.model_dir, DPOSettings())


def test_models_build_prints_where(tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = rlkit_cmd("models", "build", "--out", str(out), "--steps", "2", env=QUIET)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    assert (out / "model.safetensors").is_file()
    again = rlkit_cmd("models", "build", "--out", str(out), env=QUIET)
    assert again.returncode == 2 and "--force" in again.stderr
