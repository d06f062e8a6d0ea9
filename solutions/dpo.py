"""DPO: sequence log-probabilities of completions, and the preference loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_log_probs(
    logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """Σ_t mask[t] · log softmax(logits[:, t−1])[input_ids[:, t]]: log π(y|x). → [B]."""
    log_pi = torch.log_softmax(logits[:, :-1], dim=-1)
    targets = input_ids[:, 1:].long().unsqueeze(-1)
    token_logps = log_pi.gather(-1, targets).squeeze(-1)
    return (token_logps * completion_mask[:, 1:].to(token_logps.dtype)).sum(dim=-1)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """−mean log σ(β[(π_w − ref_w) − (π_l − ref_l)]); implicit rewards β(π − ref), detached."""
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
