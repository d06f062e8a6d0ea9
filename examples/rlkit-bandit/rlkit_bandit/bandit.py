"""A two-armed bandit trained by REINFORCE, written against rlkit's four interfaces.

The smallest complete example of the course's loop: observe (there is one state), choose an
arm from π, receive a reward, make the rewarded arm likelier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlkit.impl import load_exercise_functions
from rlkit.interfaces import (
    Callback,
    Evaluation,
    Objective,
    Policy,
    Progress,
    Trainer,
    notify_metrics,
)
from rlkit.runs import written_whole
from rlkit_bandit.settings import BanditConfig, BanditSettings  # noqa: F401 - BanditConfig: old name


class TwoArmedBandit(gym.Env):
    """One state, two actions; arm ``a`` pays 1 with probability ``payout[a]``. One-step episodes."""

    def __init__(self, payout: tuple[float, float] = (0.2, 0.8)) -> None:
        self.payout = payout
        self.observation_space = gym.spaces.Box(0.0, 0.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: int):
        reward = float(self.np_random.random() < self.payout[int(action)])
        return np.zeros(1, dtype=np.float32), reward, True, False, {}


class SoftmaxPolicy(torch.nn.Module, Policy):
    """π(a) = softmax(θ)[a]: the state is ignored because there is only one."""

    def __init__(self, n_actions: int = 2) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(n_actions))

    def _logits(self, states: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(states.shape[0], -1)

    def act(self, states: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        logits = self._logits(states)
        if deterministic:
            return logits.argmax(-1)
        return torch.distributions.Categorical(logits=logits).sample()

    def log_prob(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.fns.log_prob(self._logits(states), actions)

    def entropy(self, states: torch.Tensor) -> torch.Tensor:
        return self.fns.entropy(self._logits(states))

    fns: Any = None  # the log_prob exercise functions, set by the trainer


class ReinforceObjective(Objective):
    """L = −mean(log π(a) · Ĝ): the REINFORCE loss from the exercise functions."""

    name = "reinforce"

    def __init__(self, fns: Any) -> None:
        self.fns = fns

    def __call__(self, policy: Policy, batch: dict[str, torch.Tensor]):
        log_probs = policy.log_prob(batch["states"], batch["actions"])
        loss = self.fns.reinforce_loss(log_probs, batch["returns"], normalize=True)
        entropy = policy.entropy(batch["states"]).mean()
        return loss, {"loss": loss.item(), "entropy": entropy.item()}


class BanditTrainer(Trainer):
    """REINFORCE on the bandit. Everything a run needs from a trainer is here: ``train`` from
    where it is to ``settings.steps``, ``progress``, ``evaluate``, ``save``/``load`` of the
    whole state (so ``--resume`` continues exactly). Ctrl-C needs no code: ``notify_metrics``
    returns False once the session asked the trainer to stop."""

    task = "bandit"
    backend = "native"

    def __init__(self, settings: BanditSettings) -> None:
        self.settings = settings
        torch.manual_seed(settings.seed)
        self.env = TwoArmedBandit()
        path = Path(settings.path) if settings.path else None
        SoftmaxPolicy.fns = load_exercise_functions("log_prob", settings.impl, path)
        self.policy = SoftmaxPolicy()
        self.objective = ReinforceObjective(
            load_exercise_functions("reinforce", settings.impl, path)
        )
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=settings.learning_rate)
        self.env.reset(seed=settings.seed)
        self.step = 0

    def progress(self) -> Progress:
        return Progress(self.step, self.settings.steps)

    def train(self, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # two logits: a second CPU thread only adds waiting
        try:
            return self._train(callbacks)
        finally:
            torch.set_num_threads(threads)

    def _train(self, callbacks: Sequence[Callback]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for cb in callbacks:
            cb.on_train_start(self)
        while self.step < self.settings.steps:
            states = torch.zeros(self.settings.batch_size, 1)
            with torch.no_grad():
                actions = self.policy.act(states)
            rewards = torch.tensor([self.env.step(int(a))[1] for a in actions])
            batch = {"states": states, "actions": actions, "returns": rewards}
            loss, metrics = self.objective(self.policy, batch)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.step += 1
            metrics["reward"] = float(rewards.mean())
            if not notify_metrics(callbacks, self, self.step, metrics):
                break
        for cb in callbacks:
            cb.on_train_end(self)
        return metrics

    def best_arm_probability(self) -> float:
        return float(torch.softmax(self.policy.logits.detach(), -1)[1])

    def after_training(self, run_dir: Path, summary: Mapping[str, float]) -> list[str]:
        return [*super().after_training(run_dir, summary), self.best_arm_line()]

    def best_arm_line(self) -> str:
        return f"P(best arm) = {self.best_arm_probability():.3f}; arm 1 pays 0.8, arm 0 pays 0.2"

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        states = torch.zeros(episodes or 10, 1)
        with torch.no_grad():
            actions = self.policy.act(states, deterministic=True)
        rewards = np.array([self.env.step(int(a))[1] for a in actions])
        return Evaluation(
            {"mean_reward": float(rewards.mean())},
            [f"Mean reward: {rewards.mean():.2f} +/- {rewards.std():.2f}"],
        )

    def save(self, model_dir: Path) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "env_rng": self.env.np_random.bit_generator.state,
        }
        with written_whole(model_dir / "state.pt") as partial:
            torch.save(state, partial)
        info = {"settings": asdict(self.settings), "step": self.step}
        (model_dir / "trainer.json").write_text(json.dumps(info))

    @classmethod
    def load(cls, model_dir: Path, settings: BanditSettings | None = None) -> BanditTrainer:
        info = json.loads((Path(model_dir) / "trainer.json").read_text())
        trainer = cls(settings or BanditSettings(**info["settings"]))
        state = torch.load(Path(model_dir) / "state.pt", weights_only=False)
        trainer.policy.load_state_dict(state["policy"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        trainer.env.np_random.bit_generator.state = state["env_rng"]
        trainer.step = int(info["step"])
        return trainer
