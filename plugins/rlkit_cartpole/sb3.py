"""The course's run: Stable-Baselines3 PPO (or A2C) on CartPole-v1, with SB3's defaults.

    env = gym.make("CartPole-v1")
    model = PPO("MlpPolicy", env, seed=seed)
    model.learn(total_timesteps=80_000)
    mean, std = evaluate_policy(model, env, n_eval_episodes=10)   # "Mean reward: X +/- Y"

What rlkit adds is the run directory: an SB3 callback hands every update's metrics (episodic
reward and length, policy entropy, losses) to rlkit's callbacks, so the SB3 run logs, plots and
resumes like a native one. Stable-Baselines3 is imported only here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Evaluation, Progress, Trainer, notify_metrics
from rlkit.runs import write_json, written_whole
from rlkit_cartpole.env import evaluation, make_env
from rlkit_cartpole.runtime import torch_threads
from rlkit_cartpole.settings import SB3Config

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}
MODEL_ZIP = "model.zip"
TRAINER_JSON = "trainer.json"

#: SB3 logger key → rlkit metric name (A2C and PPO name their policy loss differently)
_SB3_KEYS = {
    "train/policy_gradient_loss": "policy_loss",
    "train/policy_loss": "policy_loss",
    "train/value_loss": "value_loss",
    "train/approx_kl": "approx_kl",
    "train/clip_fraction": "clip_fraction",
    "train/explained_variance": "explained_variance",
}


class _Stop(Exception):
    """Raised where a rollout starts, to end ``learn`` exactly after the update before it."""


class _ForwardMetrics(BaseCallback):
    """SB3 callback → rlkit callbacks: one row of metrics after every SB3 update.

    SB3's ``learn`` loop is: collect a rollout → log → ``train()``. ``train()`` records its
    losses in the logger, so they are read when the next rollout starts (and when training
    ends), together with the episodes finished in the rollout they were trained on. When a
    callback or ``request_stop`` (Ctrl-C) stops training there, ``learn`` ends before the next
    rollout takes a step, so the saved model has trained exactly the steps it reports.
    """

    def __init__(self, trainer: SB3Trainer, callbacks: Sequence[Callback]) -> None:
        super().__init__()
        self.trainer, self.callbacks = trainer, callbacks
        self.rewards: list[float] = []
        self.lengths: list[float] = []
        self.pending = False  # a rollout was collected and trained on, not reported yet
        self.stop = False

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")  # added by SB3's Monitor wrapper
            if episode is not None:
                self.rewards.append(float(episode["r"]))
                self.lengths.append(float(episode["l"]))
        return not self.stop

    def _on_rollout_end(self) -> None:
        self.pending = True

    def _on_rollout_start(self) -> None:
        self._report()
        if self.stop:
            raise _Stop

    def _on_training_end(self) -> None:
        self._report()

    def _report(self) -> None:
        if not self.pending:
            return
        self.pending = False
        logged = self.model.logger.name_to_value
        metrics = {"timesteps": float(self.num_timesteps)}
        if self.rewards:
            metrics["episode_reward"] = float(np.mean(self.rewards))
            metrics["episode_length"] = float(np.mean(self.lengths))
        self.rewards, self.lengths = [], []
        if "train/entropy_loss" in logged:
            metrics["entropy"] = -float(logged["train/entropy_loss"])  # SB3 logs −H
        for key, name in _SB3_KEYS.items():
            if key in logged:
                metrics[name] = float(logged[key])
        if not notify_metrics(self.callbacks, self.trainer, self.num_timesteps, metrics):
            self.stop = True


class SB3Trainer(Trainer):
    """Stable-Baselines3 on CartPole-v1, behind rlkit's Trainer interface."""

    task = "cartpole"
    backend = "sb3"
    records_video = True

    def __init__(self, config: SB3Config, model: BaseAlgorithm | None = None) -> None:
        if config.algo not in ALGORITHMS:
            raise UsageError(
                f"unknown algorithm {config.algo!r} for the sb3 backend; use one "
                f"of: {', '.join(ALGORITHMS)}"
            )
        self.config = config
        if model is None:
            model = ALGORITHMS[config.algo]("MlpPolicy", make_env(), seed=config.seed, verbose=0)
        self.model = model

    @property
    def settings(self) -> SB3Config:  # type: ignore[override]
        return self.config

    @property
    def timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def progress(self) -> Progress:
        return Progress(self.timesteps, self.config.timesteps, "timestep")

    def train(self, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        """``model.learn`` up to ``config.timesteps`` steps in total; a callback returning
        False or ``request_stop`` (Ctrl-C) stops it after an update."""
        remaining = self.config.timesteps - self.timesteps
        for callback in callbacks:
            callback.on_train_start(self)
        if remaining > 0:
            try:
                with torch_threads(self.config.threads):
                    self.model.learn(
                        remaining,
                        callback=_ForwardMetrics(self, callbacks),
                        log_interval=1,
                        reset_num_timesteps=False,
                    )
            except _Stop:
                pass
        for callback in callbacks:
            callback.on_train_end(self)
        return {"timesteps": float(self.timesteps)}

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for each observation in a batch."""
        actions, _ = self.model.predict(obs, deterministic=True)
        return actions

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """The course's ``evaluate_policy(model, env, n_eval_episodes=10)``."""
        episodes = 10 if episodes is None else episodes
        env = DummyVecEnv([lambda: Monitor(make_env())])
        env.seed(10_000 + self.config.seed)
        try:
            with torch_threads(self.config.threads):
                returns, _ = evaluate_policy(
                    self.model,
                    env,
                    n_eval_episodes=episodes,
                    deterministic=True,
                    return_episode_rewards=True,
                )
        finally:
            env.close()
        with torch_threads(self.config.threads):
            return evaluation(np.asarray(returns, dtype=float), self.act, video, self.config.seed)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with written_whole(path / MODEL_ZIP) as partial:
            self.model.save(partial)
        info = {"config": asdict(self.config), "timesteps": self.timesteps}
        write_json(path / TRAINER_JSON, info)

    @classmethod
    def load(cls, path: Path, settings: SB3Config | None = None) -> SB3Trainer:
        """Rebuild from ``save``'s folder, with ``settings`` (the run's; None: the saved ones)."""
        path = Path(path)
        try:
            info = json.loads((path / TRAINER_JSON).read_text())
            config = settings if settings is not None else SB3Config(**info["config"])
            algorithm = ALGORITHMS[config.algo]
            model = algorithm.load(path / MODEL_ZIP, env=make_env())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} holds no usable SB3 model ({exc})") from None
        return cls(config, model)
