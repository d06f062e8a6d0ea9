"""`--impl student`: a workspace of correct implementations written differently from the
reference solutions trains CartPole; stubs and broken functions stop the run in one line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rlkit_cartpole.native import NativeCartPoleTrainer, make_config

from rlkit.cli import cli
from rlkit.interfaces import Callback

LOG_PROB = """
import torch

CALLS = {}


def _count(name):
    CALLS[name] = CALLS.get(name, 0) + 1


def log_prob(logits, actions):
    _count("log_prob")
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    log_z = shifted.exp().sum(dim=-1).log()
    picked = torch.take_along_dim(shifted, actions.long().unsqueeze(-1), dim=-1).squeeze(-1)
    return picked - log_z


def entropy(logits):
    _count("entropy")
    # H = logsumexp(l) - sum_a p_a l_a
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)


def grad_log_prob(logits, actions):
    with torch.no_grad():
        eye = torch.eye(logits.shape[-1], dtype=logits.dtype)
        return eye[actions.long()] - torch.softmax(logits, dim=-1)
"""

REINFORCE = """
import torch

CALLS = {}


def returns_to_go(rewards, gamma, dones=None):
    CALLS["returns_to_go"] = CALLS.get("returns_to_go", 0) + 1
    r = rewards.tolist()
    d = [False] * len(r) if dones is None else [bool(x) for x in dones.tolist()]
    out, g = [0.0] * len(r), 0.0
    for t in reversed(range(len(r))):
        g = r[t] + (0.0 if d[t] else gamma * g)
        out[t] = g
    return torch.tensor(out, dtype=rewards.dtype)


def reinforce_loss(log_probs, returns, normalize=True):
    CALLS["reinforce_loss"] = CALLS.get("reinforce_loss", 0) + 1
    g = returns.detach().clone()
    if normalize:
        g = (g - g.mean()) / (g.std(unbiased=True) + 1e-8)
    return -(log_probs * g).sum() / log_probs.numel()
"""

PPO = """
import torch

CALLS = {}


def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
    CALLS["ppo_clip_loss"] = CALLS.get("ppo_clip_loss", 0) + 1
    ratio = (log_probs - old_log_probs.detach()).exp()
    adv = advantages.detach()
    upper = torch.minimum(ratio, torch.full_like(ratio, 1 + clip_eps))
    lower = torch.maximum(ratio, torch.full_like(ratio, 1 - clip_eps))
    return -torch.where(adv >= 0, upper * adv, lower * adv).mean()


def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    CALLS["gae"] = CALLS.get("gae", 0) + 1
    r, v, d = rewards.tolist(), values.detach().tolist(), dones.float().tolist()
    adv, a, next_v = [0.0] * len(r), 0.0, float(last_value)
    for t in reversed(range(len(r))):
        keep = 1.0 - d[t]
        a = r[t] + gamma * next_v * keep - v[t] + gamma * lam * keep * a
        adv[t], next_v = a, v[t]
    advantages = torch.tensor(adv, dtype=rewards.dtype)
    return advantages, advantages + values.detach()
