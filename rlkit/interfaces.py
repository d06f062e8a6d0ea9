"""The course's four ideas as small interfaces: Env, Policy, Objective, Trainer.

One idea runs through all of them: a language model is a policy π(y|x) exactly like a CartPole
policy π(a|s). The *state* is a CartPole observation or a prompt; the *action* is a push left/right
or a completion. REINFORCE, PPO-clip and DPO are Objectives over the same Policy interface, built
from the exercise functions (the student's own, or the reference solutions).

Torch is only imported for type checking, so importing this module stays instant.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, SupportsFloat, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = ["Env", "Policy", "Objective", "Callback", "Trainer", "Evaluation", "Progress"]


@runtime_checkable
class Env(Protocol):
    """An environment with the gymnasium API; every ``gymnasium.Env`` satisfies it.

    The loop of the course: ``obs, info = env.reset(seed=0)``, then repeatedly choose an action,
    ``obs, reward, terminated, truncated, info = env.step(action)``. *terminated* means the task
    itself ended (the pole fell); *truncated* means a time limit cut the episode short, so the
    state still has value worth bootstrapping.
    """

    observation_space: Any
    action_space: Any

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]: ...

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]: ...

    def close(self) -> None: ...


class Policy(ABC):
    """π(action | state): a probability for every action in every state.

    CartPole: a state is 4 floats, an action is 0 (push left) or 1 (push right).
    Language: a state is a prompt, an action is a whole completion, and
    log π(y|x) = Σ_t log π(y_t | x, y_<t).
    Implementations are usually also ``torch.nn.Module``s.
    """

    @abstractmethod
    def act(self, states: Any, deterministic: bool = False) -> Any:
        """Choose an action for each state: sample from π, or take the likeliest one."""

    @abstractmethod
    def log_prob(self, states: Any, actions: Any) -> torch.Tensor:
        """log π(a|s) for each (state, action) pair; shape ``[B]``, differentiable."""

    @abstractmethod
    def entropy(self, states: Any) -> torch.Tensor:
        """H(π(·|s)) = −Σ_a π(a|s) log π(a|s) per state; shape ``[B]``.

        For a language model: the mean per-token entropy over the positions given.
        """


class Objective(ABC):
    """What training minimizes: ``(policy, batch) → (loss, metrics)``.

    ``loss`` is a scalar tensor to call ``backward()`` on; ``metrics`` are plain floats for logs
    and plots (e.g. entropy, clip fraction, reward margin).
    """

    name: ClassVar[str] = "objective"

    @abstractmethod
    def __call__(
        self, policy: Policy, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]: ...


class Callback:
    """Hooks a Trainer calls while it trains (like SB3's callbacks); override what you need.

    ``on_metrics`` may return ``False`` to stop training early (the run stays valid).
    """

    def on_train_start(self, trainer: Trainer) -> None:  # noqa: B027 - optional hook
        pass

    def on_metrics(self, trainer: Trainer, step: int, metrics: Mapping[str, float]) -> bool | None:
        return None

    def on_train_end(self, trainer: Trainer) -> None:  # noqa: B027 - optional hook
        pass


def notify_metrics(
    callbacks: Sequence[Callback], trainer: Trainer, step: int, metrics: Mapping[str, float]
) -> bool:
    """Send metrics to every callback; ``True`` if training should continue (every callback
    agrees, and nobody asked the trainer to stop: Ctrl-C)."""
    keep_going = True
    for callback in callbacks:
        if callback.on_metrics(trainer, step, metrics) is False:
            keep_going = False
    return keep_going and not trainer.stop_requested


@dataclass
class Evaluation:
    """The outcome of evaluating a trained policy: numbers, and the lines a person reads."""

    metrics: dict[str, float]
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Progress:
    """How far training is: ``done`` of ``total`` ``unit``s (e.g. 4096 of 60000 timesteps).
    The progress bar, ``--resume`` ("Resuming RUN at step 3 of 6") and the Ctrl-C message
    read it."""

    done: int
    total: int
    unit: str = "step"


class Trainer(ABC):
    """Trains a Policy on an Env (or a dataset) with an Objective.

    Backends (rlkit's native loops, Stable-Baselines3, TRL) all implement this, so the training
    session (``rlkit.session``), the run directory and ``rlkit eval`` treat them alike. This
    class declares everything the session uses; nothing else is read from a trainer.

    The session builds a trainer as ``Trainer(settings)`` (a new run) or
    ``Trainer.load(model_dir, settings)`` (``--resume``, ``rlkit eval``), where ``settings`` is
    the dataclass instance the TrainerSpec names, and ``model_dir`` is always the run's
    ``model/`` folder. ``train`` runs to the budget in the settings, from where the trainer is
    (a loaded one continues), and stops early when a callback returns False or after
    ``request_stop()`` (Ctrl-C): it finishes the current step and returns normally, so what
    ``save`` writes is consistent and ``--resume`` continues exactly.
    """

    task: ClassVar[str]
    backend: ClassVar[str]
    #: True when ``evaluate(video=...)`` can record the policy (an environment that renders)
    records_video: ClassVar[bool] = False
    #: the settings dataclass instance the trainer was built with (``config.json``'s settings)
    settings: Any
    _stop_requested: bool = False

    @abstractmethod
    def train(self, callbacks: Sequence[Callback] = ()) -> Mapping[str, float]:
        """Train until ``progress().done`` reaches its total (or a callback, or
        ``request_stop``, stops it after a step); a summary of the last metrics."""

    @abstractmethod
    def progress(self) -> Progress:
        """Steps done so far and the total the settings ask for."""

    def request_stop(self) -> None:
        """Ask ``train`` to return after the step under way (Ctrl-C calls this). Trainers that
        report every step through ``notify_metrics`` honour it with no code of their own."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def before_training(self) -> None:  # noqa: B027 - optional hook
        """Called once for a *new* run (not on ``--resume``), in the main process, before its
        run directory is created: load what training needs (a failure leaves no run behind),
        or record what to compare with after training (DPO samples answers)."""

    def after_training(self, run_dir: Path, summary: Mapping[str, float]) -> list[str]:
        """Lines to print once training has finished (not when stopped). By default the
        evaluation the settings ask for: ``eval_episodes`` episodes (0: none)."""
        episodes = getattr(self.settings, "eval_episodes", None)
        if episodes == 0:
            return []
        return [str(self.evaluate(episodes))]

    @abstractmethod
    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """Evaluate the current policy on ``episodes`` episodes (None: the trainer's own
        default); ``video`` records it (only where ``records_video``)."""

    @abstractmethod
    def save(self, model_dir: Path) -> None:
        """Write everything ``load`` needs to evaluate and keep training into ``model_dir``
        (the run's ``model/`` folder); a save interrupted midway keeps the previous one."""

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path, settings: Any = None) -> Trainer:
        """Rebuild a trainer from ``save``'s ``model_dir``, with ``settings`` (the run's, maybe
        changed by ``--resume``; None: those saved with the model, where the trainer keeps
        them)."""
