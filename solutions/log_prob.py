"""The log-prob trick: log π(a|s), entropy, and ∇_logits log π(a|s) for a softmax policy."""

from __future__ import annotations

import torch


def log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log π(a|s) of the chosen actions under a softmax policy. [..., A], [...] → [...].

    Math: log π(a|s) = logits[a] − log Σ_b exp(logits[b])   (a "log-sum-exp").

    Shapes: ``logits`` is [..., A] (any batch dims, A actions, float32 or float64);
    ``actions`` is [...] int64 with values in 0..A−1. The result is [...] in the logits' dtype.

    Gradients must flow into ``logits`` (that is how the policy learns).

    Pitfall: ``torch.log(torch.softmax(logits, -1))`` overflows or gives log(0) = −inf for
    logits like ±1e4. Compute it in log space (``torch.log_softmax`` or ``logsumexp``).
    Pick the action's entry with ``gather`` (or indexing), not a Python loop. Do not modify
    the inputs in place.
    """
    log_pi = torch.log_softmax(logits, dim=-1)
    return log_pi.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy H = −Σ_a π(a|s) log π(a|s) of a softmax policy. [..., A] → [...].

    Math: with π = softmax(logits), H = −Σ_a π(a) log π(a). It is log A for a uniform policy and
    0 for a deterministic one; a falling entropy while the reward rises is the "scissors" of
    healthy training.

    Shapes: ``logits`` [..., A] → [...], same dtype. Gradients must flow into ``logits``.

    Pitfall: for huge logits π(a) underflows to 0 and log π(a) is −inf, and 0 · (−inf) = nan.
    Use log-probabilities from ``torch.log_softmax`` and their ``exp()`` for π: then every term
    is finite. Sum over the action dim only (not a mean, not over the batch).
    """
    log_pi = torch.log_softmax(logits, dim=-1)
    return -(log_pi.exp() * log_pi).sum(dim=-1)


def grad_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """∇_logits log π(a|s) in closed form, without autograd. [..., A], [...] → [..., A].

    Math: d log π(a)/d logits[b] = 1[b = a] − π(b), i.e. onehot(a) − softmax(logits).
    This is the log-prob trick made concrete: the gradient pushes up the chosen action's score
    and pushes down every score in proportion to its probability. Each row sums to 0.

    Shapes: ``logits`` [..., A], ``actions`` [...] int64 → [..., A] in the logits' dtype.

    Pitfall: do not call ``backward``/``torch.autograd.grad`` here — write the formula. The
    result is a plain tensor (no autograd graph, even when ``logits`` requires grad: use
    ``torch.no_grad()``). The sign matters: onehot − softmax, not the reverse.
    """
    with torch.no_grad():
        probs = torch.softmax(logits, dim=-1)
        onehot = torch.nn.functional.one_hot(actions.long(), logits.shape[-1]).to(logits.dtype)
        return onehot - probs
