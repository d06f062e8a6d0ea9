"""`rlkit nbgrader build` with the real nbgrader: generate_assignment, autograde, generate_feedback,
export, on submissions a class really hands in (correct, partly correct with a wrong and a raising
function, an infinite loop, a deleted test cell, a corrupt notebook), and `rlkit grade` on the same
notebooks. Expected scores come from rlkit's grader run in-process on the same code, so nbgrader's
partial credit is checked against the grader's own points."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import rlkit_cmd

from rlkit_grader.api import check_module, select_exercises
from rlkit_grader.records import HIDDEN

BIN = Path(sys.executable).parent
ASSIGNMENT = "week1"
TIMEOUT = 10  # seconds per cell under nbgrader: the infinite loop costs this, once

ENTROPY_MEAN = """
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).mean(-1)
"""
LOOPS = """
    while True:  # an infinite loop inside the function: its test cells stop it
        pass
"""
CHECK_SECONDS = 3  # RLKIT_NOTEBOOK_TIME_LIMIT in the kernels nbgrader starts
RAISES = """
    raise ValueError("I am not sure about this one")
"""


def tool(cwd: Path, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A console script of this venv (nbgrader needs its `alembic` on PATH)."""
    result = subprocess.run(
        [str(BIN / name), *args],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def start(cwd: Path, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    """Like ``tool``, in the background (output to a file): it runs beside nbgrader."""
    log = cwd / f".{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / name), *args], cwd=cwd, env=tool_env(), stdout=out, stderr=out
        )
    return proc, log


def tool_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "RLKIT_NOTEBOOK_TIME_LIMIT": str(CHECK_SECONDS),
    }


