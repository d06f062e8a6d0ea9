"""`rlkit grade` against `nbgrader autograde` on the same class.

The class: N varied submissions (correct, classic mistakes, zeros, stubs, raising, an infinite
loop, a syntax error, a missing file, ...), written both as folders of exercise files (for
`rlkit grade`, sandbox on) and as nbgrader notebooks (`submitted/<student>/<assignment>/`). Both
graders run in this one process's run, one after the other; printed: seconds per submission,
the throughput ratio and each one's peak memory (the grader process and all its children).

    .venv/bin/python benchmarks/grading.py               # 100 students
    .venv/bin/python benchmarks/grading.py --students 20 # a quick run
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    "ppo_sign": ("ppo", "return -torch.min(unclipped, clipped).mean()", "return torch.min(unclipped, clipped).mean()"),
    "ppo_max": ("ppo", "return -torch.min(unclipped, clipped).mean()", "return -torch.max(unclipped, clipped).mean()"),
    "reinforce_sum": ("reinforce", "return -(log_probs * g).mean()", "return -(log_probs * g).sum()"),
}
KINDS = (
    "correct", "correct", "ppo_sign", "ppo_max", "reinforce_sum", "zeros", "stub",
    "raising", "loop", "syntax", "missing", "partial",
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


def write_class(folder: Path, n: int) -> list[str]:
    """``folder/<student>/<exercise>.py``; returns each student's kind."""
    kinds = [KINDS[i % len(KINDS)] for i in range(n)]
    for i, kind in enumerate(kinds):
        student = folder / f"s{i:03d}-{kind}"
        student.mkdir(parents=True)
        for ex, source in submission(kind).items():
            if source is not None:
                (student / f"{ex}.py").write_text(source)
    return kinds
