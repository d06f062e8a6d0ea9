"""The log-prob trick: log π(a|s), entropy, and ∇_logits log π(a|s) for a softmax policy."""

from __future__ import annotations

import torch


def log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log π(a|s) = logits[a] − logsumexp(logits); stable for huge logits. [..., A] → [...]."""
    log_pi = torch.log_softmax(logits, dim=-1)
    return log_pi.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H = −Σ_a π(a) log π(a); stable. [..., A] → [...]."""
    log_pi = torch.log_softmax(logits, dim=-1)
    return -(log_pi.exp() * log_pi).sum(dim=-1)


def grad_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """∇_logits log π(a|s) = onehot(a) − softmax(logits), without autograd. [..., A] → [..., A]."""
    with torch.no_grad():
        probs = torch.softmax(logits, dim=-1)
        onehot = torch.nn.functional.one_hot(actions.long(), logits.shape[-1]).to(logits.dtype)
        return onehot - probs
