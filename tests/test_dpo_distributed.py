"""The TRL backend under real multi-process launchers, two CPU processes each: ``accelerate
launch`` running ``rlkit train dpo`` (one run directory, written once, and the same training
as one process with twice the batch), and ``torchrun`` running the Python API (a callback
that stops rank 0 stops every rank instead of leaving the other one waiting).

On a machine without a GPU, ``accelerate launch --cpu --num_processes 2`` starts ONE process
(accelerate needs ``mpirun`` for several CPU processes); ``--multi_gpu`` makes accelerate use
its torchrun launcher, and each process then trains on the CPU (gloo).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.trl_backend import TRLTrainer

from rlkit.interfaces import Callback

#: one thread per process: two processes share two cores
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
#: a hung process group fails the test instead of blocking the suite
TIMEOUT = 180
STEPS = 3
COMPARED = ("loss", "rewards/margins", "logps/chosen", "num_tokens")


def _launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a launcher (``accelerate``, ``torchrun``) from the venv. Output goes to files and a
    timeout kills the launcher's workers too: torchrun starts each worker in a session of its
    own, so a hung worker outlives its launcher and would keep a pipe open."""
    exe = Path(sys.executable).with_name(args[0])
    command = [str(exe), *args[1:]]
    out, err = cwd / f"{args[0]}.stdout", cwd / f"{args[0]}.stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=cwd, env=CHILD_ENV)
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            family = [*psutil.Process(process.pid).children(recursive=True), process]
            for member in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.kill()
            psutil.wait_procs(family, timeout=30)
            pytest.fail(f"{args[0]} hung for {TIMEOUT} s:\n{out.read_text()}\n{err.read_text()}")
    return subprocess.CompletedProcess(
        command, process.returncode, out.read_text(), err.read_text()
    )


class Recorder(Callback):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_metrics(self, trainer, step, metrics) -> None:
        self.rows.append({"step": float(step), **metrics})


def test_accelerate_launch_two_processes_one_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = _launch(
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "0",  # a free port: parallel test runs do not collide
        "-m",
        "rlkit.cli",
        "train",
        "dpo",
        "--backend",
        "trl",
        "--max-steps",
        str(STEPS),
        "--eval-prompts",
        "2",
        "--out",
        str(run),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # rank 0 alone creates the run, evaluates and reports
    assert result.stdout.count("Run directory:") == 1, result.stdout
    assert result.stdout.count("Held-out preferred rate:") == 1, result.stdout
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["run"]
    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["step"]) for r in rows] == [1.0, 2.0, 3.0]  # one row per step, not per rank
    assert (run / "model" / "model.safetensors").is_file()
    training = json.loads((run / "eval.json").read_text())["training"]
    assert training["world_size"] == 2 and training["effective_batch_size"] == 16
    assert training["train_pairs"] == STEPS * 16

    # both processes trained on their own half of each step: the same steps as one process
    # with a batch of 16 (DDP averages the two halves' gradients)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recorder = Recorder()
        summary = TRLTrainer(
            DPOSettings(per_device_train_batch_size=16, max_steps=STEPS, eval_prompts=0)
        ).train([recorder])
    finally:
        torch.set_num_threads(threads)
    assert summary["world_size"] == 1
    for two, one in zip(rows, recorder.rows, strict=True):
        for name in COMPARED:
            assert float(two[name]) == pytest.approx(one[name], rel=1e-4, abs=1e-6), name


STOPPING_SCRIPT = """
import os

from rlkit.interfaces import Callback
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.trl_backend import TRLTrainer


class StopAfterTwo(Callback):
    def on_metrics(self, trainer, step, metrics):
        return step < 2


rank = int(os.environ["RANK"])
trainer = TRLTrainer(DPOSettings(max_steps=5, eval_prompts=0))
summary = trainer.train([StopAfterTwo()] if rank == 0 else [])
print(f"rank {rank}: {summary['steps']:.0f} steps, world {summary['world_size']:.0f}", flush=True)
"""


def test_torchrun_stop_on_rank_zero_stops_every_rank(tmp_path: Path) -> None:
    script = tmp_path / "stop.py"
    script.write_text(STOPPING_SCRIPT)
    result = _launch("torchrun", "--standalone", "--nproc_per_node", "2", str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rank 0: 2 steps, world 2" in result.stdout, result.stdout + result.stderr
    assert "rank 1: 2 steps, world 2" in result.stdout, result.stdout + result.stderr
