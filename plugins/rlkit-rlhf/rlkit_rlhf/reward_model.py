"""``rlkit train reward-model``: a scalar head on the language model, fitted to preferences.

The model is the DPO chapter's language model with a new one-output linear head on its last
token (``AutoModelForSequenceClassification``, ``num_labels=1``: what TRL's ``RewardTrainer``
builds), so r(x, y) is one number per prompt + answer. Each preference pair is scored twice,
chosen and rejected, and the Bradley–Terry loss −log σ(r_chosen − r_rejected) makes the
preferred answer score higher.

* ``trl``: TRL's ``RewardTrainer(model, args=RewardConfig(...), train_dataset,
  processing_class)``, as TRL ships it.
* ``native``: rlkit's loop on the exercise's ``bradley_terry_loss`` (the student's own with
  ``--path``). Same text (prompt + answer + end-of-sequence token), same head initialisation
  (seeded), same optimizer, linear schedule, gradient clipping and batch size as TRL.

Both print the held-out pairwise accuracy (how often the chosen answer of a held-out pair
scores higher) before and after; the trained model in ``model/`` is what
``rlkit train grpo --reward RUN`` scores answers with.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Evaluation, Progress, Trainer, notify_metrics
from rlkit.runs import Run, written_whole

from rlkit_rlhf import common
from rlkit_rlhf.settings import NativeRewardModelSettings, RewardModelSettings

EXAMPLES = 4
SCORING_BATCH = 64


class RewardTrainerBase(Trainer):
    """Loads the model and the pairs; evaluates held-out pairwise accuracy; saves and loads."""

    task: ClassVar[str] = "reward-model"
    backend: ClassVar[str] = ""
    settings_class: ClassVar[type] = RewardModelSettings
    requires: ClassVar[tuple[str, ...]] = ("transformers",)

    def __init__(self, settings: Any = None, *, weights: Path | None = None, **overrides: Any):
        from rlkit_dpo.model import resolve_model
        from transformers import AutoModelForSequenceClassification

        self.settings = s = settings or self.settings_class(**overrides)
        common.require(*self.requires)
        common.set_threads(s.threads)
        self.functions = self._functions()
        self.weights = Path(weights) if weights is not None else None
        has_state = self.weights is not None and self.has_training_state(self.weights)
        self.checkpoint = self.weights if has_state else None
        self.resume_step = self.saved_step(self.checkpoint) if self.checkpoint else 0
        self.steps_done = self.resume_step
        self.device = common.device()
        self.train_rows, self.heldout_rows = common.preference_rows()
        source = str(self.weights) if self.weights is not None else resolve_model(s.model)
        self.tokenizer = common.tokenizer_of(source)
        torch.manual_seed(s.seed)  # the new head's initial weights (TRL seeds before it too)
        with common.quiet():
            self.model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(self.device)
        self._before: tuple[float, float] | None = None

    def _functions(self) -> Any:
        return None

    def progress(self) -> Progress:
        return Progress(self.steps_done, self.total_steps(), "step")

    def total_steps(self) -> int:
        s = self.settings
        if s.max_steps is not None:
            return s.max_steps
        return math.ceil(len(self.train_rows) / s.per_device_train_batch_size) * s.num_train_epochs

    def check_resumable(self) -> None:
        if self.weights is not None and self.checkpoint is None:
            raise UsageError(
                f"{self.weights} has no saved training state to resume from; start a new run"
            )

    # -- scoring -----------------------------------------------------------------------------
    def encode(self, rows: Sequence[Mapping[str, str]], key: str) -> list[list[int]]:
        """Token ids of prompt + answer + end-of-sequence token, as TRL's RewardTrainer
        tokenizes a plain-text pair."""
        eos = self.tokenizer.eos_token
        texts = [r["prompt"] + r[key] + ("" if r[key].endswith(eos) else eos) for r in rows]
        return self.tokenizer(texts)["input_ids"]

    def batch(self, sequences: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        """Right-padded ids and attention mask (the head reads each row's last real token)."""
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for i, s in enumerate(sequences):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def scores(self, sequences: Sequence[list[int]]) -> torch.Tensor:
        """r(x, y) of each sequence (no gradient). → [N]."""
        was_training = self.model.training
        self.model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(sequences), SCORING_BATCH):
                batch = self.batch(sequences[start : start + SCORING_BATCH])
                out.append(self.model(**batch).logits[:, 0].float().cpu())
        self.model.train(was_training)
        return torch.cat(out)

    def heldout_scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.heldout_rows
        return self.scores(self.encode(rows, "chosen")), self.scores(self.encode(rows, "rejected"))

    def accuracy(self) -> tuple[float, float]:
        """(held-out pairwise accuracy, mean margin r_chosen − r_rejected)."""
        chosen, rejected = self.heldout_scores()
        return (chosen > rejected).float().mean().item(), (chosen - rejected).mean().item()

    # -- the session's hooks -----------------------------------------------------------------
    def before_training(self) -> None:
        self._before = self.accuracy()

    def after_training(self, run_dir: Path, summary: Mapping[str, float]) -> list[str]:
        result = self.evaluate()
        self.write_evaluation(result, run_dir, summary)
        pairs = summary.get("train_pairs", 0)
        seconds = summary.get("train_seconds", 0)
        return [
            str(result),
            f"{pairs:.0f} preference pairs in {seconds:.1f} s "
            f"({summary.get('train_pairs_per_second', 0):.0f} pairs/s, {self.backend} backend).",
        ]

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """Held-out pairwise accuracy of the reward model (before → after, when the run's own
        starting point is known), and a few held-out pairs with their scores."""
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        if video is not None:
            raise UsageError("--video records an agent in an environment; a reward model has none")
        chosen, rejected = self.heldout_scores()
        n = len(chosen) if episodes is None else min(episodes, len(chosen))
        chosen, rejected = chosen[:n], rejected[:n]
        accuracy = (chosen > rejected).float().mean().item()
        margin = (chosen - rejected).mean().item()
        table = Table(title=f"{n} held-out preference pairs, scored by the reward model")
        for column in ("prompt", "chosen", "r", "rejected", "r "):
            table.add_column(column)
        for i in range(min(EXAMPLES, n)):
            row = self.heldout_rows[i]
            question = row["prompt"].removeprefix("User: ").split("\nAssistant:")[0]
            table.add_row(
                Text(question),
                Text(row["chosen"].strip()),
                f"{chosen[i]:+.2f}",
                Text(row["rejected"].strip()),
                f"{rejected[i]:+.2f}",
            )
        import io

        buffer = io.StringIO()
        Console(file=buffer, width=120, no_color=True, highlight=False).print(table)
        lines = buffer.getvalue().rstrip("\n").splitlines()
        metrics = {"heldout_accuracy": accuracy, "heldout_margin": margin, "heldout_pairs": n}
        if self._before is not None and episodes is None:
            before, _ = self._before
            metrics["heldout_accuracy_before"] = before
            lines.append(
                f"Held-out pairwise accuracy: {before:.2f} -> {accuracy:.2f} "
                f"(mean margin {margin:.2f})"
            )
        else:
            lines.append(f"Held-out pairwise accuracy: {accuracy:.2f} (mean margin {margin:.2f})")
        return Evaluation(metrics, lines)

    def write_evaluation(self, result: Evaluation, run_dir: Path, training: Mapping) -> None:
        data = {"metrics": result.metrics, "training": dict(training)}
        (Path(run_dir) / common.EVAL_FILE).write_text(json.dumps(data, indent=2) + "\n")

    # -- save / load -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """The reward model and its tokenizer (``save_pretrained``: a sequence-classification
        model any Hugging Face tool, and ``rlkit train grpo --reward RUN``, loads)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @classmethod
    def load(cls, path: Path, settings: Any = None) -> RewardTrainerBase:
        weights = Path(path)
        if not (weights / "config.json").is_file():
            raise UsageError(
                f"{weights} holds no trained model yet; was the training interrupted before "
                "its first step?"
            )
        if settings is None:
            settings = cls.settings_class.from_dict(Run.open(weights.parent).settings)
        return cls(settings, weights=weights)

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        raise NotImplementedError

    @classmethod
    def has_training_state(cls, folder: Path) -> bool:
        try:
            cls.saved_step(folder)
        except (OSError, ValueError, KeyError, RuntimeError):
            return False
        return True


