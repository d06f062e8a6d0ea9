"""Classic mistakes and alternative correct answers for exercise 1 (log_prob)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlkit_grader.spec import Alternative, Mistake


def _pick(values: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return values.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def _grad_autograd(logits, actions):
    leaf = logits.detach().requires_grad_(True)
    picked = torch.log_softmax(leaf, -1).gather(-1, actions[..., None]).sum()
    return torch.autograd.grad(picked, leaf)[0]


MISTAKES = [
    Mistake(
        "log_softmax_overflow",
        "log_prob",
        "log(softmax(logits)) underflows to log(0) = -inf for large logits; use "
        "torch.log_softmax (or logits - logsumexp(logits)).",
        lambda logits, actions: _pick(torch.log(torch.softmax(logits, -1)), actions),
    ),
    Mistake(
        "unstable_logsumexp",
        "log_prob",
        "exp(logits) overflows for large logits; subtract the max first, or use torch.logsumexp.",
        lambda logits, actions: _pick(logits, actions) - torch.log(torch.exp(logits).sum(-1)),
    ),
    Mistake(
        "softmax_over_batch",
        "log_prob",
        "the softmax runs over the wrong dimension (the batch); normalize over the last "
        "dimension, the actions (dim=-1).",
        lambda logits, actions: _pick(torch.log_softmax(logits, 0), actions),
    ),
    Mistake(
        "probability_not_log",
        "log_prob",
        "returns the probability π(a|s) instead of its logarithm.",
        lambda logits, actions: _pick(torch.softmax(logits, -1), actions),
    ),
    Mistake(
        "log_prob_wrong_sign",
        "log_prob",
        "returns -log π(a|s): the sign is flipped.",
        lambda logits, actions: -_pick(torch.log_softmax(logits, -1), actions),
    ),
    Mistake(
        "raw_logit",
        "log_prob",
        "returns the raw logit of the action, without normalizing (subtract logsumexp).",
        lambda logits, actions: _pick(logits, actions),
    ),
    Mistake(
        "entropy_no_minus",
        "entropy",
        "returns Σ π log π: the minus sign is missing.",
        lambda logits: (torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1),
    ),
    Mistake(
        "entropy_mean",
        "entropy",
        "averages over the actions instead of summing: H = -Σ_a π(a) log π(a).",
        lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).mean(-1),
    ),
    Mistake(
        "entropy_log_softmax_nan",
        "entropy",
        "0 · log(0) gives nan for large logits: take log π from torch.log_softmax and "
        "π = log_pi.exp().",
        lambda logits: -(torch.softmax(logits, -1) * torch.log(torch.softmax(logits, -1))).sum(-1),
    ),
    Mistake(
        "entropy_uses_logits",
        "entropy",
        "uses the logits where log π belongs: -Σ π · logits is not the entropy.",
        lambda logits: -(torch.softmax(logits, -1) * logits).sum(-1),
    ),
    Mistake(
        "entropy_sums_batch",
        "entropy",
        "sums over the batch too: return one entropy per state (sum over dim=-1 only).",
        lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(),
    ),
    Mistake(
        "grad_reversed_sign",
        "grad_log_prob",
        "returns softmax - onehot: the gradient of log π(a) is onehot(a) - softmax(logits).",
        lambda logits, actions: (
            torch.softmax(logits, -1) - F.one_hot(actions, logits.shape[-1]).to(logits.dtype)
        ),
    ),
    Mistake(
        "grad_forgot_softmax",
        "grad_log_prob",
        "subtracts the logits instead of the probabilities softmax(logits).",
        lambda logits, actions: F.one_hot(actions, logits.shape[-1]).to(logits.dtype) - logits,
    ),
    Mistake(
        "grad_only_chosen",
        "grad_log_prob",
        "keeps only the chosen action's entry; every other entry b gets -π(b) too.",
        lambda logits, actions: (
            F.one_hot(actions, logits.shape[-1]).to(logits.dtype) * (1 - torch.softmax(logits, -1))
        ),
    ),
    Mistake(
        "grad_unnormalized",
        "grad_log_prob",
        "uses exp(logits) instead of softmax(logits): the probabilities must be normalized.",
        lambda logits, actions: (
            F.one_hot(actions, logits.shape[-1]).to(logits.dtype) - torch.exp(logits)
        ),
    ),
    Mistake(
        "grad_keeps_graph",
        "grad_log_prob",
        "computes softmax(logits) with autograd on, so the result keeps the logits' graph.",
        lambda logits, actions: (
            F.one_hot(actions, logits.shape[-1]).to(logits.dtype) - torch.softmax(logits, -1)
        ),
    ),
    Mistake(
        "grad_by_autograd",
        "grad_log_prob",
        "asks autograd for the gradient; the exercise is the closed form "
        "onehot(a) - softmax(logits), which needs no autograd.",
        _grad_autograd,
    ),
]


def _lp_shifted(logits, actions):
    z = logits - logits.max(-1, keepdim=True).values
    return _pick(z, actions) - torch.log(torch.exp(z).sum(-1))


def _lp_cross_entropy(logits, actions):
    a = logits.shape[-1]
    flat = F.cross_entropy(logits.reshape(-1, a), actions.reshape(-1), reduction="none")
    return -flat.reshape(actions.shape)


def _entropy_lse(logits):
    return torch.logsumexp(logits, -1) - (torch.softmax(logits, -1) * logits).sum(-1)


def _grad_scatter(logits, actions):
    g = -torch.softmax(logits.detach(), -1)
    return g.scatter_add(-1, actions.unsqueeze(-1), torch.ones_like(g[..., :1]))


def _grad_eye(logits, actions):
    with torch.no_grad():
        eye = torch.eye(logits.shape[-1], dtype=logits.dtype)
        return eye[actions] - torch.log_softmax(logits, -1).exp()


ALTERNATIVES = [
    Alternative(
        "categorical",
        "log_prob",
        lambda logits, actions: torch.distributions.Categorical(logits=logits).log_prob(actions),
    ),
    Alternative(
        "logsumexp",
        "log_prob",
        lambda logits, actions: _pick(logits, actions) - torch.logsumexp(logits, -1),
    ),
    Alternative("max_shift", "log_prob", _lp_shifted),
    Alternative("cross_entropy", "log_prob", _lp_cross_entropy),
    Alternative(
        "one_hot_sum",
        "log_prob",
        lambda logits, actions: (
            F.one_hot(actions, logits.shape[-1]).to(logits.dtype) * torch.log_softmax(logits, -1)
        ).sum(-1),
    ),
    Alternative(
        "take_along_dim",
        "log_prob",
        lambda logits, actions: torch.take_along_dim(
            torch.log_softmax(logits, dim=-1), actions[..., None], dim=-1
        )[..., 0],
    ),
    Alternative(
        "categorical",
        "entropy",
        lambda logits: torch.distributions.Categorical(logits=logits).entropy(),
    ),
    Alternative("logsumexp_minus_mean_logit", "entropy", _entropy_lse),
    Alternative(
        "softmax_times_log_softmax",
        "entropy",
        lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1),
    ),
    Alternative(
        "one_hot_minus_softmax_of_detached",
        "grad_log_prob",
        lambda logits, actions: F.one_hot(actions, logits.shape[-1]) - logits.detach().softmax(-1),
    ),
    Alternative("scatter", "grad_log_prob", _grad_scatter),
    Alternative("eye_no_grad", "grad_log_prob", _grad_eye),
]
