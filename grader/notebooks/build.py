"""One exercise → one nbgrader source notebook.

Cells, in order: the lesson (markdown from the stub's module docstring); a locked set-up cell
(the stub's imports, and ``%load_ext`` of the cell watch); then per function its lesson (the
function's docstring), an answer cell (signature and docstring for the student, the reference
body between ``### BEGIN SOLUTION`` / ``### END SOLUTION``), a visible test cell (the public
checks, worth their points) and a hidden test cell (``### BEGIN HIDDEN TESTS``, worth the hidden
checks' points).

The answer cells are the only code students write, and test cells hold no imports the answers
need: ``rlkit grade`` rebuilds the student's module from every code cell that is not a test cell.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rlkit_grader.notebooks.source import ExerciseSource, FunctionSource, load_exercise_source
from rlkit_grader.notebooks.teaching import Lesson, lesson, lesson_block, markdown_docstring

SCHEMA_VERSION = 3
EXTENSION = "rlkit_grader.notebooks.feedback"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


@dataclass(frozen=True)
class FunctionPoints:
    public: int
    hidden: int


def points_by_function(exercise: Any) -> dict[str, FunctionPoints]:
    """Each function's public and hidden points, from the stored checks (as the grader counts)."""
    from rlkit_grader.api import load_vectors
    from rlkit_grader.records import HIDDEN, PUBLIC

    vectors = load_vectors(exercise, hidden=True)
    out = {}
    for fn in exercise.functions:
        checks = vectors.select(HIDDEN, [fn])
        out[fn] = FunctionPoints(
            sum(c.points for c in checks if c.visibility == PUBLIC),
            sum(c.points for c in checks if c.visibility == HIDDEN),
        )
    return out


def _meta(
    grade_id: str,
    *,
    grade: bool = False,
    solution: bool = False,
    locked: bool = True,
    points: int | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    out: dict[str, Any] = {"nbgrader": meta}
    if locked:
        out.update(deletable=False, editable=False)
    return out


def _names(signature: str) -> set[str]:
    return set(re.findall(r"(\w+)\s*[:=,)]", signature))


def lessons(source: ExerciseSource) -> tuple[Lesson, dict[str, Lesson]]:
    """The formulas of the exercise's module docstring and of each function's."""
    functions = {
        fn.name: lesson(fn.docstring, fn.name, _names(fn.signature)) for fn in source.functions
    }
    return lesson(source.docstring), functions


def _lesson(
    source: ExerciseSource,
    title: str,
    timeout: int,
    hidden_points: int,
    module: Lesson,
    functions: dict[str, Lesson],
) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", source.docstring) if p.strip()]
    # the stub's "fill in ..., then run `rlkit check`" is for files; the notebook says its own
    kept = [p for p in paragraphs if "YOUR CODE HERE" not in p and "rlkit check" not in p]
    parts = [f"# {title or source.name}", *(markdown_docstring(p) for p in kept)]
    key = [
        f"`{fn.name}`: " + "\n\n".join(f.markdown() for f in functions[fn.name].key)
        for fn in source.functions
        if functions[fn.name].key
    ]
    if key or module.all:
        parts.append("### The formulas")
    if module.all:
        parts.append("\n\n".join(f.markdown() for f in module.all))
    if key:
        parts.append("**What you will write**, each function's key equation:")
        parts += key
    hidden = (
        f" Hidden checks on other inputs ({hidden_points} points) run when your notebook is graded."
        if hidden_points
        else ""
    )
    parts.append("### How this notebook works")
    parts.append(
        "Run the set-up cell first. For each function, replace "
        "`# YOUR CODE HERE` and the `raise NotImplementedError()` line in its answer cell with "
        "your code and run the cell, then run the test cell below it: it runs the same checks "
        f"as `rlkit check {source.name}` and shows a small counterexample for each one that "
        f"fails, and the classic mistake your answer looks like, when it looks like one.{hidden}"
        " Grading runs the notebook top to bottom (*Kernel → Restart Kernel and Run All Cells*): "
        "a cell that raises, or runs longer than "
        f"{timeout} s (an infinite loop), costs the points of every test cell after it."
    )
    return "\n\n".join(parts)


def _function_lesson(number: int, fn: FunctionSource, signature: str, formulas: Lesson) -> str:
    parts = [f"## {number}. `{fn.name}{signature}`", markdown_docstring(fn.docstring)]
    block = lesson_block(formulas)
    if block:
        parts.append(block)
    return "\n\n".join(parts)


def answer_source(fn: FunctionSource) -> str:
    """The function as the instructor's notebook holds it: the student's signature and
    docstring, the reference body inside the solution region."""
    body_lines = fn.solution_body.splitlines()
    for helper in reversed(fn.helpers):  # solution-only helpers travel inside the body
        body_lines = [fn.indent + line if line else line for line in helper.splitlines()] + [
            "",
            *body_lines,
        ]
    return "\n".join(
        [
            fn.header,
            f"{fn.indent}### BEGIN SOLUTION",
            *body_lines,
            f"{fn.indent}### END SOLUTION",
        ]
    )


def test_source(
    exercise: str, function: str, points: int, hidden: bool, hidden_set: str = "builtin"
) -> str:
    """A test cell's code. A hidden one names the set of hidden checks it runs
    (``hidden_set``: ``builtin`` or a course key's ``key:<fingerprint>``, found at grading in
    the course folder above the notebook; the fingerprint reveals nothing of the key)."""
    extra = ""
    if hidden:
        extra = ", hidden=True" + (
            f", hidden_set={hidden_set!r}" if hidden_set != "builtin" else ""
        )
    call = f"check({exercise!r}, {function!r}, globals(){extra})"
    if hidden:
        return "\n".join(
            [
                f"# Hidden checks of {function}() ({points} points): they run when your "
                "notebook is graded.",
                "### BEGIN HIDDEN TESTS",
                f"from {EXTENSION} import check",
                "",
                call,
                "### END HIDDEN TESTS",
            ]
        )
    return "\n".join(
        [
            f"# Checks of {function}() ({points} points): run this cell after the one above.",
            f"from {EXTENSION} import check",
            "",
            call,
        ]
    )


def build_notebook(exercise: Any, timeout: int, warnings: list[str] | None = None) -> Any:
    """The nbgrader source notebook of a registered exercise, as nbformat 4.5 JSON data
    (written by hand: importing nbformat's validator costs seconds; the tests validate). The
    answer cells hold the reference and the hidden test cells run the active hidden set
    (``rlkit_grader.hidden``): both are the instructor's (ReferenceMissing, one line, without them).
    ``warnings`` gets one line per formula line of a docstring that the lesson could not
    restate in LaTeX (it stays in the docstring's text)."""
    from rlkit.registry import ReferenceMissing
    from rlkit_grader.hidden import active

    if not exercise.has(exercise.solution):
        raise ReferenceMissing(exercise.missing() + "; the notebooks' answer cells hold it")
    hidden_set = active().label
    source = load_exercise_source(exercise)
    points = points_by_function(exercise)
    name = exercise.name
    cells = []

    def add(cell: dict[str, Any], grade_id: str, **meta: Any) -> None:
        cell["metadata"] = _meta(grade_id, **meta)
        cell["id"] = grade_id
        cells.append(cell)

    hidden_total = sum(p.hidden for p in points.values())
    module, functions = lessons(source)
    if warnings is not None:
        for where, found in [(name, module), *((f"{name}.{f}", functions[f]) for f in functions)]:
            warnings += [
                f"{where}: a formula line not restated in LaTeX (it stays in the text): {line}"
                for line in found.skipped
            ]
    add(
        new_markdown_cell(
            _lesson(source, exercise.title, timeout, hidden_total, module, functions)
        ),
        f"{name}-intro",
    )
    setup = (
        source.setup
        + "\n\n# lets the test cells see cells that failed or never finished\n"
        + f"%load_ext {EXTENSION}"
    )
    add(new_code_cell(setup.strip()), f"{name}-setup")
    for number, fn in enumerate(source.functions, start=1):
        add(
            new_markdown_cell(_function_lesson(number, fn, fn.signature, functions[fn.name])),
            f"{fn.name}-lesson",
        )
        add(new_code_cell(answer_source(fn)), f"{fn.name}-answer", solution=True, locked=False)
        p = points[fn.name]
        if p.public:
            add(
                new_code_cell(test_source(name, fn.name, p.public, hidden=False)),
                f"{fn.name}-checks",
                grade=True,
                points=p.public,
            )
        if p.hidden:
            add(
                new_code_cell(test_source(name, fn.name, p.hidden, True, hidden_set)),
                f"{fn.name}-hidden-checks",
                grade=True,
                points=p.hidden,
            )
    total = sum(p.public + p.hidden for p in points.values())
    add(
        new_markdown_cell(
            f"**Done?** Restart the kernel and run all cells: every test cell should show its "
            f"full points ({total} in all, hidden checks included when graded). Then save the "
            f"notebook and submit it. The same exercise as a file: `rlkit check {name}`."
        ),
        f"{name}-done",
    )
    ids = [c["id"] for c in cells]
    assert len(set(ids)) == len(ids), f"duplicate grade ids in {name}: {ids}"
    return {
        "cells": cells,
        "metadata": {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def new_markdown_cell(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def new_code_cell(text: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": text,
    }


def to_json(nb: dict[str, Any]) -> str:
    """The notebook file's text, laid out as Jupyter writes it (sources as lists of lines)."""
    out = {
        **nb,
        "cells": [{**c, "source": c["source"].splitlines(keepends=True)} for c in nb["cells"]],
    }
    return json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
