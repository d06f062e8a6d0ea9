"""``rlkit train dpo`` (align a small language model with DPO) and ``rlkit models build``.

Every run leaves a run directory like the CartPole runs (config.json, metrics.csv, tb/,
curves.png, model/, plus eval.json with every sampled answer); ``rlkit eval RUN`` and
``rlkit plot RUN`` work on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click

from rlkit.errors import UsageError
from rlkit_dpo import TASK, TRAINERS
from rlkit_dpo.config import METRICS, DPOSettings

#: the CLI shows and uses the settings' own defaults (one source of truth)
DEFAULTS = DPOSettings()


@click.command(name="dpo")
@click.option(
    "--backend",
    type=click.Choice(list(TRAINERS)),
    default="trl",
    show_default=True,
    help="trl: TRL's DPOTrainer, as in the course. native: rlkit's own DPO loop.",
)
@click.option(
    "--impl",
    type=click.Choice(["solution", "student"]),
    default=None,
    help="The reference DPO functions, or your own dpo.py (TRL: your loss inside "
    "TRL's trainer). [default: solution; student with --path]",
)
@click.option(
    "--path",
    type=click.Path(path_type=Path),
    default=None,
    help="Your workspace with dpo.py (implies --impl student). [default: current folder]",
)
@click.option(
    "--model",
    metavar="PATH_OR_HUB_ID",
    default=None,
    help="A model folder (save_pretrained format) or a Hub id such as "
    "Qwen/Qwen2.5-0.5B-Instruct. [default: rlkit's built-in tiny-polite-lm]",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Training pairs: JSONL with prompt, chosen, rejected on every line. "
    "[default: the built-in polite-vs-rude task]",
)
@click.option(
    "--eval-data",
    type=click.Path(path_type=Path),
    default=None,
    help="Held-out pairs for the before/after evaluation. [default: the built-in "
    "held-out split; with --data, --eval-split of its prompts]",
)
@click.option(
    "--eval-split",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=DEFAULTS.eval_split,
    show_default=True,
    help="With --data and no --eval-data: the fraction of its prompts held out of "
    "training for the evaluation (0: train on all, evaluate nothing).",
)
@click.option(
    "--beta",
    type=float,
    default=DEFAULTS.beta,
    show_default=True,
    help="How far the policy may move from the reference (larger: less).",
)
@click.option(
    "--lr",
    "--learning-rate",
    "learning_rate",
    type=float,
    default=DEFAULTS.learning_rate,
    show_default=True,
    help="Learning rate (linear decay to 0).",
)
@click.option(
    "--optim",
    type=click.Choice(["sgd", "adamw"]),
    default=DEFAULTS.optim,
    show_default=True,
    help="Optimizer. AdamW is TRL's default (use it with --lr 1e-5 for a real "
    "model); plain SGD is what works on the built-in model, see the README.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULTS.per_device_train_batch_size,
    show_default=True,
    help="Preference pairs per step (per device).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=DEFAULTS.num_train_epochs,
    show_default=True,
    help="Passes over the training pairs.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many steps (overrides --epochs).",
)
@click.option(
    "--judge",
    type=click.Choice(["polite", "none"]),
    default=None,
    help="Rule that judges sampled answers. [default: polite for the built-in "
    "task, none with --data]",
)
@click.option(
    "--eval-prompts",
    type=click.IntRange(min=0),
    default=None,
    help="Held-out prompts to sample before and after (0: skip). [default: all]",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULTS.seed,
    show_default=True,
    help="Random seed (same seed, same run).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory to create. [default: runs/dpo-BACKEND-TIME]",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN",
    help="Continue a run stopped with Ctrl-C (or a finished one, with more --max-steps or "
    "--epochs) from its saved model and optimizer, with its own settings.",
)
def dpo_command(
    backend: str,
    impl: str | None,
    path: Path | None,
    model: str | None,
    data: Path | None,
    eval_data: Path | None,
    eval_split: float,
    beta: float,
    learning_rate: float,
    optim: str,
    batch_size: int,
    epochs: int,
    max_steps: int | None,
    judge: str | None,
    eval_prompts: int | None,
    seed: int,
    out: Path | None,
    resume: Path | None,
) -> None:
    """Align a small language model with DPO, then print held-out answers before and after
    and `Held-out preferred rate: 0.50 -> 1.00`.

    \b
      rlkit train dpo                              the course's TRL run (built-in model)
      rlkit train dpo --backend native             rlkit's own loop, same settings
      rlkit train dpo --impl student --path my-work     your dpo_loss inside TRL
      rlkit train dpo --model ./my-model --data pairs.jsonl
      rlkit train dpo --resume runs/dpo-trl-...     continue a run stopped with Ctrl-C
    """
    from rlkit.registry import resolve

    main_process = os.environ.get("RANK", "0") == "0"  # set by accelerate launch / torchrun
    if resume is not None:
        _only_resume_flags()
        trainer, run = _resume(resolve, resume, epochs, max_steps, eval_prompts, main_process)
        backend = run.backend
    else:
        trainer, run = _start(
            resolve,
            main_process,
            backend=backend,
            model=model,
            data=_absolute(data),
            eval_data=_absolute(eval_data),
            eval_split=eval_split,
            beta=beta,
            optim=optim,
            learning_rate=learning_rate,
            per_device_train_batch_size=batch_size,
            num_train_epochs=epochs,
            max_steps=max_steps,
            seed=seed,
            impl=impl if path is None or impl is not None else "student",
            path=path,
            judge=judge or ("polite" if data is None else "none"),
            eval_prompts=eval_prompts,
            out=out,
        )
    if run is None:  # other ranks of a multi-GPU run only train
        trainer.train()
        return
    evaluate = trainer.settings.eval_prompts != 0
    if evaluate and trainer.checkpoint is None:
        click.echo("Sampling held-out answers before DPO...")
        trainer.snapshot_reference()
    summary = _train(trainer, run)
    if trainer.interrupted:
        click.echo(
            f"Interrupted after step {trainer.steps_done}; the model and optimizer are saved. "
            f"Continue with: rlkit train dpo --resume {run.path}",
            err=True,
        )
        sys.exit(130)
    if evaluate:
        result = trainer.evaluate()
        trainer.write_evaluation(result, run.path, summary)
        click.echo(str(result))
    click.echo(
        f"{summary.get('train_pairs', 0):.0f} preference pairs in "
        f"{summary.get('train_seconds', 0):.1f} s "
        f"({summary.get('train_pairs_per_second', 0):.0f} pairs/s, {backend} backend)."
    )
    click.echo(
        f"Run saved in {run.path} (plot: {run.path / 'curves.png'}; model: "
        f"{run.model_dir}; `rlkit eval {run.path}` to evaluate it again)"
    )


def _start(resolve: Any, main_process: bool, out: Path | None, **options: Any) -> tuple[Any, Any]:
    """A new trainer, and (in the main process) its new run directory."""
    from rlkit.runs import Run

    backend, path = options.pop("backend"), options.pop("path")
    if path is not None and options["impl"] == "solution":  # checked before it defaults
        raise UsageError("--path names a student workspace; use it with --impl student")
    _one_device_for_native(backend)
    impl = options.pop("impl") or "solution"
    settings = DPOSettings(**options, impl=impl, path=_absolute(path))
    trainer = _load(resolve, TRAINERS[backend], settings)  # bad data/model/files fail here
    if not main_process:
        return trainer, None
    run = Run.create(
        out, TASK, backend, settings.to_dict(), plot_metrics=list(METRICS), x_metric="step"
    )
    click.echo(f"Run directory: {run.path}")
    data = settings.data
    if data is not None and settings.eval_data is None and trainer.heldout_rows:
        click.echo(
            f"Holding out {len(trainer.heldout_rows)} of "
            f"{len(trainer.heldout_rows) + len(trainer.train_rows)} pairs of {data} for the "
            "evaluation (--eval-split; --eval-data FILE to choose them)."
        )
    return trainer, run


def _one_device_for_native(backend: str) -> None:
    if backend == "native" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError(
            "the native backend trains on one device; use --backend trl under "
            "`accelerate launch` (see the DPO plugin's README)"
        )


#: what --resume may change (everything else is the run's own)
RESUME_FLAGS = ("resume", "epochs", "max_steps", "eval_prompts")


def _only_resume_flags() -> None:
    from click.core import ParameterSource

    context = click.get_current_context()
    given = [
        param.opts[0]
        for param in context.command.params
        if param.name not in RESUME_FLAGS
        and context.get_parameter_source(param.name) is not ParameterSource.DEFAULT
    ]
    if given:
        raise UsageError(
            f"--resume continues a run with its own settings; drop {', '.join(given)} "
            "(only --max-steps, --epochs and --eval-prompts may change)"
        )


def _resume(
    resolve: Any,
    path: Path,
    epochs: int,
    max_steps: int | None,
    eval_prompts: int | None,
    main_process: bool,
) -> tuple[Any, Any]:
    """The trainer of an existing run, set to continue from its saved step, and the run."""
    from click.core import ParameterSource

    from rlkit.runs import Run

    run = Run.open(path)
    if run.task != TASK or run.backend not in TRAINERS:
        raise UsageError(f"{path} is a {run.task}/{run.backend} run, not a DPO run")
    _one_device_for_native(run.backend)
    settings = DPOSettings.from_dict(run.settings)
    context = click.get_current_context()
    if context.get_parameter_source("epochs") is not ParameterSource.DEFAULT:
        settings.num_train_epochs, settings.max_steps = epochs, None
    if max_steps is not None:
        settings.max_steps = max_steps
    if eval_prompts is not None:
        settings.eval_prompts = eval_prompts
    trainer = resolve(TRAINERS[run.backend]).resume(run, settings)
    total = trainer.total_steps()
    if trainer.resume_step >= total:
        raise UsageError(
            f"{path} has trained all {trainer.resume_step} of its steps; pass --max-steps N "
            f"with N > {trainer.resume_step} (or more --epochs) to train further"
        )
    if not main_process:
        return trainer, None
    run.config["settings"] = settings.to_dict()
    run.config.setdefault("resumed", []).append(
        {"from": trainer.resume_step, "to": total, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )
    run.save_config()
    click.echo(f"Resuming {run.path} at step {trainer.resume_step} of {total}")
    return trainer, run


def _absolute(path: Path | None) -> str | None:
    return str(path.resolve()) if path is not None else None


def _load(resolve: Any, factory: str, settings: Any) -> Any:
    return resolve(factory)(settings)


def _train(trainer: Any, run: Any) -> dict[str, float]:
    """Train with the run as callback; whatever happens, leave a valid run directory: a run
    that failed before its first step leaves nothing, an interrupted one keeps its model."""
    try:
        summary = dict(trainer.train([run]))
    except BaseException:
        run.close()
        if not run.rows:
            _remove_new_run(run.path)
        else:
            _save(trainer, run)
            click.echo(f"Stopped; the model so far is saved in {run.model_dir}", err=True)
        raise
    _save(trainer, run)
    return summary


def _save(trainer: Any, run: Any) -> None:
    trainer.save(run.model_dir)
    run.close()
    if run.rows:
        run.plot()


def _remove_new_run(path: Path) -> None:
    """Remove what ``Run.create`` wrote (``--out`` may name a folder that held other files)."""
    from rlkit.runs import CONFIG, TENSORBOARD

    (path / CONFIG).unlink(missing_ok=True)
    shutil.rmtree(path / TENSORBOARD, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.rmdir()  # only if empty


@click.group(name="models")
def models_group() -> None:
    """The language models rlkit ships and how they are made."""


@models_group.command(name="build")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write the model into. [default: the rlkit cache, "
    "~/.cache/rlkit/models/tiny-polite-lm]",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Supervised pre-training steps. [default: 500, as shipped]",
)
@click.option("--force", is_flag=True, help="Overwrite a model already in --out.")
def build_command(out: Path | None, steps: int | None, force: bool) -> None:
    """Rebuild the built-in model from scratch (~1 minute): tokenizer, Qwen2 config,
    pre-training on the task's texts. The same seed gives the same model as the one shipped
    with rlkit; use the folder with `rlkit train dpo --model FOLDER`."""
    from tqdm.auto import tqdm

    from rlkit_dpo.model import DEFAULT_MODEL_NAME, build_model, cache_dir

    out = out or cache_dir() / DEFAULT_MODEL_NAME
    if (out / "config.json").exists() and not force:
        raise UsageError(f"{out} already holds a model; pass --force to rebuild it")
    start = time.perf_counter()
    bar = tqdm(desc="pre-training", unit="step", dynamic_ncols=True)

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    try:
        build_model(out, {"steps": steps} if steps else None, progress=progress)
    finally:
        bar.close()
    click.echo(f"Built the model in {time.perf_counter() - start:.0f} s: {out}")
    click.echo(f"Train on it with: rlkit train dpo --model {out}")
