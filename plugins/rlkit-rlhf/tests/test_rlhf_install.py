"""The two packages install and uninstall cleanly, each holds what it should (the student's
no answer), the grader's sandbox hides the instructor's package wherever it is installed, and
with the plugin installed every existing command and default is what it was without it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rlhf_helpers import INSTRUCTOR, PLUGIN, SOLUTION

IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests")
#: the plugins rlkit has without this one (their entry-point names)
WITHOUT = "course,cartpole,dpo,dqn"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    for folder in (PLUGIN, INSTRUCTOR):  # built from a copy: the tree stays clean
        copy = out.parent / f"src-{folder.name}"
        shutil.copytree(folder, copy, ignore=IGNORE)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
            + ["-w", str(out), str(copy)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    return {w.name.split("-")[0]: w for w in out.glob("*.whl")}


def _answer_lines() -> set[str]:
    """The reference's lines of code (its functions' bodies, not their docstrings)."""
    source = SOLUTION.read_text()
    lines = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            for stmt in node.body[1:]:
                for line in (ast.get_source_segment(source, stmt) or "").splitlines():
                    if len(line.strip()) > 20 and not line.strip().startswith("#"):
                        lines.add(line.strip())
    assert len(lines) >= 8
    return lines


def _files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}


def test_each_package_holds_what_it_should(wheels: dict[str, Path]) -> None:
    """rlkit-rlhf: the stub, the checks with their public vectors, the trainers, the entry
    point, and no answer (no line of the reference, no mistakes, no hidden check's vectors);
    rlkit-rlhf-instructor: exactly the answers."""
    student = _files(wheels["rlkit_rlhf"])
    names = {n for n in student if not n.startswith("rlkit_rlhf-")}
    for name in ("exercises/rlhf.py", "checks.py", "checks.vectors.json", "checks.vectors.npz",
                 "grpo.py", "grpo_trl.py", "reward_model.py", "settings.py"):  # fmt: skip
        assert f"rlkit_rlhf/{name}" in names, name
    assert all(n.startswith("rlkit_rlhf/") for n in names), names
    entry_points = next(v for k, v in student.items() if k.endswith("entry_points.txt"))
    assert "rlhf = rlkit_rlhf" in entry_points.decode()
    reference = _answer_lines()
    texts = {n: d.decode() for n, d in student.items() if n.endswith(".py")}
    leaked = {line: n for line in reference for n, t in texts.items() if line in t}
    assert not leaked, leaked
    public = json.loads(student["rlkit_rlhf/checks.vectors.json"])
    assert public["checks"] and not any("hidden" in c["name"] for c in public["checks"])

    answers = _files(wheels["rlkit_rlhf_instructor"])
    held = {n.split("/", 1)[1] for n in answers if n.startswith("rlkit_rlhf_instructor/")}
    assert held == {
        "__init__.py",
        "rlhf.py",
        "mistakes.py",
        "rlhf.vectors.json",
        "rlhf.vectors.npz",
    }
    hidden = json.loads(answers["rlkit_rlhf_instructor/rlhf.vectors.json"])
    assert {c["name"].split(".")[1] for c in hidden["checks"]} == {"hidden_values"}


def test_install_then_uninstall_leaves_the_environment_as_it_was(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    """pip installs both wheels into a fresh environment and removes every file again."""
    env = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120
    )
    python = env / "bin" / "python"

    def files() -> set[str]:
        return {str(p.relative_to(env)) for p in env.rglob("*") if "__pycache__" not in p.parts}

    def pip(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), *args, "--quiet"],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )

    before = files()
    pip("install", "--no-deps", "--no-index", *map(str, wheels.values()))
    added = files() - before
    assert any(a.endswith("rlkit_rlhf/exercises/rlhf.py") for a in added)
    assert any(a.endswith("rlkit_rlhf_instructor/mistakes.py") for a in added)
    pip("uninstall", "--yes", "rlkit-rlhf", "rlkit-rlhf-instructor")
    assert files() == before


def test_the_sandbox_hides_the_instructor_package_wherever_it_is_installed() -> None:
    """Outside the repository (a plain `pip install`), the instructors' package has no entry
    point of its own: the sandbox finds it through the exercise it serves."""
    import rlkit_rlhf_instructor
    from rlkit_grader.sandbox import _private_paths

    folder = Path(rlkit_rlhf_instructor.__file__).parent
    assert folder in _private_paths([folder.parent])


SNAPSHOT = r"""
import json, sys
from click.testing import CliRunner
from rlkit.cli import cli
from rlkit.plugins import get_exercises, get_trainers
commands = [["--help"], ["train", "cartpole", "--help"], ["train", "dpo", "--help"],
            ["check", "--help"], ["init", "--help"], ["grade", "--help"], ["eval", "--help"],
            ["nbgrader", "build", "--help"], ["models", "--help"], ["train", "--help"]]
out = {" ".join(c): CliRunner().invoke(cli, c).output for c in commands}
out["exercises"] = {k: repr(v) for k, v in get_exercises().items()}
out["trainers"] = {"/".join(k): repr(v) for k, v in get_trainers().items()}
json.dump(out, sys.stdout)
"""


def _snapshot(plugins: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RLKIT_LOAD_PLUGINS"}
    if plugins is not None:
        env["RLKIT_LOAD_PLUGINS"] = plugins
    done = subprocess.run(
        [sys.executable, "-c", SNAPSHOT], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_with_the_plugin_every_existing_command_and_default_is_unchanged() -> None:
    """The same help (so the same options and defaults) for every existing command, the same
    exercises and trainers as before plus the plugin's own; `rlkit train --help` gains the two
    tasks and loses nothing."""
    without, with_ = _snapshot(WITHOUT), _snapshot(None)
    for command, text in without.items():
        if command in ("exercises", "trainers", "train --help"):
            continue
        assert with_[command] == text, command
    assert set(with_["exercises"]) - set(without["exercises"]) == {"rlhf"}
    for name, spec in without["exercises"].items():
        assert with_["exercises"][name] == spec
    added = set(with_["trainers"]) - set(without["trainers"])
    assert {t.split("/")[0] for t in added} == {"grpo", "reward-model"}
    for key, spec in without["trainers"].items():
        assert with_["trainers"][key] == spec

    # the task list re-wraps around the longer names: compare its words
    before, after = without["train --help"].split(), with_["train --help"].split()
    assert set(before) <= set(after) and {"grpo", "reward-model"} <= set(after) - set(before)
