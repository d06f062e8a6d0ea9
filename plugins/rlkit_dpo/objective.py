"""The DPO Objective, built from the exercise functions ``sequence_log_probs`` and ``dpo_loss``.

    r(x, y) = β · (log π(y|x) − log π_ref(y|x))        the implicit reward
    L       = −mean log σ(r(x, y_w) − r(x, y_l))        which answer is preferred?

A batch holds the chosen sequences stacked over the rejected ones (``[2B, L]``) and the
reference log-probs of both (computed once per pair: the reference never changes).
The metrics carry TRL's names, so native and TRL runs plot side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from rlkit.interfaces import Objective
from rlkit_dpo.config import METRICS
from rlkit_dpo.policy import LanguageModelPolicy

DPOLoss = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class DPOObjective(Objective):
    """``(policy, batch) → (loss, metrics)`` with the given ``dpo_loss``."""

    name = "dpo"

    def __init__(self, dpo_loss: DPOLoss, beta: float = 0.1) -> None:
        self.dpo_loss = dpo_loss
        self.beta = beta

    def __call__(
        self, policy: LanguageModelPolicy, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if "packed_ids" in batch:  # data.pack_pairs: each prompt once
            logps = policy.packed_log_probs(batch)
        else:  # data.collate: [chosen; rejected] sequences
            logps = policy.completion_log_probs(
                batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
            )
        return self.loss(logps, batch)

    def loss(
        self, logps: torch.Tensor, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss and metrics from the policy's log-probs ``[2B]`` (chosen, then rejected)
        and the batch's reference log-probs."""
        chosen, rejected = logps.chunk(2, dim=0)
        loss, chosen_rewards, rejected_rewards = self.dpo_loss(
            chosen,
            rejected,
            batch["ref_chosen_logps"],
            batch["ref_rejected_logps"],
            beta=self.beta,
        )
        return loss, dpo_metrics(loss, chosen_rewards, rejected_rewards, chosen, rejected)


def dpo_metrics(
    loss: torch.Tensor,
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
) -> dict[str, float]:
    """TRL's DPO metrics as plain floats (one device sync for all of them)."""
    values = torch.stack(
        [
            loss.detach(),
            (chosen_rewards - rejected_rewards).mean(),
            (chosen_rewards > rejected_rewards).float().mean(),
            chosen_rewards.mean(),
            rejected_rewards.mean(),
            chosen_logps.detach().mean(),
            rejected_logps.detach().mean(),
        ]
    ).tolist()
    return dict(zip(METRICS, values))
