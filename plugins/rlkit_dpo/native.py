"""rlkit's own DPO loop, readable top to bottom.

    1. tokenize every pair once (exactly as TRL does, see ``data.py``);
    2. compute the reference log-probs log π_ref(y|x) of every chosen and rejected answer ONCE,
       with the model as it is before training: the reference is frozen, so recomputing them
       every step (as TRL does by default) would only burn time, and no second model is kept;
    3. for each batch: log π(y|x) = sequence_log_probs of the completions (the policy), each
       pair packed as one ``prompt chosen rejected`` row (``data.pack_pairs``: the prompt is computed
       once, not twice; the last token of each answer, which predicts nothing, not fed; the LM
       head only on the columns that predict answer tokens), then the DPO Objective built on
       ``dpo_loss``, backward, clip, step. Each of these computes exactly the same loss.

Optimizer, schedule and data order are what TRL (the Hugging Face ``Trainer``) builds from the
same settings: SGD or AdamW (β = 0.9/0.999, ε = 1e-8) without weight decay, the learning rate
decaying linearly to 0, gradients clipped to norm 1, batches drawn by ``randperm`` from a
generator seeded with ``seed``. So both backends train the same way on the same settings.
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
from rlkit_dpo.objective import DPOObjective
from rlkit_dpo.policy import LanguageModelPolicy

REFERENCE_BATCH = 64
#: saved next to the model: the step count and optimizer state ``--resume`` continues from
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
        ref_chosen, ref_rejected = self.reference_log_probs(pairs)

        steps_per_epoch = math.ceil(len(pairs) / s.per_device_train_batch_size)
        total = steps_per_epoch * s.num_train_epochs
        if s.max_steps is not None:
            total = s.max_steps
        step = self.steps_done = self.resume_step
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = optimizer = make_optimizer(s.optim, params, s.learning_rate)
        if self.checkpoint is not None:
            optimizer.load_state_dict(_training_state(self.checkpoint)["optimizer"])
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
                batch = pack_pairs([pairs[i] for i in index], pad, s.max_length)
                batch = to_device(batch, self.device)
                batch["ref_chosen_logps"] = ref_chosen[index]
                batch["ref_rejected_logps"] = ref_rejected[index]

                learning_rate = schedule.get_last_lr()[0]  # the rate this step uses
                loss, metrics = objective(self.policy, batch)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
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
        count and the optimizer's state (``training_state.pt``)."""
        super().save(path)
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            state = {"step": self.steps_done, "optimizer": optimizer.state_dict()}
            with written_whole(Path(path) / TRAINING_STATE) as partial:
                torch.save(state, partial)

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        return int(_training_state(folder)["step"])

    @torch.no_grad()
    def reference_log_probs(self, pairs: list[EncodedPair]) -> tuple[torch.Tensor, torch.Tensor]:
        """log π_ref of every chosen and rejected answer, with the model before any update.

        The pairs go through in order of length (and back), so a batch pads to about its own
        length instead of the longest pair's: the order does not change the numbers. A
        resumed run's policy has moved, so it scores them with the reference model reloaded."""
        policy = self.policy
        if self.weights is not None:
            model = self.reference_model()
            policy = LanguageModelPolicy(model, self.tokenizer, self.functions.sequence_log_probs)
        policy.model.eval()
        order = sorted(range(len(pairs)), key=lambda i: _packed_length(pairs[i]))
        chosen, rejected = torch.empty(len(pairs)), torch.empty(len(pairs))
        chosen, rejected = chosen.to(self.device), rejected.to(self.device)
        for first in range(0, len(pairs), REFERENCE_BATCH):
            index = order[first : first + REFERENCE_BATCH]
            batch = pack_pairs(
                [pairs[i] for i in index], self.tokenizer.pad_token_id, self.settings.max_length
            )
            logps = policy.packed_log_probs(to_device(batch, self.device))
            chosen[index], rejected[index] = logps.chunk(2, dim=0)
        return chosen, rejected


def _training_state(folder: Path) -> dict[str, Any]:
    return torch.load(Path(folder) / TRAINING_STATE, weights_only=True)


def _packed_length(pair: EncodedPair) -> int:
    return len(pair.prompt_ids) + len(pair.chosen_ids) + len(pair.rejected_ids)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device`` (its plain numbers as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """What TRL builds for ``optim="sgd"`` / ``optim="adamw_torch"`` (no weight decay)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
