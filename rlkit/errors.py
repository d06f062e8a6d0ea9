"""Errors that reach the user as one clear line (never a traceback wall)."""

from __future__ import annotations

import click


class RlkitError(click.ClickException):
    """A problem the user can fix; the message names the fix. Exit code 1."""

    exit_code = 1


class UsageError(RlkitError):
    """Bad input on the command line or in a file the user passed. Exit code 2."""

    exit_code = 2


class NotImplementedExercise(RlkitError):
    """A student's exercise function still raises NotImplementedError."""

    def __init__(self, exercise: str, function: str, path: str | None = None) -> None:
        where = f" in {path}" if path else ""
        super().__init__(
            f"{exercise}.{function} is not implemented yet{where}: "
            f"fill it in, then run `rlkit check {exercise}`."
        )
        self.exercise = exercise
        self.function = function
