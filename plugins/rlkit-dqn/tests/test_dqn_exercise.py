"""The DQN exercise: its contract, what the reference computes on small hand-checked examples,
the student's path through `rlkit init` / `rlkit check`, and a real pip install that ships the
stored vectors. (The core's own tests add, for every registered exercise: stub/solution
docstrings, check kinds, vector staleness, and that every classic mistake is caught and named.)"""

from __future__ import annotations

import csv
import importlib
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from rlkit.plugins import get_exercises

PLUGIN = Path(__file__).resolve().parents[1]
#: the instructors' package: the reference solution, the mistakes, the hidden vectors
INSTRUCTOR = PLUGIN.parent / "rlkit-dqn-instructor"
SOLUTION = INSTRUCTOR / "rlkit_dqn_instructor" / "dqn.py"
RLKIT = Path(sys.executable).with_name("rlkit")

CONTRACT = {
    "td_target": "(rewards: 'torch.Tensor', next_q_values: 'torch.Tensor', dones: "
    "'torch.Tensor', gamma: 'float') -> 'torch.Tensor'",
    "double_dqn_target": "(rewards: 'torch.Tensor', next_q_online: 'torch.Tensor', "
    "next_q_target: 'torch.Tensor', dones: 'torch.Tensor', gamma: 'float') -> 'torch.Tensor'",
    "dqn_loss": "(q_values: 'torch.Tensor', actions: 'torch.Tensor', targets: 'torch.Tensor') "
    "-> 'torch.Tensor'",
}


def rlkit(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [str(RLKIT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_the_exercise_is_registered_with_its_contract() -> None:
    spec = get_exercises()["dqn"]
    assert spec.plugin == "dqn" and spec.mistakes == "rlkit_dqn_instructor.mistakes"
    assert spec.solution == spec.hidden == "rlkit_dqn_instructor.dqn"
    assert spec.instructor == "rlkit-dqn-instructor"
    assert spec.functions == tuple(CONTRACT)
    for module in (spec.stub, spec.solution):
        loaded = importlib.import_module(module)
        for name, signature in CONTRACT.items():
            assert str(inspect.signature(getattr(loaded, name))) == signature, (module, name)
        assert "Bellman" in (loaded.__doc__ or "") + inspect.getdoc(loaded.td_target)


def test_td_target_by_hand() -> None:
    from rlkit_dqn_instructor.dqn import td_target

    rewards = torch.tensor([1.0, 0.5, -1.0])
    next_q = torch.tensor([[2.0, 3.0], [4.0, -1.0], [7.0, 9.0]], requires_grad=True)
    dones = torch.tensor([False, False, True])
    y = td_target(rewards, next_q, dones, 0.9)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 3.0, 0.5 + 0.9 * 4.0, -1.0]))
    assert not y.requires_grad
    y64 = td_target(rewards.double(), next_q.detach().double(), dones, 0.9)
    assert y64.dtype == torch.float64


def test_double_dqn_target_lets_the_online_network_choose() -> None:
    from rlkit_dqn_instructor.dqn import double_dqn_target

    rewards = torch.tensor([0.0, 1.0])
    online = torch.tensor([[5.0, 1.0], [0.0, 2.0]])  # chooses a' = 0, then a' = 1
    target = torch.tensor([[-3.0, 10.0], [4.0, 6.0]])  # its own max would be 10 and 6
    y = double_dqn_target(rewards, online, target, torch.tensor([False, True]), 0.5)
    torch.testing.assert_close(y, torch.tensor([0.5 * -3.0, 1.0]))
    assert not y.requires_grad


def test_dqn_loss_is_the_mean_huber_and_its_gradient_is_the_clipped_error() -> None:
    from rlkit_dqn_instructor.dqn import dqn_loss

    q = torch.tensor([[1.0, 2.0], [3.0, -4.0]], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([1, 0])
    targets = torch.tensor([1.5, 0.0], dtype=torch.float64, requires_grad=True)
    loss = dqn_loss(q, actions, targets)  # errors 0.5 (quadratic) and 3.0 (linear)
    torch.testing.assert_close(loss, torch.tensor((0.5 * 0.25 + 2.5) / 2, dtype=torch.float64))
    loss.backward()
    torch.testing.assert_close(q.grad, torch.tensor([[0.0, 0.25], [0.5, 0.0]], dtype=torch.float64))
    assert targets.grad is None or not targets.grad.any()


def test_student_path_init_then_check(tmp_path: Path) -> None:
    """`rlkit init` writes dqn.py; the stub fails its checks, a classic mistake is named, the
    reference passes (each in the sandbox, as a student runs it)."""
    work = tmp_path / "ws"
    assert rlkit("init", str(work)).returncode == 0
    stub = (work / "dqn.py").read_text()
    assert "def td_target(" in stub and "raise NotImplementedError()" in stub
    todo = rlkit("check", "dqn", "--path", str(work))
    assert todo.returncode == 1 and "not implemented" in todo.stdout

    solution = SOLUTION.read_text()
    mistake = solution.replace("gamma * not_done * best_next", "gamma * best_next")
    assert mistake != solution
    (work / "dqn.py").write_text(mistake)
    wrong = rlkit("check", "dqn", "--path", str(work))
    assert wrong.returncode == 1 and "forgets (1 - done)" in wrong.stdout, wrong.stdout

    (work / "dqn.py").write_text(solution)
    right = rlkit("check", "dqn", "--path", str(work), "--hidden")
    assert right.returncode == 0, right.stdout + right.stderr


def test_one_pip_command_installs_the_plugin_with_its_vectors(tmp_path: Path) -> None:
    """`pip install plugins/rlkit-dqn` on top of rlkit: the entry point and the public checks'
    stored vectors ship in the package, no answer does; `pip install
    plugins/rlkit-dqn-instructor` adds the reference, the mistakes and the hidden vectors."""
    target = tmp_path / "site"
    for package in (PLUGIN, INSTRUCTOR):
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
                str(package),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    package = target / "rlkit_dqn"
    for name in ("checks.vectors.json", "checks.vectors.npz", "exercises/dqn.py"):
        assert (package / name).is_file(), name
    assert not (package / "solutions").exists() and not (package / "mistakes.py").exists()
    entry_points = next(target.glob("rlkit_dqn-*.dist-info")) / "entry_points.txt"
    assert "dqn = rlkit_dqn" in entry_points.read_text()
    answers = target / "rlkit_dqn_instructor"
    for name in ("dqn.py", "mistakes.py", "dqn.vectors.json", "dqn.vectors.npz"):
        assert (answers / name).is_file(), name


def test_instructors_grade_the_exercise_with_no_change_to_rlkit(tmp_path: Path) -> None:
    """`rlkit grade` picks the plugin's exercise up: full marks for the reference, none for
    the stub (hidden checks included)."""
    subs = tmp_path / "subs"
    for student, source in (("alice", SOLUTION), ("bob", PLUGIN / "rlkit_dqn/exercises/dqn.py")):
        (subs / student).mkdir(parents=True)
        shutil.copy(source, subs / student / "dqn.py")
    grades = tmp_path / "grades.csv"
    result = rlkit("grade", str(subs), "dqn", "--out", str(grades))
    assert result.returncode == 0, result.stderr
    rows = {r["student"]: r for r in csv.DictReader(grades.open())}
    assert rows["alice"]["dqn"] == rows["alice"]["max_score"] == "33"
    assert rows["bob"]["dqn"] == "0"
