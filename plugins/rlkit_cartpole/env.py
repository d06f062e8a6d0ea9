"""CartPole-v1 from gymnasium, one at a time or many in lock-step, and the course's evaluation.
Public API (see the package's docstring): any CartPole algorithm, in any plugin, uses these.

The native trainers step many CartPoles at once with gymnasium's own numpy-vectorized
``CartPoleVectorEnv`` (``gym.make_vec(..., vectorization_mode="vector_entry_point")``): the real
CartPole-v1 dynamics, 500-step time limit included, for a whole batch in one numpy call.

Its autoreset mode is *next step*: after a step that ends an episode (terminated or truncated),
the returned observation is the episode's true final state, and the *next* ``step`` call
ignores its action, resets that env and returns reward 0 with ``terminated = truncated = False``.
The trainers mark those reset steps invalid and leave them out of the loss
(``rlkit_cartpole.rollout`` does it for you).

The evaluation every CartPole trainer reports, ``evaluate_greedy``, plays its episodes side
by side with seeds apart from training's and prints the course's ``Mean reward: X +/- Y``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.interfaces import Evaluation

__all__ = [
    "ENV_ID", "N_ACTIONS", "OBS_DIM", "SOLVED", "evaluate_actions", "evaluate_greedy",
    "evaluation", "make_env", "make_vec_env",
]  # fmt: skip

ENV_ID = "CartPole-v1"
#: the reward a "solved" CartPole-v1 averages (gymnasium's reward_threshold)
SOLVED = 475.0
#: a state: cart position and velocity, pole angle and angular velocity
OBS_DIM = 4
#: the actions: 0 pushes left, 1 pushes right
N_ACTIONS = 2


def make_env(render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """One ``CartPole-v1``, exactly as the course makes it."""
    return gym.make(ENV_ID, render_mode=render_mode, **kwargs)


def make_vec_env(num_envs: int) -> gym.vector.VectorEnv:
    """``num_envs`` CartPole-v1s stepped together by gymnasium's numpy implementation."""
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point")


def evaluate_actions(
    act: Callable[[np.ndarray], np.ndarray], episodes: int = 10, seed: int = 10_000
) -> np.ndarray:
    """Play ``episodes`` episodes at once with ``act(observations) -> actions``; their returns.

    All episodes run side by side in one vectorized env, one batched ``act`` per step, so a
    10-episode evaluation of a perfect policy costs 500 forward passes, not 5,000.
    """
    envs = make_vec_env(episodes)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            obs, reward, terminated, truncated, _ = envs.step(np.asarray(act(obs)))
            returns += reward * running
            running &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()


def evaluate_greedy(
    act: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    seed: int,
    threads: int,
    video: Path | None = None,
) -> Evaluation:
    """The native trainers' evaluation: ``episodes`` episodes side by side on ``threads`` torch
    threads (seeds apart from training's), the course's ``Mean reward`` line, and a GIF."""
    from rlkit_cartpole.runtime import torch_threads

    with torch_threads(threads):
        returns = evaluate_actions(act, episodes, seed=10_000 + seed)
        return evaluation(returns, act, video, seed=seed)


def evaluation(
    returns: np.ndarray,
    act: Callable[[np.ndarray], np.ndarray],
    video: Path | None = None,
    seed: int = 0,
) -> Evaluation:
    """The course's line ``Mean reward: X +/- Y`` for these episode returns, and a GIF of
    ``act`` playing one more episode when ``video`` names a file."""
    mean, std = float(np.mean(returns)), float(np.std(returns))
    lines = [f"Mean reward: {mean:.2f} +/- {std:.2f}"]
    if video is not None:
        from rlkit_cartpole.video import record_gif

        steps = record_gif(act, Path(video), seed=seed)
        lines.append(f"Wrote {video} (an episode of {steps} steps)")
    metrics = {"mean_reward": mean, "std_reward": std, "episodes": float(len(returns))}
    return Evaluation(metrics, lines)
