"""Stable-Baselines3 behind rlkit's Trainer: ``SB3Base``, which any plugin's SB3 trainer
subclasses in a few lines (the course's PPO/A2C here, rlkit-dqn's DQN), and the course's run.

    env = gym.make("CartPole-v1")
    model = PPO("MlpPolicy", env, seed=seed)
    model.learn(total_timesteps=80_000)
    mean, std = evaluate_policy(model, env, n_eval_episodes=10)   # "Mean reward: X +/- Y"

What rlkit adds is the run directory: an SB3 callback hands every update's metrics (episodic
reward and length, policy entropy, losses, whatever the subclass reads from SB3's logger) to
rlkit's callbacks, so an SB3 run logs, plots, stops on Ctrl-C and resumes like a native one.
Stable-Baselines3 is imported only here (and in the subclasses' modules).

A subclass names its algorithms, what to read from SB3's logger, and the settings class::

    class SB3DQNTrainer(SB3Base):
        task = "cartpole"
        algorithms = {"dqn": DQN}
        settings_class = SB3DQNSettings          # a dataclass with timesteps, seed (+ threads)
        logged = {"rollout/exploration_rate": "epsilon", "train/loss": "loss"}

        def model_kwargs(self, settings):
            return ZOO_CARTPOLE                  # SB3's constructor arguments

Override ``make_env`` for another environment than CartPole-v1, ``extra_metrics`` for values
SB3 does not log (DQN's mean Q), ``evaluate`` for another evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
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

__all__ = ["SB3Base", "SB3Trainer"]

MODEL_ZIP = "model.zip"
TRAINER_JSON = "trainer.json"

#: SB3 logger key → rlkit metric name, for SB3's on-policy algorithms (A2C and PPO name their
#: policy loss differently); the entropy is read from train/entropy_loss (SB3 logs −H)
ON_POLICY_KEYS = {
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

    SB3's ``learn`` loop, on-policy and off-policy alike, is: collect a rollout → ``train()``.
    ``train()`` records its losses in the logger, so they are read when the next rollout starts
    (and when training ends), together with the episodes finished in the rollout they were
    trained on. When a callback or ``request_stop`` (Ctrl-C) stops training there, ``learn``
    ends before the next rollout takes a step, so the saved model has trained exactly the
    steps it reports.
    """

    def __init__(self, trainer: SB3Base, callbacks: Sequence[Callback]) -> None:
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
        metrics = {"timesteps": float(self.num_timesteps)}
        if self.rewards:
            metrics["episode_reward"] = float(np.mean(self.rewards))
            metrics["episode_length"] = float(np.mean(self.lengths))
        self.rewards, self.lengths = [], []
        metrics.update(self.trainer.metrics(self.model.logger.name_to_value))
        metrics.update(self.trainer.extra_metrics())
        if not notify_metrics(self.callbacks, self.trainer, self.num_timesteps, metrics):
            self.stop = True


