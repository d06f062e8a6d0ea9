"""A toy Env/Policy/Objective/Trainer written only against rlkit's interfaces trains for real."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from rlkit.interfaces import Callback, Env, Evaluation, Objective, Policy, Progress, Trainer
from rlkit.runs import Run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "rlkit-bandit"))

from rlkit_bandit.bandit import (  # noqa: E402
    BanditConfig,
    BanditTrainer,
    ReinforceObjective,
    SoftmaxPolicy,
    TwoArmedBandit,
)


def test_toy_classes_implement_the_interfaces() -> None:
    assert isinstance(TwoArmedBandit(), Env)
    assert isinstance(gym.make("CartPole-v1"), Env)  # any gymnasium env is an rlkit Env
    assert issubclass(SoftmaxPolicy, Policy)
    assert issubclass(ReinforceObjective, Objective)
    assert issubclass(BanditTrainer, Trainer)


def test_abstract_interfaces_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        Policy()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        Trainer()  # type: ignore[abstract]


def test_bandit_trains_logs_and_reloads(tmp_path: Path) -> None:
    class Counter(Callback):
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.started = self.ended = False

        def on_train_start(self, trainer: Trainer) -> None:
            self.started = True

        def on_metrics(self, trainer: Trainer, step: int, metrics) -> None:
            self.steps.append(step)

        def on_train_end(self, trainer: Trainer) -> None:
            self.ended = True

    config = BanditConfig(steps=150, seed=1)
    run = Run.create(
        tmp_path / "run", "bandit", "native", config.__dict__, plot_metrics=["reward", "entropy"]
    )
    trainer = BanditTrainer(config)
    assert trainer.best_arm_probability() == pytest.approx(0.5)
    counter = Counter()
    trainer.train(callbacks=[run, counter])
    run.close()

    # The policy learned that arm 1 pays more, and became (almost) certain of it.
    assert trainer.best_arm_probability() > 0.95
    assert counter.started and counter.ended and counter.steps == list(range(1, 151))
    rows = Run.open(run.path).rows
    assert len(rows) == 150
    assert rows[-1]["entropy"] < rows[0]["entropy"]  # the scissors' falling blade
    assert any(p.name.startswith("events.out.tfevents") for p in (run.path / "tb").iterdir())
    assert run.plot().stat().st_size > 10_000

    trainer.save(run.model_dir)
    again = BanditTrainer.load(run.model_dir)
    assert again.progress() == trainer.progress() == Progress(150, 150)
    assert again.best_arm_probability() == pytest.approx(trainer.best_arm_probability())
    result = again.evaluate(episodes=50)
    assert isinstance(result, Evaluation) and str(result).startswith("Mean reward: ")
    assert 0.6 < result.metrics["mean_reward"] <= 1.0


def test_callback_can_stop_training() -> None:
    class StopAt(Callback):
        def on_metrics(self, trainer, step, metrics):
            return step < 5

    trainer = BanditTrainer(BanditConfig(steps=100))
    seen: list[int] = []

    class Record(Callback):
        def on_metrics(self, trainer, step, metrics):
            seen.append(step)

    trainer.train(callbacks=[StopAt(), Record()])
    assert seen == [1, 2, 3, 4, 5]


def test_same_objective_serves_a_different_policy() -> None:
    """The Objective only needs log_prob/entropy: any Policy works, the bandit's or another."""

    class TablePolicy(SoftmaxPolicy):
        pass

    from rlkit.impl import load_exercise_functions

    TablePolicy.fns = load_exercise_functions("log_prob")
    policy = TablePolicy()
    objective = ReinforceObjective(load_exercise_functions("reinforce"))
    batch = {
        "states": torch.zeros(4, 1),
        "actions": torch.tensor([0, 1, 1, 0]),
        "returns": torch.tensor([0.0, 1.0, 1.0, 0.0]),
    }
    loss, metrics = objective(policy, batch)
    loss.backward()
    assert policy.logits.grad is not None and policy.logits.grad[1] < 0  # rewarded arm ↑
    assert metrics["entropy"] == pytest.approx(torch.log(torch.tensor(2.0)).item())
