"""rlkit's own DPO loop, readable top to bottom.

    1. tokenize every pair once (exactly as TRL does, see ``data.py``);
    2. for each batch: log π(y|x) = sequence_log_probs of the completions (the policy), each
       pair packed as one ``prompt chosen rejected`` row (``data.pack_pairs``: the prompt is
       computed once, not twice; the last token of each answer, which predicts nothing, not
       fed; the LM head only on the columns that predict answer tokens, a few rows at a time,
       ``logprobs.py``), then the DPO Objective built on ``dpo_loss``, backward, clip, step;
    3. the reference log-probs log π_ref(y|x) of a pair are computed when the pair is about
       to train (with those of the next few batches of the run, ``REFERENCE_PAIRS``), then
       cached: the reference is frozen, so recomputing them every epoch (as TRL does by
       default) would only burn time, and nothing is computed up front. Until the first
       update the policy *is* the reference, so the first batch's come with its own forward
       pass. After that they come from ``reference.py``: the same model with its LoRA
       adapter off, or (full fine-tuning) with the checkpoint's weights swapped in for that
       forward. No second model is kept.

Optimizer, schedule and data order are what TRL (the Hugging Face ``Trainer``) builds from the
same settings: SGD or AdamW (β = 0.9/0.999, ε = 1e-8, here the fused implementation) without
weight decay, the learning rate decaying linearly to 0, gradients clipped to norm 1, batches
drawn by ``randperm`` from a generator seeded with ``seed``. So both backends train the same
way on the same settings.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rlkit.errors import UsageError
from rlkit.interfaces import Callback, notify_metrics
from rlkit.runs import written_whole
from rlkit_dpo.base import DPOTrainerBase
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.data import EncodedPair, drop_too_long, encode_pairs, pack_pairs
from rlkit_dpo.logprobs import causal_lm
from rlkit_dpo.objective import DPOObjective
from rlkit_dpo.policy import LanguageModelPolicy

#: a reference forward scores the batch that needs it and the next ones of the run with it,
#: up to this many pairs and (packed) tokens: fewer, fuller forwards (and, in full
#: fine-tuning, fewer reads of the checkpoint), never more than the run will train on
REFERENCE_PAIRS = 64
REFERENCE_TOKENS = 4096
#: saved next to the model: the step count, optimizer state and reference log-probs
#: ``--resume`` continues from
TRAINING_STATE = "training_state.pt"


class NativeDPOTrainer(DPOTrainerBase):
    """DPO on rlkit's interfaces: a LanguageModelPolicy and a DPOObjective."""

    backend = "native"

    def __init__(self, settings: DPOSettings | None = None, **kwargs: Any) -> None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UsageError(
                "the native backend trains on one device; use --backend trl under "
                "`accelerate launch` (see the DPO plugin's README)"
            )
        super().__init__(settings, **kwargs)

    def train(self, callbacks: Sequence[Callback] = ()) -> Mapping[str, float]:
        """Train to the settings' number of steps (from ``resume_step`` on a resumed run);
        ``request_stop`` (Ctrl-C) stops after the current step."""
        self.check_resumable()
        s = self.settings
        start = time.perf_counter()
        torch.manual_seed(s.seed)
        pad = self.tokenizer.pad_token_id
        pairs = drop_too_long(encode_pairs(self.tokenizer, self.train_rows), s.max_length)
        if not pairs:
            return {}
        objective = DPOObjective(self.functions.dpo_loss, beta=s.beta)
        state = _training_state(self.checkpoint) if self.checkpoint is not None else {}
        self.reference_cache = cache = ReferenceCache(len(pairs), state.get("reference"))
        #: the policy is still the reference until its first update (a resumed one is not)
        moved = self.weights is not None
        if not moved:
            self.reference  # noqa: B018 - made now, before any update (a copy, if one is needed)
        prepare_model(self.model, s.gradient_checkpointing)
        self.policy.embedding_grads = []  # the input embedding's gradient row by row
        same_as_reference = not moved and not has_dropout(self.model)

        steps_per_epoch = math.ceil(len(pairs) / s.per_device_train_batch_size)
        total = steps_per_epoch * s.num_train_epochs
        if s.max_steps is not None:
            total = s.max_steps
        step = self.steps_done = self.resume_step
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = optimizer = make_optimizer(s.optim, params, s.learning_rate)
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: max(0.0, 1 - (self.resume_step + k) / total)
        )
        # the data order: one permutation per epoch from a generator seeded with the seed;
        # a resumed run draws the permutations of the epochs done and skips the steps done
        order = torch.Generator().manual_seed(s.seed)
        for _ in range(step // steps_per_epoch):
            torch.randperm(len(pairs), generator=order)
        skip = (step % steps_per_epoch) * s.per_device_train_batch_size

        for callback in callbacks:
            callback.on_train_start(self)
        self.model.train()
        window, logged, pairs_seen = [], {}, 0
        keep_going = True
        while keep_going and step < total:
            permutation = torch.randperm(len(pairs), generator=order)
            for first in range(skip, len(pairs), s.per_device_train_batch_size):
                index = permutation[first : first + s.per_device_train_batch_size]
                batch = to_device(
                    pack_pairs([pairs[i] for i in index], pad, s.max_length), self.device
                )
                missing = cache.missing(index)
                if missing and not same_as_reference:
                    # this batch's pairs and, in the same forward, those of the next batches
                    # of this run (up to REFERENCE_PAIRS pairs / REFERENCE_TOKENS tokens)
                    ahead = permutation[
                        first : first + (total - step) * s.per_device_train_batch_size
                    ]
                    todo = reference_window(
                        cache.missing(ahead[:REFERENCE_PAIRS]), pairs, len(missing)
                    )
                    cache.put(todo, self.reference_log_probs([pairs[i] for i in todo]))

                learning_rate = schedule.get_last_lr()[0]  # the rate this step uses
                logps = self.policy.packed_log_probs(batch)
                if missing and same_as_reference:  # π = π_ref: this forward is the reference's
                    cache.put(missing, logps.detach())
                batch["ref_chosen_logps"], batch["ref_rejected_logps"] = cache.get(
                    index, self.device
                )
                loss, metrics = objective.loss(logps, batch)
                loss.backward()
                self.policy.add_embedding_grads()
                del logps, loss
                grad_norm = torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                same_as_reference = False
                step = self.steps_done = step + 1
                pairs_seen += len(index)

                metrics["grad_norm"] = grad_norm.item()
                metrics["learning_rate"] = learning_rate
                window.append(metrics)
                if step % s.logging_steps == 0 or step == total or self.stop_requested:
                    logged = {k: sum(m[k] for m in window) / len(window) for k in window[0]}
                    logged["epoch"] = step / steps_per_epoch
                    window = []
                    keep_going = notify_metrics(callbacks, self, step, logged)
                keep_going = keep_going and not self.stop_requested
                if not keep_going or step >= total:
                    break
            skip = 0
        self.model.eval()
        for callback in callbacks:
            callback.on_train_end(self)
        seconds = time.perf_counter() - start
        return {
            **logged,
            "train_seconds": seconds,
            "train_pairs": float(pairs_seen),
            "train_pairs_per_second": pairs_seen / seconds,
            "steps": float(step),
        }

    def save(self, path: Path) -> None:
        """The model (see ``DPOTrainerBase.save``), plus what ``--resume`` needs: the step
        count, the optimizer's state and the reference log-probs computed so far
        (``training_state.pt``)."""
        super().save(path)
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            state = {"step": self.steps_done, "optimizer": optimizer.state_dict()}
            cache = getattr(self, "reference_cache", None)
            if cache is not None:
                state["reference"] = cache.state_dict()
            with written_whole(Path(path) / TRAINING_STATE) as partial:
                torch.save(state, partial)

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        return int(_training_state(folder)["step"])

    @torch.no_grad()
    def reference_log_probs(self, pairs: list[EncodedPair]) -> torch.Tensor:
        """log π_ref of the pairs' chosen answers, then their rejected ones (``[2n]``), with
        the model before any update (``DPOTrainerBase.reference``)."""
        batch = pack_pairs(pairs, self.tokenizer.pad_token_id, self.settings.max_length)
        with self.reference_active() as model:
            policy = LanguageModelPolicy(
                model, self.tokenizer, self.functions.sequence_log_probs, self.policy.autocast
            )
            return policy.packed_log_probs(to_device(batch, self.device))


def reference_window(candidates: list[int], pairs: list[EncodedPair], at_least: int) -> list[int]:
    """The first of ``candidates`` (pair indices, in the order they will train) that fit in
    ``REFERENCE_TOKENS`` packed tokens, and at least the first ``at_least`` of them."""
    chosen, tokens = [], 0
    for i in candidates:
        p = pairs[i]
        tokens += len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids)
        if len(chosen) >= at_least and tokens > REFERENCE_TOKENS:
            break
        chosen.append(i)
    return chosen