def source_of(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def cells_by_id(nb: dict) -> dict[str, dict]:
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"]}


def with_body(source: str, body: str) -> str:
    """An answer cell whose function body (after the docstring) is ``body``."""
    head, sep, _ = source.rpartition('"""\n')
    return head + sep + body.strip("\n") + "\n"


def module_of(nb: dict) -> str:
    """The student's module by the rule `rlkit grade` uses: every code cell that is not a test
    cell, in order, magics commented out."""
    parts = []
    for c in nb["cells"]:
        meta = c["metadata"].get("nbgrader", {})
        if c["cell_type"] != "code" or (meta.get("grade") and not meta.get("solution")):
            continue
        parts.append(re.sub(r"(?m)^(\s*)([%!])", r"\1# \2", source_of(c)))
    return "\n\n".join(parts)


def grader_score(exercise: str, nb: dict, functions: list[str] | None = None) -> int:
    """What rlkit's grader (in-process, public + hidden) gives the notebook's code (only the
    ``functions`` named: the others score 0)."""
    namespace: dict = {}
    exec(compile(module_of(nb), f"<{exercise}>", "exec"), namespace)  # noqa: S102 - our own code
    return check_module(exercise, namespace, HIDDEN, functions).score


@dataclass
class Class:
    course: Path
    names: list[str]
    maxima: dict[str, int]
    expected: dict[str, int]  # log_prob notebook scores by student, from rlkit's grader
    autograde_log: str
    rlkit_grades: Path  # `rlkit grade` on the same submissions, run beside nbgrader
    rlkit_log: str
    ran: Path  # the released log_prob notebook as a student runs it, unanswered
    ran_log: str
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    cells: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Class:
    course = tmp_path_factory.mktemp("course")
    built = rlkit_cmd(
        "nbgrader", "build", str(course), "--assignment", ASSIGNMENT, "--timeout", str(TIMEOUT)
    )
    assert built.returncode == 0, built.stderr
    tool(course, "nbgrader", "generate_assignment", ASSIGNMENT)
    release, source = course / "release" / ASSIGNMENT, course / "source" / ASSIGNMENT
    names = [ex.name for ex in select_exercises()]

    # the reference: every notebook as released, answers filled with the instructor's solution
    reference = {}
    for n in names:
        nb = json.loads((release / f"{n}.ipynb").read_text())
        solutions = cells_by_id(json.loads((source / f"{n}.ipynb").read_text()))
        for gid, cell in cells_by_id(nb).items():
            if cell["metadata"]["nbgrader"]["solution"]:
                cell["source"] = solutions[gid]["source"]
        reference[n] = nb
    ref = reference["log_prob"]

    # partly correct: log_prob raises, entropy averages instead of summing (a classic mistake,
    # partial credit inside its test cell), grad_log_prob never returns
    mixed = copy.deepcopy(ref)
    for gid, body in (
        ("log_prob-answer", RAISES),
        ("entropy-answer", ENTROPY_MEAN),
        ("grad_log_prob-answer", LOOPS),
    ):
        cell = cells_by_id(mixed)[gid]
        cell["source"] = with_body(source_of(cell), body)
    # a correct notebook whose first answer cell ends in a top-level infinite loop
    loop = copy.deepcopy(ref)
    first = cells_by_id(loop)["log_prob-answer"]
    first["source"] = source_of(first) + "\n\nwhile True:  # waiting for something\n    pass\n"
    # a correct notebook without one of its test cells
    deleted = copy.deepcopy(ref)
    deleted["cells"] = [
        c for c in deleted["cells"] if c["metadata"]["nbgrader"]["grade_id"] != "entropy-checks"
    ]
    submissions: dict[str, dict[str, Any]] = {
        "ref": reference,
        "mixed": {"log_prob": mixed},
        "loop": {"log_prob": loop},
        "deleted": {"log_prob": deleted},
        "corrupt": {"log_prob": '{"cells": [ this is not json'},
    }
    for student, notebooks in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for n, nb in notebooks.items():
            (folder / f"{n}.ipynb").write_text(nb if isinstance(nb, str) else json.dumps(nb))

    # in the background, beside nbgrader: rlkit grade on the same notebooks, and the released
    # notebook run as a student runs it
    work = tmp_path_factory.mktemp("work")
    grades = work / "grades.json"
    grade_proc, grade_log = start(
        work, "rlkit", "grade", str(course), "--assignment", ASSIGNMENT, "--out", str(grades)
    )
    ran = work / "ran.ipynb"
    run_proc, run_log = start(
        work,
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        f"--ExecutePreprocessor.timeout={TIMEOUT * 3}",
        "--output",
        str(ran),
        str(release / "log_prob.ipynb"),
    )

    try:
        maxima = {n: grader_score(n, reference[n]) for n in names}
        expected = {
            "ref": maxima["log_prob"],
            "mixed": grader_score("log_prob", mixed, ["log_prob", "entropy"]),
            "loop": 0,  # the loop never finishes: every test cell after it scores 0
        }
        result = tool(course, "nbgrader", "autograde", ASSIGNMENT, check=False)
        grade_proc.wait(timeout=300)
        run_proc.wait(timeout=300)
    finally:  # nothing left running, whatever failed
        for proc in (grade_proc, run_proc):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = Class(
        course,
        names,
        maxima,
        expected,
        result.stdout + result.stderr,
        grades,
        grade_log.read_text(),
        ran,
        run_log.read_text(),
    )

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for nb in gb.find_assignment(ASSIGNMENT).notebooks:
            for sub in nb.submissions:
                out.scores[sub.student.id, nb.name] = sub.score
                for g in sub.grades:
                    out.cells[sub.student.id, nb.name, g.name] = (g.score, g.max_score)
    tool(course, "nbgrader", "generate_feedback", ASSIGNMENT)
    tool(course, "nbgrader", "export", "--to", str(course / "grades.csv"))
    return out


def test_every_notebook_runs_and_the_reference_gets_full_marks(graded: Class) -> None:
    for n in graded.names:
        assert graded.maxima[n] > 0
        assert graded.scores["ref", n] == pytest.approx(graded.maxima[n]), n


def test_partial_credit_matches_the_grader(graded: Class) -> None:
    expected = graded.expected["mixed"]
    assert 0 < expected < graded.maxima["log_prob"]
    assert graded.scores["mixed", "log_prob"] == pytest.approx(expected)
    # inside one test cell: entropy's checks partly pass (mean instead of sum)
    got, top = graded.cells["mixed", "log_prob", "entropy-checks"]
    assert 0 < got < top
    assert graded.cells["mixed", "log_prob", "log_prob-checks"][0] == 0  # it raises
    # the infinite loop inside grad_log_prob: both its test cells are stopped and score 0, and
    # the kernel goes on
    assert graded.cells["mixed", "log_prob", "grad_log_prob-checks"][0] == 0
    assert graded.cells["mixed", "log_prob", "grad_log_prob-hidden-checks"][0] == 0
    html = (graded.course / "feedback" / "mixed" / ASSIGNMENT / "log_prob.html").read_text()
    assert f"took longer than {CHECK_SECONDS} s" in html


def test_a_top_level_infinite_loop_scores_zero(graded: Class) -> None:
    assert graded.scores["loop", "log_prob"] == 0
    feedback = graded.course / "feedback" / "loop" / ASSIGNMENT / "log_prob.html"
    assert "infinite loop" in feedback.read_text()


def test_broken_submissions(graded: Class) -> None:
    # nbgrader cannot read the corrupt notebook: it says so, records no score, goes on
    assert "corrupt" in graded.autograde_log
    assert graded.scores.get(("corrupt", "log_prob"), 0) == 0
    # a deleted test cell: nbgrader puts it back (the course's add_missing_cells) and grades it
    assert graded.cells["deleted", "log_prob", "entropy-checks"][0] > 0
    assert graded.scores["deleted", "log_prob"] == pytest.approx(graded.maxima["log_prob"])


def test_feedback_shows_what_rlkit_check_shows(graded: Class) -> None:
    html = (graded.course / "feedback" / "mixed" / ASSIGNMENT / "log_prob.html").read_text()
    assert "Looks like a classic mistake" in html  # the misconception, as in rlkit check
    assert "expected" in html  # a counterexample of a public check
    assert "hidden checks" in html
    # hidden checks show pass/fail and misconceptions, never their inputs or expected values
    hidden = html.split("log_prob (hidden checks)")[1].split("</pre>")[0]
    assert "FAIL" in hidden and "expected" not in hidden


def test_export_has_the_totals(graded: Class) -> None:
    with open(graded.course / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    total = sum(graded.maxima.values())
    assert float(rows["ref"]["max_score"]) == pytest.approx(total)
    assert float(rows["ref"]["score"]) == pytest.approx(total)
    for student in ("mixed", "loop"):
        assert float(rows[student]["score"]) == pytest.approx(graded.expected[student]), student


def test_rlkit_grade_agrees_with_nbgrader(graded: Class) -> None:
    assert graded.rlkit_grades.exists(), graded.rlkit_log
    records = {r["student"]: r for r in json.loads(graded.rlkit_grades.read_text())}

    def exercise(student: str, name: str) -> int:
        return next(e["score"] for e in records[student]["exercises"] if e["name"] == name)

    for n in graded.names:
        assert exercise("ref", n) == graded.scores["ref", n] == graded.maxima[n]
    assert exercise("mixed", "log_prob") == graded.scores["mixed", "log_prob"]
    assert exercise("loop", "log_prob") == graded.scores["loop", "log_prob"] == 0
    assert exercise("corrupt", "log_prob") == 0
    # a deleted test cell: nbgrader restores it, rlkit grade needs none of them
    assert exercise("deleted", "log_prob") == graded.scores["deleted", "log_prob"]


def test_released_notebook_runs_for_a_student(graded: Class) -> None:
    """What a student sees on opening the released notebook and running it as it is."""
    assert graded.ran.exists(), graded.ran_log
    nb = json.loads(graded.ran.read_text())
    tests = [c for c in nb["cells"] if c["metadata"]["nbgrader"].get("grade")]
    visible = [c for c in tests if "hidden" not in c["metadata"]["nbgrader"]["grade_id"]]
    assert len(visible) == 3
    for cell in visible:
        outputs = cell["outputs"]
        assert not any(o["output_type"] == "error" for o in outputs)
        # 0 points: one line on stderr says why (what `nbgrader validate` shows)
        stderr = "".join("".join(o["text"]) for o in outputs if o.get("name") == "stderr")
        assert stderr.startswith("0 points: not implemented yet: ") and stderr.count("\n") == 1
        text = "".join("".join(o.get("text", "")) for o in outputs if o.get("name") == "stdout")
        assert "is not implemented yet" in text, text
        value = next(o for o in outputs if o["output_type"] == "execute_result")
        assert "".join(value["data"]["text/plain"]) == "0"  # nbgrader reads this: 0 points
        assert "points" in "".join(value["data"]["text/html"])
