"""Classic mistakes and alternative correct answers for exercise 3 (PPO)."""

from __future__ import annotations

import numpy as np
import torch

from rlkit_grader.spec import Alternative, Mistake


def _clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2, *, variant=""):
    old = old_log_probs if variant == "old_not_detached" else old_log_probs.detach()
    adv = advantages if variant == "adv_not_detached" else advantages.detach()
    eps = 0.2 if variant == "eps_ignored" else clip_eps
    if variant == "log_ratio":
        ratio = log_probs / old
    elif variant == "inverted":
        ratio = torch.exp(old - log_probs)
    else:
        ratio = torch.exp(log_probs - old)
    unclipped = ratio * adv
    if variant == "clip_product":
        clipped = torch.clamp(ratio * adv, 1 - eps, 1 + eps)
    else:
        clipped = torch.clamp(ratio, 1 - eps, 1 + eps) * adv
    if variant == "no_clip":
        surrogate = unclipped
    elif variant == "max":
        surrogate = torch.max(unclipped, clipped)
    else:
        surrogate = torch.min(unclipped, clipped)
    if variant == "sum":
        return -surrogate.sum()
    return surrogate.mean() if variant == "sign" else -surrogate.mean()


def _clip_mistake(variant):
    def loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
        return _clip_loss(log_probs, old_log_probs, advantages, clip_eps, variant=variant)

    return loss


def _clip_exp_over_exp(log_probs, old_log_probs, advantages, clip_eps=0.2):
    ratio = torch.exp(log_probs) / torch.exp(old_log_probs.detach())
    a = advantages.detach()
    return -torch.min(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a).mean()


def _gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95, *, variant=""):
    t_max = rewards.shape[0]
    not_done = 1.0 - dones.to(rewards.dtype)
    if variant == "ignores_dones":
        not_done = torch.ones_like(rewards)
    adv = rewards if variant == "inplace" else torch.zeros_like(rewards)  # reuses the input
    nxt = torch.as_tensor(0.0 if variant == "no_last_value" else last_value, dtype=rewards.dtype)
    running = torch.zeros((), dtype=rewards.dtype)
    steps = range(t_max) if variant == "forward" else range(t_max - 1, -1, -1)
    for t in steps:
        next_value = values[t] if variant == "next_value_off_by_one" else nxt
        if variant == "forward":
            next_value = values[t + 1] if t + 1 < t_max else nxt
        mask = not_done[t]
        if variant == "done_shifted":
            mask = not_done[t + 1] if t + 1 < t_max else torch.ones((), dtype=rewards.dtype)
        g = gamma * lam if variant == "lambda_in_delta" else gamma
        delta = rewards[t] + g * next_value * mask - values[t]
        rec_mask = 1.0 if variant == "done_only_in_delta" else mask
        running = delta + gamma * lam * rec_mask * running
        adv[t] = running
        nxt = values[t]
    if variant == "returns_without_values":
        return adv, adv.clone()
    return adv, adv + values


def _gae_mistake(variant):
    def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
        return _gae(rewards, values, dones, last_value, gamma, lam, variant=variant)

    return gae


MISTAKES = [
    Mistake(
        "clip_product",
        "ppo_clip_loss",
        "clips the product r·A instead of the ratio: clip(r, 1-ε, 1+ε) · A.",
        _clip_mistake("clip_product"),
    ),
    Mistake(
        "max_instead_of_min",
        "ppo_clip_loss",
        "takes the max of the two surrogates; PPO is pessimistic: take the min.",
        _clip_mistake("max"),
    ),
    Mistake(
        "clip_loss_wrong_sign",
        "ppo_clip_loss",
        "the sign is flipped: the loss is -mean(min(...)) because we minimize.",
        _clip_mistake("sign"),
    ),
    Mistake(
        "clip_loss_sum",
        "ppo_clip_loss",
        "sums over samples instead of averaging.",
        _clip_mistake("sum"),
    ),
    Mistake(
        "old_log_probs_not_detached",
        "ppo_clip_loss",
        "lets the gradient flow into old_log_probs: detach them, they come from the "
        "policy that collected the data.",
        _clip_mistake("old_not_detached"),
    ),
    Mistake(
        "advantages_not_detached",
        "ppo_clip_loss",
        "lets the gradient flow into the advantages: detach them, they are data.",
        _clip_mistake("adv_not_detached"),
    ),
    Mistake(
        "ratio_of_log_probs",
        "ppo_clip_loss",
        "divides log-probs; the ratio is π/π_old = exp(log π - log π_old).",
        _clip_mistake("log_ratio"),
    ),
    Mistake(
        "inverted_ratio",
        "ppo_clip_loss",
        "inverts the ratio: r = exp(log_probs - old_log_probs), new over old.",
        _clip_mistake("inverted"),
    ),
    Mistake(
        "no_clipping",
        "ppo_clip_loss",
        "never clips: without min(r·A, clip(r)·A) one update can move the policy too far.",
        _clip_mistake("no_clip"),
    ),
    Mistake(
        "clip_eps_ignored",
        "ppo_clip_loss",
        "ignores the clip_eps argument (hard-codes 0.2).",
        _clip_mistake("eps_ignored"),
    ),
    Mistake(
        "ratio_exp_over_exp",
        "ppo_clip_loss",
        "computes the ratio as exp(log_probs) / exp(old_log_probs): for log-probs below about "
        "-104, exp underflows to 0 in float32 and the ratio is 0/0 = nan; use "
        "exp(log_probs - old_log_probs).",
        _clip_exp_over_exp,
    ),
    Mistake(
        "gae_next_value_off_by_one",
        "gae",
        "bootstraps from V_t instead of V_{t+1}: the next value of step t is values[t+1] "
        "(last_value after the last step).",
        _gae_mistake("next_value_off_by_one"),
    ),
    Mistake(
        "gae_ignores_dones",
        "gae",
        "ignores dones, so advantages bootstrap across episode ends.",
        _gae_mistake("ignores_dones"),
    ),
    Mistake(
        "gae_lambda_in_delta",
        "gae",
        "puts λ in the TD error; δ_t = r_t + γ·V_{t+1}·(1-done_t) - V_t uses γ only.",
        _gae_mistake("lambda_in_delta"),
    ),
    Mistake(
        "gae_done_only_in_delta",
        "gae",
        "masks the TD error but not the recursion: A_t = δ_t + γλ·(1-done_t)·A_{t+1}.",
        _gae_mistake("done_only_in_delta"),
    ),
    Mistake(
        "gae_done_shifted",
        "gae",
        "uses the next step's done flag; here dones[t] means the episode ended at step t.",
        _gae_mistake("done_shifted"),
    ),
    Mistake(
        "gae_returns_without_values",
        "gae",
        "returns the advantages as returns; returns = advantages + values.",
        _gae_mistake("returns_without_values"),
    ),
    Mistake(
        "gae_ignores_last_value",
        "gae",
        "bootstraps the last step from 0 instead of last_value.",
        _gae_mistake("no_last_value"),
    ),
    Mistake(
        "gae_forward_in_time",
        "gae",
        "runs the recursion forwards; A_t depends on A_{t+1}, so go backwards from T-1.",
        _gae_mistake("forward"),
    ),
    Mistake(
        "gae_modifies_inputs",
        "gae",
        "writes the advantages into the rewards tensor, destroying the caller's data; "
        "compute into a new tensor (torch.zeros_like(rewards)).",
        _gae_mistake("inplace"),
    ),
]


