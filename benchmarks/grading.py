"""`rlkit grade` against `nbgrader autograde` on the same class.

The class: N varied submissions (correct, classic mistakes, zeros, stubs, raising, an infinite
loop, a syntax error, a missing file, ...) handed in as the notebooks `rlkit nbgrader build`
makes (`submitted/<student>/<assignment>/`). `rlkit grade` (sandbox on) and `nbgrader autograde`
grade the same notebooks in this one run, one after the other; printed: seconds per
submission, the throughput ratio, each one's peak memory (the grader and all its children) and
whether they gave each student the same score.

    .venv/bin/python benchmarks/grading.py               # 100 students
    .venv/bin/python benchmarks/grading.py --students 20 # a quick run (rlkit's start-up is
                                                         # amortized over fewer students)
    .venv/bin/python benchmarks/grading.py --nbgrader-students 24  # nbgrader on the first 24
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
STUBS = ROOT / "exercises"
EXERCISES = ("log_prob", "reinforce", "ppo", "dpo")
FUNCTIONS = {
    "log_prob": ("log_prob", "entropy", "grad_log_prob"),
    "reinforce": ("returns_to_go", "reinforce_loss"),
    "ppo": ("ppo_clip_loss", "gae"),
    "dpo": ("sequence_log_probs", "dpo_loss"),
}
#: (exercise, text in the solution, replacement): one classic mistake each
MISTAKES = {
    "ppo_sign": (
        "ppo",
        "return -torch.min(unclipped, clipped).mean()",
        "return torch.min(unclipped, clipped).mean()",
    ),
    "ppo_max": (
        "ppo",
        "return -torch.min(unclipped, clipped).mean()",
        "return -torch.max(unclipped, clipped).mean()",
    ),
    "reinforce_sum": (
        "reinforce",
        "return -(log_probs * g).mean()",
        "return -(log_probs * g).sum()",
    ),
}
KINDS = (
    "correct",
    "correct",
    "ppo_sign",
    "ppo_max",
    "reinforce_sum",
    "zeros",
    "stub",
    "raising",
    "loop",
    "syntax",
    "missing",
    "partial",
)


def _solution(name: str) -> str:
    return (SOLUTIONS / f"{name}.py").read_text()


def _zeros(name: str) -> str:
    lines = ["import torch", ""]
    for f in FUNCTIONS[name]:
        lines += [f"def {f}(*args, **kwargs):", "    return torch.zeros(())", ""]
    return "\n".join(lines)


def _raising(name: str) -> str:
    lines = []
    for f in FUNCTIONS[name]:
        lines += [f"def {f}(*args, **kwargs):", "    raise ValueError('oops')", ""]
    return "\n".join(lines)


def submission(kind: str) -> dict[str, str | None]:
    """Exercise → module source (None: the file is missing)."""
    files: dict[str, str | None] = {e: _solution(e) for e in EXERCISES}
    if kind in MISTAKES:
        ex, old, new = MISTAKES[kind]
        files[ex] = files[ex].replace(old, new)
    elif kind == "zeros":
        files = {e: _zeros(e) for e in EXERCISES}
    elif kind == "stub":
        files = {e: (STUBS / f"{e}.py").read_text() for e in EXERCISES}
    elif kind == "raising":
        files = {e: _raising(e) for e in EXERCISES}
    elif kind == "loop":
        files["ppo"] = files["ppo"].replace(
            "    advantages = advantages.detach()\n", "    while True:\n        pass\n", 1
        )
    elif kind == "syntax":
        files["log_prob"] = files["log_prob"].replace("def entropy(", "def entropy((", 1)
    elif kind == "missing":
        files["dpo"] = None
    elif kind == "partial":
        files["ppo"] = (STUBS / "ppo.py").read_text()
        files["dpo"] = _zeros("dpo")
    return files


# ----------------------------------------------------------------------------- notebooks


def _answer_cells(nb: dict) -> list[dict]:
    return [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code"
        and (c.get("metadata", {}).get("nbgrader") or {}).get("solution")
    ]


def write_nbgrader_class(course: Path, assignment: str, n: int) -> None:
    """The same class as notebooks: each student's module goes into the first answer cell of
    the released notebook (the other answer cells keep nothing but a comment), a missing file
    is a missing notebook."""
    release = course / "release" / assignment
    for i, kind in enumerate(KINDS[i % len(KINDS)] for i in range(n)):
        folder = course / "submitted" / f"s{i:03d}-{kind}" / assignment
        folder.mkdir(parents=True)
        for ex, source in submission(kind).items():
            if source is None:
                continue
            nb = json.loads((release / f"{ex}.ipynb").read_text())
            cells = _answer_cells(nb)
            cells[0]["source"] = source.splitlines(keepends=True)
            for cell in cells[1:]:
                cell["source"] = ["# (answered above)\n"]
            (folder / f"{ex}.ipynb").write_text(json.dumps(nb))


# ----------------------------------------------------------------------------- measuring


def _pss(process: Any) -> int:
    """Proportional set size: the pages forked workers share are counted once, not per fork."""
    try:
        return int(process.memory_full_info().pss)
    except (AttributeError, OSError):
        return int(process.memory_info().rss)


def measure(command: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak memory (MB of PSS, the process and all its children together)."""
    import psutil

    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        peak = 0.0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += _pss(p)
            except psutil.Error:
                pass
            peak = max(peak, total / 2**20)
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(
            command,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    return seconds, peak, done


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        sys.exit(
            f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument(
        "--nbgrader-students",
        type=int,
        default=None,
        help="nbgrader grades only the first M students (it is slow); the ratio is per submission",
    )
    parser.add_argument("--jobs", type=int, default=None, help="rlkit grade --jobs [cores]")
    parser.add_argument(
        "--cell-timeout",
        type=int,
        default=10,
        help="nbgrader's per-cell timeout (s); rlkit's per-call limit is 5 s",
    )
    parser.add_argument("--keep", type=Path, default=None, help="build the class here and keep it")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    # nbgrader runs `alembic` and Jupyter kernels from PATH: use this environment's
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    rlkit, nbgrader = str(bin_dir / "rlkit"), str(bin_dir / "nbgrader")
    work = args.keep or Path(tempfile.mkdtemp(prefix="rlkit-grading-bench-"))
    course, assignment = work / "course", "week1"
    try:
        _check(
            subprocess.run(
                [rlkit, "nbgrader", "build", str(course), *EXERCISES, "--assignment", assignment,
                 "--timeout", str(args.cell_timeout)],
                capture_output=True, text=True,
            ),
            "rlkit nbgrader build",
        )  # fmt: skip
        _check(
            subprocess.run(
                [nbgrader, "generate_assignment", assignment, "--force"],
                cwd=course, capture_output=True, text=True,
            ),
            "nbgrader generate_assignment",
        )  # fmt: skip
        write_nbgrader_class(course, assignment, args.students)
        n = args.students
        kinds = sorted({KINDS[i % len(KINDS)] for i in range(n)})
        print(f"{n} submissions ({', '.join(kinds)}), {len(EXERCISES)} exercises each")

        jobs = ["--jobs", str(args.jobs)] if args.jobs else []
        out = work / "rlkit-grades.json"
        r_s, r_mb, done = measure(
            [rlkit, "grade", str(course), *EXERCISES, "--out", str(out), *jobs], work
        )
        _check(done, "rlkit grade")
        grades = json.loads(out.read_text())
        protection = grades[0]["protection"].split(";")[0]
        print(
            f"rlkit grade:         {r_s:7.1f} s  {r_s / n:6.3f} s/submission  peak {r_mb:6.0f} MB  ({protection})"
        )

        m = min(n, args.nbgrader_students or n)
        held = work / "held-out"
        held.mkdir()
        for student in sorted((course / "submitted").iterdir())[m:]:
            student.rename(held / student.name)
        n_s, n_mb, done = measure(
            [nbgrader, "autograde", assignment, "--create", "--force"], course
        )
        _check(done, "nbgrader autograde")
        print(
            f"nbgrader autograde:  {n_s:7.1f} s  {n_s / m:6.3f} s/submission  peak {n_mb:6.0f} MB"
            + (f"  (the first {m} of the {n} submissions)" if m < n else "")
        )
        print(
            "throughput ratio (submissions per second, rlkit grade / nbgrader autograde): "
            f"{(n / r_s) / (m / n_s):.1f}x"
        )
        done = subprocess.run(
            [nbgrader, "export", "--to", str(work / "nbgrader-grades.csv")],
            cwd=course, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0:
            import csv

            rows = csv.DictReader((work / "nbgrader-grades.csv").open())
            theirs = {r["student_id"]: float(r["raw_score"]) for r in rows}
            ours = {g["student"]: g["score"] for g in grades}
            same = sum(abs(ours[s] - score) < 1e-9 for s, score in theirs.items())
            print(f"same score from both graders: {same} of {len(theirs)} students")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
