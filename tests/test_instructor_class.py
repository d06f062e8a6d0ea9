"""``rlkit grade`` on a class handed in as nbgrader notebooks (issue 16, items 9, 10, 11, 14):

* the class report tells "not answered", "did not run" (a syntax error, an error when the
  notebook runs, a crash, an infinite loop) and "wrong" apart, for each student and function,
  and a check's pass rate counts only the students whose function ran;
* the feedback speaks the notebook's language: the cell as Jupyter shows it (the answer cell of
  a function, its ``In [n]``, its place from the top), ``ppo.ipynb``, never the ``ppo.py``
  module the grader makes of it; an HTML page beside the Markdown;
* the protection in a few words in each CSV row and Gradescope result, stated in full once;
* errors that say what is wrong (an assignment nobody handed in, an ``--out`` suffix rlkit
  does not write, another tool's file at ``--out``), and ``--student NAME`` regrades one.

Before (measured on the same class, rlkit grade at a884dc2): "Checks, hardest first" opened
with every gae check at 2/6 though nobody's gae was wrong (unanswered, a syntax error in
another cell, a loop, a crash); the feedback said "syntax error in ppo.ipynb (cell 4, line
27)", "ppo.py is missing from the submission", "(ppo.py line 11)".
"""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import pytest
from conftest import rlkit_cmd

ASSIGNMENT = "week1"
SIGN = (
    "return -torch.min(unclipped, clipped).mean()",
    "return torch.min(unclipped, clipped).mean()",
)


def ordinal(n: int) -> str:
    return f"{n}" + ("th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th"))