"""

STUB_GAE = PPO.replace(
    '    CALLS["gae"] = CALLS.get("gae", 0) + 1\n', "    raise NotImplementedError()\n"
)
WRONG_SHAPE = PPO.replace(
    "    return advantages, advantages", "    return advantages[:, None], advantages"
)
NAN_LOSS = PPO.replace("    return -torch.where(", "    return float('nan') * torch.where(")
BROKEN_CLIP = PPO.replace(
    "    ratio = (log_probs", "    raise ValueError('shapes do not match')\n    ratio = (log_probs"
)


def workspace(root: Path, ppo: str = PPO) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "log_prob.py").write_text(LOG_PROB)
    (root / "reinforce.py").write_text(REINFORCE)
    (root / "ppo.py").write_text(ppo)
    return root


def invoke(*args: str):
    return CliRunner().invoke(cli, ["train", "cartpole", *args], catch_exceptions=False)


@pytest.mark.parametrize(
    ("algo", "exercises"),
    [
        ("ppo", {"ppo": ["gae", "ppo_clip_loss"]}),
        ("reinforce", {"reinforce": ["returns_to_go", "reinforce_loss"]}),
    ],
)
def test_students_own_functions_train_cartpole(
    algo: str, exercises: dict[str, list[str]], tmp_path: Path
) -> None:
    work = workspace(tmp_path / "work")
    out = tmp_path / "run"
    result = invoke(
        "--algo",
        algo,
        "--path",
        str(work),
        "--timesteps",
        "2000",
        "--out",
        str(out),
        "--eval-episodes",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "Mean reward: " in result.output
    files = ", ".join(f"{e}.py" for e in ["log_prob", *exercises])
    assert re.search(rf"Your {files}: all \d+ public checks pass", result.output), result.output
    config = json.loads((out / "config.json").read_text())
    assert config["backend"] == "native"
    assert config["settings"]["impl"] == "student" and config["settings"]["path"] == str(work)
    for exercise, functions in exercises.items():
        calls = sys.modules[f"rlkit_student_{exercise}"].CALLS
        assert all(calls.get(f, 0) > 0 for f in functions), calls
    assert sys.modules["rlkit_student_log_prob"].CALLS["log_prob"] > 0
    # evaluating a student's run needs only the checkpoint, not the workspace
    (work / "ppo.py").unlink()
    assert CliRunner().invoke(cli, ["eval", str(out), "-n", "2"]).exit_code == 0


def test_failing_checks_are_named_and_the_run_still_trains(tmp_path: Path) -> None:
    """A PPO loss with the sign flipped fails its checks: the student hears it before
    training, and still gets the run, to watch what the mistake does."""
    work = workspace(tmp_path / "work", PPO.replace("return -torch.where(", "return torch.where("))
    out = tmp_path / "run"
    result = invoke(
        "--path", str(work), "--timesteps", "1024", "--out", str(out), "--eval-episodes", "1"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Public checks of your log_prob.py, ppo.py: ") and "fail" in lines[0]
    named = [line for line in lines if line.startswith("  your ")]
    assert len(named) == 1 and named[0].startswith("  your ppo.ppo_clip_loss fails "), named
    assert "ppo_clip_loss.values" in named[0]  # which checks, on one line per function
    assert "Training with them anyway" in result.output and "Mean reward: " in result.output
    assert (out / "model" / "checkpoint.pt").is_file()


def test_student_and_solution_give_the_same_first_updates(tmp_path: Path) -> None:
    """Same math, different code: the first updates match the reference closely."""
    work = workspace(tmp_path / "work")

    class FirstRows(Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []

        def on_metrics(self, trainer, step, metrics):
            self.rows.append(dict(metrics))
            return len(self.rows) < 2

    rows = {}
    for impl in ("solution", "student"):
        recorder = FirstRows()
        path = str(work) if impl == "student" else None
        NativeCartPoleTrainer(make_config("ppo", impl=impl, path=path, seed=5)).train([recorder])
        rows[impl] = recorder.rows
    for ours, theirs in zip(rows["solution"], rows["student"]):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-4), key


@pytest.mark.parametrize(
    ("ppo", "expected", "code"),
    [
        (STUB_GAE, "ppo.gae is not implemented yet", 1),
        (BROKEN_CLIP, "your ppo.ppo_clip_loss raised ValueError: shapes do not match", 1),
        (WRONG_SHAPE, "your ppo.gae (advantages) returned shape (", 1),
        (NAN_LOSS, "your ppo.ppo_clip_loss returned nan", 1),
        (None, "ppo.py not found", 2),
    ],
)
def test_unfinished_or_broken_exercise_stops_in_one_line(
    ppo: str | None, expected: str, code: int, tmp_path: Path
) -> None:
    work = workspace(tmp_path / "work", ppo or PPO)
    if ppo is None:
        (work / "ppo.py").unlink()
    out = tmp_path / "run"
    result = invoke(
        "--impl", "student", "--path", str(work), "--timesteps", "2000", "--out", str(out)
    )
    assert result.exit_code == code
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1 and expected in error_lines[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing trained: no half-made run directory left behind


def test_stub_in_reinforce_names_the_exercise(tmp_path: Path) -> None:
    work = workspace(tmp_path / "work")
    (work / "reinforce.py").write_text(
        REINFORCE.replace("    r = rewards.tolist()", "    raise NotImplementedError\n")
    )
    # --out names the workspace itself: the failed run must take away only what it wrote
    result = invoke("--algo", "reinforce", "--path", str(work), "--out", str(work))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    # the public checks ran first and named the stub; then training stopped at its first call
    assert lines[0].startswith("Public checks of your log_prob.py, reinforce.py: ")
    assert lines[1] == "  your reinforce.returns_to_go is not implemented yet"
    assert [line for line in lines if line.startswith("Error: ")] == [lines[-1]]
    assert lines[-1] == (
        f"Error: reinforce.returns_to_go is not implemented yet in {work / 'reinforce.py'}: "
        "fill it in, then run `rlkit check reinforce`."
    )
    left = sorted(p.name for p in work.iterdir() if p.name != "__pycache__")
    assert left == ["log_prob.py", "ppo.py", "reinforce.py"]
