"""Classic mistakes and alternative correct answers for exercise 2 (REINFORCE)."""

from __future__ import annotations

import numpy as np
import torch

from rlkit_grader.spec import Alternative, Mistake


def _backward(rewards, gamma, dones, reset_after=False, restart=True):
    out = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype)
    for t in range(len(rewards) - 1, -1, -1):
        done = dones is not None and bool(dones[t])
        if done and restart and not reset_after:
            running = torch.zeros((), dtype=rewards.dtype)
        running = rewards[t] + gamma * running
        out[t] = running
        if done and reset_after:
            running = torch.zeros((), dtype=rewards.dtype)
    return out


def _gamma_forward(rewards, gamma, dones=None):
    out = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype)
    for t in range(len(rewards)):
        running = rewards[t] + gamma * running
        out[t] = running
        if dones is not None and bool(dones[t]):
            running = torch.zeros((), dtype=rewards.dtype)
    return out


def _discount_from_start(rewards, gamma, dones=None):
    t = torch.arange(len(rewards), dtype=rewards.dtype)
    return _backward(rewards * torch.as_tensor(gamma, dtype=rewards.dtype) ** t, 1.0, dones)


def _inplace(rewards, gamma, dones=None):
    for t in range(len(rewards) - 2, -1, -1):
        if dones is None or not bool(dones[t]):
            rewards[t] += gamma * rewards[t + 1]
    return rewards


def _loss(
    log_probs,
    returns,
    normalize=True,
    *,
    sign=-1.0,
    reduce="mean",
    detach=True,
    force=None,
    unbiased=True,
    center=True,
):
    g = returns.detach() if detach else returns
    if normalize if force is None else force:
        mean = g.mean() if center else 0.0
        g = (g - mean) / (g.std(unbiased=unbiased) + 1e-8)
    terms = log_probs * g
    return sign * (terms.mean() if reduce == "mean" else terms.sum())


MISTAKES = [
    Mistake(
        "gamma_forward",
        "returns_to_go",
        "discounts the past instead of the future: G_t = r_t + γ·G_{t+1} runs backwards "
        "in time, from the last step.",
        _gamma_forward,
    ),
    Mistake(
        "ignores_dones",
        "returns_to_go",
        "ignores dones, so returns leak across episode boundaries: restart the sum after "
        "a done step.",
        lambda rewards, gamma, dones=None: _backward(rewards, gamma, None),
    ),
    Mistake(
        "restart_one_step_early",
        "returns_to_go",
        "restarts the sum one step too early: G_t at a done step is r_t alone, and the "
        "step before it still sees the done step's reward.",
        lambda rewards, gamma, dones=None: _backward(rewards, gamma, dones, reset_after=True),
    ),
    Mistake(
        "discount_from_episode_start",
        "returns_to_go",
        "uses γ^t counted from the start of the rollout; the discount counts steps from t: "
        "G_t = Σ_k γ^(k-t) r_k.",
        _discount_from_start,
    ),
    Mistake(
        "no_discount",
        "returns_to_go",
        "ignores γ: the returns are plain sums of future rewards.",
        lambda rewards, gamma, dones=None: _backward(rewards, 1.0, dones),
    ),
    Mistake(
        "rewards_modified_in_place",
        "returns_to_go",
        "accumulates into the rewards tensor in place, destroying the caller's data; "
        "build a new tensor.",
        _inplace,
    ),
    Mistake(
        "loss_wrong_sign",
        "reinforce_loss",
        "the sign is flipped: we minimize L = -mean(log π · G) to make good actions likelier.",
        lambda log_probs, returns, normalize=True: _loss(log_probs, returns, normalize, sign=1.0),
    ),
    Mistake(
        "loss_sum",
        "reinforce_loss",
        "sums over steps instead of averaging (use mean).",
        lambda log_probs, returns, normalize=True: _loss(
            log_probs, returns, normalize, reduce="sum"
        ),
    ),
    Mistake(
        "returns_not_detached",
        "reinforce_loss",
        "lets the gradient flow into the returns: use returns.detach(), they are targets.",
        lambda log_probs, returns, normalize=True: _loss(
            log_probs, returns, normalize, detach=False
        ),
    ),
    Mistake(
        "never_normalizes",
        "reinforce_loss",
        "ignores normalize=True: standardize G as (G - mean) / (std + 1e-8).",
        lambda log_probs, returns, normalize=True: _loss(log_probs, returns, force=False),
    ),
    Mistake(
        "always_normalizes",
        "reinforce_loss",
        "standardizes G even when normalize=False.",
        lambda log_probs, returns, normalize=True: _loss(log_probs, returns, force=True),
    ),
    Mistake(
        "biased_std",
        "reinforce_loss",
        "uses the biased std (divides by n); the contract is torch's default unbiased std (n - 1).",
        lambda log_probs, returns, normalize=True: _loss(
            log_probs, returns, normalize, unbiased=False
        ),
    ),
    Mistake(
        "not_centered",
        "reinforce_loss",
        "divides by the std but does not subtract the mean: Ĝ = (G - mean(G)) / (std + 1e-8).",
        lambda log_probs, returns, normalize=True: _loss(
            log_probs, returns, normalize, center=False
        ),
    ),
]


