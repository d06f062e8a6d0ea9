"""Before training with a student's code (``--path``): the public checks of the exercises the
trainer uses, in a few lines. It never stops the training: a student may well want to watch
what a failing function does to the curves."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from rlkit.errors import RlkitError

#: functions that may fail before the list is cut short
SHOWN_FAILURES = 6
MISTAKE = "Looks like a classic mistake: "


def _one_line(what: str, failed: Sequence[Any]) -> str:
    """One line per failing function: which checks, and the misconception if one is named
    (the full counterexamples are for `rlkit check`)."""
    if any("not implemented yet" in c.message for c in failed):
        return f"your {what} is not implemented yet"
    names = ", ".join(c.name for c in failed)
    line = f"your {what} fails {len(failed)} check{'s' * (len(failed) > 1)} ({names})"
    for c in failed:
        if MISTAKE in c.message:
            return f"{line}; looks like: {c.message.split(MISTAKE, 1)[1].strip()}"
    return line


def precheck(exercises: Sequence[str], workspace: Path) -> None:
    """Run the public checks of ``exercises`` on the student's files and say in a few lines
    what fails (a student can still watch what a failing function does to training)."""
    names = ", ".join(f"{e}.py" for e in exercises)
    if not any((workspace / f"{e}.py").is_file() for e in exercises):
        return  # not a workspace at all: training says so, naming the fix
    start = time.perf_counter()
    try:
        from rlkit_grader.api import check_workspace

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
        failing: dict[str, list[Any]] = {}
        for check in exercise.checks:
            if not check.passed:
                failing.setdefault(check.function or exercise.name, []).append(check)
        for function, checks_failed in failing.items():
            lines.append(_one_line(f"{exercise.name}.{function}", checks_failed))
    failed = sum(not c.passed for e in report.exercises for c in e.checks)
    click.echo(f"Public checks of your {names}: {failed} of {checks} fail.")
    for line in lines[:SHOWN_FAILURES]:
        click.echo(f"  {line}")
    if len(lines) > SHOWN_FAILURES:
        click.echo(f"  ... and {len(lines) - SHOWN_FAILURES} more")
    click.echo(f"Training with them anyway; `rlkit check --path {workspace}` explains each.")