class SB3Base(Trainer):
    """A Stable-Baselines3 algorithm behind rlkit's Trainer interface (public API: subclass
    it, see the module's docstring).

    The settings (``settings_class``, a dataclass) need ``timesteps`` (the budget, in
    environment steps) and ``seed``; ``threads`` (torch CPU threads, default 1) and ``algo``
    (a key of ``algorithms``; a ClassVar when there is one) are read where present.
    ``train`` runs ``model.learn`` up to ``timesteps`` in total (a loaded model continues),
    forwarding a row of metrics after every update; ``save``/``load`` write and read
    ``model.zip`` and ``trainer.json`` in the run's ``model/`` folder.
    """

    backend: ClassVar[str] = "sb3"
    records_video: ClassVar[bool] = True  # CartPole renders: `rlkit eval RUN --video a.gif`
    #: algorithm name → SB3 class
    algorithms: ClassVar[Mapping[str, type[BaseAlgorithm]]] = {}
    #: the settings dataclass (``load`` rebuilds it from trainer.json when given none)
    settings_class: ClassVar[type]
    #: SB3's policy argument
    policy: ClassVar[str] = "MlpPolicy"
    #: SB3 logger key → rlkit metric name, read after every update
    logged: ClassVar[Mapping[str, str]] = {}
    #: what ``progress()`` counts
    unit: ClassVar[str] = "timestep"
    #: SB3's ``log_interval`` (None: SB3 never dumps, and so never clears, the logger)
    log_interval: ClassVar[int | None] = None

    def __init__(self, settings: Any, model: BaseAlgorithm | None = None) -> None:
        algo = self.algorithm_of(settings)
        if algo not in self.algorithms:
            raise UsageError(
                f"unknown algorithm {algo!r} for the sb3 backend; use one "
                f"of: {', '.join(self.algorithms)}"
            )
        self.settings = settings
        self.model = model if model is not None else self.make_model(settings)

    # -- what a subclass may change --------------------------------------------------------
    @classmethod
    def algorithm_of(cls, settings: Any) -> str:
        return getattr(settings, "algo", None) or next(iter(cls.algorithms), "")

    @classmethod
    def make_env(cls) -> gym.Env:
        """The environment to train on (and to load a model with): CartPole-v1."""
        return make_env()

    def model_kwargs(self, settings: Any) -> dict[str, Any]:
        """Extra arguments of the SB3 constructor (hyperparameters)."""
        return {}

    def make_model(self, settings: Any) -> BaseAlgorithm:
        algorithm = self.algorithms[self.algorithm_of(settings)]
        return algorithm(
            self.policy,
            self.make_env(),
            seed=settings.seed,
            verbose=0,
            **self.model_kwargs(settings),
        )

    def metrics(self, logged: Mapping[str, Any]) -> dict[str, float]:
        """The row of metrics from SB3's logger after an update (``logged`` keys, and the
        policy's entropy where SB3 logs it)."""
        metrics = {}
        if "train/entropy_loss" in logged:
            metrics["entropy"] = -float(logged["train/entropy_loss"])  # SB3 logs −H
        for key, name in self.logged.items():
            if key in logged:
                metrics[name] = float(logged[key])
        return metrics

    def extra_metrics(self) -> dict[str, float]:
        """Metrics SB3 does not log, computed after each update."""
        return {}

    # -- the Trainer interface -------------------------------------------------------------
    @property
    def threads(self) -> int:
        return int(getattr(self.settings, "threads", 1))

    @property
    def timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def progress(self) -> Progress:
        return Progress(self.timesteps, self.settings.timesteps, self.unit)

    def train(self, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        """``model.learn`` up to ``settings.timesteps`` steps in total; a callback returning
        False or ``request_stop`` (Ctrl-C) stops it after an update."""
        remaining = self.settings.timesteps - self.timesteps
        for callback in callbacks:
            callback.on_train_start(self)
        if remaining > 0:
            try:
                with torch_threads(self.threads):
                    self.model.learn(
                        remaining,
                        callback=_ForwardMetrics(self, callbacks),
                        log_interval=self.log_interval,  # type: ignore[arg-type]
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
        """SB3's ``evaluate_policy(model, env, n_eval_episodes=10)`` (the course's), seeded
        apart from training; ``Mean reward: X +/- Y``."""
        episodes = 10 if episodes is None else episodes
        seed = int(getattr(self.settings, "seed", 0))
        env = DummyVecEnv([lambda: Monitor(self.make_env())])
        env.seed(10_000 + seed)
        try:
            with torch_threads(self.threads):
                returns, _ = evaluate_policy(
                    self.model,
                    env,
                    n_eval_episodes=episodes,
                    deterministic=True,
                    return_episode_rewards=True,
                )
        finally:
            env.close()
        with torch_threads(self.threads):
            return evaluation(np.asarray(returns, dtype=float), self.act, video, seed)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with written_whole(path / MODEL_ZIP) as partial:
            self.model.save(partial)
        write_json(
            path / TRAINER_JSON, {"config": asdict(self.settings), "timesteps": self.timesteps}
        )

    @classmethod
    def load(cls, path: Path, settings: Any = None) -> SB3Base:
        """Rebuild from ``save``'s folder, with ``settings`` (the run's; None: the saved ones)."""
        path = Path(path)
        try:
            info = json.loads((path / TRAINER_JSON).read_text())
            config = settings if settings is not None else cls.settings_class(**info["config"])
            algorithm = cls.algorithms[cls.algorithm_of(config)]
            model = algorithm.load(path / MODEL_ZIP, env=cls.make_env())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} holds no usable SB3 model ({exc})") from None
        return cls(config, model)


class SB3Trainer(SB3Base):
    """The course's run: Stable-Baselines3 PPO (or A2C) on CartPole-v1 with SB3's defaults,
    evaluated with SB3's ``evaluate_policy``."""

    task = "cartpole"
    algorithms = {"ppo": PPO, "a2c": A2C}
    settings_class = SB3Config
    logged = ON_POLICY_KEYS
    log_interval = 1  # as the course's script: SB3 dumps after each rollout

    @property
    def config(self) -> SB3Config:
        return self.settings


#: the course's algorithms (kept for code that imported them from here)
ALGORITHMS = SB3Trainer.algorithms
