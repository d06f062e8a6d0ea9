"""``rlkit nbgrader build``: an nbgrader course built from the registered exercises."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="nbgrader")
def nbgrader_group() -> None:
    """Instructors: nbgrader assignments built from the exercises."""


@nbgrader_group.command(name="build")
@click.argument("course_dir", type=click.Path(path_type=Path))
@click.argument("exercises", nargs=-1)
@click.option(
    "--assignment",
    default="rlkit",
    show_default=True,
    help="The nbgrader assignment: notebooks go to COURSE_DIR/source/ASSIGNMENT/.",
)
@click.option(
    "--timeout",
    type=int,
    default=60,
    show_default=True,
    help="Seconds a cell may run under nbgrader before it is interrupted (written to "
    "nbgrader_config.py when it is created).",
)
@click.option("--force", is_flag=True, help="Overwrite notebooks that were edited since.")
@click.option(
    "--exchange",
    type=click.Path(path_type=Path),
    default=None,
    help="nbgrader's exchange folder, where release_assignment puts the assignment and "
    "students submit [COURSE_DIR/exchange; written to nbgrader_config.py when it is created]. "
    "Students on other accounts need one they can all reach, outside the course folder.",
)
@click.option(
    "--key",
    default=None,
    help="The course's secret the hidden checks' inputs are drawn from: a key file "
    "[COURSE_DIR/rlkit-hidden.key, made when missing]. `--key builtin`: rlkit's own hidden "
    "inputs (public in its repository).",
)
def build_command(
    course_dir: Path,
    exercises: tuple[str, ...],
    assignment: str,
    timeout: int,
    force: bool,
    exchange: Path | None,
    key: str | None,
) -> None:
    """Write an nbgrader course: nbgrader_config.py and one notebook per exercise (all
    exercises, a plugin's included, or the ones named), with answer cells, visible and hidden
    test cells worth the grader's points. The hidden test cells run hidden checks drawn from
    the course key (kept in COURSE_DIR; `rlkit grade COURSE_DIR` uses the same)."""
    from rlkit.errors import UsageError
    from rlkit_grader import hidden
    from rlkit_grader.notebooks.course import build_course

    if course_dir.exists() and not course_dir.is_dir():
        raise UsageError(f"{course_dir} exists and is not a folder; pass a course folder")
    hidden.use_for_command(key, course_dir / hidden.KEY_FILE, exercises, create=True)

    result = build_course(course_dir, exercises, assignment, timeout, force, exchange=exchange)
    if result.config_written:
        click.echo(f"Wrote {result.config} (nbgrader's exchange: {result.exchange}/)")
    else:
        click.echo(f"Kept {result.config} (delete it to regenerate)")
        if exchange is not None:
            click.echo(f"--exchange is not applied: set c.Exchange.root in {result.config}")
    for path in result.notebooks:
        click.echo(f"Wrote {path} ({result.points[path.stem]} points)")
    for line in result.warnings:  # a plugin's formula the lesson left as text, said aloud
        click.echo(f"Note: {line}", err=True)
    import importlib.util

    if importlib.util.find_spec("nbgrader") is None:
        click.echo("nbgrader is not installed here: pip install 'rlkit[nbgrader]'")
    click.echo(
        f"Next, in {course_dir}: `nbgrader generate_assignment {assignment}`, then release it "
        "to your students."
    )
