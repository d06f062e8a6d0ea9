"""``rlkit train``: one command per registered task, its options built from the settings
dataclasses of the task's trainers (``rlkit.settings.TaskOptions``) plus the options every
task shares (``rlkit.settings.SHARED``). Running one hands the options to
``rlkit.session.Session``. This module only makes click objects: what the options mean, and
what errors call them, is ``rlkit.settings``'s."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rlkit import settings as st

if TYPE_CHECKING:
    from rlkit.plugins import Task


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
        from rlkit.plugins import get_task

        task = get_task(cmd_name)
        return train_command(task) if task is not None else None


def train_command(task: Task) -> click.Command:
    """``rlkit train TASK``: the shared options, then one option per setting that asks for a
    flag (``TaskOptions``); the defaults shown are the task owner's (``Task.default``)."""
    specs = list(task.trainers)
    options = st.TaskOptions(specs)
    default = task.default
    backends, algos = task.backends, task.algorithms
    params: list[click.Parameter] = [
        click.Option(
            ["--backend"],
            metavar="|".join(backends),
            help=_by_backend(task) + f" [default: {default.backend}]",
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
                + f". [default: {default.algorithm}]"
            ),
        ),
    ]
    if any("impl" in st.fields_of(s.settings_class()) for s in specs):
        params += [
            click.Option(
                ["--impl"],
                metavar="|".join(st.IMPLS),
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
    may_change = options.resume_flags()
    params += [
        click.Option(["--seed"], type=int, help="Random seed (same seed, same run)."),
        click.Option(
            ["--out"],
            type=click.Path(path_type=Path),
            help=f"Run directory to create. [default: runs/{task.name}-BACKEND-TIME]",
        ),
        click.Option(
            ["--resume"],
            type=click.Path(path_type=Path),
            metavar="RUN",
            help="Continue the run in RUN with its own settings"
            + (f" (only {st.names(may_change)} may change)" if may_change else "")
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
    params += [_option(setting, specs) for setting in options.with_flags()]
    help_text = task.help or (
        f"Train {task.name}. Trainers: "
        + "; ".join(f"{s.backend} {s.algorithm}: {s.description}" for s in specs)
    )
    epilog = None
    if options.conflicts:
        epilog = "\b\nConflicting settings (rlkit plugins lists them):\n" + "\n".join(
            f"  {plugin}: {line.split(': ', 1)[1]}" for plugin, line in options.conflicts
        )

    def run(**values: Any) -> None:
        from rlkit.session import Session

        Session(task, values).run()

    return click.Command(
        task.name,
        params=params,
        callback=run,
        help=help_text,
        epilog=epilog,
        short_help=help_text.strip().splitlines()[0] if help_text.strip() else None,
    )


def _by_backend(task: Task) -> str:
    seen: dict[str, str] = {}
    for s in task.trainers:
        seen.setdefault(s.backend, s.description)
    return " ".join(f"{b}: {d}." if d else f"{b}." for b, d in seen.items())


def _option(setting: st.Setting, specs: list[Any]) -> click.Option:
    """The click option of one setting (its value arrives under the setting's name)."""
    _, f = setting.flagged[0]
    decls = list(setting.flags)
    extra: dict[str, Any] = {}
    if setting.is_bool:
        first = decls[0]
        if first.startswith("--"):
            decls = [f"{first}/--no-{first.removeprefix('--')}", *decls[1:]]
        else:
            extra["is_flag"] = True
        extra["default"] = None
    elif any(g.metadata.get("is_path") for _, g in setting.flagged):
        extra["type"] = click.Path()
    elif setting.kind is not None:
        extra["type"] = setting.kind
    choices: list[Any] = []
    for _, g in setting.flagged:
        choices += [c for c in g.metadata.get("choices", ()) if c not in choices]
    metavar = f.metadata.get("metavar") or ("|".join(map(str, choices)) if choices else None)
    if metavar is None and setting.kind is None:
        metavar = "VALUE"
    return click.Option([*decls, setting.name], metavar=metavar, help=setting.help(specs), **extra)
