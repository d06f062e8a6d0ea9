"""A causal language model as an rlkit Policy: the state is a prompt, the action a completion.

log π(y|x) is ``sequence_log_probs`` of the completion tokens (the exercise function: the
student's own, or the reference), so the same number a CartPole policy gives for "push left"
is here the log-probability of a whole answer. ``act`` samples answers.

Log-probs are computed from the backbone's hidden states, the LM head running on a few rows at
a time (``logprobs.py``): the exercise's function sees real float32 logits, never the whole
batch's ``[B, L, V]`` at once. With ``autocast`` (full fine-tuning in bfloat16) every forward
runs under ``torch.autocast``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlkit.interfaces import Policy
from rlkit_dpo.data import collate, encode_pairs
from rlkit_dpo.logprobs import (
    add_embedding_grads,
    hidden_states,
    lean_sequence_log_probs,
    lm_head,
)

SequenceLogProbs = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class LanguageModelPolicy(Policy):
    """π(y|x) of a Hugging Face causal LM, scored with ``sequence_log_probs``."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        sequence_log_probs: SequenceLogProbs,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.sequence_log_probs = sequence_log_probs
        self.autocast = autocast
        #: a training loop that calls ``add_embedding_grads`` after each backward sets this:
        #: the input embedding's gradient then comes row by row (``logprobs.hidden_states``)
        self.embedding_grads: list | None = None

    def add_embedding_grads(self) -> None:
        """After ``backward``: the input embedding's rows' gradients (see ``embedding_grads``)."""
        if self.embedding_grads:
            add_embedding_grads(self.embedding_grads)

    def precision(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to the compute dtype when the weights are wider (else nothing)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.model.device.type, dtype=self.autocast)

    def completion_log_probs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """log π(y|x) for token batches (prompt + completion, mask on the completion). → [B]."""
        with self.precision():
            hidden = hidden_states(self.model, input_ids=input_ids, attention_mask=attention_mask)
            return lean_sequence_log_probs(
                hidden, lm_head(self.model), input_ids, completion_mask, self.sequence_log_probs
            )

    def packed_log_probs(self, batch: dict[str, Any]) -> torch.Tensor:
        """log π(y|x) of a batch from ``data.pack_pairs``: one forward pass over the packed
        rows; the hidden states of the columns that predict answer tokens laid out as
        ``[2B, L', H]`` (the exercise's layout), then the LM head and ``sequence_log_probs``
        a few rows at a time. → [2B]."""
        kept = batch["logits_to_keep"]
        with self.precision():
            hidden = hidden_states(
                self.model,
                input_ids=batch["packed_ids"],
                attention_mask=batch["packed_mask"],
                position_ids=batch["packed_positions"],
                embedding_grads=self.embedding_grads,
            )
            first = batch["packed_ids"].shape[1] - kept
            return lean_sequence_log_probs(
                hidden[:, first:].flatten(0, 1)[batch["gather_index"]],
                lm_head(self.model),
                batch["input_ids"][:, first:],
                batch["completion_mask"][:, first:],
                self.sequence_log_probs,
            )

    def log_prob(self, states: Sequence[str], actions: Sequence[str]) -> torch.Tensor:
        """log π(completion | prompt) for each (prompt, completion) pair. → [B]."""
        rows = [{"prompt": s, "chosen": a, "rejected": a} for s, a in zip(states, actions)]
        batch = collate(encode_pairs(self.tokenizer, rows), self.tokenizer.pad_token_id, None)
        n = len(rows)  # collate stacks chosen over rejected; here both are the same answer
        device = self.model.device
        return self.completion_log_probs(
            *(batch[k][:n].to(device) for k in ("input_ids", "attention_mask", "completion_mask"))
        )

    def entropy(self, states: Sequence[str]) -> torch.Tensor:
        """Mean entropy of the next-token distribution over each prompt's positions. → [B]."""
        enc = self.tokenizer(list(states), return_tensors="pt", padding=True).to(self.model.device)
        with self.precision():
            logits = self.model(**enc, use_cache=False).logits
        log_p = torch.log_softmax(logits.float(), dim=-1)
        per_token = -(log_p.exp() * log_p).sum(-1)
        mask = enc["attention_mask"].to(per_token.dtype)
        return (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)

    @torch.no_grad()
    def act(
        self,
        states: Sequence[str],
        deterministic: bool = False,
        max_new_tokens: int = 32,
        seed: int | None = None,
    ) -> list[str]:
        """Sample a completion for each prompt (or take the likeliest tokens)."""
        if seed is not None:
            torch.manual_seed(seed)
        enc = self.tokenizer(list(states), return_tensors="pt", padding=True)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        # Plain sampling from π (no top-k/top-p): the rate measures the policy itself.
        sampling = (
            {"do_sample": False}
            if deterministic
            else {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
        )
        with self.precision():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **sampling,
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
