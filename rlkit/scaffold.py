"""``rlkit plugin new NAME [DIR]``: a complete plugin package to start from, for course authors.

The package works as written (its checks pass the reference, its tests pass, its trainer
trains), so an author changes a working example into their algorithm instead of assembling one
from the documentation:

    DIR/pyproject.toml                 rlkit-NAME (students install it): the entry point in the
                                       ``rlkit`` group; the public vectors shipped
    DIR/README.md                      what each file is, and the commands to try
    DIR/rlkit_NAME/__init__.py         register_exercises, register_trainers
    DIR/rlkit_NAME/exercises/NAME.py   the stub students fill in
    DIR/rlkit_NAME/checks.py           the checks, and the public ones' stored vectors beside them
    DIR/rlkit_NAME/settings.py         the trainer's settings (its command-line options)
    DIR/rlkit_NAME/trainer.py          a Trainer that uses the exercise function
    DIR/tests/test_NAME.py             a passing test
    DIR/instructor/pyproject.toml      rlkit-NAME-instructor: the answers, instructors only
    DIR/instructor/rlkit_NAME_instructor/NAME.py      the reference solution (same docstrings),
                                       the hidden checks' stored vectors beside it
    DIR/instructor/rlkit_NAME_instructor/mistakes.py  classic mistakes, correct alternatives

The templates live in ``rlkit/templates/plugin``. Only click is imported at module level: the
command is registered in ``rlkit --help``, which must stay instant.
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


def names(name: str) -> dict[str, str]:
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
    }


def _taken(exercise: str) -> str | None:
    """The plugin that already registers an exercise or a task of this name, if any."""
    from rlkit import plugins

    found = plugins.get_exercises().get(exercise)
    if found is not None:
        return found.plugin
    for spec in plugins.get_trainers().values():
        if spec.task == exercise:
            return spec.plugin
    return None


def write_plugin(name: str, directory: Path | None = None, vectors: bool = True) -> Path:
    """Write the package for ``name`` into ``directory`` (default ``./rlkit-NAME``), then its
    stored vectors; returns the directory."""
    values = names(name)
    owner = _taken(values["exercise"])
    if owner is not None:
        raise UsageError(
            f"an exercise or task named {values['exercise']!r} is already registered by the "
            f"{owner} plugin; pick another name"
        )
    directory = Path(directory) if directory is not None else Path(values["dist"])
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory} exists and is not an empty folder; pick another DIR")
    for template, target in FILES.items():
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
def new_command(name: str, directory: Path | None) -> None:
    """Write a complete plugin package NAME into DIR (default: ./rlkit-NAME).

    \b
    It works as written: install it, and rlkit lists it, `rlkit init` copies its
    stub, `rlkit check` checks it, `rlkit train NAME` trains with it.
    """
    path = write_plugin(name, directory)
    values = names(name)
    answers = path / INSTRUCTOR / values["instructor_module"]
    click.echo(
        f"Wrote {values['dist']} in {path}, and its answers ({values['instructor_dist']}, "
        f"instructors only) in {path / INSTRUCTOR}. Next:"
    )
    click.echo(f"  pip install -e {path} -e {path / INSTRUCTOR}   # found through its entry point")
    click.echo(f"  rlkit check {values['exercise']} --path {answers} --hidden")
    click.echo(f"  rlkit train {values['exercise']}")
    click.echo(f"  python -m pytest {path / 'tests'}")
    click.echo(f"Then read {path / 'README.md'} and make it your algorithm.")
