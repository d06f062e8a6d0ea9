"""Stable-Baselines3's DQN on CartPole-v1 with rl-baselines3-zoo's tuned settings.

    model = DQN("MlpPolicy", gym.make("CartPole-v1"), **ZOO_CARTPOLE)
    model.learn(total_timesteps=50_000)

``ZOO_CARTPOLE`` is rl-baselines3-zoo's ``hyperparams/dqn.yml`` entry for CartPole-v1 (commit
22e3ff2, "Almost Tuned"). An SB3 callback hands rlkit's callbacks a row of metrics after each
rollout (episodic reward, loss, ε, and the mean Q over a replayed sample), so the run logs and
plots like the native one. Stable-Baselines3 is imported only here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from rlkit import interfaces
from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Evaluation, Trainer, notify_metrics
from rlkit.runs import write_json, written_whole
from rlkit_cartpole.runtime import torch_threads
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback

from rlkit_dqn.settings import SB3DQNSettings

MODEL_ZIP = "model.zip"
TRAINER_JSON = "trainer.json"

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


class _ForwardMetrics(BaseCallback):
    """SB3 → rlkit callbacks: one row of metrics per rollout (train_freq steps)."""

    def __init__(self, trainer: SB3DQNTrainer, callbacks: Sequence[Callback]) -> None:
        super().__init__()
        self.trainer, self.callbacks = trainer, callbacks
        self.rewards: list[float] = []
        self.stop = False

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")  # added by SB3's Monitor wrapper
            if episode is not None:
                self.rewards.append(float(episode["r"]))
        return not self.stop

    def _on_rollout_end(self) -> None:
        logged = self.model.logger.name_to_value
        metrics = {"timesteps": float(self.num_timesteps)}
        if self.rewards:
            metrics["episode_reward"] = float(np.mean(self.rewards))
            self.rewards = []
        if "rollout/exploration_rate" in logged:
            metrics["epsilon"] = float(logged["rollout/exploration_rate"])
        if "train/loss" in logged:
            metrics["loss"] = float(logged["train/loss"])
        buffer = self.model.replay_buffer
        if buffer is not None and buffer.size() > 0:
            with torch.no_grad():
                sample = buffer.sample(min(256, buffer.size()))
                metrics["q_mean"] = float(self.model.q_net(sample.observations).mean())
        if not notify_metrics(self.callbacks, self.trainer, self.num_timesteps, metrics):
            self.stop = True


class SB3DQNTrainer(Trainer):
    """Stable-Baselines3 DQN (zoo settings) on CartPole-v1, behind rlkit's Trainer interface."""

    task: ClassVar[str] = "cartpole"
    backend: ClassVar[str] = "sb3"
    records_video: ClassVar[bool] = True  # CartPole renders: `rlkit eval RUN --video a.gif`

    def __init__(self, settings: SB3DQNSettings, model: DQN | None = None) -> None:
        from rlkit_cartpole.env import make_env

        self.settings = config = settings
        if model is None:
            model = DQN("MlpPolicy", make_env(), seed=config.seed, verbose=0, **ZOO_CARTPOLE)
        self.model = model

    @property
    def timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def progress(self) -> interfaces.Progress:
        return interfaces.Progress(self.timesteps, self.settings.timesteps, "step")

    def train(self, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        """``model.learn`` up to ``config.timesteps`` steps in total; Ctrl-C stops cleanly."""
        remaining = self.settings.timesteps - self.timesteps
        for callback in callbacks:
            callback.on_train_start(self)
        with torch_threads(self.settings.threads):
            if remaining > 0:
                self.model.learn(
                    remaining,
                    callback=_ForwardMetrics(self, callbacks),
                    log_interval=None,  # never dump (and clear) the logger: we read it
                    reset_num_timesteps=False,
                )
        for callback in callbacks:
            callback.on_train_end(self)
        return {"timesteps": float(self.timesteps)}

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The greedy action for each observation in a batch."""
        actions, _ = self.model.predict(obs, deterministic=True)
        return actions

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """The same greedy evaluator as the native trainer (default 10 episodes):
        ``Mean reward: X +/- Y``."""
        episodes = episodes or 10
        from rlkit_cartpole.env import evaluate_greedy

        return evaluate_greedy(self.act, episodes, self.settings.seed, self.settings.threads, video)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with written_whole(path / MODEL_ZIP) as partial:
            self.model.save(partial)
        info = {"config": asdict(self.settings), "timesteps": self.timesteps}
        write_json(path / TRAINER_JSON, info)

    @classmethod
    def load(cls, model_dir: Path, settings: SB3DQNSettings | None = None) -> SB3DQNTrainer:
        """Rebuild from ``save``'s folder with ``settings`` (None: the saved ones)."""
        from rlkit_cartpole.env import make_env

        path = Path(model_dir)
        try:
            info = json.loads((path / TRAINER_JSON).read_text())
            config = settings or SB3DQNSettings(**info["config"])
            model = DQN.load(path / MODEL_ZIP, env=make_env())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} holds no usable SB3 DQN model ({exc})") from None
        return cls(config, model)
