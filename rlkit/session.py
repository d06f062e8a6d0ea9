"""The training session: ``rlkit train TASK`` for every registered task, and the whole life of a
run, owned here once so that a plugin writes only its trainer and its settings.

What the session does for every trainer: ``rlkit.train_command`` builds the command's options
from the settings dataclass the TrainerSpec names (``rlkit.settings.TaskOptions``) plus the
shared ones (``--backend``, ``--algo``, ``--impl``/``--path``, ``--seed``, ``--out``,
``--resume RUN``, ``--set KEY=VALUE``); the session picks the trainer, runs the public checks of the exercises
it uses when it trains a student's code (``rlkit.precheck``: it names what fails, then trains
anyway), creates the run directory, shows a progress bar; on Ctrl-C it lets the step under way
finish, saves, prints the command that continues and exits 130 (a second Ctrl-C stops at
once); it removes a new run that failed before its first step; it saves the model and draws
the curves; ``--resume RUN`` reopens a run with its own settings (only those marked ``resume``
may change), records the resume in ``config.json`` and says where it resumes.

A plugin registers a trainer with its settings (``my_plugin/__init__.py``; keep it light: name
things by import path so ``rlkit --help`` never imports torch), and declares the task it owns
(what ``rlkit train bandit`` runs when no ``--backend``/``--algo`` is given)::

    from rlkit import hookimpl
    from rlkit.registry import TaskSpec, TrainerSpec

    @hookimpl
    def register_tasks(register):
        register(TaskSpec("bandit", "native", "reinforce", help="Train a bandit policy."))

    @hookimpl
    def register_trainers(register):
        register(
            TrainerSpec(
                "bandit",                               # the task: `rlkit train bandit`
                "native",                               # the backend: --backend native
                "rlkit_bandit.bandit:BanditTrainer",    # a rlkit.interfaces.Trainer
                "REINFORCE on a two-armed bandit",
                algorithms=("reinforce",),              # --algo reinforce (first: the default)
                settings="rlkit_bandit.settings:BanditSettings",
                exercises=("log_prob", "reinforce"),    # checked first with --path
                plot_metrics=("reward", "entropy"),     # curves.png; the first two share a panel
            )
        )

and the settings module (no torch in it)::

    from dataclasses import dataclass
    from rlkit.settings import setting

    @dataclass
    class BanditSettings:
        steps: int = setting(300, "Gradient steps in total.", min=1, budget=True)
        learning_rate: float = setting(0.1, "Adam's step size.", flag="--lr")
        batch_size: int = 16              # no help: no flag; `--set batch_size=32` still works
        seed: int = 0                     # --seed, --impl, --path, --algo fill these fields
        impl: str = "solution"
        path: str | None = None

The trainer implements ``rlkit.interfaces.Trainer``: ``__init__(settings)``, ``train``
(reporting every step through ``notify_metrics``, which also honours Ctrl-C), ``progress``,
``evaluate``, ``save(model_dir)`` and ``load(model_dir, settings)``. That is all:
``rlkit train bandit``, ``--resume``, Ctrl-C, plots and ``rlkit eval`` come with it.

Adding an algorithm to another plugin's task is the same registration with that task's name:
``TrainerSpec("cartpole", "native", "rlkit_dqn.native:DQNTrainer", algorithms=("dqn",),
settings=..., exercises=("dqn",))`` from the DQN plugin makes ``rlkit train cartpole --algo dqn
--backend native`` work, next to the CartPole plugin's own trainers. The registry keeps one
trainer per (task, backend, algorithm). The default stays the task owner's (its ``TaskSpec``):
installing the DQN plugin, in whatever order plugins load, never changes what
``rlkit train cartpole`` runs. A setting of the same name in several trainers (``--lr``) is one
option that sets whichever trainer runs (``rlkit.settings.TaskOptions``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rlkit import settings as st
from rlkit.errors import UsageError
from rlkit.precheck import precheck
from rlkit.registry import TrainerSpec
from rlkit.settings import IMPLS, SHARED, TaskOptions, names

if TYPE_CHECKING:
    from rlkit.plugins import Task

__all__ = ["Session", "trainer_of_run", "spec_of_run", "stop_on_ctrl_c"]


# ---------------------------------------------------------------------------- the session
class Session:
    """One ``rlkit train TASK`` invocation, from its options to a finished (or stopped) run."""

    def __init__(self, task: Task, values: Mapping[str, Any]) -> None:
        self.task_info = task
        self.task, self.specs = task.name, list(task.trainers)
        self.values = dict(values)
        #: options the user gave (None and an empty --set mean "not given")
        self.given = {k for k, v in values.items() if v is not None and v != ()}
        self.main_process = os.environ.get("RANK", "0") == "0"  # accelerate launch, torchrun
        self.options = TaskOptions(self.specs)
        self.fields = self.options.settings

    def flag(self, name: str) -> str:
        """The flag the command has for a setting or option (``--set NAME`` where none)."""
        return self.options.label(name)

    def value(self, name: str, cls: type) -> Any:
        """The value given for setting ``name``, typed for ``cls`` (where the trainers disagree
        on its type, click passed the text through)."""
        raw = self.values[name]
        if self.fields[name].kind is None and isinstance(raw, str):
            return st.parse_value(cls, name, raw, self.flag(name))
        return raw

    # -- the whole run -----------------------------------------------------------------------
    def run(self) -> None:
        if self.values.get("resume") is not None:
            trainer, run, spec = self.resume(Path(self.values["resume"]))
            created = False
        else:
            trainer, run, spec = self.start()
            created = True
        if run is None:  # another process of a multi-process launch: it only trains
            trainer.train()
            return
        self.train(trainer, run, spec, created)

    def choose(self) -> TrainerSpec:
        """The trainer the options ask for: ``--backend`` and ``--algo`` when given; what they
        leave open, the task owner's default decides (``Task.preferred``: its default, then
        its algorithm, then its backend), preferring one that runs your code with
        ``--impl``/``--path`` and one that knows every setting given."""
        backend, algo = self.values.get("backend"), self.values.get("algo")
        backends, algos = self.task_info.backends, self.task_info.algorithms
        if backend is not None and backend not in backends:
            raise UsageError(f"unknown backend {backend!r}; use one of: {', '.join(backends)}")
        if algo is not None and algo not in algos:
            raise UsageError(
                f"unknown algorithm {algo!r} for {self.task}; use one of: {', '.join(algos)}"
            )
        candidates = [
            s
            for s in self.task_info.preferred()
            if (backend is None or s.backend == backend) and (algo is None or s.algorithm == algo)
        ]
        if not candidates:
            offered = [s.algorithm for s in self.specs if s.backend == backend]
            raise UsageError(
                f"unknown algorithm {algo!r} for the {backend} backend; use one of: "
                f"{', '.join(offered)}"
            )

        def prefer(keep: Any) -> None:
            nonlocal candidates
            kept = [s for s in candidates if keep(s)]
            candidates = kept or candidates

        if {"impl", "path"} & self.given:
            prefer(lambda s: "impl" in st.fields_of(s.settings_class()))
        wanted = {
            k.partition("=")[0].strip().replace("-", "_")
            for k in self.values.get("overrides") or ()
        }
        wanted |= {n for n in self.given if n in self.fields and n not in SHARED}
        if wanted:
            prefer(lambda s: wanted <= set(st.fields_of(s.settings_class())))
        return candidates[0]

    def start(self) -> tuple[Any, Any, TrainerSpec]:
        """A new trainer and (in the main process) its new run directory, created only once the
        settings are valid and the trainer is built."""
        from rlkit.runs import Run

        spec = self.choose()
        cls = spec.settings_class()
        known = st.fields_of(cls)
        values: dict[str, Any] = {}
        for name in sorted(self.given & set(self.fields)):
            if name in SHARED:
                continue
            if name not in known:
                owners = [st.trainer_label(s) for s, _ in self.fields[name].owners]
                raise UsageError(
                    f"{self.flag(name)} does not apply to --backend {spec.backend} "
                    f"--algo {spec.algorithm} (it applies to {names(owners)})"
                )
            values[name] = self.value(name, cls)
        values.update(st.parse_overrides(self.values.get("overrides") or (), cls))
        impl, path = self.values.get("impl"), self.values.get("path")
        if impl is not None or path is not None:
            if "impl" not in known:
                runs_code = [
                    s.backend
                    for s in self.specs
                    if s.algorithm == spec.algorithm and "impl" in st.fields_of(s.settings_class())
                ]
                raise UsageError(
                    f"--impl and --path apply to --backend {' or '.join(runs_code) or 'none'} only"
                    " (the backends that run the exercise functions)"
                )
            if impl is not None and impl not in IMPLS:
                raise UsageError(f"--impl must be solution or student, not {impl!r}")
            if path is not None and impl == "solution":
                raise UsageError("--path names a student workspace; use it with --impl student")
            impl = impl or "student"
            values["impl"] = impl
            if impl == "student":
                values["path"] = str(Path(path if path is not None else ".").resolve())
        if self.values.get("seed") is not None:
            if "seed" not in known:
                raise UsageError(f"--seed does not apply to --backend {spec.backend}")
            values["seed"] = self.values["seed"]
        if "algo" in known:
            values["algo"] = spec.algorithm
        settings = st.build(cls, values, self.options.labels)
        student = getattr(settings, "impl", None) == "student"
        if student and spec.exercises and self.main_process:
            precheck(spec.exercises, Path(settings.path or "."))
        trainer = spec.load()(settings)  # a bad model, data or workspace fails here
        if not self.main_process:
            return trainer, None, spec
        trainer.before_training()  # before the run directory exists: a failure leaves none
        run = Run.create(
            self.values.get("out"),
            self.task,
            spec.backend,
            {"algo": spec.algorithm, **st.to_dict(settings)},
            plot_metrics=spec.plot_metrics,
            x_metric=spec.x_metric,
            algo=spec.algorithm,
        )
        click.echo(f"Run directory: {run.path}")
        return trainer, run, spec

    def resume(self, path: Path) -> tuple[Any, Any, TrainerSpec]:
        """The trainer of an existing run, set to continue it (with more budget if given)."""
        from rlkit.runs import Run

        def police(specs: list[TrainerSpec]) -> set[str]:
            """What ``--resume`` may change for ``specs``; an error naming what it may not."""
            resumable = {n for n in self.fields if self.options.may_resume(n, specs)}
            set_keys = [
                item.partition("=")[0].strip().replace("-", "_")
                for item in self.values.get("overrides") or ()
            ]
            extra = [
                self.flag(n) for n in sorted(self.given - resumable - {"resume", "overrides"})
            ] + [f"--set {k}" for k in set_keys if k not in resumable]
            if extra:
                may = self.options.resume_flags(specs)
                raise UsageError(
                    f"--resume continues a run with its own settings; drop {', '.join(extra)}"
                    + (f" (only {names(may)} may change)" if may else "")
                )
            return resumable

        police(self.specs)  # before reading the run: what no trainer of the task may change
        run = Run.open(path)
        spec = spec_of_run(run, self.task)
        resumable = police([spec])  # what this run's trainer may change
        cls = spec.settings_class()
        known = st.fields_of(cls)
        changes = {n: self.value(n, cls) for n in self.given & resumable if n in known}
        changes.update(st.parse_overrides(self.values.get("overrides") or (), cls, resumable))
        settings = st.changed(st.from_dict(cls, run.settings), changes, self.options.labels)
        trainer = spec.load().load(run.model_dir, settings)
        progress = trainer.progress()
        if progress.done >= progress.total:
            budget = [n for n, f in known.items() if f.metadata.get("budget")]
            flags = [self.flag(n) for n in budget] or ["--set ..."]
            more = f" (or more {names(flags[1:])})" if len(flags) > 1 else ""
            first = f"{flags[0]}=N" if flags[0].startswith("--set ") else f"{flags[0]} N"
            raise UsageError(
                f"{path} has trained all {progress.done} of its {progress.unit}s; pass "
                f"{first} with N > {progress.done}{more} to train further"
            )
        if not self.main_process:
            return trainer, None, spec
        run.config["settings"] = {"algo": spec.algorithm, **st.to_dict(settings)}
        run.config.setdefault("resumed", []).append(
            {
                "from": progress.done,
                "to": progress.total,
                "changed": sorted(changes),
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )
        run.save_config()
        click.echo(f"Resuming {run.path} at {progress.unit} {progress.done} of {progress.total}")
        return trainer, run, spec

    def train(self, trainer: Any, run: Any, spec: TrainerSpec, created: bool) -> None:
        """Train with the run and a progress bar as callbacks; whatever happens, leave a valid
        run directory (or, if it failed before its first step, nothing at all)."""
        from rlkit.progress import ProgressBar

        bar = ProgressBar(f"{self.task} {spec.algorithm} ({spec.backend})", spec.plot_metrics[:2])
        continue_with = f"Continue with: rlkit train {self.task} --resume {run.path}"
        try:
            with stop_on_ctrl_c(trainer):
                summary = dict(trainer.train([run, bar]))
        except BaseException as exc:
            bar.close()
            run.close()
            if created and not run.rows:  # nothing trained: leave nothing behind
                remove_new_run(run.path)
                raise
            save(trainer, run)
            if isinstance(exc, KeyboardInterrupt):
                done = trainer.progress()
                click.echo(
                    f"Stopped at once at {done.done} {done.unit}s; the run so far is saved. "
                    + continue_with,
                    err=True,
                )
                sys.exit(130)
            click.echo(f"The run so far is saved in {run.path}", err=True)
            raise
        save(trainer, run)
        if trainer.stop_requested:
            done = trainer.progress()
            click.echo(
                f"Interrupted at {done.done} {done.unit}s; the run is saved. {continue_with}",
                err=True,
            )
            sys.exit(130)
        for line in trainer.after_training(run.path, summary):
            click.echo(line)
        click.echo(
            f"Run saved in {run.path} (plot: {run.path / 'curves.png'}; "
            f"`rlkit eval {run.path}` to evaluate it again)"
        )


# ---------------------------------------------------------------------------- pieces
def spec_of_run(run: Any, task: str | None = None) -> TrainerSpec:
    """The installed trainer that made ``run`` (its task, backend and algorithm)."""
    from rlkit.plugins import get_trainers

    if task is not None and run.task != task:
        raise UsageError(
            f"{run.path} is a {run.task} run, not a {task} run; continue it with "
            f"`rlkit train {run.task} --resume {run.path}`"
        )
    trainers = get_trainers()
    algo = run.config.get("algo") or run.settings.get("algo")
    spec = trainers.get((run.task, run.backend, algo))
    if spec is None:
        spec = next(
            (s for (t, b, _), s in trainers.items() if (t, b) == (run.task, run.backend)), None
        )
    if spec is None:
        raise UsageError(
            f"no installed plugin trains {run.task}/{run.backend}"
            + (f" --algo {algo}" if algo else "")
            + "; `rlkit plugins` lists them"
        )
    return spec


def trainer_of_run(run: Any) -> Any:
    """The trainer of a saved run, as it was saved (for ``rlkit eval``)."""
    spec = spec_of_run(run)
    settings = st.from_dict(spec.settings_class(), run.settings)
    return spec.load().load(run.model_dir, settings)


@contextlib.contextmanager
def stop_on_ctrl_c(trainer: Any) -> Iterator[None]:
    """Meanwhile, Ctrl-C asks the trainer to stop after the step under way
    (``request_stop``); a second Ctrl-C stops at once (KeyboardInterrupt). Only in a single
    process's main thread: a launcher's processes keep the default behaviour."""
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if not single or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop()
        click.echo(
            "\nCtrl-C: stopping after the current step (press it again to stop at once)...",
            err=True,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def save(trainer: Any, run: Any) -> None:
    """The model into ``run/model``, then the curves."""
    trainer.save(run.model_dir)
    run.close()
    if run.rows:
        run.plot()


def remove_new_run(path: Path) -> None:
    """Remove what ``Run.create`` wrote (``--out`` may name a folder that held other files)."""
    from rlkit.runs import CONFIG, MODEL, TENSORBOARD

    (path / CONFIG).unlink(missing_ok=True)
    shutil.rmtree(path / TENSORBOARD, ignore_errors=True)
    shutil.rmtree(path / MODEL, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.rmdir()  # only if empty
