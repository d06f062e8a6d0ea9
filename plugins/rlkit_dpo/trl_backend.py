"""The course's run: TRL's ``DPOTrainer`` + ``DPOConfig``, with a model and a frozen reference.

    DPOTrainer(model=model, ref_model=ref_model, args=DPOConfig(...),
               train_dataset=dataset, processing_class=tokenizer).train()

``--impl solution`` is TRL exactly as shipped (TRL's own loss). ``--impl student`` trains with
the student's ``sequence_log_probs`` and ``dpo_loss`` *inside* TRL: TRL 1.x has no public loss
hook, so ``StudentDPOTrainer`` overrides ``compute_loss`` (and is tested against TRL's own loss
on the same batch). Everything else (data collation, optimizer, schedule, logging,
``accelerate launch`` / ``torchrun`` for several processes) stays TRL's.

``--lora R`` hands TRL a ``peft_config`` (TRL wraps the model and disables the adapter for the
reference: no ``ref_model``); ``--dtype`` sets ``bf16`` (autocast) and, with LoRA, the base
model's dtype; ``--gradient-checkpointing`` sets TRL's own. Without LoRA the reference is a
frozen copy of the model, as in the course.

Under a launcher every process calls ``train``: TRL wraps the model in DDP, each process
trains on its own share of every step's pairs (``per_device_train_batch_size`` each), and the
CLI gives rlkit's callbacks (the run directory) to rank 0 only.

TRL is imported only inside ``train``: it takes seconds to import, and ``rlkit eval`` on a TRL
run needs only the saved model.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from rlkit.interfaces import Callback, Progress, notify_metrics
from rlkit.runs import written_whole
from rlkit_dpo.base import DPOTrainerBase
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.data import COLUMNS

#: a Hugging Face Trainer checkpoint's state file (written last by ``save``)
TRAINER_STATE = "trainer_state.json"


class TRLTrainer(DPOTrainerBase):
    """DPO with TRL; metrics, the run directory and evaluation are rlkit's."""

    backend = "trl"
    requires = ("transformers", "tokenizers", "datasets", "trl")

    def train(self, callbacks: Sequence[Callback] = ()) -> Mapping[str, float]:
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # TRL pings the Hub otherwise
        import torch
        import trl  # noqa: F401 - imported before the clock starts: seconds of import time
        from transformers import PrinterCallback

        self.check_resumable()
        s = self.settings
        start = time.perf_counter()
        reference = self.reference_model()  # frozen: the model before DPO (None with LoRA)
        bridge = _bridge(self, callbacks)
        model, peft_config = self.model, None
        if s.lora:  # TRL wraps the base model itself; a resumed adapter is reloaded by
            # trainer.train(resume_from_checkpoint=...), from the run's model/ folder
            peft_config = self.model.peft_config["default"]
            model = self.model.unload()
            torch.manual_seed(s.seed)  # the same fresh adapter as the native backend's
        with tempfile.TemporaryDirectory(prefix="rlkit-trl-") as output_dir, _quiet():
            trainer = make_trl_trainer(
                model,
                reference,
                self.tokenizer,
                self.train_rows,
                s,
                output_dir,
                self.functions if s.impl == "student" else None,
                callbacks=[bridge],
                peft_config=peft_config,
                bf16=self.precision.compute == "bfloat16",
            )
            trainer.remove_callback(PrinterCallback)  # rlkit logs the metrics itself
            if trainer.model is not self.model:  # the PeftModel TRL made
                self.use_model(trainer.model)
            self._hf_trainer = trainer  # its optimizer and state, for save()
            checkpoint = str(self.checkpoint) if self.checkpoint is not None else None
            trainer.train(resume_from_checkpoint=checkpoint)
            steps, world = trainer.state.global_step, trainer.args.world_size
            self.steps_done = steps
        del reference
        self.model.eval()
        seconds = time.perf_counter() - start
        batch = s.per_device_train_batch_size * world
        pairs = pairs_trained(len(self.train_rows), batch, steps) - pairs_trained(
            len(self.train_rows), batch, self.resume_step
        )
        return {
            **bridge.last,
            "train_seconds": seconds,
            "train_pairs": float(pairs),
            "train_pairs_per_second": pairs / seconds,
            "steps": float(steps),
            "world_size": float(world),  # processes that trained together (1 without a launcher)
            "effective_batch_size": float(batch),
        }

    def progress(self) -> Progress:
        """Steps done of the total, TRL's own count once it trains (several processes
        share each step's pairs, so a step covers more of them)."""
        trainer = getattr(self, "_hf_trainer", None)
        if trainer is not None and trainer.state.max_steps:
            return Progress(self.steps_done, int(trainer.state.max_steps), "step")
        return super().progress()

    def save(self, path: Path) -> None:
        """The model (see ``DPOTrainerBase.save``), plus the training state in the files and
        format of a Hugging Face ``Trainer`` checkpoint, so that the folder is one:
        ``--resume`` hands it to ``trainer.train(resume_from_checkpoint=...)``."""
        import torch

        super().save(path)
        trainer = getattr(self, "_hf_trainer", None)
        if trainer is None or trainer.optimizer is None:
            return
        rng = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "cpu": torch.random.get_rng_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.random.get_rng_state()
        states = {
            "optimizer.pt": trainer.optimizer.state_dict(),
            "scheduler.pt": trainer.lr_scheduler.state_dict(),
            "rng_state.pth": rng,
        }
        for name, state in states.items():
            with written_whole(Path(path) / name) as partial:
                torch.save(state, partial)
        with written_whole(Path(path) / TRAINER_STATE) as partial:  # last: marks a whole state
            trainer.state.save_to_json(str(partial))

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        return int(json.loads((Path(folder) / TRAINER_STATE).read_text())["global_step"])


