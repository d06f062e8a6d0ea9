"""``rlkit plugin new NAME [DIR]``: a complete plugin package to start from, for course authors.

The package works as written (its checks pass the reference, its tests pass, its trainer
trains), so an author changes a working example into their algorithm instead of assembling one
from the documentation:

    DIR/pyproject.toml                 the entry point in the ``rlkit`` group; vectors shipped
    DIR/README.md                      what each file is, and the commands to try
    DIR/rlkit_NAME/__init__.py         register_exercises, register_trainers
    DIR/rlkit_NAME/exercises/NAME.py   the stub students fill in
    DIR/rlkit_NAME/solutions/NAME.py   the reference solution (same docstrings)
    DIR/rlkit_NAME/checks.py           the checks, and their stored vectors beside them
    DIR/rlkit_NAME/mistakes.py         classic mistakes and correct alternatives
    DIR/rlkit_NAME/settings.py         the trainer's settings (its command-line options)
    DIR/rlkit_NAME/trainer.py          a Trainer that uses the exercise function
    DIR/tests/test_NAME.py             a passing test

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
    "solutions_init.py.tmpl": "$module/solutions/__init__.py",
    "solution.py.tmpl": "$module/solutions/$exercise.py",
    "checks.py.tmpl": "$module/checks.py",
    "mistakes.py.tmpl": "$module/mistakes.py",
    "settings.py.tmpl": "$module/settings.py",
    "trainer.py.tmpl": "$module/trainer.py",
    "test.py.tmpl": "tests/test_$exercise.py",
}


def names(name: str) -> dict[str, str]:
    """``td-walk`` → the distribution ``rlkit-td-walk``, the module ``rlkit_td_walk``, and the
    exercise (and task, and entry point) ``td_walk``."""
    if not NAME.match(name):
        raise UsageError(
            f"plugin name {name!r}: use lowercase letters, digits, '-' or '_', starting with a "
            "letter (e.g. td-walk)"
        )
    base = name.removeprefix("rlkit-").removeprefix("rlkit_") or name
    exercise = base.replace("-", "_")
    return {
        "name": name,
        "dist": f"rlkit-{exercise.replace('_', '-')}",
        "module": f"rlkit_{exercise}",
        "exercise": exercise,
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


def write_vectors(directory: Path, values: dict[str, str]) -> Path:
    """Generate the new exercise's stored vectors from its reference solution, importing the
    package from ``directory`` (it is not installed yet)."""
    import importlib

    from grader import api, store
    from rlkit.registry import Exercise

    sys.path.insert(0, str(Path(directory).resolve()))
    try:
        module = importlib.import_module(values["module"])
        found: list[Exercise] = []
        module.register_exercises(found.append)
        exercise = found[0]
        doc, arrays = api.build_vectors(exercise)
        stem = store.package_vectors_stem(exercise.checks)
        store.write(doc, arrays, stem)
    finally:
        sys.path.remove(str(Path(directory).resolve()))
        for key in [k for k in sys.modules if k.split(".")[0] == values["module"]]:
            del sys.modules[key]
    return stem


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
    click.echo(f"Wrote {values['dist']} in {path}. Next:")
    click.echo(f"  pip install -e {path}              # rlkit finds it through its entry point")
    click.echo(f"  rlkit check {values['exercise']} --path {path / values['module'] / 'solutions'}")
    click.echo(f"  rlkit train {values['exercise']}")
    click.echo(f"  python -m pytest {path / 'tests'}")
    click.echo(f"Then read {path / 'README.md'} and make it your algorithm.")
