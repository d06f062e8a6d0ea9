"""Stable-Baselines3's DQN on CartPole-v1 with rl-baselines3-zoo's tuned settings.

    model = DQN("MlpPolicy", gym.make("CartPole-v1"), **ZOO_CARTPOLE)
    model.learn(total_timesteps=50_000)

``ZOO_CARTPOLE`` is rl-baselines3-zoo's ``hyperparams/dqn.yml`` entry for CartPole-v1 (commit
22e3ff2, "Almost Tuned"). The trainer is the CartPole plugin's SB3 base
(``rlkit_cartpole.sb3.SB3Base``: metrics after every update, Ctrl-C, save, load, resume) with
DQN's curves: episodic reward, ε, the TD loss and the mean Q over a replayed sample. It
evaluates with the same greedy evaluator as the native trainer. Stable-Baselines3 is imported
only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from rlkit.interfaces import Evaluation
from rlkit_cartpole.env import evaluate_greedy
from rlkit_cartpole.sb3 import SB3Base
from stable_baselines3 import DQN

from rlkit_dqn.settings import SB3DQNSettings

#: rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1 (n_timesteps: 5e4)
ZOO_CARTPOLE: dict[str, Any] = {
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1_000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}


class SB3DQNTrainer(SB3Base):
    """Stable-Baselines3 DQN (zoo settings) on CartPole-v1, behind rlkit's Trainer interface."""

    task: ClassVar[str] = "cartpole"
    algorithms = {"dqn": DQN}
    settings_class = SB3DQNSettings
    logged = {"rollout/exploration_rate": "epsilon", "train/loss": "loss"}
    unit = "step"

    def model_kwargs(self, settings: Any) -> dict[str, Any]:
        return dict(ZOO_CARTPOLE)

    def extra_metrics(self) -> dict[str, float]:
        """The mean Q over a replayed sample (what the Q-network believes states are worth)."""
        buffer = self.model.replay_buffer
        if buffer is None or buffer.size() == 0:
            return {}
        with torch.no_grad():
            sample = buffer.sample(min(256, buffer.size()))
            return {"q_mean": float(self.model.q_net(sample.observations).mean())}

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """The same greedy evaluator as the native trainer (default 10 episodes):
        ``Mean reward: X +/- Y``."""
        episodes = episodes or 10
        return evaluate_greedy(self.act, episodes, self.settings.seed, self.threads, video)
