"""What both DPO backends share: settings, model and data loading, evaluation, save and load.

A backend (``native.py``, ``trl_backend.py``) only adds ``train``. Evaluating, saving and
reopening a run are the same whatever trained it, so ``rlkit eval RUN`` never imports TRL.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import click
import torch

from rlkit.errors import RlkitError, UsageError
from rlkit.impl import IMPLS, load_exercise_functions
from rlkit.interfaces import Evaluation, Progress, Trainer
from rlkit.registry import ReferenceMissing
from rlkit.runs import Run
from rlkit_dpo import evaluate as ev
from rlkit_dpo import lora, precision
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.data import DEFAULT_HELDOUT, DEFAULT_TRAIN, as_text, load_jsonl, split_heldout
from rlkit_dpo.logprobs import causal_lm
from rlkit_dpo.model import load_model, local_folder, resolve_model
from rlkit_dpo.policy import LanguageModelPolicy
from rlkit_dpo.reference import (
    AdapterOff,
    FrozenCopy,
    Reference,
    checkpoint_weights,
    frozen_copy_of,
)

COMPLETION_JUDGES = ("polite", "none")
OPTIMIZERS = ("sgd", "adamw")
EVAL_FILE = "eval.json"


class DPOTrainerBase(Trainer):
    """Loads the model and data named by the settings; evaluates before vs. after."""

    task: ClassVar[str] = "dpo"
    backend: ClassVar[str] = ""
    #: libraries the backend needs (checked up front: one line instead of an ImportError)
    requires: ClassVar[tuple[str, ...]] = ("transformers", "tokenizers")

    def __init__(
        self,
        settings: DPOSettings | None = None,
        *,
        weights: Path | None = None,
        **overrides: Any,
    ) -> None:
        """``weights``: a saved model (``save``'s folder: the whole model, or with ``--lora``
        the adapter) to use as the policy instead of ``settings.model``: to evaluate it, or to
        train on from where it was saved (``resume_step``, when the folder holds the training
        state)."""
        self.settings = s = settings or DPOSettings(**overrides)
        _validate(s)
        _require(*self.requires)
        #: the exercise functions training uses (the student's own with impl="student")
        self.functions = self._exercise_functions(s)
        if s.impl == "student":
            _probe(self.functions)
        #: evaluation is a measurement, so it scores with the reference functions; a
        #: student's install holds none: there it scores with the student's own
        try:
            self.reference_functions = load_exercise_functions("dpo", "solution")
        except ReferenceMissing:
            self.reference_functions = self.functions
        train, heldout, split = self._read_rows(training=weights is None)
        #: the saved model this trainer started from (None: ``settings.model``, untrained)
        self.weights = Path(weights) if weights is not None else None
        #: the saved model folder training continues from (``--resume``), and its step
        has_state = self.weights is not None and self.has_training_state(self.weights)
        self.checkpoint = self.weights if has_state else None
        self.resume_step = self.saved_step(self.checkpoint) if self.checkpoint else 0
        #: optimizer steps taken so far (``train`` keeps it up to date)
        self.steps_done = self.resume_step
        self.device = _device()
        #: what the weights are stored in and what computes (``--dtype``, ``precision.py``)
        self.precision = precision.plan(s.dtype, resolve_model(s.model), self.device, bool(s.lora))
        if s.lora:
            lora.require_peft()
            base, self.tokenizer = load_model(s.model, self.precision.weights)
            base.to(self.device)
            if self.weights is not None:
                self.model = lora.load(base, self.weights)
            else:
                config = lora.config(base, s.lora, s.lora_targets, s.lora_alpha)
                self.model = lora.attach(base, config, s.seed)
        else:
            self.model, self.tokenizer = load_model(
                str(weights) if weights is not None else s.model, self.precision.weights
            )
        train = as_text(train, self.tokenizer, "--data")
        heldout = as_text(heldout, self.tokenizer, "--eval-data" if s.eval_data else "--data")
        if split:  # seeded, so reopening the run for evaluation finds the same held-out rows
            train, heldout = split_heldout(train, s.eval_split, s.seed)
        #: the training rows; None until needed when only evaluating a run of the built-in task
        self._train_rows: list[dict[str, Any]] | None = train if train or split else None
        self.heldout_rows = heldout
        self.model.to(self.device)
        self.policy = LanguageModelPolicy(
            self.model,
            self.tokenizer,
            self.functions.sequence_log_probs,
            self.precision.autocast_dtype,
        )
        self._reference: Reference | None = None
        self._before: ev.Samples | None = None
        self._reference_heldout: tuple[torch.Tensor, torch.Tensor] | None = None
        self._after: ev.Samples | None = None

    def _exercise_functions(self, s: DPOSettings) -> Any:
        """The exercise functions. TRL's run (``--impl solution``) trains with TRL's own loss:
        where a student's install holds no reference, it scores log π(y|x) with TRL's own
        per-token log-probabilities; the native backend needs the reference (or --path)."""
        try:
            return load_exercise_functions("dpo", s.impl, Path(s.path) if s.path else None)
        except ReferenceMissing:
            if self.backend != "trl" or s.impl != "solution":
                raise
            return SimpleNamespace(sequence_log_probs=_trl_sequence_log_probs)

    def use_model(self, model: Any) -> None:
        """Train and evaluate ``model`` from now on (TRL's PeftModel, once TRL made it)."""
        self.model = model
        self.policy = LanguageModelPolicy(
            model, self.tokenizer, self.functions.sequence_log_probs, self.policy.autocast
        )
        self._reference = None

    def _read_rows(self, training: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        """``(train, heldout, split)``: the checked rows (read before the model loads, so a bad
        line fails at once), and whether ``heldout`` is still to be split off ``train``.
        Evaluating a run (``training=False``) needs the training rows only for that split."""
        s = self.settings
        heldout = load_jsonl(s.eval_data, "--eval-data") if s.eval_data else []
        if s.data is None:
            train = load_jsonl(DEFAULT_TRAIN, "--data") if training else []
            return train, heldout or load_jsonl(DEFAULT_HELDOUT, "--eval-data"), False
        return load_jsonl(s.data, "--data"), heldout, not s.eval_data

    @property
    def train_rows(self) -> list[dict[str, Any]]:
        if self._train_rows is None:
            train, _, _ = self._read_rows(training=True)
            self._train_rows = as_text(train, self.tokenizer, "--data")
        return self._train_rows

    def progress(self) -> Progress:
        return Progress(self.steps_done, self.total_steps(), "step")

    # -- the session's hooks -----------------------------------------------------------------
    def before_training(self) -> None:
        """A new run: say which pairs are held out, and sample the answers *before* DPO."""
        s = self.settings
        if s.data is not None and s.eval_data is None and self.heldout_rows:
            click.echo(
                f"Holding out {len(self.heldout_rows)} of "
                f"{len(self.heldout_rows) + len(self.train_rows)} pairs of {s.data} for the "
                "evaluation (--eval-split; --eval-data FILE to choose them)."
            )
        if s.eval_prompts != 0:
            click.echo("Sampling held-out answers before DPO...")
            self.snapshot_reference()

    def after_training(self, run_dir: Path, summary: Mapping[str, float]) -> list[str]:
        """The held-out answers before vs. after (also in ``eval.json``), and the speed."""
        lines = []
        if self.settings.eval_prompts != 0:
            result = self.evaluate()
            self.write_evaluation(result, run_dir, summary)
            lines.append(str(result))
        lines.append(
            f"{summary.get('train_pairs', 0):.0f} preference pairs in "
            f"{summary.get('train_seconds', 0):.1f} s "
            f"({summary.get('train_pairs_per_second', 0):.0f} pairs/s, {self.backend} backend)."
        )
        return lines

    # -- evaluation ------------------------------------------------------------------------
    def eval_rows(self, episodes: int | None = None) -> list[dict[str, str]]:
        """The held-out rows to evaluate on: ``episodes`` of them, else ``eval_prompts``, else
        all of them."""
        n = self.settings.eval_prompts if episodes is None else episodes
        return self.heldout_rows[:n] if n else self.heldout_rows

    def snapshot_reference(self, episodes: int | None = None) -> None:
        """Record the model's answers and held-out log-probs *before* training (the reference)."""
        rows = self.eval_rows(episodes)
        if not rows:
            return
        policy = self._scoring_policy(self.model)
        self._before = self._sample(policy, rows)
        self._reference_heldout = ev.sequence_log_probs_of(policy, rows, self.settings.max_length)

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """Held-out prompts before vs. after DPO. ``episodes`` = how many held-out prompts
        (None: the run's ``eval_prompts``, else all); a language model has no video."""
        if video is not None:
            raise UsageError("--video records an agent in an environment; DPO has none")
        rows = self.eval_rows(episodes)
        if not rows:
            return Evaluation(
                {},
                ["No held-out data to evaluate on: pass --eval-data FILE.jsonl or --eval-split."],
            )
        if self._before is None or len(self._before.prompts) != len(rows):
            with self.reference_active() as reference:
                policy = self._scoring_policy(reference)
                self._before = self._sample(policy, rows)
                self._reference_heldout = ev.sequence_log_probs_of(
                    policy, rows, self.settings.max_length
                )
            del reference, policy
        policy = self._scoring_policy(self.model)
        self._after = after = self._sample(policy, rows)
        accuracy = None
        if self._reference_heldout is not None:
            accuracy = ev.reward_accuracy(
                policy, self._reference_heldout, rows, self.settings.beta, self.settings.max_length
            )
        return ev.report(self._before, after, accuracy)

    def _scoring_policy(self, model: Any) -> LanguageModelPolicy:
        return LanguageModelPolicy(
            model,
            self.tokenizer,
            self.reference_functions.sequence_log_probs,
            self.precision.autocast_dtype,
        )

    def _sample(self, policy: LanguageModelPolicy, rows: list[dict[str, str]]) -> ev.Samples:
        s = self.settings
        samples = ev.sample_answers(
            policy, [r["prompt"] for r in rows], s.judge, s.max_new_tokens, seed=s.seed
        )
        samples.shown = [r.get("shown", "") for r in rows]
        return samples

    def write_evaluation(
        self, result: Evaluation, run_dir: Path, training: Mapping[str, float] | None = None
    ) -> Path:
        """``eval.json``: the numbers and every sampled answer, before and after."""
        path = Path(run_dir) / EVAL_FILE
        data: dict[str, Any] = {"metrics": result.metrics, "training": dict(training or {})}
        if self._before is not None:
            data["before"] = ev.as_dict(self._before)
        if self._after is not None:
            data["after"] = ev.as_dict(self._after)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    # -- the reference ---------------------------------------------------------------------
    def reference_model(self) -> Any:
        """A frozen copy of the model *before* DPO, the reference π_ref (TRL's ``ref_model``
        for full fine-tuning). When training resumes the policy has moved, so the reference is
        loaded again from ``settings.model``. With LoRA there is none: TRL disables the
        adapter."""
        if self.settings.lora:
            return None
        if self.weights is None:
            return copy.deepcopy(self.model)
        return self.original_model()

    def original_model(self) -> Any:
        """``settings.model`` as it was before any training, loaded again on this device."""
        model, _ = load_model(self.settings.model, self.precision.weights)
        return model.to(self.device)

    @property
    def reference(self) -> Reference:
        """Where π_ref comes from without a second model (``reference.py``): the adapter
        switched off (LoRA), else the checkpoint's weights swapped in for each reference
        forward, else (a checkpoint that does not map onto the model) a frozen copy. Call it
        before the first update: a new run's copy is the model as it is then."""
        if self._reference is None:
            self._reference = self._make_reference()
        return self._reference

    def _make_reference(self) -> Reference:
        if self.settings.lora:
            return AdapterOff(self.model)
        folder = local_folder(resolve_model(self.settings.model))
        weights = checkpoint_weights(causal_lm(self.model), folder)
        if weights is not None and (self.weights is not None or weights.matches(sample=3)):
            return weights
        if self.weights is None:  # still the model as loaded
            return frozen_copy_of(self.model)
        return FrozenCopy(self.original_model)

    @contextlib.contextmanager
    def reference_active(self) -> Iterator[Any]:
        """The model computing π_ref, in eval mode, inside the block."""
        with self.reference.active() as model:
            was_training = model.training
            model.eval()
            try:
                yield model
            finally:
                model.train(was_training)

    # -- training helpers ------------------------------------------------------------------
    def total_steps(self) -> int:
        """The optimizer steps a whole run takes with these settings (one process)."""
        s = self.settings
        if s.max_steps is not None:
            return s.max_steps
        per_epoch = -(-len(self.train_rows) // s.per_device_train_batch_size)
        return per_epoch * s.num_train_epochs

    def check_resumable(self) -> None:
        """A trainer loaded from a saved model trains on only from its training state."""
        if self.weights is not None and self.checkpoint is None:
            raise UsageError(
                f"{self.weights} has no saved training state to resume from; it was stopped "
                "before its first step or made by an older rlkit: start a new run"
            )

    # -- save / load -----------------------------------------------------------------------
    @classmethod
    def saved_step(cls, folder: Path) -> int:
        """The optimizer steps behind a model ``save`` wrote (what ``--resume`` continues
        from); each backend records them with its own training state."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """The trained model and its tokenizer, in ``save_pretrained`` format (loadable by any
        Hugging Face tool, and by ``--model PATH`` for another round). With ``--lora``, the
        adapter alone, naming its base model (``rlkit models merge`` makes it one model)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.settings.lora:
            lora.save(self.model, path, resolve_model(self.settings.model))
        else:
            self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @classmethod
    def load(cls, path: Path, settings: DPOSettings | None = None) -> DPOTrainerBase:
        """Reopen a run's model folder with the run's settings (None: those in the run's
        config.json beside it), its trained model as the policy."""
        weights = Path(path)
        if not (weights / "config.json").is_file() and not lora.is_adapter(weights):
            raise UsageError(
                f"{weights} holds no trained model yet; was the training interrupted before "
                "its first step?"
            )
        if settings is None:
            settings = DPOSettings.from_dict(Run.open(weights.parent).settings)
        return cls(settings, weights=weights)

    @classmethod
    def has_training_state(cls, folder: Path) -> bool:
        try:
            cls.saved_step(folder)
        except (OSError, ValueError, KeyError, RuntimeError):
            return False
        return True


#: the command-line flag of each setting, for error messages
FLAGS = {
    "beta": "--beta",
    "learning_rate": "--lr",
    "per_device_train_batch_size": "--batch-size",
    "num_train_epochs": "--epochs",
    "max_steps": "--max-steps",
    "max_length": "max_length",
    "logging_steps": "logging_steps",
    "max_new_tokens": "max_new_tokens",
}


def _validate(s: DPOSettings) -> None:
    if s.impl not in IMPLS:
        raise UsageError(f"--impl must be one of {', '.join(IMPLS)}, not {s.impl!r}")
    if s.optim not in OPTIMIZERS:
        raise UsageError(f"--optim must be one of {', '.join(OPTIMIZERS)}, not {s.optim!r}")
    if s.judge not in COMPLETION_JUDGES:
        raise UsageError(f"--judge must be one of {', '.join(COMPLETION_JUDGES)}, not {s.judge!r}")
    for name in ("beta", "learning_rate"):
        if not getattr(s, name) > 0:
            raise UsageError(f"{FLAGS[name]} must be positive, not {getattr(s, name)}")
    for name in (
        "per_device_train_batch_size",
        "num_train_epochs",
        "max_length",
        "logging_steps",
        "max_new_tokens",
    ):
        if getattr(s, name) < 1:
            raise UsageError(f"{FLAGS[name]} must be at least 1, not {getattr(s, name)}")
    if not 0 <= s.eval_split < 1:
        raise UsageError(f"--eval-split must be at least 0 and below 1, not {s.eval_split}")
    if s.max_steps is not None and s.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {s.max_steps}")
    if s.lora is not None and s.lora < 1:
        raise UsageError(f"--lora must be a rank of at least 1, not {s.lora}")
    if s.lora_targets and not s.lora:
        raise UsageError("--lora-targets names the modules of a LoRA adapter; add --lora R")
    if s.dtype not in precision.DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(precision.DTYPES)}, not {s.dtype!r}")
    resolve_model(s.model)  # a missing folder fails here, before anything heavy


def _device() -> torch.device:
    """The GPU of this process (``LOCAL_RANK`` under ``accelerate launch``/``torchrun``: one
    per process, so they don't all start on GPU 0), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise RlkitError(f"DPO needs {', '.join(missing)}: `pip install 'rlkit[trl]'`")


def _probe(functions: Any) -> None:
    """Call the student's functions once on tiny inputs, so that a stub still raising
    NotImplementedError stops the command before anything is created or trained."""
    logits = torch.zeros(1, 3, 4)
    ids = torch.tensor([[0, 1, 2]])
    functions.sequence_log_probs(logits, ids, torch.tensor([[0, 1, 1]]))
    logps = torch.zeros(2)
    functions.dpo_loss(logps, logps, logps, logps, beta=0.1)


def _trl_sequence_log_probs(
    logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """log π(y|x) from TRL's own helper (TRL's run where rlkit's reference is not installed)."""
    from trl.trainer.utils import selective_log_softmax

    tokens = selective_log_softmax(logits[:, :-1], input_ids[:, 1:])
    return (tokens * completion_mask[:, 1:].to(tokens.dtype)).sum(-1)
