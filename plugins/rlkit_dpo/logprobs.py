"""log π(y|x) over a large vocabulary without a ``[B, L, V]`` float32 tensor per model.

The exercise's ``sequence_log_probs(logits [B, L, V], input_ids, completion_mask) → [B]``
keeps its contract: it is always called on real logits, in float32, with the exercise's
layout (mask column 0 is 0; position t−1 predicts token t). What changes is how much of those
logits exists at once. With Qwen2.5's 151,936-token vocabulary, one token of one sequence
costs 0.6 MB of float32 logits (and as much again for the log-softmax autograd keeps), so the
trainers never run the LM head over the whole batch:

- the model's *backbone* gives the hidden states (``[N, L, H]``, H = 896 for Qwen2.5-0.5B,
  170x smaller than the logits), and only the columns from the first completion token on
  are kept;
- the LM head and ``sequence_log_probs`` then run on blocks of rows (and, for very long rows,
  of columns: consecutive blocks overlap by one column, whose mask is zeroed in the later
  block, so every token is counted once, exactly as in one call) whose float32 logits stay
  under ``LOGITS_BUDGET`` elements;
- with gradients, a batch that needs more than one block recomputes each block in the
  backward pass (``torch.utils.checkpoint``): only one block's logits exist at a time.
  A batch that fits in one block (the built-in model, short answers) is computed once,
  directly, with no recomputation.

Since ``sequence_log_probs`` sums over each row's tokens, the per-block results add up to
what one call on the whole batch returns (to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

SequenceLogProbs = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

#: float32 logits (elements) alive at once: 2**24 = 64 MiB, ~110 tokens of Qwen2.5's vocabulary
LOGITS_BUDGET = 1 << 24
#: an input embedding at least this large (elements) gets its gradient row by row
#: (``hidden_states``); a small one's dense gradient costs less than the bookkeeping
ROW_GRADIENT_FROM = 1 << 22


def causal_lm(model: Any) -> Any:
    """The Hugging Face causal LM inside ``model`` (a peft ``PeftModel`` is unwrapped; its
    adapter layers stay in place, so they still apply, and ``disable_adapter`` still works)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def backbone(model: Any) -> Any:
    """The decoder stack of a causal LM, which returns the final (normed) hidden states."""
    lm = causal_lm(model)
    return getattr(lm, lm.base_model_prefix)


def lm_head(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Hidden states → logits, as the model's own forward computes them (TRL's list of the
    scalings and soft-capping some architectures apply after the output projection)."""
    lm = causal_lm(model)
    head = lm.get_output_embeddings()
    config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    for name in ("output_multiplier", "lm_head_multiplier"):
        scale = scale if scale is not None else getattr(config, name, None)
    if scale is None and getattr(config, "logits_scaling", None) is not None:
        scale = 1 / config.logits_scaling
    if scale is None and softcap is None:
        return head

    def scaled(hidden: torch.Tensor) -> torch.Tensor:
        logits = head(hidden)
        if scale is not None:
            logits = logits * scale
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return scaled


def hidden_states(
    model: Any, *, input_ids: torch.Tensor, embedding_grads: list | None = None, **inputs: Any
) -> torch.Tensor:
    """The backbone's last hidden states (no logits computed).

    ``embedding_grads``: a list to which, when the input embedding trains (full fine-tuning),
    is a plain ``nn.Embedding`` and is large (``ROW_GRADIENT_FROM``), this appends ``(weight, input_ids, embeddings)``: the
    embeddings are then looked up outside autograd, so the backward pass leaves their gradient
    on ``embeddings`` instead of writing a dense ``[V, H]`` gradient (545 MB for Qwen2.5-0.5B,
    mostly zeros) to add to the weight's; ``add_embedding_grads`` adds those rows after the
    backward pass. The gradient is the same."""
    stack = backbone(model)
    embed = stack.get_input_embeddings()
    weight = getattr(embed, "weight", None)
    if (
        embedding_grads is None
        or type(embed) is not torch.nn.Embedding
        or weight is None
        or not weight.requires_grad
        or weight.numel() < ROW_GRADIENT_FROM
        or not torch.is_grad_enabled()
    ):
        return stack(input_ids=input_ids, **inputs, use_cache=False).last_hidden_state
    with torch.no_grad():
        embeddings = embed(input_ids)
    embeddings.requires_grad_()
    embedding_grads.append((weight, input_ids, embeddings))
    return stack(inputs_embeds=embeddings, **inputs, use_cache=False).last_hidden_state


def add_embedding_grads(embedding_grads: list) -> None:
    """After ``backward``: add each looked-up row's gradient to its embedding weight's
    (``index_add_``, in place), then forget them (see ``hidden_states``)."""
    for weight, ids, embeddings in embedding_grads:
        if embeddings.grad is None:
            continue
        rows = embeddings.grad.reshape(-1, embeddings.shape[-1]).to(weight.dtype)
        if weight.grad is None:
            weight.grad = torch.zeros_like(weight)
        weight.grad.index_add_(0, ids.reshape(-1), rows)
    embedding_grads.clear()


def lean_sequence_log_probs(
    hidden: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    sequence_log_probs: SequenceLogProbs,
    budget: int = LOGITS_BUDGET,
) -> torch.Tensor:
    """``sequence_log_probs(head(hidden).float(), input_ids, completion_mask)`` → ``[N]``
    float32, computed block by block (see the module docstring).

    ``hidden`` is ``[N, L, H]``: column t holds what the model computed at position t, so its
    logits predict token t+1; ``input_ids`` and ``completion_mask`` are ``[N, L]``."""
    n, length = input_ids.shape
    completion = completion_mask.bool().any(dim=0).nonzero()
    if n == 0 or len(completion) == 0:  # nothing to score: a differentiable zero per row
        return hidden.sum(dim=(1, 2)).float() * 0
    start = max(int(completion[0]) - 1, 0)  # the first logit column that predicts a token
    hidden, input_ids = hidden[:, start:], input_ids[:, start:]
    completion_mask = completion_mask[:, start:]
    length -= start
    vocab = _vocab_size(head, hidden)
    if length * vocab <= budget:  # whole rows per block
        rows, span = max(1, budget // (length * vocab)), length
    else:  # one row per block, in spans of columns that overlap by one
        rows, span = 1, max(2, budget // vocab)
    starts = range(0, max(length - 1, 1), span - 1 if span < length else length)
    recompute = torch.is_grad_enabled() and hidden.requires_grad
    recompute = recompute and (rows < n or len(starts) > 1)

    def block(h: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return sequence_log_probs(head(h).float(), ids, mask)

    results = []
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        total = None
        for c0 in starts:
            c1 = min(c0 + span, length)
            mask = completion_mask[r0:r1, c0:c1]
            if c0 > 0:  # its first token was the last one of the block before
                mask = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, 1:]], dim=1)
            args = (hidden[r0:r1, c0:c1], input_ids[r0:r1, c0:c1], mask)
            if recompute:  # recomputed whole: stopping early raises inside the student's code
                with set_checkpoint_early_stop(False):
                    value = checkpoint(block, *args, use_reentrant=False)
            else:
                value = block(*args)
            total = value if total is None else total + value
        results.append(total)
    return results[0] if len(results) == 1 else torch.cat(results)


def _vocab_size(head: Any, hidden: torch.Tensor) -> int:
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    with torch.no_grad():  # a wrapped head: ask it
        return int(head(hidden[:1, :1]).shape[-1])
