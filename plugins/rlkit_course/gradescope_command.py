"""``rlkit gradescope build OUT.zip``: a Gradescope autograder that grades each submission as
``rlkit grade`` does (rlkit_grader.gradescope)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="gradescope")
def gradescope_group() -> None:
    """Instructors: grade on Gradescope, one container per submission."""


@gradescope_group.command(name="build")
@click.argument("out", type=click.Path(path_type=Path))
@click.argument("exercises", nargs=-1)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds one call of a student's function may run [5], as in rlkit grade.",
)
@click.option(
    "--key",
    default=None,
    help="The course's secret the hidden checks' inputs are drawn from: a key file "
    "[rlkit-hidden.key beside OUT.zip, made when missing]; it goes into the zip. "
    "`--key builtin`: rlkit's own hidden inputs (public in its repository).",
)
def build_command(
    out: Path, exercises: tuple[str, ...], timeout: float | None, key: str | None
) -> None:
    """Write OUT.zip, a Gradescope autograder for the exercises (all, or the ones named):
    setup.sh installs rlkit and your instructor distributions and computes the hidden
    checks from the course key; run_autograder grades /autograder/submission in the sandbox
    and writes /autograder/results/results.json, the results `rlkit grade --format
    gradescope` gives the same files. The zip holds the reference solutions and the key:
    keep it as you keep the key."""
    from rlkit.errors import UsageError
    from rlkit_grader import gradescope, hidden

    if out.suffix != ".zip":
        raise UsageError(f"{out}: the autograder is a .zip file (Gradescope's upload)")
    hidden.use_for_command(key, out.absolute().parent / hidden.KEY_FILE, exercises, create=True)
    limits: dict[str, float] = {}
    if timeout is not None:  # as rlkit grade sets them
        budget = max(30.0, 6 * timeout)
        limits = {"call_s": timeout, "wall_s": budget, "cpu_s": budget}
    built = gradescope.build(out, exercises, limits)
    files = ", ".join(f"{e}.py (or {e}.ipynb)" for e in built.exercises)
    click.echo(
        f"Wrote {out}: a Gradescope autograder for {', '.join(built.exercises)} (hidden checks: "
        f"{built.hidden_set}; wheels: {', '.join(built.wheels) or 'none'}"
        + (f"; from PyPI: {', '.join(built.pinned)}" if built.pinned else "")
        + ")."
    )
    click.echo(
        "On Gradescope: a programming assignment, Configure Autograder, upload this zip (base "
        f"image Ubuntu 22.04 or later). Students submit {files}."
    )
