"""Before training with a student's code (``--path``): the public checks of the exercises the
trainer uses, in a few lines. It never stops the training: a student may well want to watch
what a failing function does to the curves."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click

from rlkit.errors import RlkitError

#: public checks that may fail before the list is cut short
SHOWN_FAILURES = 6


def precheck(exercises: Sequence[str], workspace: Path) -> None:
    """Run the public checks of ``exercises`` on the student's files and say in a few lines
    what fails (a student can still watch what a failing function does to training)."""
    names = ", ".join(f"{e}.py" for e in exercises)
    if not any((workspace / f"{e}.py").is_file() for e in exercises):
        return  # not a workspace at all: training says so, naming the fix
    start = time.perf_counter()
    try:
        from grader.api import check_workspace

        report = check_workspace(workspace, exercises)
    except RlkitError as exc:
        click.echo(f"Could not check your {names} first ({exc.message}); training anyway.")
        return
    except Exception as exc:  # noqa: BLE001 - a broken check must not stop the training
        click.echo(f"Could not check your {names} first ({type(exc).__name__}: {exc}).")
        return
    checks = sum(len(e.checks) for e in report.exercises)
    if report.passed:
        click.echo(
            f"Your {names}: all {checks} public checks pass ({time.perf_counter() - start:.1f} s)."
        )
        return
    lines = []
    for exercise in report.exercises:
        if exercise.problem:
            lines.append(f"your {exercise.name}.py: {exercise.problem}")
            continue
        stubs = set()
        for check in exercise.checks:
            if check.passed:
                continue
            what = f"{exercise.name}.{check.function}" if check.function else exercise.name
            if "not implemented yet" in check.message:
                if what not in stubs:
                    stubs.add(what)
                    lines.append(f"your {what} is not implemented yet")
                continue
            first = check.message.strip().splitlines()[0] if check.message.strip() else ""
            lines.append(f"your {what} fails check {check.name}" + (f": {first}" if first else ""))
    failed = sum(not c.passed for e in report.exercises for c in e.checks)
    click.echo(f"Public checks of your {names}: {failed} of {checks} fail.")
    for line in lines[:SHOWN_FAILURES]:
        click.echo(f"  {line}")
    if len(lines) > SHOWN_FAILURES:
        click.echo(f"  ... and {len(lines) - SHOWN_FAILURES} more")
    click.echo(f"Training with them anyway; `rlkit check --path {workspace}` explains each.")
