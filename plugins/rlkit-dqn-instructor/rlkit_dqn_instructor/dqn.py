"""DQN: the Bellman targets (plain and Double DQN) and the Huber loss (reference solution)."""

from __future__ import annotations

import torch


def td_target(
    rewards: torch.Tensor, next_q_values: torch.Tensor, dones: torch.Tensor, gamma: float
) -> torch.Tensor:
    """The DQN target y = r + γ·(1 − done)·max_a' Q_target(s', a'). [B], [B, A], [B] → [B].

    Math: the Bellman optimality equation says the value of taking action a in state s is the
    reward plus the discounted value of acting greedily afterwards:
        Q*(s, a) = E[ r + γ·max_a' Q*(s', a') ]
    DQN turns it into a regression target, computed with a slowly-updated copy of the network
    (the *target network*): y = r + γ·(1 − done)·max_a' Q_target(s', a'). When the episode
    ended at this step (``dones`` true) there is no next state: y = r.

    Shapes: ``rewards`` [B] float; ``next_q_values`` [B, A] float (Q_target(s', a') for every
    action a'); ``dones`` [B] bool; ``gamma`` a float. Result [B] in the rewards' dtype.

    The result carries no gradient: it is the label the online network is regressed onto, so
    return it detached (or compute it under ``torch.no_grad()``).

    Pitfalls: the max is over the actions (the last dimension), not over the batch; multiply
    the bootstrap by (1 − done), not the reward; γ multiplies the next value only; do not
    modify the inputs in place.
    """
    with torch.no_grad():  # a label: no gradient flows through it
        best_next = next_q_values.max(dim=-1).values
        not_done = 1.0 - dones.to(rewards.dtype)
        return rewards + gamma * not_done * best_next.to(rewards.dtype)


def double_dqn_target(
    rewards: torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """The Double DQN target y = r + γ·(1 − done)·Q_target(s', argmax_a' Q_online(s', a')).
    [B], [B, A], [B, A], [B] → [B].

    Math: the max in DQN's target both *chooses* and *values* the next action with the same
    noisy estimates, so it is biased upwards (the max of noisy values overestimates). Double
    DQN decouples the two: the online network chooses a* = argmax_a' Q_online(s', a'), the
    target network values it: y = r + γ·(1 − done)·Q_target(s', a*). With ``dones`` true,
    y = r.

    Shapes: ``rewards`` [B] float; ``next_q_online`` and ``next_q_target`` [B, A] float (the
    two networks' Q-values of the next state); ``dones`` [B] bool; ``gamma`` a float.
    Result [B] in the rewards' dtype.

    The result carries no gradient (it is a label): return it detached.

    Pitfalls: the argmax comes from the *online* network and the value from the *target*
    network (swapping them, or taking the target's own max, is plain DQN again); pick the
    value with ``gather`` along the action dimension; (1 − done) multiplies the bootstrap.
    """
    with torch.no_grad():
        chosen = next_q_online.argmax(dim=-1, keepdim=True)  # the online network chooses
        value = next_q_target.gather(-1, chosen).squeeze(-1)  # the target network values
        not_done = 1.0 - dones.to(rewards.dtype)
        return rewards + gamma * not_done * value.to(rewards.dtype)


def dqn_loss(q_values: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The DQN loss: mean Huber loss (δ = 1) between Q(s, a) and the targets. [B, A], [B], [B] → [].

    Math: the online network is regressed onto the targets y. Only the action that was taken
    has a target, so pick Q(s, a) = q_values[i, actions[i]]; with the error x = Q(s, a) − y,
        Huber(x) = ½·x²        if |x| ≤ 1
                   |x| − ½     otherwise
    and the loss is the mean over the batch. Huber is quadratic near 0 (like the squared
    error) but linear for large errors, so one surprising transition cannot blow up the
    gradient: ∂Huber/∂x = clip(x, −1, 1).

    Shapes: ``q_values`` [B, A] float (the online network's Q(s, ·)); ``actions`` [B] int64;
    ``targets`` [B] float. Result a 0-dim tensor.

    Gradients flow into ``q_values`` only: the targets are labels (detach them), and only the
    entries of the actions taken get a gradient.

    Pitfalls: select with ``gather`` along the action dimension (indexing the wrong dimension
    mixes up samples); the squared error (MSE) is not Huber; the mean, not the sum; δ = 1
    (``smooth_l1_loss``/``huber_loss`` with their defaults agree here).
    """
    q_taken = q_values.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    return torch.nn.functional.smooth_l1_loss(q_taken, targets.detach(), beta=1.0)
