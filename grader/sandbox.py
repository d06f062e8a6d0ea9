"""The parent side of the sandbox: write each exercise's calls to a job folder, start one
isolated runner (``python -I grader/worker.py``) that forks a worker per exercise, wait, and read
back plain JSON + arrays. Nothing the student's code returns is unpickled, and no verdict is
computed in the child."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader import worker
from grader.model import CallData, Outcome

DEFAULT_LIMITS: dict[str, float] = {
    "call_s": 5,  # one call (an infinite loop costs this much, once per function)
    "import_s": 10,  # importing the student's module
    "wall_s": 30,  # one worker, all its calls
    "cpu_s": 30,
    "memory_mb": 2048,  # on top of what torch already maps
    "file_mb": 64,  # anything the student's code writes, stderr included
    "spawn": 0,  # 1: a fresh interpreter per worker instead of a fork (automatic off Linux)
}


@dataclass
class Job:
    """One exercise to run: the student's file and the calls of its checks."""

    name: str
    module_path: Path
    calls: list[CallData]
    arrays: Mapping[str, np.ndarray]


@dataclass
class JobResult:
    problem: str | None = None  # the module could not be imported, or the sandbox failed
    outcomes: list[Outcome | None] = field(default_factory=list)


def _write_job(folder: Path, job: Job, limits: Mapping[str, float]) -> None:
    folder.mkdir()
    keys = sorted({k for c in job.calls for k in c.input_keys()})
    np.savez(folder / worker.INPUTS, **{k: job.arrays[k] for k in keys})
    request = {
        "module_path": str(job.module_path.resolve()),
        "module_name": job.name,
        "calls": [c.request() for c in job.calls],
        "limits": dict(limits),
    }
    (folder / worker.REQUEST).write_text(json.dumps(request))


def _outcome(folder: Path, meta: Mapping[str, Any]) -> Outcome:
    try:
        arrays: dict[str, np.ndarray] = {}
        npz = meta.get("npz")
        if npz:
            path = folder / str(npz)
            if path.parent != folder:
                raise ValueError("bad result path")
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        return Outcome.from_meta(meta, arrays)
    except Exception as exc:  # noqa: BLE001 - whatever the child wrote, it is one failed call
        return Outcome(
            ok=False,
            error=f"its result could not be read ({type(exc).__name__})",
            error_kind="fatal",
        )


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    }
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def _kill_all(root: Path, runner: subprocess.Popen[bytes]) -> None:
    runner.kill()
    pids = root / "pids"
    if pids.is_file():
        for line in pids.read_text().split():
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    kill(int(line), signal.SIGKILL)


class Sandbox:
    """One isolated runner process. It starts at once, so torch loads while the parent
    prepares the jobs; ``run`` then sends them and collects the results."""

    def __init__(self, limits: Mapping[str, float] | None = None) -> None:
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.root = Path(tempfile.mkdtemp(prefix="rlkit-check-"))
        # Off Linux the runner always spawns (forking after torch is unsafe there).
        self.spawn = bool(self.limits.get("spawn")) or not sys.platform.startswith("linux")
        spawn = ["--spawn"] if self.spawn else []
        with open(self.root / "runner.err", "wb") as err:  # the child keeps its own copy
            self.runner = subprocess.Popen(
                [sys.executable, "-I", worker.__file__, str(self.root), *spawn],
                cwd=self.root,
                env=_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, jobs: list[Job]) -> dict[str, JobResult]:
        """Run every job, all at once (once per sandbox); one result per job name."""
        root, limits = self.root, self.limits
        names = []
        for i, job in enumerate(jobs):
            _write_job(root / f"job{i}", job, limits)
            names.append(f"job{i}")
        assert self.runner.stdin is not None
        try:
            self.runner.stdin.write(json.dumps(names).encode())
            self.runner.stdin.close()
        except OSError:
            pass  # the runner died at start; reported below
        # Each function can cost at most one worker deadline; add torch's start-up.
        functions = max([len({c.function for c in job.calls}) for job in jobs] + [0])
        per_worker = limits["wall_s"] + (60 if self.spawn else 0)
        budget = per_worker * (functions + 1) + 60
        try:
            code = self.runner.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            _kill_all(root, self.runner)
            self.runner.wait()
            code = None
        results = {}
        for i, job in enumerate(jobs):
            folder = root / f"job{i}"
            merged = worker.read_results(folder)
            result = JobResult(problem=merged["import_error"])
            if result.problem is None and not merged["imported"]:
                err = (root / "runner.err").read_text(errors="replace").strip().splitlines()
                result.problem = "the sandbox failed" + (
                    f": {err[-1][:300]}" if err else f" (exit code {code})"
                )
            for k in range(len(job.calls)):
                meta = merged["calls"].get(k)
                result.outcomes.append(None if meta is None else _outcome(folder, meta))
            results[job.name] = result
        return results

    def close(self) -> None:
        if self.runner.poll() is None:
            _kill_all(self.root, self.runner)
            self.runner.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def run_jobs(jobs: list[Job], limits: Mapping[str, float] | None = None) -> dict[str, JobResult]:
    """Run every job in a fresh sandbox."""
    with Sandbox(limits) as sandbox:
        return sandbox.run(jobs)