def trl_config(s: DPOSettings, output_dir: str, bf16: bool = False) -> Any:
    """TRL's ``DPOConfig`` with rlkit's settings; the rest as TRL ships it, except precision
    and gradient checkpointing, which are rlkit's options (``bf16``: from ``--dtype``; TRL
    defaults to bf16 and checkpointing, which a CPU and the tiny model do not want) and what
    rlkit does itself (logging, checkpoints, progress bar)."""
    import torch
    from trl import DPOConfig

    return DPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=s.per_device_train_batch_size,
        learning_rate=s.learning_rate,
        optim="sgd" if s.optim == "sgd" else _adamw(),
        num_train_epochs=s.num_train_epochs,
        max_steps=s.max_steps if s.max_steps is not None else -1,
        beta=s.beta,
        max_length=s.max_length,
        max_grad_norm=s.max_grad_norm,
        logging_steps=s.logging_steps,
        seed=s.seed,
        bf16=bf16,
        gradient_checkpointing=s.gradient_checkpointing,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),  # lets several CPU processes train together
        # every parameter of a causal LM takes part in the loss: spares DDP a search of the
        # autograd graph every step (and its warning)
        ddp_find_unused_parameters=False,
    )


def _adamw() -> str:
    """The AdamW a ``DPOConfig`` gets by default (torch's fused one, from torch 2.8 on)."""
    import dataclasses

    from trl import DPOConfig

    default = next(f.default for f in dataclasses.fields(DPOConfig) if f.name == "optim")
    return str(getattr(default, "value", default)) if "adamw" in str(default) else "adamw_torch"


def make_trl_trainer(
    model: Any,
    ref_model: Any,
    tokenizer: Any,
    rows: list[dict[str, str]],
    settings: DPOSettings,
    output_dir: str,
    student_functions: SimpleNamespace | None = None,
    callbacks: list[Any] | None = None,
    peft_config: Any = None,
    bf16: bool = False,
) -> Any:
    """A TRL ``DPOTrainer`` (or ``StudentDPOTrainer`` when ``student_functions`` is given);
    with ``peft_config`` TRL wraps ``model`` and ``ref_model`` must be None."""
    import datasets
    from trl import DPOTrainer

    datasets.disable_progress_bars()  # TRL's map() bars over a few hundred rows
    with _quiet():
        kwargs: dict[str, Any] = dict(
            model=model,
            ref_model=ref_model,
            args=trl_config(settings, output_dir, bf16),
            train_dataset=datasets.Dataset.from_list([{c: r[c] for c in COLUMNS} for r in rows]),
            processing_class=tokenizer,
            callbacks=callbacks,
            peft_config=peft_config,
        )
        if student_functions is None:
            return DPOTrainer(**kwargs)
        return student_trainer_class()(functions=student_functions, **kwargs)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide transformers' deprecation notices about settings rlkit does not use."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        yield


