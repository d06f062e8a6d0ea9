"""``rlkit plugin new NAME [DIR] [--task TASK]``: a complete plugin package to start from, for
course authors: a new task of its own (the default), or a new algorithm for an existing task
(``--task cartpole``).

The package works as written (its checks pass the reference, its tests pass, its trainer
trains, ``ruff check`` passes with the settings in its pyproject), so an author changes a
working example into their algorithm instead of assembling one from the documentation:

    DIR/pyproject.toml                 rlkit-NAME (students install it): the entry point in the
                                       ``rlkit`` group; the public vectors shipped; a ``dev``
                                       extra (pytest, ruff) and ruff's settings
    DIR/README.md                      what each file is, and the commands to try
    DIR/rlkit_NAME/__init__.py         register_exercises, register_tasks (a task of its own),
                                       register_trainers
    DIR/rlkit_NAME/exercises/NAME.py   the stub students fill in
    DIR/rlkit_NAME/checks.py           the checks, and the public ones' stored vectors beside them
    DIR/rlkit_NAME/settings.py         the trainer's settings (its command-line options)
    DIR/rlkit_NAME/trainer.py          a Trainer that uses the exercise function: TD(0) on a
                                       random walk (``rlkit train NAME``), or with ``--task
                                       cartpole`` an actor-critic built on rlkit_cartpole's
                                       public parts (``rlkit train cartpole --algo NAME``)
    DIR/tests/test_NAME.py             passing tests
    DIR/instructor/pyproject.toml      rlkit-NAME-instructor: the answers, instructors only
    DIR/instructor/rlkit_NAME_instructor/NAME.py      the reference solution (same docstrings),
                                       the hidden checks' stored vectors beside it
    DIR/instructor/rlkit_NAME_instructor/mistakes.py  classic mistakes (with a variant),
                                       correct alternatives

The templates live in ``rlkit/templates/plugin`` (``cartpole_*`` replace the new-task files
for ``--task cartpole``). Only click is imported at module level: the command is registered in
``rlkit --help``, which must stay instant.
"""

from __future__ import annotations

import re
import string
import sys
from pathlib import Path

import click

from rlkit.errors import UsageError

TEMPLATES = Path(__file__).resolve().parent / "templates" / "plugin"
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

#: template file → where it goes in the package (``$module``/``$exercise`` filled in)
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "$module/__init__.py",
    "exercises_init.py.tmpl": "$module/exercises/__init__.py",
    "stub.py.tmpl": "$module/exercises/$exercise.py",
    "checks.py.tmpl": "$module/checks.py",
    "settings.py.tmpl": "$module/settings.py",
    "trainer.py.tmpl": "$module/trainer.py",
    "test.py.tmpl": "tests/test_$exercise.py",
    # the answers: a second distribution, for instructors only
    "instructor_pyproject.toml.tmpl": "instructor/pyproject.toml",
    "instructor_init.py.tmpl": "instructor/$instructor_module/__init__.py",
    "solution.py.tmpl": "instructor/$instructor_module/$exercise.py",
    "mistakes.py.tmpl": "instructor/$instructor_module/mistakes.py",
}
#: where the instructors' distribution is, inside the plugin's folder
INSTRUCTOR = "instructor"
#: existing tasks the template can add an algorithm to: template → the file it replaces
TASK_TEMPLATES = {
    "cartpole": {
        "README.md.tmpl": "cartpole_README.md.tmpl",
        "__init__.py.tmpl": "cartpole_init.py.tmpl",
        "settings.py.tmpl": "cartpole_settings.py.tmpl",
        "trainer.py.tmpl": "cartpole_trainer.py.tmpl",
        "test.py.tmpl": "cartpole_test.py.tmpl",
    }
}
#: pyproject's description, by task (None: a task of its own)
DESCRIPTIONS = {
    None: "An rlkit plugin: the $exercise exercise (the TD error) and a task that trains with "
    "it, TD(0) on a random walk (rlkit train $exercise).",
    "cartpole": "An rlkit plugin: the $exercise exercise (the TD error) and an advantage "
    "actor-critic for CartPole built on it (rlkit train cartpole --algo $exercise).",
}


def names(name: str, task: str | None = None) -> dict[str, str]:
    """``td-walk`` → the distribution ``rlkit-td-walk``, the module ``rlkit_td_walk``, the
    exercise (and task, and entry point) ``td_walk``, and the instructors' distribution
    ``rlkit-td-walk-instructor`` (module ``rlkit_td_walk_instructor``)."""
    if not NAME.match(name):
        raise UsageError(
            f"plugin name {name!r}: use lowercase letters, digits, '-' or '_', starting with a "
            "letter (e.g. td-walk)"
        )
    base = name.removeprefix("rlkit-").removeprefix("rlkit_") or name
    exercise = base.replace("-", "_")
    dist, module = f"rlkit-{exercise.replace('_', '-')}", f"rlkit_{exercise}"
    return {
        "name": name,
        "dist": dist,
        "module": module,
        "exercise": exercise,
        "instructor_dist": f"{dist}-instructor",
        "instructor_module": f"{module}_instructor",
        "description": DESCRIPTIONS[task].replace("$exercise", exercise),
    }


