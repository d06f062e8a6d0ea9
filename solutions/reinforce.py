"""REINFORCE: discounted returns-to-go and the policy-gradient loss −log π(a|s) · G."""

from __future__ import annotations

import torch


def returns_to_go(
    rewards: torch.Tensor, gamma: float, dones: torch.Tensor | None = None
) -> torch.Tensor:
    """Discounted returns-to-go G_t = r_t + γ·G_{t+1}, restarting after episode ends. [T] → [T].

    Math: walk backwards in time: G_{T−1} = r_{T−1}, then G_t = r_t + γ·G_{t+1}. When
    ``dones[t]`` is true the episode ended at step t, so G_t = r_t: nothing from the next
    episode leaks in (the running sum restarts).

    Shapes: ``rewards`` [T] float; ``dones`` [T] bool, or None (one single episode);
    result [T] in the rewards' dtype. The inputs carry no gradient (plain data).

    Pitfalls: γ multiplies the *future* (G_{t+1}), not the past — a forward cumulative sum is
    wrong. Ignoring ``dones`` mixes episodes. Do not modify ``rewards`` in place.
    """
    # A recursion backwards in time, in plain Python floats (a tensor op per step is ~20x slower).
    r = rewards.detach().tolist()
    ended = [False] * len(r) if dones is None else [bool(d) for d in dones.tolist()]
    returns = [0.0] * len(r)
    running = 0.0
    for t in reversed(range(len(r))):
        if ended[t]:
            running = 0.0
        running = r[t] + gamma * running
        returns[t] = running
    return torch.tensor(returns, dtype=rewards.dtype, device=rewards.device)


def reinforce_loss(
    log_probs: torch.Tensor, returns: torch.Tensor, normalize: bool = True
) -> torch.Tensor:
    """The REINFORCE loss −mean(log π(a_t|s_t) · Ĝ_t), a scalar. [T], [T] → [].

    Math: minimizing L = −mean_t(log π_t · Ĝ_t) follows the policy gradient (minus sign: we
    minimize). With ``normalize`` (the default), Ĝ = (G − mean(G)) / (std(G) + 1e-8) using
    torch's default (unbiased) ``std``; this baseline lowers the variance. Otherwise Ĝ = G.

    Shapes: ``log_probs`` [T] (carries the gradient), ``returns`` [T] → a 0-dim tensor.

    Pitfalls: the returns are targets, not something to learn: ``detach`` them so no gradient
    flows into ``returns``. Use the mean over steps (not the sum), and the minus sign.
    """
    g = returns.detach()
    if normalize:
        g = (g - g.mean()) / (g.std() + 1e-8)
    return -(log_probs * g).mean()
