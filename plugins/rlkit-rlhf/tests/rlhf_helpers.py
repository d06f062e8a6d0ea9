"""Shared helpers of the RLHF plugin's tests (not a conftest.py: the suite runs several test folders
together): the paths, the `rlkit` command, and a student workspace whose files are the reference
answers written the way a student writes them (the stub's own top, with the reference bodies)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
INSTRUCTOR = PLUGIN.parent / "rlkit-rlhf-instructor"
STUB = PLUGIN / "rlkit_rlhf" / "exercises" / "rlhf.py"
SOLUTION = INSTRUCTOR / "rlkit_rlhf_instructor" / "rlhf.py"
RLKIT = Path(sys.executable).with_name("rlkit")


def rlkit(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    return subprocess.run(
        [str(RLKIT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "TQDM_DISABLE": "1", **(env or {})},
        timeout=timeout,
    )


def student_answer(replace: dict[str, str] | None = None) -> str:
    """rlhf.py as a student who got everything right writes it: the stub, each
    ``# YOUR CODE HERE`` / ``raise`` replaced by the reference's body (then ``replace``'s
    text substitutions: a classic mistake)."""
    stub = STUB.read_text()
    solution = SOLUTION.read_text()
    bodies = {}
    tree = ast.parse(solution)
    lines = solution.splitlines()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            first = node.body[1]  # after the docstring
            bodies[node.name] = "\n".join(lines[first.lineno - 1 : node.end_lineno])
    out = stub
    for name, body in bodies.items():
        head, sep, tail = out.partition(f"def {name}(")
        todo = "    # YOUR CODE HERE\n    raise NotImplementedError()"
        assert todo in tail, name
        out = head + sep + tail.replace(todo, body, 1)
    for old, new in (replace or {}).items():
        assert old in out, old
        out = out.replace(old, new)
    return out


def course_reference(name: str) -> Path:
    """The course's reference solution file of ``name`` (log_prob, ppo): a student's right
    answer, since it imports nothing of rlkit."""
    import importlib

    return Path(importlib.import_module(f"rlkit_solutions.{name}").__file__)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace whose log_prob.py, ppo.py and rlhf.py are right answers."""
    work = tmp_path / "ws"
    work.mkdir()
    for name in ("log_prob", "ppo"):
        shutil.copy(course_reference(name), work / f"{name}.py")
    (work / "rlhf.py").write_text(student_answer())
    return work
