"""``rlkit check``, ``rlkit init``, ``rlkit release`` and ``rlkit vectors``. Heavy modules are
imported inside the commands, so ``rlkit --help`` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rlkit.errors import RlkitError, UsageError


@click.command(name="check")
@click.argument("exercises", nargs=-1)
@click.option(
    "--path",
    "path",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Your workspace: the folder with log_prob.py, ppo.py, ...",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option(
    "--hidden",
    is_flag=True,
    help="Instructors: also run the hidden checks (they are not in a student's install).",
)
@click.option(
    "--key",
    default=None,
    help="With --hidden: the course key the hidden checks' inputs are drawn from "
    "[./rlkit-hidden.key when it exists, else rlkit's built-in set; `builtin` forces it].",
)
def check_command(
    exercises: tuple[str, ...], path: Path, as_json: bool, hidden: bool, key: str | None
) -> None:
    """Check your exercise answers (all exercises, or the ones named).

    Each exercise runs in its own sandboxed process; the report lists every check with its
    points and, for a failing one, a small counterexample. Exit code 0 when all pass, 1
    otherwise, 2 on usage errors.
    """
    from rlkit_grader.api import check_workspace
    from rlkit_grader.records import HIDDEN, PUBLIC

    hidden_set = None
    if hidden:  # one line, before any grading, where the instructor's package is missing
        from rlkit_grader import hidden as hidden_sets

        default = Path.cwd() / hidden_sets.KEY_FILE
        chosen = hidden_sets.use_for_command(key, default, exercises, announce=not as_json)
        hidden_set = chosen.label
    elif key is not None:
        raise UsageError("--key chooses the hidden checks: use it with --hidden")
    report = check_workspace(path, exercises, HIDDEN if hidden else PUBLIC)
    if as_json:
        data = report.to_json()
        if hidden_set is not None:
            data["hidden_set"] = hidden_set
        click.echo(json.dumps(data, indent=2))
    elif sys.stdout.isatty():
        from rich.console import Console

        report.write_rich(Console(highlight=False))
    else:
        report.write_plain(sys.stdout)
    if not report.passed:
        sys.exit(1)


@click.command(name="init")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite exercise files that already exist.")
def init_command(directory: Path, force: bool) -> None:
    """Create a workspace: the exercise stubs and a README of what to do next. In a folder that
    already has some, add the missing stubs and keep your files (unless --force)."""
    from rlkit_grader.workspace import init_workspace

    written, kept = init_workspace(directory, force=force)
    names = ", ".join(p.name for p in written) or "nothing new"
    click.echo(f"Wrote {names} in {directory}.")
    if kept:
        click.echo(
            f"Kept your {', '.join(p.name for p in kept)} (`--force` overwrites them with stubs)."
        )
    click.echo(f"Next: open {directory}/log_prob.py, then `rlkit check --path {directory}`.")


@click.command(name="release")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
def release_command(directory: Path, force: bool) -> None:
    """Instructors: write the student bundle (stubs, public checks and their vectors; no
    solutions, no hidden checks)."""
    from rlkit_grader.workspace import release_bundle

    written = release_bundle(directory, force=force)
    click.echo(
        f"Wrote the student bundle to {directory} ({len(written)} files). Students run "
        f"`rlkit check --path {directory}` in it."
    )


@click.command(name="vectors")
@click.argument("exercises", nargs=-1)
@click.option(
    "--regenerate", is_flag=True, help="Rewrite the stored vectors from the reference solutions."
)
def vectors_command(exercises: tuple[str, ...], regenerate: bool) -> None:
    """Instructors: verify (default) or regenerate the stored test vectors that let students
    self-check without the reference solutions. Exit 1 when they are stale."""
    from rlkit_grader import api

    if regenerate:
        for path, mistakes in api.regenerate(exercises):
            note = (
                f"{mistakes} classic mistakes named in feedback"
                if mistakes
                else "no mistakes registered (Exercise.mistakes): feedback names none"
            )
            click.echo(f"Wrote {path} ({note})")
        return
    stale = api.verify(exercises)
    for name, problems in stale.items():
        if problems:
            click.echo(
                f"{name}: STALE - {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            )
        else:
            click.echo(f"{name}: up to date")
    if any(stale.values()):
        raise RlkitError("stored vectors are stale; run `rlkit vectors --regenerate`")


def register(cli: click.Group) -> None:
    for command in (check_command, init_command, release_command, vectors_command):
        cli.add_command(command)
    from rlkit_course.grade_command import grade_command  # rlkit grade: a class at once

    cli.add_command(grade_command)
    from rlkit_course.nbgrader_command import nbgrader_group  # rlkit nbgrader build

    cli.add_command(nbgrader_group)
    from rlkit_course.gradescope_command import gradescope_group  # rlkit gradescope build

    cli.add_command(gradescope_group)
