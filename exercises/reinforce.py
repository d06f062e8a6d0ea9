"""Exercise 2 — REINFORCE.

The policy gradient ∇θ J ≈ Σ_t ∇θ log πθ(a_t|s_t) · G_t says: make each action likelier in
proportion to the return G_t that followed it. Here you compute those returns and turn the
estimator into a loss that an optimizer can minimize.

Fill in each place marked ``# YOUR CODE HERE`` (delete the ``raise`` line), then run
``rlkit check reinforce``.
"""

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
    # YOUR CODE HERE
    raise NotImplementedError()


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
    # YOUR CODE HERE
    raise NotImplementedError()