class ReferenceCache:
    """log π_ref of each training pair (chosen, rejected), filled as pairs are first drawn."""

    def __init__(self, n: int, saved: Mapping[str, torch.Tensor] | None = None) -> None:
        self.chosen = torch.zeros(n)
        self.rejected = torch.zeros(n)
        self.known = torch.zeros(n, dtype=torch.bool)
        if saved is not None and len(saved["known"]) == n:
            self.chosen, self.rejected = saved["chosen"].float(), saved["rejected"].float()
            self.known = saved["known"].bool()

    def missing(self, index: torch.Tensor) -> list[int]:
        return [int(i) for i in index if not self.known[i]]

    def put(self, index: list[int], logps: torch.Tensor) -> None:
        chosen, rejected = logps.float().cpu().chunk(2)
        self.chosen[index], self.rejected[index] = chosen, rejected
        self.known[index] = True

    def get(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.chosen[index].to(device), self.rejected[index].to(device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"chosen": self.chosen, "rejected": self.rejected, "known": self.known}


def prepare_model(model: Any, gradient_checkpointing: bool) -> None:
    """What TRL does to the model before training: dropout off (``disable_dropout``), and
    gradient checkpointing when asked (non-reentrant: works with a frozen base model)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    lm = causal_lm(model)
    kwargs = {"use_reentrant": False}
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.x's names
        if gradient_checkpointing:
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            lm.activation_checkpointing_disable()
    elif gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        lm.gradient_checkpointing_disable()


def has_dropout(model: Any) -> bool:
    """Whether a training-mode forward is random (then it cannot stand for the reference's)."""
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return True
    config = causal_lm(model).config.to_dict()
    return any(k.endswith("dropout") and isinstance(v, float) and v > 0 for k, v in config.items())


def _training_state(folder: Path) -> dict[str, Any]:
    return torch.load(Path(folder) / TRAINING_STATE, weights_only=True)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device`` (its plain numbers as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """What TRL builds for ``optim="sgd"`` / ``optim="adamw_torch"`` (no weight decay). AdamW
    is torch's fused implementation: the same update in one pass over each tensor, without
    the temporaries of the per-tensor loop (on a 0.5B model, GBs and seconds per step)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    kwargs: dict[str, Any] = dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, **kwargs)
