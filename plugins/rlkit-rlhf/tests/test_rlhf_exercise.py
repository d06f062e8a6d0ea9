"""The RLHF exercise: its contract, what the reference computes on small hand-checked examples
(grpo_loss through the course's ppo_clip_loss), and the student's path through `rlkit init` /
`rlkit check` / the pre-train check, where a classic mistake is named. (The core's own tests
add, for every registered exercise: stub/solution docstrings, check kinds, vector staleness,
every classic mistake caught and named, every alternative at full marks.)"""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path

import pytest
import torch
from rlhf_helpers import INSTRUCTOR, PLUGIN, rlkit, student_answer, workspace  # noqa: F401
from rlkit.plugins import get_exercises

CONTRACT = {
    "bradley_terry_loss": "(chosen_rewards: 'torch.Tensor', rejected_rewards: 'torch.Tensor') "
    "-> 'torch.Tensor'",
    "group_advantages": "(rewards: 'torch.Tensor', group_size: 'int', scale: 'bool' = True) "
    "-> 'torch.Tensor'",
    "kl_penalty": "(log_probs: 'torch.Tensor', ref_log_probs: 'torch.Tensor') -> 'torch.Tensor'",
    "grpo_loss": "(log_probs: 'torch.Tensor', old_log_probs: 'torch.Tensor', ref_log_probs: "
    "'torch.Tensor', advantages: 'torch.Tensor', completion_mask: 'torch.Tensor', clip_eps: "
    "'float' = 0.2, beta: 'float' = 0.04) -> 'torch.Tensor'",
}
#: a classic mistake as a student writes it: advantages normalised over the whole batch
BATCH_NORMALISED = {
    "groups = rewards.view(-1, group_size)": "groups = rewards.view(1, -1)",
}


def check(*args: str):
    """`rlkit check ...` in this process (the sandbox still runs the student's code)."""
    from click.testing import CliRunner
    from rlkit.cli import cli

    return CliRunner().invoke(cli, ["check", *args])


def test_the_exercise_is_registered_with_its_contract() -> None:
    spec = get_exercises()["rlhf"]
    assert spec.plugin == "rlhf" and spec.mistakes == "rlkit_rlhf_instructor.mistakes"
    assert spec.solution == spec.hidden == "rlkit_rlhf_instructor.rlhf"
    assert spec.instructor == "rlkit-rlhf-instructor"
    assert spec.functions == tuple(CONTRACT)
    for module in (spec.stub, spec.solution):
        loaded = importlib.import_module(module)
        for name, signature in CONTRACT.items():
            assert str(inspect.signature(getattr(loaded, name))) == signature, (module, name)


def test_the_reference_by_hand() -> None:
    from rlkit_rlhf_instructor import rlhf

    chosen = torch.tensor([2.0, 0.0], requires_grad=True)
    rejected = torch.tensor([1.0, 0.0], requires_grad=True)
    loss = rlhf.bradley_terry_loss(chosen, rejected)
    want = (math.log1p(math.exp(-1.0)) + math.log(2.0)) / 2
    torch.testing.assert_close(loss, torch.tensor(want))
    loss.backward()
    assert chosen.grad[0] < 0 < rejected.grad[0]  # the chosen score goes up, the rejected down
    # a huge negative margin stays finite (logsigmoid, not log(sigmoid))
    assert torch.isfinite(rlhf.bradley_terry_loss(torch.tensor([-1e4]), torch.tensor([1e4])))

    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # 3 groups of 2: the last all equal
    adv = rlhf.group_advantages(rewards, 2)
    a = 0.5 / (0.5**0.5 + 1e-4)  # ±0.5 from the group's mean, over std(1, 0) = √½ (+ ε)
    torch.testing.assert_close(adv, torch.tensor([a, -a, -a, a, 0.0, 0.0]))
    torch.testing.assert_close(
        rlhf.group_advantages(rewards, 2, scale=False)[:2], torch.tensor([0.5, -0.5])
    )

    lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    ref = torch.tensor([-1.0, -1.0], requires_grad=True)
    kl = rlhf.kl_penalty(lp, ref)
    torch.testing.assert_close(kl, torch.tensor([0.0, math.e - 2.0]))
    kl.sum().backward()
    assert ref.grad is None and lp.grad[1] == pytest.approx(1 - math.e)


