"""``rlkit train cartpole``: the course's SB3 run, or rlkit's native trainer on the exercise
functions (the student's own with ``--impl student``). Every run leaves a run directory;
``rlkit eval RUN`` and ``rlkit plot RUN`` work on it, ``--resume RUN`` continues it."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from rlkit.errors import UsageError
from rlkit_cartpole import TASK, TRAINERS

#: the first two share the headline panel: reward rising while entropy falls
PLOT_METRICS = {
    "ppo": [
        "episode_reward",
        "entropy",
        "episode_length",
        "policy_loss",
        "value_loss",
        "approx_kl",
    ],
    "a2c": ["episode_reward", "entropy", "episode_length", "policy_loss", "value_loss"],
    "reinforce": ["episode_reward", "entropy", "episode_length", "policy_loss"],
}


@click.command(name="cartpole")
@click.option(
    "--backend",
    default=None,
    metavar="sb3|native",
    help="sb3: the course's Stable-Baselines3 run. native: rlkit's own trainer on the "
    "exercise functions. [default: native with --impl/--path or --algo "
    "reinforce, else sb3]",
)
@click.option(
    "--algo",
    default=None,
    metavar="ALGO",
    help="sb3: ppo (default) or a2c; native: ppo (default) or reinforce.",
)
@click.option(
    "--impl",
    default=None,
    metavar="solution|student",
    help="Native only: the reference solutions (default) or your own exercise files.",
)
@click.option(
    "--path",
    type=click.Path(path_type=Path),
    default=None,
    help="Your workspace with log_prob.py, reinforce.py, ppo.py (implies --impl "
    "student). [default: the current folder]",
)
@click.option(
    "--timesteps",
    type=int,
    default=None,
    help="Environment steps in total. [default: sb3 80000; native ppo 60000, "
    "reinforce 100000; with --resume: the run's own]",
)
@click.option(
    "--seed", type=int, default=None, help="Random seed (same seed, same curve). [default: 0]"
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory to create. [default: runs/cartpole-BACKEND-TIME]",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN",
    help="Continue the run in RUN (to its --timesteps, or a new larger --timesteps).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Native only: change a hyperparameter, e.g. --set learning_rate=1e-3 "
    "(repeatable; see config.json of a run for the names).",
)
@click.option(
    "--eval-episodes",
    type=int,
    default=10,
    show_default=True,
    help="Episodes of the final evaluation (0: skip it).",
)
def cartpole_command(
    backend: str | None,
    algo: str | None,
    impl: str | None,
    path: Path | None,
    timesteps: int | None,
    seed: int | None,
    out: Path | None,
    resume: Path | None,
    overrides: tuple[str, ...],
    eval_episodes: int,
) -> None:
    """Train an agent to balance CartPole-v1, then print `Mean reward: X +/- Y`.

    \b
      rlkit train cartpole                          the course's SB3 PPO run
      rlkit train cartpole --backend native         rlkit's PPO on the reference solutions
      rlkit train cartpole --algo reinforce --impl student --path my-work
      rlkit train cartpole --resume runs/cartpole-native-...   continue a run
    """
    if timesteps is not None and timesteps <= 0:
        raise UsageError(f"--timesteps must be a positive number of steps, not {timesteps}")
    if eval_episodes < 0:
        raise UsageError(f"--eval-episodes must be 0 or more, not {eval_episodes}")
    if resume is not None:
        given = {
            "--backend": backend,
            "--algo": algo,
            "--impl": impl,
            "--path": path,
            "--seed": seed,
            "--out": out,
            "--set": overrides or None,
        }
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise UsageError(
                f"--resume continues a run with its own settings; drop "
                f"{', '.join(extra)} (only --timesteps may change)"
            )
        trainer, run = _resume(resume, timesteps)
    else:
        trainer, run = _start(backend, algo, impl, path, timesteps, seed, out, overrides)
    _train(trainer, run, created=resume is None)
    if eval_episodes:
        click.echo(str(trainer.evaluate(episodes=eval_episodes)))
    click.echo(
        f"Run saved in {run.path} (plot: {run.path / 'curves.png'}; "
        f"`rlkit eval {run.path}` to watch it again)"
    )


def _start(
    backend: str | None,
    algo: str | None,
    impl: str | None,
    path: Path | None,
    timesteps: int | None,
    seed: int | None,
    out: Path | None,
    overrides: tuple[str, ...],
) -> tuple[Any, Any]:
    """A new trainer and its new run directory (created only once the settings are valid)."""
    from rlkit.registry import resolve
    from rlkit.runs import Run

    native_only = impl is not None or path is not None or bool(overrides)
    if backend is None:
        backend = "native" if native_only or algo == "reinforce" else "sb3"
    if backend not in TRAINERS:
        raise UsageError(f"unknown backend {backend!r}; use one of: {', '.join(TRAINERS)}")
    factory, algorithms = TRAINERS[backend]
    algo = algo or algorithms[0]
    if algo not in algorithms:
        raise UsageError(
            f"unknown algorithm {algo!r} for the {backend} backend; use one of: "
            f"{', '.join(algorithms)}"
        )
    if backend == "sb3":
        if native_only:
            raise UsageError("--impl, --path and --set apply to --backend native only")
        from rlkit_cartpole.sb3 import SB3Config

        config: Any = SB3Config(
            algo=algo, seed=seed or 0, timesteps=timesteps or SB3Config.timesteps
        )
    else:
        from rlkit_cartpole.native import CONFIGS, make_config

        if path is not None and impl is None:
            impl = "student"
        if impl not in (None, "solution", "student"):
            raise UsageError(f"--impl must be solution or student, not {impl!r}")
        if path is not None and impl == "solution":
            raise UsageError("--path names a student workspace; use it with --impl student")
        settings = _parse_overrides(overrides, CONFIGS[algo])
        settings.update(
            impl=impl,
            timesteps=timesteps,
            seed=seed,
            path=str(path.resolve()) if path is not None else None,
        )
        config = make_config(algo, **settings)
    trainer = resolve(factory)(config)
    if backend == "native":
        trainer.objective  # noqa: B018 - load the exercise files now: a bad workspace fails here
    run = Run.create(
        out, TASK, backend, config.settings(), plot_metrics=PLOT_METRICS[algo], x_metric="timesteps"
    )
    return trainer, run


def _resume(path: Path, timesteps: int | None) -> tuple[Any, Any]:
    """The trainer of an existing run, set to train on to ``timesteps`` in total."""
    from rlkit.registry import resolve
    from rlkit.runs import Run

    run = Run.open(path)
    if run.task != TASK or run.backend not in TRAINERS:
        raise UsageError(f"{path} is a {run.task}/{run.backend} run, not a CartPole run")
    trainer = resolve(TRAINERS[run.backend][0]).load(run.path)
    total = timesteps or trainer.config.timesteps
    if total <= trainer.timesteps:
        raise UsageError(
            f"{path} has trained {trainer.timesteps} timesteps already; pass "
            f"--timesteps N with N > {trainer.timesteps} to train further"
        )
    trainer.config.timesteps = total
    run.config["settings"]["timesteps"] = total
    run.config.setdefault("resumed", []).append(
        {"from": trainer.timesteps, "to": total, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )
    run.save_config()
    return trainer, run


def _train(trainer: Any, run: Any, created: bool) -> None:
    """Train with the run and a progress bar as callbacks; whatever happens, leave a valid
    run directory: checkpoint, metrics, plot. Ctrl-C exits 130 after saving."""
    from rlkit_cartpole.progress import ProgressBar

    bar = ProgressBar(
        trainer.config.timesteps,
        start=trainer.timesteps,
        desc=f"{run.backend} {trainer.config.algo}",
    )
    try:
        trainer.train([run, bar])
    except BaseException:
        bar.on_train_end(trainer)
        run.close()
        if created and not run.rows:  # failed before the first update: leave nothing behind
            _remove_new_run(run.path)
        else:
            _save(trainer, run)
        raise
    _save(trainer, run)
    if trainer.interrupted:
        click.echo(
            f"Interrupted at {trainer.timesteps} timesteps; checkpoint saved. Continue "
            f"with: rlkit train cartpole --resume {run.path}",
            err=True,
        )
        sys.exit(130)


def _remove_new_run(path: Path) -> None:
    """Remove what ``Run.create`` wrote (``--out`` may name a folder that held other files)."""
    from rlkit.runs import CONFIG, TENSORBOARD

    (path / CONFIG).unlink(missing_ok=True)
    shutil.rmtree(path / TENSORBOARD, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.rmdir()  # only if empty


def _save(trainer: Any, run: Any) -> None:
    trainer.save(run.model_dir)
    run.close()
    if run.rows:
        run.plot()


def _parse_overrides(overrides: tuple[str, ...], config_cls: type) -> dict[str, Any]:
    """``("learning_rate=1e-3", ...)`` → typed settings of ``config_cls``."""
    defaults = {f.name: getattr(config_cls, f.name, None) for f in fields(config_cls)}
    reserved = {"impl", "path", "timesteps", "seed"}
    settings: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in defaults or key in reserved:
            names = ", ".join(k for k in defaults if k not in reserved)
            raise UsageError(f"--set {item!r}: expected KEY=VALUE with KEY one of: {names}")
        default = defaults[key]
        try:
            if isinstance(default, bool):
                if raw.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(raw)
                value: Any = raw.lower() in {"true", "1", "yes"}
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            else:
                value = raw
        except ValueError:
            raise UsageError(
                f"--set {key}: {raw!r} is not a valid {type(default).__name__}"
            ) from None
        settings[key] = value
    return settings
