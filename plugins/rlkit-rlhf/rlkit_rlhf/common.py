"""What both tasks and all four trainers share: the device, the built-in data (the DPO plugin's
prompts and preference pairs), the exercise functions a native run trains with, the rewards
GRPO samples against, and the bridge from a Hugging Face ``Trainer`` to rlkit's callbacks.

The model, the data and the politeness rule are imported from ``rlkit_dpo`` as they are: the
chapter after DPO continues on the same model and task.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from rlkit.errors import RlkitError, UsageError
from rlkit.impl import load_exercise_functions
from rlkit.interfaces import Callback, notify_metrics
from rlkit_dpo import task
from rlkit_dpo.data import DEFAULT_HELDOUT, DEFAULT_TRAIN, load_jsonl

#: the training state a native run saves beside its model (what ``--resume`` continues from)
TRAINING_STATE = "training_state.pt"
#: a Hugging Face Trainer checkpoint's state file (written last by a TRL run's ``save``)
TRAINER_STATE = "trainer_state.json"
EVAL_FILE = "eval.json"
REWARD_TASK = "reward-model"


def device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise RlkitError(f"this trainer needs {', '.join(missing)}: `pip install 'rlkit[trl]'`")


def preference_rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, held-out) preference pairs of the built-in polite-vs-rude task."""
    return load_jsonl(DEFAULT_TRAIN, "--data"), load_jsonl(DEFAULT_HELDOUT, "--eval-data")


def prompts() -> tuple[list[str], list[str]]:
    """(train, held-out) prompts of the built-in task: GRPO samples its own answers."""
    train, heldout = preference_rows()
    return [r["prompt"] for r in train], [r["prompt"] for r in heldout]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hide transformers' load reports and deprecation notices about settings rlkit does not
    use (a new reward head is *meant* to be initialised)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="transformers")
            yield
    finally:
        hf_logging.set_verbosity(level)


