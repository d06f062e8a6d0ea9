"""The course's CartPole policy: an MLP with two hidden layers of 64 units, 4 inputs, 2 logits,
softmax. PPO adds a critic of the same shape that estimates V(s).

The policy returns raw logits; the Objectives turn them into log π(a|s) and entropy with the
exercise functions (the student's own with ``--impl student``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rlkit.interfaces import Policy

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(sizes: list[int], out_gain: float, activation: str = "tanh") -> nn.Sequential:
    """Linear layers with an activation between them, orthogonally initialized (as in SB3 and
    CleanRL)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, out_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class CartPolePolicy(Policy, nn.Module):
    """π(a|s) = softmax(actor(s)); optionally a critic V(s) for PPO.

    A small last-layer gain (0.01) starts the policy near uniform (entropy ≈ log 2): the
    "scissors" then show entropy falling from its maximum as the reward rises.
    """

    def __init__(
        self,
        obs_dim: int = 4,
        n_actions: int = 2,
        hidden: int = 64,
        critic: bool = True,
        activation: str = "tanh",
    ) -> None:
        nn.Module.__init__(self)
        self.actor = mlp([obs_dim, hidden, hidden, n_actions], 0.01, activation)
        self.critic = mlp([obs_dim, hidden, hidden, 1], 1.0, activation) if critic else None

    @staticmethod
    def _tensor(states: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(states, dtype=torch.float32)

    def logits(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Unnormalized log-probabilities, shape ``[B, 2]``."""
        return self.actor(self._tensor(states))

    def value(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The critic's V(s), shape ``[B]``."""
        if self.critic is None:
            raise RuntimeError("this policy was built without a critic")
        return self.critic(self._tensor(states)).squeeze(-1)

    @torch.no_grad()
    def act(self, states: np.ndarray | torch.Tensor, deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of states: sampled from π (torch's global RNG), or the likeliest."""
        logits = self.logits(states)
        if deterministic:
            return logits.argmax(dim=-1).numpy()
        return torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(-1).numpy()

    def log_prob(self, states: np.ndarray | torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        log_pi = torch.log_softmax(self.logits(states), dim=-1)
        return log_pi.gather(-1, torch.as_tensor(actions).long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        log_pi = torch.log_softmax(self.logits(states), dim=-1)
        return -(log_pi.exp() * log_pi).sum(dim=-1)
