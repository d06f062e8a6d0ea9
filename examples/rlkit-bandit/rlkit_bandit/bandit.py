"""A two-armed bandit trained by REINFORCE, written against rlkit's four interfaces.

The smallest complete example of the course's loop: observe (there is one state), choose an
arm from π, receive a reward, make the rewarded arm likelier.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlkit.impl import load_exercise_functions
from rlkit.interfaces import Callback, Evaluation, Objective, Policy, Trainer, notify_metrics


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


@dataclass
class BanditConfig:
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 0.1
    seed: int = 0
    impl: str = "solution"


class BanditTrainer(Trainer):
    task = "bandit"
    backend = "native"

    def __init__(self, config: BanditConfig) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        self.env = TwoArmedBandit()
        SoftmaxPolicy.fns = load_exercise_functions("log_prob", config.impl)
        self.policy = SoftmaxPolicy()
        self.objective = ReinforceObjective(load_exercise_functions("reinforce", config.impl))
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        self.env.reset(seed=config.seed)

    def train(self, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for cb in callbacks:
            cb.on_train_start(self)
        for step in range(1, self.config.steps + 1):
            states = torch.zeros(self.config.batch_size, 1)
            with torch.no_grad():
                actions = self.policy.act(states)
            rewards = torch.tensor([self.env.step(int(a))[1] for a in actions])
            batch = {"states": states, "actions": actions, "returns": rewards}
            loss, metrics = self.objective(self.policy, batch)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            metrics["reward"] = float(rewards.mean())
            if not notify_metrics(callbacks, self, step, metrics):
                break
        for cb in callbacks:
            cb.on_train_end(self)
        return metrics

    def best_arm_probability(self) -> float:
        return float(torch.softmax(self.policy.logits.detach(), -1)[1])

    def evaluate(self, episodes: int = 10, video: Path | None = None) -> Evaluation:
        states = torch.zeros(episodes, 1)
        with torch.no_grad():
            actions = self.policy.act(states, deterministic=True)
        rewards = np.array([self.env.step(int(a))[1] for a in actions])
        return Evaluation(
            {"mean_reward": float(rewards.mean())},
            [f"Mean reward: {rewards.mean():.2f} +/- {rewards.std():.2f}"],
        )

    def save(self, path: Path) -> None:
        path = Path(path) / "model"
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.policy.state_dict(), path / "policy.pt")
        (path / "trainer.json").write_text(json.dumps(asdict(self.config)))

    @classmethod
    def load(cls, path: Path) -> BanditTrainer:
        model = Path(path) / "model"
        trainer = cls(BanditConfig(**json.loads((model / "trainer.json").read_text())))
        trainer.policy.load_state_dict(torch.load(model / "policy.pt", weights_only=True))
        return trainer
