"""DPO: sequence log-probabilities of completions, and the preference loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_log_probs(
    logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """log π(y|x): the sum of the completion tokens' log-probabilities. [B, L, V] → [B].

    Math: Σ_t mask[:, t] · log softmax(logits[:, t−1])[input_ids[:, t]].
    A causal LM's output at position t−1 predicts the token at position t, so the logits are
    shifted by one against the ids: logits[:, :-1] pair with input_ids[:, 1:].

    Shapes: ``logits`` [B, L, V] float; ``input_ids`` [B, L] int64; ``completion_mask`` [B, L]
    (1 on completion tokens, 0 on prompt and padding; mask[:, 0] is always 0). Result [B] in
    the logits' dtype; gradients flow into ``logits``.

    Pitfalls: forgetting the shift (off-by-one); counting prompt tokens (apply the mask);
    averaging instead of summing over tokens; ``log(softmax(...))`` instead of ``log_softmax``.
    """
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
    """The DPO loss and the implicit rewards. Four [B] → (loss [], chosen [B], rejected [B]).

    Math: chosen_rewards = β·(policy_chosen − ref_chosen), rejected_rewards likewise, and
        loss = −mean_b log σ(chosen_rewards_b − rejected_rewards_b).
    When the policy equals the reference the loss is log 2; it falls as the policy prefers the
    chosen answer more than the reference did.

    Shapes: four [B] float tensors of sequence log-probs → a 0-dim loss and two [B] rewards.

    Gradients flow into the policy log-probs only: the reference model is frozen (detach its
    log-probs), and the returned rewards are for logging (detach them too).

    Pitfalls: β multiplies the whole difference of log-ratios; use ``F.logsigmoid`` rather
    than ``log(sigmoid(...))`` (which gives −inf for large margins); mind the sign.
    """
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
