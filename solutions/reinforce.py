"""REINFORCE: discounted returns-to-go and the policy-gradient loss −log π(a|s) · G."""

from __future__ import annotations

import torch


def returns_to_go(
    rewards: torch.Tensor, gamma: float, dones: torch.Tensor | None = None
) -> torch.Tensor:
    """G_t = r_t + γ·G_{t+1}, restarting after every step whose ``dones[t]`` is true. [T] → [T]."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        if dones is not None and bool(dones[t]):
            running = torch.zeros((), dtype=rewards.dtype)
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def reinforce_loss(
    log_probs: torch.Tensor, returns: torch.Tensor, normalize: bool = True
) -> torch.Tensor:
    """−mean(log π · Ĝ), Ĝ standardized when ``normalize``; no gradient into the returns."""
    g = returns.detach()
    if normalize:
        g = (g - g.mean()) / (g.std() + 1e-8)
    return -(log_probs * g).mean()