def _taken(exercise: str, task: str | None = None) -> str | None:
    """Why the name cannot be used: an exercise of that name, a task of that name (for a new
    task), or an algorithm of that name in ``task``; None when it is free."""
    from rlkit import plugins

    found = plugins.get_exercises().get(exercise)
    if found is not None:
        return f"an exercise named {exercise!r} is already registered by the {found.plugin} plugin"
    for spec in plugins.get_trainers().values():
        if task is None and spec.task == exercise:
            return f"a task named {exercise!r} is already registered by the {spec.plugin} plugin"
        if task is not None and (spec.task, spec.algorithm) == (task, exercise):
            return (
                f"{task} already has an algorithm named {exercise!r} (from the {spec.plugin} "
                "plugin)"
            )
    return None


def write_plugin(
    name: str, directory: Path | None = None, vectors: bool = True, task: str | None = None
) -> Path:
    """Write the package for ``name`` into ``directory`` (default ``./rlkit-NAME``), then its
    stored vectors; returns the directory. ``task``: add an algorithm to that existing task
    (one of ``TASK_TEMPLATES``) instead of making a task of its own."""
    if task is not None and task not in TASK_TEMPLATES:
        from rlkit.plugins import get_task

        exists = get_task(task) is not None
        raise UsageError(
            f"--task {task}: the template can add an algorithm to "
            f"{', '.join(TASK_TEMPLATES)}"
            + (
                f"; for {task}, start from a new task's package and register its TrainerSpec "
                f"with the task {task!r} (README: Writing a plugin)"
                if exists
                else f" (no installed plugin trains {task!r})"
            )
        )
    if task is not None:
        from rlkit.plugins import get_task

        if get_task(task) is None:
            raise UsageError(f"--task {task}: no installed plugin trains {task!r}")
    values = names(name, task)
    taken = _taken(values["exercise"], task)
    if taken is not None:
        raise UsageError(f"{taken}; pick another name")
    directory = Path(directory) if directory is not None else Path(values["dist"])
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory} exists and is not an empty folder; pick another DIR")
    replaced = TASK_TEMPLATES.get(task or "", {})
    for template, target in FILES.items():
        template = replaced.get(template, template)
        text = string.Template((TEMPLATES / template).read_text()).substitute(values)
        out = directory / string.Template(target).substitute(values)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    if vectors:
        write_vectors(directory, values)
    return directory


def write_vectors(directory: Path, values: dict[str, str]) -> list[Path]:
    """Generate the new exercise's stored vectors from its reference solution (the public
    checks' beside the checks, the hidden checks' beside the solution), importing both
    packages from ``directory`` (they are not installed yet); returns the stems written."""
    import importlib

    from rlkit.registry import Exercise
    from rlkit_grader import api, store

    roots = [str(Path(directory).resolve()), str((Path(directory) / INSTRUCTOR).resolve())]
    sys.path[:0] = roots
    try:
        module = importlib.import_module(values["module"])
        found: list[Exercise] = []
        module.register_exercises(found.append)
        written = []
        for stem, doc, arrays in api.build_vectors(found[0]):
            store.write(doc, arrays, stem)
            written.append(stem)
    finally:
        for root in roots:
            sys.path.remove(root)
        ours = (values["module"], values["instructor_module"])
        for key in [k for k in sys.modules if k.split(".")[0] in ours]:
            del sys.modules[key]
    return written


@click.group(name="plugin")
def plugin_command() -> None:
    """Course authors: start a plugin (an exercise, its checks, a trainer)."""


@plugin_command.command(name="new")
@click.argument("name")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option(
    "--task",
    metavar="TASK",
    help="Add an algorithm to this existing task (cartpole) instead of making a task of the "
    "plugin's own: `rlkit train TASK --algo NAME`.",
)
def new_command(name: str, directory: Path | None, task: str | None) -> None:
    """Write a complete plugin package NAME into DIR (default: ./rlkit-NAME).

    \b
    It works as written: install it, and rlkit lists it, `rlkit init` copies its
    stub, `rlkit check` checks it, `rlkit train NAME` trains with it (with
    --task cartpole: `rlkit train cartpole --algo NAME`); its tests and
    `ruff check` pass.
    """
    path = write_plugin(name, directory, task=task)
    values = names(name, task)
    answers = path / INSTRUCTOR / values["instructor_module"]
    train = f"{task} --algo {values['exercise']}" if task else values["exercise"]
    click.echo(
        f"Wrote {values['dist']} in {path}, and its answers ({values['instructor_dist']}, "
        f"instructors only) in {path / INSTRUCTOR}. Next:"
    )
    click.echo(f'  pip install -e "{path}[dev]" -e {path / INSTRUCTOR}   # [dev]: pytest and ruff')
    click.echo(f"  rlkit check {values['exercise']} --path {answers} --hidden")
    click.echo(f"  rlkit train {train}")
    click.echo(f"  python -m pytest {path / 'tests'}")
    click.echo(f"Then read {path / 'README.md'} and make it your algorithm.")
