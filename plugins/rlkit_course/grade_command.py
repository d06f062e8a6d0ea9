"""``rlkit grade``: instructors grade a whole class (folders of exercise files or nbgrader
submissions) with every check, and get grades, per-student feedback and a class report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _progress(console_file: Any, chosen: bool = False) -> tuple[Any, Any]:
    """A progress bar with ETA on a terminal; one line per student otherwise (logs, CI), with
    the time left once a few students are graded. ``chosen``: only the students named by
    ``--student`` are graded."""
    import time

    state: dict[str, Any] = {}

    def start(total: int, skipped: int) -> Any:
        if skipped and chosen:
            click.echo(f"{skipped} other students keep their grades (--student).", err=True)
        elif skipped:
            click.echo(f"{skipped} students already graded and unchanged: skipped.", err=True)
        if console_file.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            bar = Progress(
                TextColumn("grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=Console(file=console_file),
                transient=False,
            )
            bar.start()
            state["bar"] = bar
            state["task"] = bar.add_task("", total=total)
        state["done"], state["total"], state["t0"] = 0, total, time.monotonic()

        def tick(student: str, record: dict[str, Any] | None) -> None:
            from rlkit_grader.render import one_line

            state["done"] += 1
            score = f"{record['score']}/{record['max_score']}" if record else ""
            name = one_line(student)  # a folder name is the student's: no control characters
            if "bar" in state:
                from rich.markup import escape  # nor rich markup

                state["bar"].update(state["task"], advance=1, description=f"{escape(name)} {score}")
                return
            done, elapsed = state["done"], time.monotonic() - state["t0"]
            left = total - done
            eta = f" (ETA {_eta(elapsed / done * left)})" if left and done >= 3 else ""
            click.echo(f"[{done}/{total}] {name} {score}{eta}", err=True)

        return tick

    def stop() -> None:
        if "bar" in state:
            state["bar"].stop()

    return start, stop


@click.command(name="grade")
@click.argument("submissions", type=click.Path(path_type=Path))
@click.argument("exercises", nargs=-1)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Grades file (csv/json), or a folder of <student>/results.json for gradescope.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "gradescope"]),
    default=None,
    help="Default: from --out's suffix (.csv, .json); gradescope: --out is a folder (or one "
    "results.json).",
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Parallel gradings [cores].")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds one call of a student's function may run [5]; an infinite loop costs that "
    "function's checks.",
)
@click.option(
    "--feedback",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of per-student feedback files [OUT-feedback next to --out].",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of the class report (index.html, report.json) [OUT-report].",
)
@click.option("--assignment", default=None, help="nbgrader: grade this assignment's notebooks.")
@click.option(
    "--student",
    "students",
    multiple=True,
    metavar="NAME",
    help="Grade (again) only this student's folder, even when unchanged; the others keep "
    "their grades. Repeat for several.",
)
@click.option(
    "--no-sandbox",
    is_flag=True,
    help="Grade without the namespace sandbox (only for code you trust).",
)
@click.option(
    "--key",
    default=None,
    help="The course's secret the hidden checks' inputs are drawn from: a key file "
    "[rlkit-hidden.key in the nbgrader course, else beside --out; made when missing]. "
    "`--key builtin`: rlkit's own hidden inputs (public in its repository).",
)
def grade_command(
    submissions: Path,
    exercises: tuple[str, ...],
    out: Path,
    fmt: str | None,
    jobs: int | None,
    timeout: float | None,
    feedback: Path | None,
    report: Path | None,
    assignment: str | None,
    students: tuple[str, ...],
    no_sandbox: bool,
    key: str | None,
) -> None:
    """Instructors: grade every student under SUBMISSIONS (all checks, public and hidden).

    SUBMISSIONS holds a folder per student with their exercise files (log_prob.py, ...,
    or notebooks), or is an nbgrader course with submitted/<student>/<assignment>/*.ipynb.
    Each result is kept as soon as it is graded: after Ctrl-C, the same command finishes the
    batch, and a re-run skips students whose files did not change. Exit 2 when there is
    nothing to grade, 130 when interrupted.
    """
    from rlkit.errors import UsageError
    from rlkit_grader import batch, class_report, exports
    from rlkit_grader import feedback as student_feedback
    from rlkit_grader.render import one_line
    from rlkit_grader.submissions import safe_name

    fmt = batch.out_format(out, fmt)
    other = exports.foreign(out, fmt)
    if other is not None:  # never overwrite another tool's output (nbgrader export's, say)
        raise UsageError(
            f"--out {out} exists and is {other}: rlkit grade does not overwrite it; pass "
            "another --out (e.g. rlkit-grades.csv) or delete it"
        )
    limits: dict[str, float] = {}
    if timeout is not None:
        budget = max(30.0, 6 * timeout)  # an exercise's worker runs several calls
        limits = {"call_s": timeout, "wall_s": budget, "cpu_s": budget}
    options = batch.Options(
        exercises=list(exercises),
        jobs=jobs or batch.default_jobs(),
        limits=limits,
        sandbox="none" if no_sandbox else "bwrap",
        assignment=assignment,
        students=list(students),
    )
    layout = batch.Layout.beside(out, fmt, feedback, report)
    from rlkit_grader import hidden  # which hidden checks: every record names the set

    key_file = hidden.course_folder(submissions, out) / hidden.KEY_FILE
    hidden.use_for_command(key, key_file, exercises, create=True)

    def on_record(record: dict[str, Any], course: batch.Course) -> None:
        student_feedback.write(
            layout.feedback,
            safe_name(record["student"]),
            record,
            course.descriptions,
            course.mistakes,
        )

    start, stop = _progress(sys.stderr, chosen=bool(students))
    try:
        outcome = batch.grade_class(submissions, layout, options, start, on_record)
    finally:
        stop()
    course = outcome.course
    written = exports.write(outcome.records, course, out, fmt)
    where = out if len(written) == 1 else f"{out}/ ({len(written)} results.json)"
    if outcome.interrupted:
        click.echo(
            f"Interrupted: {len(outcome.records)} students graded so far (in {where}); run the "
            "same command again to grade the rest.",
            err=True,
        )
        sys.exit(130)
    for record in outcome.records:  # students kept from an earlier run too (--feedback may be new)
        path = layout.feedback / f"{safe_name(record['student'])}.md"
        if not path.is_file() or not path.with_suffix(".html").is_file():
            on_record(record, course)
    html = class_report.write(outcome.records, course, layout.report)
    scores = [r["score"] for r in outcome.records]
    mean = sum(scores) / len(scores) if scores else 0.0
    top = outcome.records[0]["max_score"] if outcome.records else 0
    if students:
        click.echo(
            f"Graded {outcome.graded} of {len(outcome.records)} students (--student: "
            f"{', '.join(one_line(s) for s in students)}; the others keep their grades); "
            f"class mean {mean:.1f}/{top}."
        )
    else:
        click.echo(
            f"Graded {outcome.graded} of {len(outcome.records)} students ({outcome.skipped} "
            f"unchanged since the last run); class mean {mean:.1f}/{top}."
        )
    if outcome.stale:
        click.echo(
            f"Not graded (--student): {len(outcome.stale)} other students whose files changed "
            f"since their grade, or who have none ({', '.join(one_line(s) for s in outcome.stale[:5])}"
            f"{' ...' if len(outcome.stale) > 5 else ''}); run without --student to grade them.",
            err=True,
        )
    click.echo(f"Grades: {where}")
    click.echo(f"Feedback for each student: {layout.feedback}/ (<student>.md and .html)")
    click.echo(f"Class report: {html}")
    # the protection, stated once (its few words are in each row, the whole text here and at
    # the end of the class report)
    for text in class_report._protections(outcome.records):
        click.echo(f"Protection: {text}")
