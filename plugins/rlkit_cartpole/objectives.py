"""REINFORCE and PPO-clip as Objectives, built from the exercise functions.

``impl="solution"`` uses the reference solutions; ``impl="student"`` the student's own files
(``log_prob.py``, ``reinforce.py``, ``ppo.py`` in ``path``). Every formula the course asks
students to write is called from here, and only from here:

- REINFORCE: ``returns_to_go`` → ``log_prob`` → ``reinforce_loss``  (``entropy`` for the plot)
- PPO:       ``gae`` → ``log_prob``, ``entropy`` → ``ppo_clip_loss``
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rlkit.errors import RlkitError
from rlkit.impl import load_exercise_functions
from rlkit.interfaces import Objective
from rlkit_cartpole.policy import CartPolePolicy
from rlkit_cartpole.rollout import GaeSegment


def checked(value: Any, shape: torch.Size | tuple[int, ...], function: str) -> torch.Tensor:
    """An exercise function's result, if it is a tensor of the contract's shape.

    A student's function that returns the wrong thing stops the run with one line naming it,
    instead of a torch error deep inside the trainer.
    """
    if isinstance(value, torch.Tensor) and value.shape == shape:
        return value
    got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else repr(value)[:40]
    exercise = function.partition(".")[0]
    raise RlkitError(
        f"your {function} returned {got}, not a tensor of shape {tuple(shape)}; "
        f"run `rlkit check {exercise}` for a precise diagnosis"
    )


def finite(value: float, function: str) -> float:
    """A loss value, if it is a number (not nan or inf)."""
    if not math.isfinite(value):
        raise RlkitError(
            f"your {function} returned {value}; run `rlkit check {function.partition('.')[0]}`"
        )
    return value


class ReinforceObjective(Objective):
    """L = −mean(log π(a_t|s_t) · Ĝ_t) over whole episodes (Ĝ: standardized returns-to-go)."""

    name = "reinforce"

    def __init__(
        self,
        impl: str = "solution",
        path: Path | None = None,
        gamma: float = 0.99,
        normalize: bool = True,
    ) -> None:
        self.probs = load_exercise_functions("log_prob", impl, path)
        self.reinforce = load_exercise_functions("reinforce", impl, path)
        self.gamma = gamma
        self.normalize = normalize

    def returns(self, rewards: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        """G_t for episodes laid end to end (``dones`` marks each episode's last step)."""
        returns = self.reinforce.returns_to_go(rewards, self.gamma, dones)
        return checked(returns, rewards.shape, "reinforce.returns_to_go")

    def __call__(
        self, policy: CartPolePolicy, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logits = policy.logits(batch["obs"])
        log_probs = self.probs.log_prob(logits, batch["actions"])
        checked(log_probs, batch["actions"].shape, "log_prob.log_prob")
        loss = self.reinforce.reinforce_loss(log_probs, batch["returns"], normalize=self.normalize)
        checked(loss, (), "reinforce.reinforce_loss")
        with torch.no_grad():
            entropy = checked(self.probs.entropy(logits), logits.shape[:-1], "log_prob.entropy")
        return loss, {
            "policy_loss": finite(loss.item(), "reinforce.reinforce_loss"),
            "entropy": entropy.mean().item(),
        }


class PPOObjective(Objective):
    """PPO-clip with a critic: L = L_clip + c_v · (V(s) − R)² − c_e · H(π(·|s)) (as SB3 writes it).

    Advantages are standardized per minibatch (as SB3 and CleanRL do) before they reach
    ``ppo_clip_loss``; the exercise function itself takes them as given.
    """

    name = "ppo"

    def __init__(
        self,
        impl: str = "solution",
        path: Path | None = None,
        gamma: float = 0.99,
        lam: float = 0.95,
        clip_eps: float = 0.2,
        vf_coef: float = 0.5,
        ent_coef: float = 0.0,
    ) -> None:
        self.probs = load_exercise_functions("log_prob", impl, path)
        self.ppo = load_exercise_functions("ppo", impl, path)
        self.gamma, self.lam = gamma, lam
        self.clip_eps, self.vf_coef, self.ent_coef = clip_eps, vf_coef, ent_coef

    def advantages(self, segments: Sequence[GaeSegment]) -> tuple[torch.Tensor, torch.Tensor]:
        """(advantages, returns) of the segments laid end to end: ``gae`` on each, with its
        bool ``dones`` and its ``last_value``, exactly as the exercise teaches it."""
        advantages, returns = [], []
        for seg in segments:
            result = self.ppo.gae(
                seg.rewards, seg.values, seg.dones, seg.last_value, gamma=self.gamma, lam=self.lam
            )
            if not (isinstance(result, tuple) and len(result) == 2):
                raise RlkitError(
                    "your ppo.gae must return a pair (advantages, returns); run `rlkit check ppo`"
                )
            advantages.append(checked(result[0], seg.rewards.shape, "ppo.gae (advantages)"))
            returns.append(checked(result[1], seg.rewards.shape, "ppo.gae (returns)"))
        return torch.cat(advantages).detach(), torch.cat(returns).detach()

    def old_log_probs(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π_old(a|s) of the policy that collected the data (no gradient)."""
        with torch.no_grad():
            return checked(self.probs.log_prob(logits, actions), actions.shape, "log_prob.log_prob")

    def __call__(
        self, policy: CartPolePolicy, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        obs = batch["obs"]
        logits = policy.logits(obs)
        log_probs = self.probs.log_prob(logits, batch["actions"])
        checked(log_probs, batch["actions"].shape, "log_prob.log_prob")
        entropy = checked(self.probs.entropy(logits), logits.shape[:-1], "log_prob.entropy").mean()
        adv = batch["advantages"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8) if adv.numel() > 1 else adv
        policy_loss = self.ppo.ppo_clip_loss(
            log_probs, batch["old_log_probs"], adv, clip_eps=self.clip_eps
        )
        checked(policy_loss, (), "ppo.ppo_clip_loss")
        value_loss = (policy.value(obs) - batch["returns"]).pow(2).mean()
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy
        with torch.no_grad():
            log_ratio = log_probs - batch["old_log_probs"]
            clipped = ((log_ratio.exp() - 1.0).abs() > self.clip_eps).float().mean()
            approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean()
        return loss, {
            "policy_loss": finite(policy_loss.item(), "ppo.ppo_clip_loss"),
            "value_loss": value_loss.item(),
            "entropy": entropy.item(),
            "clip_fraction": float(clipped),
            "approx_kl": float(approx_kl),
        }