def test_grpo_loss_is_ppo_clip_loss_on_the_answer_tokens_plus_the_kl() -> None:
    from rlkit_rlhf_instructor import rlhf
    from rlkit_solutions.ppo import ppo_clip_loss

    torch.manual_seed(0)
    lp, old, ref = (-torch.rand(3, 4) - 0.1 for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    adv = torch.tensor([1.0, -0.5, 2.0])
    tokens = mask.bool()
    per_token_adv = adv[:, None].expand(3, 4)[tokens]
    want = ppo_clip_loss(lp[tokens], old[tokens], per_token_adv, 0.1)
    want = want + 0.3 * (torch.exp(ref - lp) - (ref - lp) - 1)[tokens].mean()
    torch.testing.assert_close(rlhf.grpo_loss(lp, old, ref, adv, mask, 0.1, 0.3), want)


def test_student_path_init_check_and_the_pre_train_check(tmp_path: Path, capsys) -> None:
    """`rlkit init` writes rlhf.py; the stub fails its checks; a classic mistake is named by
    `rlkit check` and by the check `rlkit train grpo --path` runs first; the right answer
    (the student's own ppo.py beside it) passes every check, hidden ones included."""
    from rlkit.precheck import precheck

    work = tmp_path / "ws"
    assert rlkit("init", str(work)).returncode == 0
    stub = (work / "rlhf.py").read_text()
    assert "def grpo_loss(" in stub and "from ppo import ppo_clip_loss" in stub

    (work / "rlhf.py").write_text(student_answer(BATCH_NORMALISED))
    named = "normalises over the whole batch instead of each group"
    wrong = check("rlhf", "--path", str(work))
    assert wrong.exit_code == 1 and named in wrong.output, wrong.output
    precheck(("rlhf",), work)  # what `rlkit train grpo --path` prints before training
    out = capsys.readouterr().out
    assert "rlhf.group_advantages fails" in out and named in out, out

    # grpo_loss calls the student's ppo_clip_loss: with ppo.py still a stub it cannot pass
    (work / "rlhf.py").write_text(student_answer())
    from_stub_ppo = check("rlhf", "--path", str(work))
    assert from_stub_ppo.exit_code == 1 and "FAIL grpo_loss.values" in from_stub_ppo.output
    assert "PASS group_advantages.values" in from_stub_ppo.output
    from rlhf_helpers import course_reference

    (work / "ppo.py").write_text(course_reference("ppo").read_text())
    right = check("rlhf", "--path", str(work), "--hidden")
    assert right.exit_code == 0, right.output
    assert "Total: 46/46" in right.output


def test_rlkit_grade_of_rlhf_alone_stages_the_ppo_it_imports(tmp_path: Path) -> None:
    """``rlkit grade subs/ rlhf``: grpo_loss calls the student's own ppo_clip_loss, so each
    student's ppo.py is staged beside rlhf.py (Exercise.requires) though only rlhf is graded;
    without ppo.py, grpo_loss's checks fail."""
    import csv

    ppo = (PLUGIN.parents[1] / "solutions" / "ppo.py").read_text()
    for name, files in {
        "ana": {"rlhf.py": student_answer(), "ppo.py": ppo},
        "ben": {"rlhf.py": student_answer()},
    }.items():
        (tmp_path / "subs" / name).mkdir(parents=True)
        for file, text in files.items():
            (tmp_path / "subs" / name / file).write_text(text)
    out = tmp_path / "grades.csv"
    done = rlkit("grade", str(tmp_path / "subs"), "rlhf", "--out", str(out), "--key", "builtin")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    max_score = sum(c.points for c in _hidden_and_public_checks())
    assert float(rows["ana"]["rlhf"]) == max_score
    assert 0 < float(rows["ben"]["rlhf"]) < max_score


def _hidden_and_public_checks():
    from rlkit_grader.api import load_vectors
    from rlkit_grader.records import HIDDEN

    return load_vectors(get_exercises()["rlhf"], hidden=True).select(HIDDEN)
