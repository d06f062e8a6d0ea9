"""Rollouts from many CartPoles at once, with autoreset and the time limit handled: what every
on-policy CartPole algorithm (PPO, A2C, REINFORCE with a critic...) collects before it learns.
Public API (see the package's docstring): another plugin's CartPole trainer builds on it.

gymnasium's vectorized CartPole resets an env *on the step after* its episode ended
(next-step autoreset): the step that ends an episode returns the episode's true final state,
and the next ``step`` call ignores its action, resets that env, and returns reward 0 with
``terminated = truncated = False``. That reset step is no experience: ``Rollout.valid`` is
False there, and everything downstream leaves it out (``env_major``, ``gae_segments``).

An episode cut by the time limit (``truncated``) did not end: the pole was still up and the
state has value. A critic bootstraps from the final state there, which the rollout keeps:
``obs[t + 1]`` after a truncating step ``t`` *is* that final state (the reset comes a step
later), so one batched forward pass over ``obs`` gives V(s_final) with every other value.

    with Rollouts(num_envs=16, seed=0) as rollouts:
        rollout = rollouts.collect(sample, n_steps=32)     # sample(obs [N, 4]) -> actions [N]
        values = critic(rollout.obs.view(-1, 4)).view(33, 16)
        segments = gae_segments(rollout.rewards, values, rollout.terminated,
                                rollout.truncated, rollout.valid)
        obs = env_major(rollout.obs[:-1], torch.from_numpy(rollout.valid))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from rlkit_cartpole.env import OBS_DIM, make_vec_env

__all__ = ["GaeSegment", "Rollout", "Rollouts", "env_major", "gae_segments"]


@dataclass
class Rollout:
    """``n_steps`` steps of ``num_envs`` CartPoles, ``[time, env]``.

    ``obs`` holds ``T + 1`` states: the one each step acted in, then the state after the last
    step (the bootstrap state of every env). ``valid`` is False on autoreset steps.
    ``finished`` and ``lengths`` are the returns and lengths of the episodes that ended during
    the rollout (an episode that began in an earlier rollout counts whole)."""

    obs: torch.Tensor  # [T + 1, N, 4] float32
    actions: torch.Tensor  # [T, N] int64
    rewards: np.ndarray  # [T, N] float32
    terminated: np.ndarray  # [T, N] bool: the pole fell (nothing to bootstrap)
    truncated: np.ndarray  # [T, N] bool: the time limit (bootstrap from obs[t + 1])
    valid: np.ndarray  # [T, N] bool: False on autoreset steps
    finished: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)

    @property
    def n_steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_envs(self) -> int:
        return int(self.actions.shape[1])

    @property
    def dones(self) -> np.ndarray:
        """``terminated | truncated``: the steps that end an episode."""
        return self.terminated | self.truncated


class Rollouts:
    """``num_envs`` CartPole-v1s stepped together (``make_vec_env``); each ``collect`` carries
    on where the previous one stopped (episodes span rollouts), so one instance serves a
    whole training run. Close it (or use it as a context manager) when done."""

    def __init__(self, num_envs: int, seed: int) -> None:
        self.num_envs = num_envs
        self.envs = make_vec_env(num_envs)
        obs, _ = self.envs.reset(seed=seed)
        self.obs: np.ndarray = obs
        #: envs whose next step is their autoreset step
        self.reset_next = np.zeros(num_envs, dtype=bool)
        self.episode_return = np.zeros(num_envs)
        self.episode_length = np.zeros(num_envs, dtype=np.int64)

    def collect(self, sample: Callable[[torch.Tensor], torch.Tensor], n_steps: int) -> Rollout:
        """Step every env ``n_steps`` times with ``sample(obs [N, 4] float32) -> actions [N]``
        (one batched call per step: sample from π, or act greedily)."""
        n = self.num_envs
        obs = torch.zeros(n_steps + 1, n, OBS_DIM)
        actions = torch.zeros(n_steps, n, dtype=torch.long)
        rewards = np.zeros((n_steps, n), dtype=np.float32)
        terminated = np.zeros((n_steps, n), dtype=bool)
        truncated = np.zeros((n_steps, n), dtype=bool)
        valid = np.zeros((n_steps, n), dtype=bool)
        finished: list[float] = []
        lengths: list[float] = []
        for t in range(n_steps):
            obs[t] = torch.from_numpy(self.obs)
            action = sample(obs[t])
            self.obs, reward, term, trunc, _ = self.envs.step(action.numpy())
            actions[t] = action
            rewards[t], terminated[t], truncated[t] = reward, term, trunc
            valid[t] = ~self.reset_next  # an autoreset step is no experience: masked out
            self.reset_next = term | trunc
            self.episode_return += reward
            self.episode_length += valid[t]
            if self.reset_next.any():
                done = self.reset_next
                finished.extend(self.episode_return[done].tolist())
                lengths.extend(self.episode_length[done].tolist())
                self.episode_return[done], self.episode_length[done] = 0.0, 0
        obs[n_steps] = torch.from_numpy(self.obs)
        return Rollout(obs, actions, rewards, terminated, truncated, valid, finished, lengths)

    def close(self) -> None:
        self.envs.close()

    def __enter__(self) -> Rollouts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def env_major(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[time, env, ...]`` → the valid steps of env 0 in time order, then env 1's, …"""
    return x.transpose(0, 1)[valid.T]


class GaeSegment(NamedTuple):
    """One call's worth of ``gae`` input: an env's steps up to a time limit or the rollout's
    end. ``dones`` is bool (an episode terminated at that step); ``last_value`` is V(the state
    after the last step)."""

    rewards: torch.Tensor
    values: torch.Tensor
    dones: torch.Tensor
    last_value: float


def gae_segments(
    rewards: np.ndarray,
    values: torch.Tensor,
    terminated: np.ndarray,
    truncated: np.ndarray,
    valid: np.ndarray,
) -> list[GaeSegment]:
    """Cut a ``[T, N]`` rollout into the 1-D segments the exercise's ``gae`` takes, exactly as
    it is taught: ``dones`` (bool) marks the steps where an episode terminated, and
    ``last_value`` is the critic's value of the state after the segment's last step.

    Each env's valid steps (autoreset steps are left out) form one segment, cut after a
    time-limit step: there the next state of the sequence would be a fresh episode's, while the
    bootstrap must come from the truncated episode's final state. ``values`` is ``[T + 1, N]``:
    V(s_t) for every stored state plus the state after the last step; with next-step autoreset,
    ``values[t + 1]`` after a truncation is V(the episode's final state). Segments come env by
    env, in time order (the order of ``env_major``).
    """
    segments = []
    for env in range(rewards.shape[1]):
        steps = np.flatnonzero(valid[:, env])
        cuts = [i + 1 for i, t in enumerate(steps) if truncated[t, env] and not terminated[t, env]]
        for part in np.split(steps, cuts):
            if len(part) == 0:
                continue
            index = torch.from_numpy(part)
            segments.append(
                GaeSegment(
                    torch.from_numpy(rewards[part, env]).to(values.dtype),
                    values[index, env],
                    torch.from_numpy(terminated[part, env].copy()),
                    float(values[part[-1] + 1, env]),
                )
            )
    return segments