class NativeRewardTrainer(RewardTrainerBase):
    """rlkit's loop: batches of pairs, the exercise's ``bradley_terry_loss``, SGD or AdamW."""

    backend = "native"
    settings_class = NativeRewardModelSettings

    def _functions(self) -> Any:
        functions = common.exercise_functions(self.settings)
        if self.settings.impl == "student":
            common.probe_reward_functions(functions)
        return functions

    def train(self, callbacks: Sequence[Callback] = ()) -> Mapping[str, float]:
        self.check_resumable()
        s = self.settings
        start = time.perf_counter()
        chosen = self.encode(self.train_rows, "chosen")
        rejected = self.encode(self.train_rows, "rejected")
        n = len(chosen)
        per_epoch = math.ceil(n / s.per_device_train_batch_size)
        total = self.total_steps()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = optimizer = make_optimizer(s.optim, params, s.learning_rate)
        state = _state(self.checkpoint) if self.checkpoint is not None else {}
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: max(0.0, 1 - (self.resume_step + k) / total)
        )
        order = torch.Generator().manual_seed(s.seed)
        step = self.steps_done = self.resume_step
        for _ in range(step // per_epoch):
            torch.randperm(n, generator=order)
        skip = (step % per_epoch) * s.per_device_train_batch_size
        for callback in callbacks:
            callback.on_train_start(self)
        self.model.train()
        pairs_seen, logged, keep_going = 0, {}, True
        while keep_going and step < total:
            permutation = torch.randperm(n, generator=order)
            for first in range(skip, n, s.per_device_train_batch_size):
                index = permutation[first : first + s.per_device_train_batch_size].tolist()
                batch = self.batch([chosen[i] for i in index] + [rejected[i] for i in index])
                learning_rate = schedule.get_last_lr()[0]
                rewards = self.model(**batch).logits[:, 0]
                r_chosen, r_rejected = rewards.chunk(2)
                loss = self.functions.bradley_terry_loss(r_chosen, r_rejected)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step = self.steps_done = step + 1
                pairs_seen += len(index)
                with torch.no_grad():
                    margin = r_chosen - r_rejected
                    logged = {
                        "loss": loss.item(),
                        "accuracy": (margin > 0).float().mean().item(),
                        "margin": margin.mean().item(),
                        "mean_reward": rewards.mean().item(),
                        "grad_norm": grad_norm.item(),
                        "learning_rate": learning_rate,
                        "epoch": step / per_epoch,
                    }
                if step % s.logging_steps == 0 or step == total or self.stop_requested:
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
        super().save(path)
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            with written_whole(Path(path) / common.TRAINING_STATE) as partial:
                torch.save({"step": self.steps_done, "optimizer": optimizer.state_dict()}, partial)

    @classmethod
    def saved_step(cls, folder: Path) -> int:
        return int(_state(folder)["step"])


class TRLRewardTrainer(RewardTrainerBase):
    """TRL's ``RewardTrainer`` + ``RewardConfig`` on the same model and pairs."""

    backend = "trl"
    requires = ("transformers", "datasets", "trl")

    def train(self, callbacks: Sequence[Callback] = ()) -> Mapping[str, float]:
        import datasets
        import trl  # noqa: F401 - imported before the clock starts: seconds of import time
        from transformers import PrinterCallback
        from trl import RewardConfig, RewardTrainer

        self.check_resumable()
        s = self.settings
        start = time.perf_counter()
        datasets.disable_progress_bars()
        bridge = common.bridge(self, callbacks)
        rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in self.train_rows]
        with tempfile.TemporaryDirectory(prefix="rlkit-trl-") as output_dir, common.quiet():
            config = RewardConfig(
                per_device_train_batch_size=s.per_device_train_batch_size,
                num_train_epochs=s.num_train_epochs,
                max_steps=s.max_steps if s.max_steps is not None else -1,
                max_length=s.max_length,
                **common.trainer_args(s, output_dir),
            )
            trainer = RewardTrainer(
                model=self.model,
                args=config,
                train_dataset=datasets.Dataset.from_list(rows),
                processing_class=self.tokenizer,
                callbacks=[bridge],
            )
            trainer.remove_callback(PrinterCallback)
            self._hf_trainer = trainer
            checkpoint = str(self.checkpoint) if self.checkpoint is not None else None
            trainer.train(resume_from_checkpoint=checkpoint)
            steps = self.steps_done = trainer.state.global_step
        self.model.eval()
        seconds = time.perf_counter() - start
        batch = s.per_device_train_batch_size
        pairs = pairs_trained(len(rows), batch, steps) - pairs_trained(
            len(rows), batch, self.resume_step
        )
        return {
            **bridge.last,
            "train_seconds": seconds,
            "train_pairs": float(pairs),
            "train_pairs_per_second": pairs / seconds,
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


def pairs_trained(n_pairs: int, batch_size: int, steps: int) -> int:
    """How many pairs ``steps`` batches covered (the last batch of an epoch is short)."""
    per_epoch = -(-n_pairs // batch_size)
    epochs, rest = divmod(steps, per_epoch)
    return epochs * n_pairs + min(rest * batch_size, n_pairs)


def make_optimizer(name: str, params: list, lr: float) -> torch.optim.Optimizer:
    """What TRL builds for ``optim="sgd"`` / ``"adamw_torch"`` (no weight decay)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def _state(folder: Path) -> dict[str, Any]:
    return torch.load(Path(folder) / common.TRAINING_STATE, weights_only=False)