def _cells(nb: dict) -> dict[str, dict]:
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"]}


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def write_class(course: Path) -> dict[str, int]:
    """Eight students' ppo.ipynb (the released notebook, answered): returns the 1-based
    position of each answer cell from the top."""
    from rlkit_grader.notebooks.course import build_course

    build_course(course, ["ppo"], ASSIGNMENT)
    source = json.loads((course / "source" / ASSIGNMENT / "ppo.ipynb").read_text())
    solved = copy.deepcopy(source)
    for cell in solved["cells"]:
        text = _source(cell)
        text = text.replace("    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION", "")
        if "BEGIN HIDDEN TESTS" in text:  # as nbgrader releases it
            text = text.split("### BEGIN HIDDEN TESTS")[0]
        cell["source"] = text

    def body(nb: dict, grade_id: str, new: str, count: int | None = None) -> None:
        head = _source(_cells(source)[grade_id]).split("### BEGIN SOLUTION")[0].rstrip(" ")
        _cells(nb)[grade_id]["source"] = head + new.strip("\n") + "\n"
        _cells(nb)[grade_id]["execution_count"] = count

    students: dict[str, dict | None] = {"ana": solved}
    ben = students["ben"] = copy.deepcopy(solved)  # gae not answered
    body(ben, "gae-answer", "    # YOUR CODE HERE\n    raise NotImplementedError()")
    cai = students["cai"] = copy.deepcopy(solved)  # a syntax error in ppo_clip_loss's cell
    _cells(cai)["ppo_clip_loss-answer"]["source"] += "\nx = (1,\n"
    _cells(cai)["ppo_clip_loss-answer"]["execution_count"] = 3
    dee = students["dee"] = copy.deepcopy(solved)  # gae loops
    body(dee, "gae-answer", "    while True:\n        pass")
    eli = students["eli"] = copy.deepcopy(solved)  # the classic sign mistake
    clip = _cells(eli)["ppo_clip_loss-answer"]
    clip["source"] = _source(clip).replace(*SIGN)
    fay = students["fay"] = copy.deepcopy(solved)  # gae raises, on its 2nd line
    body(fay, "gae-answer", "    x = 1\n    raise ValueError('oops')", count=7)
    gus = students["gus"] = copy.deepcopy(solved)  # a cell that raises when the notebook runs
    _cells(gus)["ppo-setup"]["source"] = _source(_cells(gus)["ppo-setup"]) + "\nundefined_name\n"
    _cells(gus)["ppo-setup"]["execution_count"] = 4
    students["hal"] = None  # handed in nothing
    for student, nb in students.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        if nb is None:
            (folder / "notes.txt").write_text("I ran out of time")
        else:
            (folder / "ppo.ipynb").write_text(json.dumps(nb))
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in source["cells"]]
    return {gid: ids.index(gid) + 1 for gid in ids}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("instructor")
    positions = write_class(root / "course")
    out = root / "out" / "grades.csv"
    run = rlkit_cmd(
        "grade", str(root / "course"), "ppo", "--assignment", ASSIGNMENT, "--out", str(out),
        "--timeout", "1", timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads((root / "out" / "grades-report" / "report.json").read_text())
    return {"root": root, "out": out, "run": run, "report": report, "positions": positions}


EXPECTED = {  # student → (ppo_clip_loss, gae)
    "ana": ("correct", "correct"),
    "ben": ("correct", "not_answered"),
    "cai": ("did_not_run", "did_not_run"),
    "dee": ("correct", "did_not_run"),
    "eli": ("wrong", "correct"),
    "fay": ("correct", "did_not_run"),
    "gus": ("did_not_run", "did_not_run"),
    "hal": ("not_answered", "not_answered"),
}


def test_the_report_separates_not_answered_did_not_run_and_wrong(graded: dict) -> None:
    report = graded["report"]
    statuses = {
        row["student"]: (
            row["functions"]["ppo.ppo_clip_loss"]["status"],
            row["functions"]["ppo.gae"]["status"],
        )
        for row in report["by_student"]
    }
    assert statuses == EXPECTED
    why = {row["student"]: row["functions"]["ppo.gae"]["why"] for row in report["by_student"]}
    assert why["cai"] == "syntax error" and "timed out" in why["dee"]
    assert why["fay"] == "raised an error" and why["ben"] == "still the stub"
    assert why["hal"] == "no file handed in" and "raised or never finished" in why["gus"]
    gae = report["functions"]["ppo.gae"]
    assert (gae["correct"], gae["wrong"], gae["did_not_run"], gae["not_answered"]) == (2, 0, 4, 2)
    assert gae["students"]["did_not_run"] == ["cai", "dee", "fay", "gus"]
    clip = report["functions"]["ppo.ppo_clip_loss"]
    assert clip["wrong"] == 1 and clip["students"]["wrong"] == ["eli"]


def test_hardest_checks_count_only_students_whose_function_ran(graded: dict) -> None:
    checks = graded["report"]["checks"]
    gae = {name: c for name, c in checks.items() if name.startswith("gae.")}
    for c in gae.values():  # everyone whose gae ran got it right
        assert (c["passed"], c["ran"], c["did_not_run"], c["not_answered"]) == (2, 2, 4, 2)
        assert c["pass_rate_ran"] == 1.0
    hardest = next(iter(checks))  # before: a gae check, 2/8
    assert hardest.startswith("ppo_clip_loss.") and checks[hardest]["pass_rate_ran"] < 1
    page = (graded["root"] / "out" / "grades-report" / "index.html").read_text()
    assert "What happened, per function" in page and "Each student" in page
    assert "not answered" in page and "did not run" in page
    assert page.index("<code>ppo_clip_loss.") < page.index("<code>gae.")  # hardest first


def _feedback(graded: dict, student: str) -> tuple[str, str]:
    folder = graded["root"] / "out" / "grades-feedback"
    return (folder / f"{student}.md").read_text(), (folder / f"{student}.html").read_text()


def test_notebook_feedback_names_cells_as_jupyter_shows_them(graded: dict) -> None:
    at = graded["positions"]
    md, html = _feedback(graded, "cai")  # the syntax error: the answer cell, its In [3]
    where = (
        "syntax error in ppo.ipynb, your answer cell for ppo_clip_loss(), In [3], the "
        f"{ordinal(at['ppo_clip_loss-answer'])} cell from the top, line"
    )
    assert where in md and where in html
    md, _ = _feedback(graded, "fay")  # gae raises on the 2nd line of its answer cell
    where = (
        f"(your answer cell for gae(), In [7], the {ordinal(at['gae-answer'])} cell from the top"
    )
    assert where in md
    assert re.search(r"line \d+\) for gae\(", md)
    md, _ = _feedback(graded, "gus")  # a cell that raises when the notebook runs
    assert "a code cell of ppo.ipynb raised: NameError" in md
    assert f"cell In [4], the {ordinal(at['ppo-setup'])} cell from the top, line" in md
    md, _ = _feedback(graded, "hal")
    assert "ppo.ipynb is missing from the submission" in md
    for student in EXPECTED:  # never the .py module the grader made of the notebook
        md, html = _feedback(graded, student)
        assert "ppo.py" not in md and "ppo.py" not in html, student
        assert not re.search(r"\bcell \d+\b", md), student  # a number Jupyter never shows
    # and the summary says what happened to each function
    md, html = _feedback(graded, "dee")
    assert "**What happened:** `ppo_clip_loss()` 12/12 correct; `gae()` 0/11 did not run" in md
    assert "did not run: timed out" in html


def test_html_feedback_is_the_markdown_escaped(graded: dict) -> None:
    md, html = _feedback(graded, "eli")
    assert html.startswith("<!doctype html>") and "white-space: pre-wrap" in html
    assert "clip_loss_wrong_sign" in md and "clip_loss_wrong_sign" in html
    assert "```" not in html and "<pre>" in html
    # a hidden check shows no counterexample in either
    hidden = html.split("ppo_clip_loss.hidden_values</code> (hidden)")[1].split("<h3>")[0]
    assert "expected" not in hidden and "<pre>" not in hidden


def test_the_protection_is_stated_once(graded: dict) -> None:
    rows = list(csv.DictReader(graded["out"].open()))
    assert {r["protection"] for r in rows} == {"bubblewrap sandbox", "nothing ran"}
    assert max(len(line) for line in graded["out"].read_text().splitlines()) < 120
    stdout = graded["run"].stdout
    assert stdout.count("Protection: bubblewrap:") == 1 and "nothing ran" not in stdout
    page = (graded["root"] / "out" / "grades-report" / "index.html").read_text()
    header = page.split("<p class='sub'>")[1].split("</p>")[0]
    assert "Graded in: bubblewrap sandbox" in header and "namespaces" not in header
    assert page.count("namespaces user/pid") == 1  # in full, once, at the end
    out = graded["root"] / "gradescope"
    run = rlkit_cmd(
        "grade", str(graded["root"] / "course"), "ppo", "--assignment", ASSIGNMENT,
        "--out", str(out), "--format", "gradescope", "--timeout", "1", timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads((out / "ana" / "results.json").read_text())
    assert result["output"].startswith("rlkit: 23/23. Graded in a sandbox (bubblewrap")
    assert len(result["output"]) < 150 and "namespaces" in result["extra_data"]["protection"]


def test_errors_say_what_is_wrong(graded: dict, tmp_path: Path) -> None:
    course = str(graded["root"] / "course")
    run = rlkit_cmd(
        "grade", course, "ppo", "--assignment", "week2", "--out", str(tmp_path / "g.csv")
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "no student handed in an assignment named 'week2'" in run.stderr
    assert "the assignments there: week1" in run.stderr
    run = rlkit_cmd("grade", course, "ppo", "--out", str(tmp_path / "c.xlsx"))
    assert run.returncode == 2 and "rlkit grade writes .csv or .json grades" in run.stderr
    assert not (tmp_path / "c.xlsx").exists()
    run = rlkit_cmd("grade", course, "ppo", "--format", "csv", "--out", str(tmp_path / "g.json"))
    assert run.returncode == 2 and "--format csv but --out" in run.stderr
    nbgrader_export = tmp_path / "grades.csv"  # another tool's file is never overwritten
    nbgrader_export.write_text("assignment,duedate,timestamp,student_id,raw_score\n")
    run = rlkit_cmd("grade", course, "ppo", "--out", str(nbgrader_export))
    assert run.returncode == 2 and "nbgrader's export" in run.stderr
    assert nbgrader_export.read_text().startswith("assignment,duedate")
    run = rlkit_cmd("grade", course, "ppo", "--student", "ell", "--out", str(graded["out"]))
    assert run.returncode == 2 and "--student ell: no such student" in run.stderr
    assert "did you mean eli" in run.stderr


def test_student_regrades_one(graded: dict) -> None:
    course = graded["root"] / "course"
    before = {r["student"]: r for r in csv.DictReader(graded["out"].open())}
    eli = course / "submitted" / "eli" / ASSIGNMENT / "ppo.ipynb"
    nb = json.loads(eli.read_text())
    clip = _cells(nb)["ppo_clip_loss-answer"]
    clip["source"] = _source(clip).replace(SIGN[1], SIGN[0])  # eli fixes the sign
    eli.write_text(json.dumps(nb))
    ben = course / "submitted" / "ben" / ASSIGNMENT / "ppo.ipynb"
    ben.write_text(ben.read_text() + "\n")  # changed too, but not named: not graded
    run = rlkit_cmd(
        "grade", str(course), "ppo", "--assignment", ASSIGNMENT, "--out", str(graded["out"]),
        "--timeout", "1", "--student", "eli", timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Graded 1 of 8 students (--student: eli" in run.stdout
    assert "Not graded (--student): 1 other students" in run.stderr and "ben" in run.stderr
    after = {r["student"]: r for r in csv.DictReader(graded["out"].open())}
    assert after["eli"]["score"] == after["eli"]["max_score"] != before["eli"]["score"]
    assert {s: r["score"] for s, r in after.items() if s != "eli"} == {
        s: r["score"] for s, r in before.items() if s != "eli"
    }


def test_progress_lines_carry_the_time_left(graded: dict) -> None:
    """Not a terminal (a log): one line per student, with the ETA once a few are graded."""
    lines = [ln for ln in graded["run"].stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == len(EXPECTED)
    assert re.fullmatch(r"\[4/8\] \w+ \d+/23 \(ETA \d+ (s|min)\)", lines[3]), lines
    assert "ETA" not in lines[-1]  # nothing left


def test_html_feedback_escapes_what_a_submission_wrote() -> None:
    """The HTML page quotes what the Markdown fences: a forged name, problem or message makes
    no element; a hidden check's message is never shown."""
    from rlkit_grader import render

    forged = "</pre><script>alert(1)</script><img src=x onerror=alert(1)>"
    check = {
        "name": "gae.values",
        "function": "gae",
        "passed": False,
        "points": 0,
        "max_points": 2,
        "message": forged,
        "visibility": "public",
        "kind": "exception",
    }
    hidden = {**check, "name": "gae.hidden_values", "visibility": "hidden", "message": "LEAK"}
    record = {
        "student": forged,
        "score": 0,
        "max_score": 6,
        "note": None,
        "exercises": [
            {"name": "ppo", "score": 0, "max_score": 4, "checks": [check, hidden]},
            {"name": "dpo", "score": 0, "max_score": 2, "problem": forged, "checks": []},
        ],
    }
    page = render.feedback_html(record, {}, {})
    for element in ("<script", "<img", "</pre><"):
        assert element not in page
    assert "&lt;script&gt;" in page and "LEAK" not in page
