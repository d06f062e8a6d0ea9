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
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from rlkit.errors import RlkitError, UsageError
from rlkit.impl import IMPLS, load_exercise_functions
from rlkit.interfaces import Evaluation, Trainer
from rlkit.runs import Run
from rlkit_dpo import evaluate as ev
from rlkit_dpo.config import DPOSettings
from rlkit_dpo.data import DEFAULT_HELDOUT, DEFAULT_TRAIN, as_text, load_jsonl, split_heldout
from rlkit_dpo.model import load_model, resolve_model
from rlkit_dpo.policy import LanguageModelPolicy

JUDGES = ("polite", "none")
OPTIMIZERS = ("sgd", "adamw")
EVAL_FILE = "eval.json"
#: ``rlkit eval``'s default ``--episodes``; for DPO it means "the whole held-out split".
CLI_DEFAULT_EPISODES = 10


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
        resume: bool = False,
        **overrides: Any,
    ) -> None:
        """``weights``: a saved model to use as the policy instead of ``settings.model``: to
        evaluate it, or with ``resume`` to train on from where it was saved (``resume_step``)."""
        self.settings = s = settings or DPOSettings(**overrides)
        _validate(s)
        _require(*self.requires)
        #: the exercise functions training uses (the student's own with impl="student")
        self.functions = load_exercise_functions("dpo", s.impl, Path(s.path) if s.path else None)
        if s.impl == "student":
            _probe(self.functions)
        #: evaluation is a measurement, so it always scores with the reference functions
        self.reference_functions = load_exercise_functions("dpo", "solution")
        train, heldout, split = self._read_rows(training=weights is None or resume)
        #: the saved model folder training continues from (``--resume``), and its step
        self.checkpoint = Path(weights) if resume and weights is not None else None
        self.resume_step = self.saved_step(self.checkpoint) if self.checkpoint else 0
        #: optimizer steps taken so far (``train`` keeps it up to date)
        self.steps_done = self.resume_step
        #: set when Ctrl-C stopped training after a step (see ``stop_on_ctrl_c``)
        self.interrupted = False
        self.model, self.tokenizer = load_model(str(weights) if weights is not None else s.model)
        train = as_text(train, self.tokenizer, "--data")
        heldout = as_text(heldout, self.tokenizer, "--eval-data" if s.eval_data else "--data")
        if split:  # seeded, so reopening the run for evaluation finds the same held-out rows
            train, heldout = split_heldout(train, s.eval_split, s.seed)
        self.train_rows, self.heldout_rows = train, heldout
        self.device = _device()
        self.model.to(self.device)
        self.policy = LanguageModelPolicy(
            self.model, self.tokenizer, self.functions.sequence_log_probs
        )
        self._before: ev.Samples | None = None
        self._reference_heldout: tuple[torch.Tensor, torch.Tensor] | None = None
        self._after: ev.Samples | None = None

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

    # -- evaluation ------------------------------------------------------------------------
    def eval_rows(self, episodes: int | None = None) -> list[dict[str, str]]:
        """The held-out rows to evaluate on: ``episodes`` of them, or ``eval_prompts``, or all."""
        n = self.settings.eval_prompts if episodes in (None, CLI_DEFAULT_EPISODES) else episodes
        return self.heldout_rows[:n] if n else self.heldout_rows

    def snapshot_reference(self, episodes: int | None = None) -> None:
        """Record the model's answers and held-out log-probs *before* training (the reference)."""
        rows = self.eval_rows(episodes)
        if not rows:
            return
        policy = self._scoring_policy(self.model)
        self._before = self._sample(policy, rows)
        self._reference_heldout = ev.sequence_log_probs_of(policy, rows, self.settings.max_length)

    def evaluate(
        self, episodes: int = CLI_DEFAULT_EPISODES, video: Path | None = None
    ) -> Evaluation:
        """Held-out prompts before vs. after DPO. ``episodes`` = how many held-out prompts
        (``rlkit eval``'s default, 10, means all of them); ``video`` does not apply to text."""
        rows = self.eval_rows(episodes)
        if not rows:
            return Evaluation(
                {},
                ["No held-out data to evaluate on: pass --eval-data FILE.jsonl or --eval-split."],
            )
        if self._before is None or len(self._before.prompts) != len(rows):
            reference = self.original_model()
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
            model, self.tokenizer, self.reference_functions.sequence_log_probs
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

    # -- training helpers ------------------------------------------------------------------
    def reference_model(self) -> Any:
        """A frozen copy of the model *before* DPO, the reference π_ref. When training resumes
        the policy has moved, so the reference is loaded again from ``settings.model``."""
        if self.checkpoint is None:
            return copy.deepcopy(self.model)
        return self.original_model()

    def original_model(self) -> Any:
        """``settings.model`` as it was before any training, loaded again on this device."""
        model, _ = load_model(self.settings.model)
        return model.to(self.device)

    def total_steps(self) -> int:
        """The optimizer steps a whole run takes with these settings (one process)."""
        s = self.settings
        if s.max_steps is not None:
            return s.max_steps
        per_epoch = -(-len(self.train_rows) // s.per_device_train_batch_size)
        return per_epoch * s.num_train_epochs

    @contextlib.contextmanager
    def stop_on_ctrl_c(self) -> Iterator[None]:
        """Meanwhile, Ctrl-C lets the current step finish and then stops training
        (``self.interrupted``), so the model, optimizer and step count a save writes agree
        and ``--resume`` continues exactly. A second Ctrl-C stops at once. Only in a single
        process's main thread: a launcher's processes keep the default behaviour."""
        self.interrupted = False
        single = int(os.environ.get("WORLD_SIZE", "1")) == 1
        if not single or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # -- save / load -----------------------------------------------------------------------
    @classmethod
    def saved_step(cls, folder: Path) -> int:
        """The optimizer steps behind a model ``save`` wrote (what ``--resume`` continues
        from); each backend records them with its own training state."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """The trained model and its tokenizer, in ``save_pretrained`` format (loadable by any
        Hugging Face tool, and by ``--model PATH`` for another round)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @classmethod
    def load(cls, path: Path) -> DPOTrainerBase:
        """Reopen a run directory: its settings, and its trained model as the policy."""
        run = Run.open(path)
        weights = run.model_dir
        if not (weights / "config.json").is_file():
            raise UsageError(
                f"{path} has no trained model yet ({weights} is missing); "
                "was the training interrupted?"
            )
        return cls(DPOSettings.from_dict(run.settings), weights=weights)

    @classmethod
    def resume(cls, run: Run, settings: DPOSettings) -> DPOTrainerBase:
        """A trainer that continues ``run`` (with ``settings``: the run's own, perhaps with
        more steps) from its saved model and training state."""
        weights = run.model_dir
        if not (weights / "config.json").is_file() or not cls.has_training_state(weights):
            raise UsageError(
                f"{run.path} has no saved training state to resume from ({weights}); it was "
                "stopped before its first step or made by an older rlkit: start a new run"
            )
        return cls(settings, weights=weights, resume=True)

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
    if s.judge not in JUDGES:
        raise UsageError(f"--judge must be one of {', '.join(JUDGES)}, not {s.judge!r}")
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
