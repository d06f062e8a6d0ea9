"""`rlkit nbgrader build` with the real nbgrader: generate_assignment, autograde, generate_feedback,
export, on submissions a class really hands in (correct, partly correct, wrong, raising, an
infinite loop, a deleted test cell, a corrupt notebook). Expected scores come from rlkit's grader
run in-process on the same code, so nbgrader's partial credit is checked against the grader's."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import rlkit_cmd

from grader.api import check_module, select_exercises
from grader.model import HIDDEN

BIN = Path(sys.executable).parent
ASSIGNMENT = "week1"
TIMEOUT = 10  # seconds per cell under nbgrader: the infinite loop costs this once

WRONG_LOG_PROB = """
    return torch.log(torch.softmax(logits, -1)).gather(-1, actions.unsqueeze(-1)).squeeze(-1) * 0
"""
ENTROPY_MEAN = """
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).mean(-1)
"""
ZEROS = """
    return torch.zeros(logits.shape[:-1], dtype=logits.dtype)
"""
RAISES = """
    raise ValueError("I am not sure about this one")
"""


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(BIN / "nbgrader"), *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def answer_cells(nb: dict) -> dict[str, dict]:
    return {
        c["metadata"]["nbgrader"]["grade_id"]: c
        for c in nb["cells"]
        if c["metadata"].get("nbgrader", {}).get("solution")
    }


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
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        parts.append(re.sub(r"(?m)^(\s*)([%!])", r"\1# \2", src))
    return "\n\n".join(parts)


def grader_score(exercise: str, nb: dict) -> int:
    """What rlkit's grader (in-process, public + hidden) gives the notebook's code."""
    namespace: dict = {}
    exec(compile(module_of(nb), f"<{exercise}>", "exec"), namespace)  # noqa: S102 - our own code
    return check_module(exercise, namespace, HIDDEN).score


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("course")
    built = rlkit_cmd(
        "nbgrader", "build", str(root), "--assignment", ASSIGNMENT, "--timeout", str(TIMEOUT)
    )
    assert built.returncode == 0, built.stderr
    nbgrader(root, "generate_assignment", ASSIGNMENT)
    return root


def test_end_to_end_autograde_feedback_export(course: Path) -> None:
    release = course / "release" / ASSIGNMENT
    source = course / "source" / ASSIGNMENT
    names = [ex.name for ex in select_exercises()]
    assert sorted(p.stem for p in release.glob("*.ipynb")) == sorted(names)

    # the reference: every notebook, answers filled with the instructor's solution
    released = {n: json.loads((release / f"{n}.ipynb").read_text()) for n in names}
    reference = {}
    for n in names:
        nb = copy.deepcopy(released[n])
        solutions = answer_cells(json.loads((source / f"{n}.ipynb").read_text()))
        for gid, cell in answer_cells(nb).items():
            cell["source"] = solutions[gid]["source"]
        reference[n] = nb
    ref_lp = reference["log_prob"]

    def variant(**bodies: str) -> dict:
        nb = copy.deepcopy(ref_lp)
        cells = answer_cells(nb)
        for fn, body in bodies.items():
            src = cells[f"{fn}-answer"]["source"]
            src = "".join(src) if isinstance(src, list) else src
            cells[f"{fn}-answer"]["source"] = with_body(src, body)
        return nb

    stub = json.loads((release / "log_prob.ipynb").read_text())
    partial = variant(entropy=ENTROPY_MEAN)
    partial_cells = answer_cells(partial)
    partial_cells["grad_log_prob-answer"]["source"] = answer_cells(stub)["grad_log_prob-answer"][
        "source"
    ]
    wrong = variant(log_prob=WRONG_LOG_PROB, entropy=ZEROS)
    raising = variant(log_prob=RAISES)
    loop = copy.deepcopy(ref_lp)
    first = answer_cells(loop)["log_prob-answer"]
    first["source"] = "".join(first["source"]) + "\n\nwhile True:  # oops\n    pass\n"
    deleted = copy.deepcopy(ref_lp)
    deleted["cells"] = [
        c for c in deleted["cells"] if c["metadata"]["nbgrader"]["grade_id"] != "entropy-checks"
    ]

    submissions: dict[str, dict[str, object]] = {
        "ref": dict(reference),
        "partial": {"log_prob": partial},
        "wrong": {"log_prob": wrong},
        "raising": {"log_prob": raising},
        "loop": {"log_prob": loop},
        "deleted": {"log_prob": deleted},
        "corrupt": {"log_prob": '{"cells": [ this is not json'},
    }
    for student, notebooks in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for n, nb in notebooks.items():
            text = nb if isinstance(nb, str) else json.dumps(nb)
            (folder / f"{n}.ipynb").write_text(text)

    # what rlkit's grader says about the same code (public + hidden checks)
    maxima = {n: grader_score(n, reference[n]) for n in names}
    expected_lp = {
        "ref": maxima["log_prob"],
        "partial": grader_score("log_prob", partial),
        "wrong": grader_score("log_prob", wrong),
        "raising": grader_score("log_prob", raising),
        "loop": 0,  # the loop cell never finishes: every test cell after it scores 0
    }
    assert 0 < expected_lp["partial"] < maxima["log_prob"]
    assert 0 <= expected_lp["wrong"] < maxima["log_prob"]
    assert 0 < expected_lp["raising"] < maxima["log_prob"]

    result = nbgrader(course, "autograde", ASSIGNMENT, check=False)
    log = result.stdout + result.stderr
    # the corrupt notebook cannot be graded; nbgrader says so and grades everyone else
    assert "corrupt" in log

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {
            (s.student.id, s.notebook.name): s.score
            for a in [gb.find_assignment(ASSIGNMENT)]
            for nb in a.notebooks
            for s in nb.submissions
        }
        cell_scores = {
            (g.student.id, g.notebook.name, g.name): (g.score, g.max_score)
            for a in [gb.find_assignment(ASSIGNMENT)]
            for nb in a.notebooks
            for s in nb.submissions
            for g in s.grades
        }
    for n in names:  # every generated notebook, run for real, gives the reference full marks
        assert scores["ref", n] == pytest.approx(maxima[n]), (n, scores["ref", n])
    for student in ("partial", "wrong", "raising", "loop"):
        assert scores[student, "log_prob"] == pytest.approx(expected_lp[student]), student
    # partial credit inside a cell: entropy's checks where mean replaced sum
    got, top = cell_scores["partial", "log_prob", "entropy-checks"]
    assert 0 < got < top
    assert ("corrupt", "log_prob") not in scores or scores["corrupt", "log_prob"] == 0
    # a deleted test cell: nbgrader puts nothing in its place (document: rlkit grade grades it)
    if ("deleted", "log_prob") in scores:
        assert scores["deleted", "log_prob"] <= maxima["log_prob"]

    nbgrader(course, "generate_feedback", ASSIGNMENT)
    feedback = (course / "feedback" / "partial" / ASSIGNMENT / "log_prob.html").read_text()
    assert "Looks like a classic mistake" in feedback  # the same misconception as rlkit check
    assert "expected" in feedback  # and a counterexample
    hidden = (course / "feedback" / "wrong" / ASSIGNMENT / "log_prob.html").read_text()
    assert "hidden checks" in hidden
    loop_fb = (course / "feedback" / "loop" / ASSIGNMENT / "log_prob.html").read_text()
    assert "infinite loop" in loop_fb

    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    with open(course / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    total = sum(maxima.values())
    assert float(rows["ref"]["max_score"]) == pytest.approx(total)
    assert float(rows["ref"]["score"]) == pytest.approx(total)
    for student in ("partial", "wrong", "raising", "loop"):
        assert float(rows[student]["score"]) == pytest.approx(expected_lp[student]), student