def tokenizer_of(source: str) -> Any:
    """The tokenizer of a model folder, ready for batches (a pad token, left padding)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# -- the exercise functions ----------------------------------------------------------------
def exercise_functions(settings: Any) -> SimpleNamespace:
    """The functions a native run trains with: the ``rlhf`` exercise's, plus ``log_prob``
    (per-token log-probabilities: the CartPole chapter's function). With ``--impl student``
    they are the student's files, and ``grpo_loss`` calls the student's own ``ppo_clip_loss``
    from ``ppo.py`` (guarded like every student function: a stub or a crash stops the run with
    one line naming the file)."""
    impl = getattr(settings, "impl", "solution")
    path = Path(settings.path) if getattr(settings, "path", None) else None
    probs = load_exercise_functions("log_prob", impl, path)
    if impl != "student":
        rlhf = load_exercise_functions("rlhf", impl, path)
        return SimpleNamespace(**vars(rlhf), log_prob=probs.log_prob)
    ppo = load_exercise_functions("ppo", impl, path)
    # rlhf.py imports `from ppo import ppo_clip_loss`, as it does in `rlkit check` (where the
    # workspace is the working folder): here `ppo` is the student's ppo.py, guarded
    with _module_named("ppo", SimpleNamespace(**vars(ppo))):
        rlhf = load_exercise_functions("rlhf", impl, path)
    grpo_loss = getattr(rlhf.grpo_loss, "__wrapped__", rlhf.grpo_loss)
    if "ppo_clip_loss" in getattr(grpo_loss, "__globals__", {}):  # also a name bound later
        grpo_loss.__globals__["ppo_clip_loss"] = ppo.ppo_clip_loss
    return SimpleNamespace(**vars(rlhf), log_prob=probs.log_prob)


@contextlib.contextmanager
def _module_named(name: str, module: Any) -> Iterator[None]:
    """``import name`` finds ``module`` meanwhile (and what it found before, afterwards)."""
    import sys

    before = sys.modules.get(name)
    sys.modules[name] = module
    try:
        yield
    finally:
        if before is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = before


def probe_reward_functions(functions: SimpleNamespace) -> None:
    """Call the student's function once on tiny inputs, so a stub stops the command before
    anything is created."""
    functions.bradley_terry_loss(torch.zeros(2), torch.zeros(2))


def probe_grpo_functions(functions: SimpleNamespace) -> None:
    """The same for GRPO's functions (``grpo_loss`` calls ``ppo_clip_loss`` and
    ``kl_penalty``)."""
    functions.group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 2)
    logps = torch.full((2, 3), -1.0)
    functions.log_prob(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))
    functions.kl_penalty(logps, logps)
    mask = torch.ones(2, 3, dtype=torch.long)
    functions.grpo_loss(logps, logps, logps, torch.tensor([1.0, -1.0]), mask, 0.2, 0.04)


# -- rewards ---------------------------------------------------------------------------------
def reward_run_model(spec: str) -> Path:
    """The trained reward model of a ``rlkit train reward-model`` run directory (one line when
    ``spec`` is not one)."""
    from rlkit.runs import Run

    path = Path(spec)
    run = Run.open(path)  # one line if it is not a run at all
    if run.task != REWARD_TASK:
        raise UsageError(
            f"--reward {spec}: a {run.task} run, not a reward model; pass `judge` or a "
            f"`rlkit train {REWARD_TASK}` run directory"
        )
    if not (run.model_dir / "config.json").is_file():
        raise UsageError(
            f"--reward {spec}: the run holds no trained reward model yet (stopped before its "
            "first step?)"
        )
    return run.model_dir


class Reward:
    """What scores GRPO's sampled answers: ``judge``, the built-in politeness rule (1.0 for an
    answer it calls polite, else 0.0), or a run directory of ``rlkit train reward-model`` (its
    reward model's score of prompt + answer, with the end-of-sequence token it was trained
    with). A callable ``(prompts, completions) -> list[float]``, the shape TRL's
    ``GRPOTrainer`` takes, so both backends score with the same function."""

    def __init__(self, spec: str, on: torch.device | None = None) -> None:
        self.spec = spec
        self.model = self.tokenizer = None
        if spec == "judge":
            self.__name__ = "politeness_rule"
            return
        folder = reward_run_model(spec)
        from transformers import AutoModelForSequenceClassification

        with quiet():
            self.model = AutoModelForSequenceClassification.from_pretrained(folder)
        self.model.to(on or device()).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer_of(str(folder))
        self.__name__ = "reward_model"

    @property
    def is_rule(self) -> bool:
        return self.model is None

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float]:
        if self.model is None:
            return [1.0 if task.judge(c) == "polite" else 0.0 for c in completions]
        eos = self.tokenizer.eos_token
        texts = [p + c + eos for p, c in zip(prompts, completions)]
        scores = []
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                enc = self.tokenizer(texts[start : start + 64], return_tensors="pt", padding=True)
                enc = {k: v.to(self.model.device) for k, v in enc.items()}
                scores += self.model(**enc).logits[:, 0].float().tolist()
        return scores


# -- TRL's Trainer → rlkit's callbacks -----------------------------------------------------------
def bridge(owner: Any, callbacks: Sequence[Callback]) -> Any:
    """A ``transformers.TrainerCallback`` that hands TRL's logs to rlkit's callbacks (the run
    directory, the progress bar) and stops TRL when one of them, or Ctrl-C
    (``request_stop``), asks."""
    from transformers import TrainerCallback

    class Bridge(TrainerCallback):
        last: dict[str, float] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            for callback in callbacks:
                callback.on_train_start(owner)

        def on_step_end(self, args, state, control, **kwargs):
            owner.steps_done = state.global_step
            if owner.stop_requested:
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "train_runtime" in logs:  # the end-of-training summary
                return
            metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            self.last = metrics
            if not notify_metrics(callbacks, owner, state.global_step, metrics):
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            for callback in callbacks:
                callback.on_train_end(owner)

    return Bridge()


def trainer_args(settings: Any, output_dir: str) -> dict[str, Any]:
    """The ``TrainingArguments`` both TRL trainers take from rlkit's settings; the rest is
    TRL's, except what a CPU and the tiny model need (fp32, no gradient checkpointing) and what
    rlkit does itself (logging, checkpoints, progress)."""
    return dict(
        output_dir=output_dir,
        learning_rate=settings.learning_rate,
        optim="sgd" if settings.optim == "sgd" else "adamw_torch",
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        seed=settings.seed,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
        weight_decay=0.0,
    )


def save_trainer_state(trainer: Any, path: Path) -> None:
    """A Hugging Face ``Trainer`` checkpoint's training state beside the saved model, so the
    folder is one: ``--resume`` hands it to ``trainer.train(resume_from_checkpoint=...)``."""
    import random

    import numpy as np
    from rlkit.runs import written_whole

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


def trainer_state_step(folder: Path) -> int:
    import json

    return int(json.loads((Path(folder) / TRAINER_STATE).read_text())["global_step"])


def native_state_step(folder: Path) -> int:
    return int(torch.load(Path(folder) / TRAINING_STATE, weights_only=False)["step"])


def set_threads(threads: int) -> None:
    """torch's CPU threads (the ``threads`` setting): the tiny model's matrices are too small
    for a second thread to pay, and on a busy machine spinning threads cost 10x."""
    with contextlib.suppress(RuntimeError, ValueError):
        torch.set_num_threads(threads)
