"""Shared fixtures. Tests run on the real libraries (gymnasium, torch, SB3, TRL, nbgrader)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Keep tests offline and quiet, whatever the machine says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session")
def bandit_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin really pip-installed into a folder: a third-party plugin as users make one."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "examples" / "rlkit-bandit"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def interrupt_training(
    args: list[str], run: Path, rows: int, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Start ``rlkit ARGS`` (a training into ``run``), send it a real SIGINT once its
    metrics.csv has ``rows`` rows, and return what it printed and its exit status."""
    from rlkit.runs import read_metrics

    exe = Path(sys.executable).with_name("rlkit")
    proc = subprocess.Popen(
        [str(exe), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + timeout
        while len(read_metrics(run / "metrics.csv")) < rows:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"no {rows} metric rows in {timeout} s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rlkit_cmd(
    *args: str,
    pythonpath: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run the installed ``rlkit`` console script in a subprocess."""
    exe = Path(sys.executable).with_name("rlkit")
    full_env = {**os.environ, **(env or {})}
    if pythonpath is not None:
        full_env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )
