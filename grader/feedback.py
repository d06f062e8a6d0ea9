"""Feedback meant for the student: a Markdown file and the same as an HTML page (what a browser
shows as it is) each, written as soon as they are graded.

What a student may see is decided by ``rlkit_grader.render.view``: a public check's message in full
(its inputs are in the student bundle anyway), fenced, because it can embed what the submission
produced; a hidden check only its name, what it tests, pass/fail and the classic mistake the
answer behaves like, never its message (which may hold its inputs, expected values, or text the
submission wrote from them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlkit_grader import render


def student_message(
    check: Mapping[str, Any],
    descriptions: Mapping[str, str],
    mistakes: Mapping[str, str],
    problem: str | None = None,
) -> str:
    """What the student may read about one check, as Markdown (text from the submission
    fenced); "" for a passing check."""
    shown = render.view(check, render.STUDENT, mistakes, descriptions, problem)
    return render.check_body_markdown(shown)


def markdown(
    record: Mapping[str, Any], descriptions: Mapping[str, str], mistakes: Mapping[str, str]
) -> str:
    """The student's feedback file."""
    return render.feedback_markdown(record, descriptions, mistakes, render.STUDENT)


def html(
    record: Mapping[str, Any], descriptions: Mapping[str, str], mistakes: Mapping[str, str]
) -> str:
    """The student's feedback page (the Markdown file's content, every text escaped)."""
    return render.feedback_html(record, descriptions, mistakes, render.STUDENT)


def write(
    folder: Path,
    filename: str,
    record: Mapping[str, Any],
    descriptions: Mapping[str, str],
    mistakes: Mapping[str, str],
) -> Path:
    """``<filename>.md`` and ``<filename>.html`` in ``folder``; returns the Markdown's path."""
    from rlkit_grader.batch import write_whole

    path = folder / f"{filename}.md"
    write_whole(path, markdown(record, descriptions, mistakes))
    write_whole(path.with_suffix(".html"), html(record, descriptions, mistakes))
    return path