def pairs_trained(n_pairs: int, batch_size: int, steps: int) -> int:
    """How many preference pairs ``steps`` batches covered (the last batch of an epoch is short)."""
    steps_per_epoch = -(-n_pairs // batch_size)
    epochs, rest = divmod(steps, steps_per_epoch)
    return epochs * n_pairs + min(rest * batch_size, n_pairs)


_student_class: Any = None


def student_trainer_class() -> Any:
    """``StudentDPOTrainer``, built on first use so that importing this module stays cheap."""
    global _student_class
    if _student_class is not None:
        return _student_class
    import torch
    from trl import DPOTrainer
    from trl.models.utils import disable_gradient_checkpointing

    from rlkit_dpo.logprobs import lean_sequence_log_probs, lm_head

    class StudentDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer whose loss is the student's ``sequence_log_probs`` + ``dpo_loss``.

        A batch from TRL's collator is ``[chosen; rejected]`` stacked (``[2B, L]``) with a
        ``completion_mask``: exactly the exercise's inputs, so the student's functions drop in.
        They see the logits a few rows at a time (``logprobs.py``), from the model's final
        hidden states. With LoRA the reference is the same model with the adapter disabled.
        """

        def _sequence_log_probs(self, model, forward, ids, mask):
            outputs = model(**forward, output_hidden_states=True, logits_to_keep=1)
            head = lm_head(self.accelerator.unwrap_model(model))
            hidden = outputs.hidden_states[-1]
            logps = lean_sequence_log_probs(
                hidden, head, ids, mask, self.functions.sequence_log_probs
            )
            return logps, outputs

        def __init__(self, *args: Any, functions: SimpleNamespace, **kwargs: Any) -> None:
            self.functions = functions
            super().__init__(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            ids, mask = inputs["input_ids"], inputs["completion_mask"]
            forward = {
                "input_ids": ids,
                "attention_mask": inputs["attention_mask"],
                "use_cache": False,
            }
            logps, outputs = self._sequence_log_probs(model, forward, ids, mask)
            chosen, rejected = logps.chunk(2)
            if self.precompute_ref_logps:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                reference, adapter_off = self.ref_model, contextlib.nullcontext()
                if reference is None:  # LoRA: the policy with its adapter disabled
                    reference = self.model
                    adapter_off = self.accelerator.unwrap_model(self.model).disable_adapter()
                kwargs = self.args.gradient_checkpointing_kwargs
                with (
                    torch.no_grad(),
                    disable_gradient_checkpointing(self.model, kwargs),
                    adapter_off,
                ):
                    ref_logps, _ = self._sequence_log_probs(reference, forward, ids, mask)
                ref_chosen, ref_rejected = ref_logps.chunk(2)
            loss, chosen_rewards, rejected_rewards = self.functions.dpo_loss(
                chosen, rejected, ref_chosen, ref_rejected, beta=self.beta
            )
            gather = self.accelerator.gather_for_metrics
            chosen_rewards, rejected_rewards = gather(chosen_rewards), gather(rejected_rewards)
            logged = self._metrics[mode]
            logged["rewards/chosen"].append(chosen_rewards.mean().item())
            logged["rewards/rejected"].append(rejected_rewards.mean().item())
            logged["rewards/accuracies"].append(
                (chosen_rewards > rejected_rewards).float().mean().item()
            )
            logged["rewards/margins"].append((chosen_rewards - rejected_rewards).mean().item())
            logged["logps/chosen"].append(gather(chosen.detach()).mean().item())
            logged["logps/rejected"].append(gather(rejected.detach()).mean().item())
            return (loss, outputs) if return_outputs else loss

    _student_class = StudentDPOTrainer
    return _student_class


def _bridge(owner: DPOTrainerBase, callbacks: Sequence[Callback]) -> Any:
    """A ``transformers.TrainerCallback`` that hands TRL's logs to rlkit's callbacks (the run
    directory, the progress bar); a callback returning False stops TRL, in every process of a
    multi-process run (one process stopping alone would leave the others waiting for it
    forever), and ``request_stop`` (Ctrl-C) stops it after the step under way."""
    from transformers import TrainerCallback

    class Bridge(TrainerCallback):
        last: dict[str, float] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            for callback in callbacks:
                callback.on_train_start(owner)

        def on_step_end(self, args, state, control, **kwargs):
            owner.steps_done = state.global_step
            if owner.stop_requested:  # Ctrl-C: stop after this step
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "train_runtime" in logs:  # TRL's end-of-training summary
                return
            metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            self.last = metrics
            stop = not notify_metrics(callbacks, owner, state.global_step, metrics)
            if args.world_size > 1:  # TRL logs at the same step in every process
                stop = _any_process(stop, args.device)
            if stop:
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            for callback in callbacks:
                callback.on_train_end(owner)

    return Bridge()


def _any_process(flag: bool, device: Any) -> bool:
    """True in every process if ``flag`` is True in any of them."""
    import torch
    import torch.distributed as dist

    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