def _rtg_matrix(rewards, gamma, dones=None):
    t = rewards.shape[0]
    episode = torch.zeros(t, dtype=torch.long)
    if dones is not None:
        episode[1:] = torch.cumsum(dones[:-1].long(), 0)
    i = torch.arange(t)
    power = (i[None, :] - i[:, None]).clamp(min=0)
    same = (episode[None, :] == episode[:, None]) & (i[None, :] >= i[:, None])
    weights = torch.where(
        same,
        torch.as_tensor(gamma, dtype=rewards.dtype) ** power,
        torch.zeros((), dtype=rewards.dtype),
    )
    return weights @ rewards


def _rtg_list(rewards, gamma, dones=None):
    out, g = [], 0.0
    for t in reversed(range(len(rewards))):
        if dones is not None and dones[t]:
            g = 0.0
        g = float(rewards[t]) + gamma * g
        out.append(g)
    return torch.tensor(out[::-1], dtype=rewards.dtype)


def _rtg_numpy(rewards, gamma, dones=None):
    r = rewards.numpy()
    d = np.zeros(len(r), bool) if dones is None else dones.numpy().astype(bool)
    out = np.zeros_like(r)
    g = r.dtype.type(0)
    for t in range(len(r) - 1, -1, -1):
        g = r[t] + r.dtype.type(gamma) * g * (not d[t])
        out[t] = g
    return torch.from_numpy(out)


def _rtg_stack(rewards, gamma, dones=None):
    g = torch.zeros((), dtype=rewards.dtype)
    out = []
    for t in range(len(rewards) - 1, -1, -1):
        mask = 0.0 if dones is not None and dones[t] else 1.0
        g = rewards[t] + gamma * g * mask
        out.append(g)
    return torch.stack(out[::-1])


def _loss_std_mean(log_probs, returns, normalize=True):
    g = returns.detach()
    if normalize:
        std, mean = torch.std_mean(g)
        g = (g - mean) / (std + 1e-8)
    return -(log_probs * g).mean()


def _loss_manual(log_probs, returns, normalize=True):
    g = returns.clone().detach()
    n = g.numel()
    if normalize:
        centered = g - g.sum() / n
        g = centered / (torch.sqrt((centered**2).sum() / (n - 1)) + 1e-8)
    return -torch.dot(log_probs, g) / n


ALTERNATIVES = [
    Alternative("discount_matrix", "returns_to_go", _rtg_matrix),
    Alternative("python_floats", "returns_to_go", _rtg_list),
    Alternative("numpy_loop", "returns_to_go", _rtg_numpy),
    Alternative("stack", "returns_to_go", _rtg_stack),
    Alternative("std_mean", "reinforce_loss", _loss_std_mean),
    Alternative("manual_dot", "reinforce_loss", _loss_manual),
]
