"""``rlkit train``: one command per registered task, its options built from the settings
dataclasses of the task's trainers (``rlkit.settings``) plus the options every task shares.
Running one hands the options to ``rlkit.session.Session``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from rlkit import settings as st
from rlkit.registry import TrainerSpec

#: the options every task shares; a settings field of one of these names gets no flag
SHARED = ("backend", "algo", "impl", "path", "seed", "out", "resume", "overrides")


class TrainGroup(click.Group):
    """``rlkit train``: one command per registered task, built when it is asked for (so
    ``rlkit --help`` imports no settings module); commands a plugin adds itself come first."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from rlkit.plugins import get_trainers

        tasks = {spec.task for spec in get_trainers().values()}
        return sorted(tasks | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        from rlkit.plugins import trainers_of

        specs = trainers_of(cmd_name)
        return train_command(cmd_name, specs) if specs else None


def train_command(task: str, specs: Sequence[TrainerSpec]) -> click.Command:
    """``rlkit train TASK``: the shared options, then every settings field that has help."""
    backends = list(dict.fromkeys(s.backend for s in specs))
    algos = list(dict.fromkeys(s.algorithm for s in specs))
    params: list[click.Parameter] = [
        click.Option(
            ["--backend"],
            metavar="|".join(backends),
            help=_by_backend(specs) + f" [default: {specs[0].backend}]",
        ),
        click.Option(
            ["--algo"],
            metavar="|".join(algos),
            help=(
                f"The algorithm ({algos[0]}, the only one)."
                if len(algos) == 1
                else "The algorithm: "
                + "; ".join(
                    f"{b}: {', '.join(s.algorithm for s in specs if s.backend == b)}"
                    for b in backends
                )
                + f". [default: {specs[0].algorithm}, on the first backend that offers it]"
            ),
        ),
    ]
    if any("impl" in st.fields_of(s.settings_class()) for s in specs):
        params += [
            click.Option(
                ["--impl"],
                metavar="solution|student",
                help="Train with the reference solutions, or with your own exercise files "
                "(in --path, else the current folder). [default: solution; student with --path]",
            ),
            click.Option(
                ["--path"],
                type=click.Path(path_type=Path),
                help="Your workspace (`rlkit init DIR`): train with YOUR exercise functions "
                "(implies --impl student); their public checks run first.",
            ),
        ]
    params += [
        click.Option(["--seed"], type=int, help="Random seed (same seed, same run)."),
        click.Option(
            ["--out"],
            type=click.Path(path_type=Path),
            help=f"Run directory to create. [default: runs/{task}-BACKEND-TIME]",
        ),
        click.Option(
            ["--resume"],
            type=click.Path(path_type=Path),
            metavar="RUN",
            help="Continue the run in RUN with its own settings"
            + (f" (only {names(resume_flags(specs))} may change)" if resume_flags(specs) else "")
            + ".",
        ),
        click.Option(
            ["--set", "overrides"],
            multiple=True,
            metavar="KEY=VALUE",
            help="Change any setting, e.g. --set learning_rate=1e-3 (repeatable; the names "
            "are in a run's config.json).",
        ),
    ]
    params += _settings_options(specs)
    help_text = next((s.task_help for s in specs if s.task_help), "") or (
        f"Train {task}. Trainers: "
        + "; ".join(f"{s.backend} {s.algorithm}: {s.description}" for s in specs)
    )

    def run(**values: Any) -> None:
        from rlkit.session import Session

        Session(task, list(specs), values).run()

    return click.Command(
        task,
        params=params,
        callback=run,
        help=help_text,
        short_help=help_text.strip().splitlines()[0] if help_text.strip() else None,
    )


def _by_backend(specs: Sequence[TrainerSpec]) -> str:
    seen: dict[str, str] = {}
    for s in specs:
        seen.setdefault(s.backend, s.description)
    return " ".join(f"{b}: {d}." if d else f"{b}." for b, d in seen.items())


def names(flags: Sequence[str]) -> str:
    return flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " and " + flags[-1]


def settings_fields(specs: Sequence[TrainerSpec]) -> dict[str, list[tuple[TrainerSpec, Any]]]:
    """Field name → (spec, field) for every spec whose settings have it, in order."""
    found: dict[str, list[tuple[TrainerSpec, Any]]] = {}
    for spec in specs:
        for name, f in st.fields_of(spec.settings_class()).items():
            found.setdefault(name, []).append((spec, f))
    return found


def resume_flags(specs: Sequence[TrainerSpec]) -> list[str]:
    flags = []
    for name, owners in settings_fields(specs).items():
        f = owners[0][1]
        if st.may_resume(f) and name not in SHARED:
            flags.append(st.flags_of(f)[0] if st.has_flag(f) else f"--set {name}=...")
    return flags


def _settings_options(specs: Sequence[TrainerSpec]) -> list[click.Option]:
    options = []
    for name, owners in settings_fields(specs).items():
        spec, f = owners[0]
        if not st.has_flag(f) or name in SHARED:
            continue
        kind = st.value_type(spec.settings_class(), name)
        decls = list(st.flags_of(f))
        default_text = _defaults_text(owners, specs)
        extra: dict[str, Any] = {}
        if kind is bool:
            decls = [f"{decls[0]}/--no-{decls[0].removeprefix('--')}", *decls[1:]]
            extra["default"] = None
        elif f.metadata.get("is_path"):
            extra["type"] = click.Path()
        else:
            extra["type"] = kind
        metavar = f.metadata.get("metavar") or (
            "|".join(map(str, f.metadata["choices"])) if "choices" in f.metadata else None
        )
        options.append(
            click.Option(
                [*decls, name],
                metavar=metavar,
                help=f"{f.metadata['help']} {default_text}",
                **extra,
            )
        )
    return options


def _defaults_text(owners: Sequence[tuple[TrainerSpec, Any]], specs: Sequence[TrainerSpec]) -> str:
    """``[default: 80000 (sb3), 60000 (native ppo)]``: each trainer's own default, naming
    which trainers have the setting when not all of them do."""
    partial = len(owners) < len(specs)
    by_value: dict[str, list[TrainerSpec]] = {}
    for spec, f in owners:
        by_value.setdefault(str(st.default_of(f)), []).append(spec)
    if set(by_value) == {"None"}:  # "not set": the help says what that means
        return ""
    if len(by_value) == 1 and not partial:
        return f"[default: {next(iter(by_value))}]"
    parts = []
    for value, group in by_value.items():
        labels: list[str] = []
        for backend in dict.fromkeys(s.backend for s in group):
            mine = [s for s in group if s.backend == backend]
            every = [s for s in specs if s.backend == backend]
            labels += (
                [backend] if len(mine) == len(every) else [f"{backend} {s.algorithm}" for s in mine]
            )
        parts.append(f"{value} ({', '.join(labels)})")
    return "[default: " + ", ".join(parts) + "]"
