"""PPO: the clipped surrogate loss and generalized advantage estimation (GAE)."""

from __future__ import annotations

import torch


def ppo_clip_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
) -> torch.Tensor:
    """PPO's clipped surrogate loss −mean(min(r·A, clip(r, 1−ε, 1+ε)·A)). [N], [N], [N] → [].

    Math: r = πθ(a|s) / πθ_old(a|s) = exp(log_probs − old_log_probs). The objective takes the
    smaller ("pessimistic") of the unclipped r·A and the clipped clip(r, 1−ε, 1+ε)·A, so once
    the ratio has moved past 1±ε in the advantage's direction the gradient is exactly zero.

    Shapes: all inputs [N] float; result a 0-dim tensor.

    Gradients flow into ``log_probs`` only: ``old_log_probs`` and ``advantages`` are data
    collected earlier — detach them.

    Pitfalls: clip the ratio *and then* multiply by A inside the min (clipping the product
    r·A is wrong); take the min, not the max; mean, not sum; minus sign (we minimize).
    """
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
    """Generalized advantage estimation. [T], [T], [T], float → (advantages [T], returns [T]).

    Math: with V_T = ``last_value`` (the critic's value of the state after the last step),
        δ_t = r_t + γ·V_{t+1}·(1 − done_t) − V_t
        A_t = δ_t + γλ·(1 − done_t)·A_{t+1}      (A_T = 0, computed backwards in time)
        returns_t = A_t + V_t
    ``dones[t]`` true means the episode ended at step t: nothing is bootstrapped across it
    (neither V_{t+1} nor A_{t+1}).

    Shapes: ``rewards``, ``values`` [T] float, ``dones`` [T] bool. Both outputs are
    [T] in the rewards' dtype. Plain data: the inputs carry no gradient (trainers pass them so).

    Pitfalls: the "next value" of step t is V_{t+1} (off-by-one); use λ only in the recursion
    of A, γ in both; apply (1 − done_t) to both terms; do not modify the inputs in place.
    """
    # A recursion backwards in time. Plain Python floats: one tensor op per step would cost
    # ~20x more, and trainers call this on every rollout.
    r, v = rewards.detach().tolist(), values.detach().tolist()
    not_done = [0.0 if d else 1.0 for d in dones.tolist()]
    advantages = [0.0] * len(r)
    next_value, running = float(last_value), 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * next_value * not_done[t] - v[t]
        running = delta + gamma * lam * not_done[t] * running
        advantages[t] = running
        next_value = v[t]
    adv = torch.tensor(advantages, dtype=rewards.dtype, device=rewards.device)
    return adv, adv + values.detach()
