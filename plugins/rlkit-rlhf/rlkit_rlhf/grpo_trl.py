"""``rlkit train grpo --backend trl``: TRL's own ``GRPOTrainer``, as TRL ships it.

    GRPOTrainer(model=model, reward_funcs=[reward], args=GRPOConfig(...),
                train_dataset=prompts, processing_class=tokenizer).train()

rlkit sets what its settings name (answers per step, group size, β, ε, μ, the answers'
length, the optimizer and learning rate, the steps) and what a CPU and the tiny model need
(fp32, no gradient checkpointing, no checkpoints or reports: rlkit writes the run); everything
else is TRL's default, its loss included (``loss_type="dapo"``, ``scale_rewards="group"``).
The reward is the same callable the native backend uses (``common.Reward``: the politeness
rule, or a trained reward model with the text format it was trained on). TRL builds the
reference model itself from the model's ``name_or_path``, which rlkit points at the original
model (on ``--resume`` the policy is the run's trained model, the reference is not).

TRL is imported only inside ``train``: it takes seconds to import, and ``rlkit eval`` on a TRL
run needs only the saved model.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from rlkit.interfaces import Callback, Progress

from rlkit_rlhf import common
from rlkit_rlhf.grpo import GRPOTrainerBase


class TRLGRPOTrainer(GRPOTrainerBase):
    """GRPO with TRL; metrics, the run directory and evaluation are rlkit's."""

    backend = "trl"
    requires = ("transformers", "datasets", "trl")

    def train(self, callbacks: Sequence[Callback] = ()) -> Mapping[str, float]:
        import datasets
        import trl  # noqa: F401 - imported before the clock starts: seconds of import time
        from rlkit_dpo.model import resolve_model
        from transformers import PrinterCallback
        from trl import GRPOConfig, GRPOTrainer

        self.check_resumable()
        s = self.settings
        start = time.perf_counter()
        datasets.disable_progress_bars()
        bridge = common.bridge(self, callbacks)
        # TRL loads its reference from here: the model before any GRPO, also when resuming
        self.model.config._name_or_path = resolve_model(s.model)
        dataset = datasets.Dataset.from_list([{"prompt": p} for p in self.train_prompts])
        with tempfile.TemporaryDirectory(prefix="rlkit-trl-") as output_dir, common.quiet():
            config = GRPOConfig(
                per_device_train_batch_size=s.per_device_train_batch_size,
                num_generations=s.num_generations,
                max_completion_length=s.max_completion_length,
                temperature=s.temperature,
                top_k=0,
                top_p=1.0,
                beta=s.beta,
                epsilon=s.epsilon,
                num_iterations=s.num_iterations,
                max_steps=s.max_steps,
                disable_dropout=True,
                **common.trainer_args(s, output_dir),
            )
            trainer = GRPOTrainer(
                model=self.model,
                reward_funcs=[self.reward],
                args=config,
                train_dataset=dataset,
                processing_class=self.tokenizer,
                callbacks=[bridge],
            )
            trainer.remove_callback(PrinterCallback)
            self._hf_trainer = trainer
            checkpoint = str(self.checkpoint) if self.checkpoint is not None else None
            trainer.train(resume_from_checkpoint=checkpoint)
            steps = self.steps_done = trainer.state.global_step
            history = [
                row
                for row in trainer.state.log_history
                if "reward" in row and row.get("step", 0) > self.resume_step
            ]
        self.tokenizer.padding_side = "left"
        self.model.eval()
        seconds = time.perf_counter() - start
        # one log row per step; a batch of answers every num_iterations steps
        batches = history[:: s.num_iterations]
        answers = len(batches) * s.per_device_train_batch_size
        tokens = sum(r.get("completions/mean_length", 0.0) for r in batches)
        tokens *= s.per_device_train_batch_size
        return {
            **bridge.last,
            "train_seconds": seconds,
            "train_completions": float(answers),
            "completion_tokens": float(tokens),
            "tokens_per_second": tokens / seconds,
            "steps": float(steps),
        }

    def progress(self) -> Progress:
        trainer = getattr(self, "_hf_trainer", None)
        if trainer is not None and trainer.state.max_steps:
            return Progress(self.steps_done, int(trainer.state.max_steps), "step")
        return super().progress()

    def save(self, path: Path) -> None:
        super().save(path)
        common.save_trainer_state(getattr(self, "_hf_trainer", None), Path(path))

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        return common.trainer_state_step(folder)