def _clip_where(log_probs, old_log_probs, advantages, clip_eps=0.2):
    ratio = (log_probs - old_log_probs.detach()).exp()
    adv = advantages.detach()
    objective = torch.where(
        adv >= 0,
        torch.minimum(ratio, torch.tensor(1 + clip_eps)) * adv,
        torch.maximum(ratio, torch.tensor(1 - clip_eps)) * adv,
    )
    return -objective.mean()


def _clip_neg_max(log_probs, old_log_probs, advantages, clip_eps=0.2):
    ratio = torch.exp(log_probs - old_log_probs.detach())
    a = advantages.detach()
    return torch.max(-ratio * a, -ratio.clip(1 - clip_eps, 1 + clip_eps) * a).mean()


def _gae_lists(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    values_next = torch.cat([values[1:], torch.tensor([last_value], dtype=values.dtype)])
    out, running = [], 0.0
    for t in reversed(range(len(rewards))):
        keep = 0.0 if dones[t] else 1.0
        delta = rewards[t] + gamma * values_next[t] * keep - values[t]
        running = delta + gamma * lam * keep * running
        out.append(running)
    adv = torch.stack(out[::-1]).to(rewards.dtype)
    return adv, adv + values


def _gae_numpy(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    r, v, d = rewards.numpy(), values.numpy(), dones.numpy().astype(bool)
    adv = np.zeros_like(r)
    last = 0.0
    for t in range(len(r) - 1, -1, -1):
        nv = last_value if t == len(r) - 1 else v[t + 1]
        nonterminal = 0.0 if d[t] else 1.0
        delta = r[t] + gamma * nv * nonterminal - v[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    adv_t = torch.from_numpy(adv)
    return adv_t, adv_t + values


def _gae_matrix(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    t_max = rewards.shape[0]
    keep = 1.0 - dones.to(rewards.dtype)
    next_values = torch.cat([values[1:], values.new_tensor([last_value])])
    deltas = rewards + gamma * next_values * keep - values
    episode = torch.zeros(t_max, dtype=torch.long)
    episode[1:] = torch.cumsum(dones[:-1].long(), 0)
    i = torch.arange(t_max)
    power = (i[None, :] - i[:, None]).clamp(min=0)
    same = (episode[None, :] == episode[:, None]) & (i[None, :] >= i[:, None])
    weights = torch.where(
        same,
        torch.as_tensor(gamma * lam, dtype=rewards.dtype) ** power,
        torch.zeros((), dtype=rewards.dtype),
    )
    adv = weights @ deltas
    return adv, adv + values


def _gae_not_dones(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    keep = (~dones).to(rewards.dtype)  # dones is bool: ~ is logical not
    next_values = torch.cat([values[1:], values.new_tensor([last_value])])
    deltas = rewards + gamma * next_values * keep - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype)
    for t in range(len(rewards) - 1, -1, -1):
        running = deltas[t] + gamma * lam * keep[t] * running
        adv[t] = running
    return adv, adv + values


def _gae_where(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    zero = torch.zeros((), dtype=rewards.dtype)
    next_values = torch.cat([values[1:], values.new_tensor([last_value])])
    deltas = rewards + gamma * torch.where(dones, zero, next_values) - values
    adv = torch.zeros_like(rewards)
    running = zero
    for t in reversed(range(len(rewards))):
        running = deltas[t] + torch.where(dones[t], zero, gamma * lam * running)
        adv[t] = running
    return adv, adv + values


ALTERNATIVES = [
    Alternative("where_by_advantage_sign", "ppo_clip_loss", _clip_where),
    Alternative("negated_max_exp_ratio", "ppo_clip_loss", _clip_neg_max),
    Alternative("python_lists", "gae", _gae_lists),
    Alternative("numpy_loop", "gae", _gae_numpy),
    Alternative("discount_matrix", "gae", _gae_matrix),
    Alternative("logical_not_dones", "gae", _gae_not_dones),
    Alternative("where_dones", "gae", _gae_where),
]
