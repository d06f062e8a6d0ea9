"""PPO: the clipped surrogate loss and generalized advantage estimation (GAE)."""

from __future__ import annotations

import torch


def ppo_clip_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
) -> torch.Tensor:
    """−mean(min(r·A, clip(r, 1−ε, 1+ε)·A)) with r = exp(log π − log π_old)."""
    advantages = advantages.detach()
    ratio = torch.exp(log_probs - old_log_probs.detach())
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -torch.min(unclipped, clipped).mean()


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: float,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A_t = δ_t + γλ(1−done_t)A_{t+1}, δ_t = r_t + γV_{t+1}(1−done_t) − V_t; returns A + V."""
    rewards, values = rewards.detach(), values.detach()
    not_done = 1.0 - dones.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_value = torch.as_tensor(last_value, dtype=rewards.dtype)
    running = torch.zeros((), dtype=rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
        running = delta + gamma * lam * not_done[t] * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values
