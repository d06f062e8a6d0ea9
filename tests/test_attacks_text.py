"""Student text is data (issue 14, items 5-8), through real `rlkit grade` runs on small classes:

* an import error that forges the grader's headings, HTML, links and its sandbox-failure phrase
  is shown only quoted (fenced in the Markdown feedback and Gradescope's output, escaped in the
  class report), scores what a broken file scores, and is not graded again on every run (the
  sandbox's failure is the grader's flag, never a message's text);
* a hidden check's feedback holds nothing a submission wrote (not even into public calls' errors);
* a symbolic link (student folder, assignment folder, exercise file, notebook) earns nothing,
  with one line saying so;
* no CSV cell starts like a spreadsheet formula, whatever the student's folder is called.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, rlkit_cmd
from markdown_it import MarkdownIt

EXERCISE = "ppo"  # one exercise keeps the class fast; every path it takes is the same
EVIL = "evil.example"
FORGED = (
    "the sandbox failed: the grader's worker died\n\n"
    "## ppo: 23/23\n\nAll checks pass.\n\n"
    "# Feedback for mallory: 127/127\n"
    f"<img src=x onerror=alert(1)> [claim your grade](https://{EVIL}/)\n"
    "</code></pre><script>alert(1)</script>\n"
    f'=HYPERLINK("https://{EVIL}","x")'
)
#: how the grader's own messages start when the sandbox fails: the forged import errors start so
SANDBOX_PHRASES = (
    "the sandbox failed",
    "the grader's worker did not start",
    "grading ran past its time budget",
)
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def solution() -> str:
    return (ROOT / "solutions" / f"{EXERCISE}.py").read_text()


def through_the_pipe(text: str) -> str:
    """A module that, at import, writes an import record with ``text`` into every descriptor
    it can (the worker's result pipe among them), then exits: a forged import error."""
    return (
        "import json, os, struct\n"
        f"TEXT = {text!r}\n"
        'header = json.dumps({"type": "import", "error": TEXT, "arrays": []}).encode()\n'
        'frame = struct.pack(">4sQQ", b"RLK1", len(header), 0) + header\n'
        "for fd in range(3, 256):\n"
        "    try:\n"
        "        os.write(fd, frame)\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )


#: forging submissions: each import fails with text that plays the grader
FORGERS = {
    **{
        f"mallory{i}": through_the_pipe(phrase + FORGED[len("the sandbox failed") :])
        for i, phrase in enumerate(SANDBOX_PHRASES)
    },
    "trudy": f"raise SyntaxError({FORGED!r})\n",  # the runner quotes a SyntaxError's msg
    "oscar": f"raise type({FORGED!r}, (Exception,), {{}})('boom')\n",  # a class named so
    "fenced": f"raise SyntaxError({('`' * 9 + chr(10) + FORGED + chr(10) + '~' * 5 + '`' * 12)!r})\n",
    "ctrl": (
        "raise SyntaxError("
        + repr(
            "\r# Feedback for ctrl: 127/127\r\n\x1b]8;;https://evil.example\x1b\\click"
            "\x1b]8;;\x1b\\ \x1b[2J\u202eevil\u2028# heading"
        )
        + ")\n"
    ),
}
#: a submission whose every call fails with a text made of its inputs (public calls included)
LEAKER = (
    "import torch\n"
    "def _leak(args):\n"
    "    raise ValueError('LEAK ' + repr([a.tolist() if hasattr(a, 'tolist') else a "
    "for a in args]))\n"
    "def ppo_clip_loss(*args, **kwargs):\n"
    "    _leak(args)\n"
    "def gae(*args, **kwargs):\n"
    "    _leak(args)\n"
)
#: a submission whose results are objects of a class named like the grader's Markdown (the
#: judge's public messages name the type it returned)
TYPED = (
    f"FORGED = {FORGED!r}\n"
    "def ppo_clip_loss(*args, **kwargs):\n"
    "    return type(FORGED, (), {})()\n"
    "def gae(*args, **kwargs):\n"
    "    return type(FORGED, (), {})(), type(FORGED, (), {})()\n"
)
#: students whose folder names a spreadsheet would run as formulas (honest answers)
FORMULA_NAMES = ('=HYPERLINK("evil.example","x")', "+1", "-1+2", "@SUM(A1)", "\t=1")
#: folder names that try Markdown (honest answers)
MARKDOWN_NAMES = ("nl\n# Feedback for nl: 127 of 127 <img src=x>", "tick`` ```x")


def write_class(root: Path) -> None:
    files = {
        "alice": solution(),
        "broken": "raise ImportError('no module named nothing')\n",
        "leaker": LEAKER,
        "typed": TYPED,
        **FORGERS,
        **{name: solution() for name in (*FORMULA_NAMES, *MARKDOWN_NAMES)},
    }
    for student, text in files.items():
        (root / student).mkdir(parents=True)
        (root / student / f"{EXERCISE}.py").write_text(text)
    (root / "linked").symlink_to("alice")  # another student's folder: the whole submission
    (root / "eve").mkdir()
    (root / "eve" / f"{EXERCISE}.py").symlink_to(root / "alice" / f"{EXERCISE}.py")


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("attacks")
    write_class(root / "class")
    out = root / "out" / "grades.json"
    run = rlkit_cmd("grade", str(root / "class"), EXERCISE, "--out", str(out), timeout=600)
    assert run.returncode == 0, run.stderr + run.stdout
    rows = {r["student"]: r for r in json.loads(out.read_text())}
    return {"root": root, "out": out, "run": run, "rows": rows}


def _html_outside_code(markdown: str) -> tuple[str, str]:
    """(the HTML a CommonMark renderer makes of ``markdown`` without its code blocks and spans,
    the text of those code blocks and spans)."""
    page = MarkdownIt("commonmark").render(markdown)
    code = re.findall(r"<pre><code[^>]*>(.*?)</code></pre>|<code>(.*?)</code>", page, re.S)
    outside = re.sub(r"<pre><code[^>]*>.*?</code></pre>|<code>.*?</code>", "", page, flags=re.S)
    return outside, "\n".join(html.unescape(a or b) for a, b in code)


def assert_only_quoted(markdown: str) -> str:
    """The submission's forgeries are in code blocks only: no element they tried to make, no
    heading or score they wrote outside one. Returns the code blocks' text."""
    outside, quoted = _html_outside_code(markdown)
    for element in ("<img", "<script", "<a ", "<h1>Feedback for mallory", "<h2>ppo"):
        assert element not in outside, (element, outside)
    for forged in (EVIL, "127/127", "23/23", "alert(1)", "All checks pass"):
        assert forged not in outside, (forged, outside)
    return quoted


# ----------------------------------------------------------------------------- forged text


def test_forged_import_errors_score_what_a_broken_file_scores(graded: dict) -> None:
    rows = graded["rows"]
    assert rows["alice"]["score"] == rows["alice"]["max_score"] > 0
    assert rows["broken"]["score"] == 0
    for student in FORGERS:
        assert rows[student]["score"] == rows["broken"]["score"], student
        (ex,) = rows[student]["exercises"]
        assert ex["problem"] and ex["sandbox_failed"] is False, (student, ex["problem"])


def test_forged_feedback_is_fenced(graded: dict) -> None:
    feedback = graded["out"].parent / "grades-feedback"
    max_score = graded["rows"]["alice"]["max_score"]
    reached = 0
    for student in FORGERS:
        text = (feedback / f"{student}.md").read_text()
        quoted = assert_only_quoted(text)
        page = MarkdownIt("commonmark").render(text)
        headings = re.findall(r"<h([1-6])>(.*?)</h\1>", page, re.S)
        assert headings == [
            ("1", f"Feedback for <code>{student}</code>: 0/{max_score}"),
            ("2", f"<code>{EXERCISE}</code>: 0/{max_score}"),
        ], (student, headings)
        assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
        reached += "127/127" in quoted  # the student sees what their code said, quoted
    assert reached >= 3, "the forged text should reach the feedback (quoted) in most variants"


def test_forged_type_names_in_public_messages_are_fenced(graded: dict) -> None:
    record = graded["rows"]["typed"]
    assert record["score"] == 0
    text = (graded["out"].parent / "grades-feedback" / "typed.md").read_text()
    quoted = assert_only_quoted(text)
    assert "127/127" in quoted  # the judge named the type: shown, quoted
    page = MarkdownIt("commonmark").render(text)
    for level, heading in re.findall(r"<h([1-6])>(.*?)</h\1>", page, re.S):
        if level == "3":  # one per failing check: its name, (hidden), points
            assert re.fullmatch(r"✗ <code>[\w.]+</code>( \(hidden\))? 0/\d+", heading), heading


def test_student_folder_names_are_quoted(graded: dict) -> None:
    from rlkit_grader.submissions import safe_name

    feedback = graded["out"].parent / "grades-feedback"
    for name in MARKDOWN_NAMES:
        text = (feedback / f"{safe_name(name)}.md").read_text()
        outside, _ = _html_outside_code(text)
        assert "<img" not in outside and "127 of 127" not in outside, outside
        page = MarkdownIt("commonmark").render(text)
        assert len(re.findall(r"<h1>", page)) == 1, page
    progress = graded["run"].stderr
    assert "nl\\n# Feedback for nl" in progress  # one line per student, newline shown as \n


def test_forged_text_is_escaped_in_the_class_report(graded: dict) -> None:
    report = graded["out"].parent / "grades-report"
    page = (report / "index.html").read_text()
    for forged in ("<img src=x", "<script>alert", f'href="https://{EVIL}', "\x1b"):
        assert forged not in page, forged
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the problem is listed, escaped
    data = json.loads((report / "report.json").read_text())
    assert data["sandbox_failed"] == []


def test_forged_sandbox_failure_is_not_graded_again(graded: dict) -> None:
    records = graded["out"].parent / ".grades.grading"
    for path in records.glob("*.json"):
        record = json.loads(path.read_text())
        assert not record["fingerprint"].startswith("regrade:"), path.name
    run = rlkit_cmd(
        "grade", str(graded["root"] / "class"), EXERCISE, "--out", str(graded["out"]),
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    students = len(graded["rows"])
    assert f"{students} students already graded and unchanged" in run.stderr
    assert f"Graded 0 of {students} students" in run.stdout


def test_gradescope_output_is_markdown_with_the_submissions_text_fenced(graded: dict) -> None:
    out = graded["out"].parent / "gradescope"
    run = rlkit_cmd(
        "grade", str(graded["root"] / "class"), EXERCISE, "--out", str(out),
        "--format", "gradescope",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = graded["rows"]
    for student in [*FORGERS, "leaker"]:
        result = json.loads((out / student / "results.json").read_text())
        assert result["score"] == rows[student]["score"]
        for test in result["tests"]:
            assert test["output_format"] == "md"
            assert_only_quoted(test["output"])


# ----------------------------------------------------------------------------- hidden checks


def _sections(markdown: str) -> dict[str, str]:
    """Check heading (### ...) → its section."""
    parts = re.split(r"^### ", markdown, flags=re.M)[1:]
    return {part.splitlines()[0]: part for part in parts}


def test_hidden_checks_feedback_holds_nothing_the_submission_wrote(graded: dict) -> None:
    record = graded["rows"]["leaker"]
    (ex,) = record["exercises"]
    hidden = [c for c in ex["checks"] if c["visibility"] == "hidden"]
    assert hidden and not any(c["passed"] for c in hidden)
    assert all("LEAK" in c["message"] for c in hidden)  # the judge's message holds it...
    text = (graded["out"].parent / "grades-feedback" / "leaker.md").read_text()
    sections = _sections(text)
    public = [s for h, s in sections.items() if "(hidden)" not in h]
    secret = [s for h, s in sections.items() if "(hidden)" in h]
    assert len(secret) == len(hidden)
    assert all("LEAK" in s for s in public)  # ...public checks show it (fenced)...
    for section in secret:  # ...a hidden check never: name, pass/fail, misconception only
        assert "LEAK" not in section and "```" not in section, section
        assert not re.search(r"\d\.\d", section), section  # no value of any kind
    results = graded["out"].parent / "gradescope" / "leaker" / "results.json"
    if results.is_file():  # written by the Gradescope test (same module)
        for test in json.loads(results.read_text())["tests"]:
            if test["visibility"] == "after_published":
                assert "LEAK" not in test["output"] and "```" not in test["output"], test


def test_notebook_hidden_cells_show_nothing_the_function_wrote(capsys) -> None:
    from rlkit_grader.notebooks import feedback

    def gae(*args, **kwargs):
        raise ValueError("LEAK Looks like a classic mistake: " + repr(args)[:200])

    assert feedback.check("ppo", "gae", {"gae": gae}, hidden=True) == 0
    out = capsys.readouterr().out
    assert "hidden checks" in out and "FAIL" in out
    assert "LEAK" not in out and "tensor" not in out


# ----------------------------------------------------------------------------- links


def test_a_symlinked_folder_or_file_earns_nothing_with_one_line(graded: dict) -> None:
    rows = graded["rows"]
    linked = rows["linked"]
    assert linked["score"] == 0
    assert "symbolic link" in linked["note"] and "\n" not in linked["note"]
    assert all(ex["problem"] == linked["note"] for ex in linked["exercises"])
    eve = rows["eve"]
    assert eve["score"] == 0
    assert (
        eve["exercises"][0]["problem"]
        == f"{EXERCISE}.py is a symbolic link; submit the file itself"
    )
    feedback = (graded["out"].parent / "grades-feedback" / "linked.md").read_text()
    assert "symbolic link" in feedback


def _notebook(source: str) -> str:
    cell = {
        "cell_type": "code",
        "metadata": {"nbgrader": {"grade": False, "solution": True, "grade_id": "answer"}},
        "source": source.splitlines(keepends=True),
        "execution_count": None,
        "outputs": [],
    }
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_symlinks_refused_at_every_level_of_an_nbgrader_course(tmp_path: Path) -> None:
    submitted = tmp_path / "course" / "submitted"
    (submitted / "ana" / "week1").mkdir(parents=True)
    (submitted / "ana" / "week1" / "ppo.ipynb").write_text(_notebook(solution()))
    (submitted / "mallory").mkdir()
    (submitted / "mallory" / "week1").symlink_to("../ana/week1")  # the assignment folder
    (submitted / "sybil").symlink_to("ana")  # the student folder
    (submitted / "carl" / "week1").mkdir(parents=True)  # the notebook
    (submitted / "carl" / "week1" / "ppo.ipynb").symlink_to("../../ana/week1/ppo.ipynb")
    out = tmp_path / "grades.csv"
    run = rlkit_cmd("grade", str(tmp_path / "course"), EXERCISE, "--out", str(out), timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert sorted(rows) == ["ana", "carl", "mallory", "sybil"]
    assert rows["ana"]["score"] == rows["ana"]["max_score"] != "0"
    records = {
        json.loads(p.read_text())["student"]: json.loads(p.read_text())
        for p in (tmp_path / ".grades.grading").glob("*.json")
    }
    for student in ("carl", "mallory", "sybil"):
        assert rows[student]["score"] == "0", student
        (ex,) = records[student]["exercises"]
        assert "symbolic link" in ex["problem"] and "\n" not in ex["problem"], ex["problem"]
    assert "symbolic link" in rows["mallory"]["note"] and "symbolic link" in rows["sybil"]["note"]


# ----------------------------------------------------------------------------- CSV


def test_no_csv_cell_starts_like_a_formula(graded: dict) -> None:
    out = graded["out"].parent / "grades.csv"
    run = rlkit_cmd("grade", str(graded["root"] / "class"), EXERCISE, "--out", str(out))
    assert run.returncode == 0, run.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA), (row, cell)
    names = {row[0] for row in rows[1:]}
    assert {"'" + name for name in FORMULA_NAMES} <= names  # quoted, not renamed
    by = {row[0]: row for row in rows[1:]}
    for name in FORMULA_NAMES:  # their grades are their answers' (honest ones)
        assert by["'" + name][1] == by["'" + name][2] == by["alice"][1]


# ----------------------------------------------------------------------------- units


def test_a_fence_outlasts_any_backtick_run_in_the_text() -> None:
    from rlkit_grader.render import code, fence

    for text in ("```", "a\n````\n# x", "`" * 40 + "\n<img src=x>", "~~~\n# x\n~~~", "x\r# y"):
        outside, quoted = _html_outside_code(f"# title\n\n{fence(text)}\n\nafter\n")
        assert outside.split() == ["<h1>title</h1>", "<p>after</p>"], (text, outside)
        assert quoted == text.replace("\r", "\n") + "\n"
        outside, quoted = _html_outside_code(f"# name {code(text)}\n")
        assert outside.count("<h1>") == 1 and "<img" not in outside and "<h" not in outside[4:]


def test_csv_cells_are_neutralised() -> None:
    from rlkit_grader.render import csv_cell

    for value in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert csv_cell(value) == "'" + value
    assert csv_cell("alice") == "alice" and csv_cell(-3) == -3 and csv_cell("a=1") == "a=1"


def test_the_sandbox_failed_only_when_the_grader_says_so(tmp_path: Path) -> None:
    from rlkit_grader.batch import make_record, read_record
    from rlkit_grader.report import CheckResult, ExerciseReport, Report
    from rlkit_grader.submissions import Submission

    def report(flag: bool) -> Report:
        problem = f"{SANDBOX_PHRASES[0]}: forged by the submission"
        check = CheckResult("ppo.values", False, 0, 2, problem, "ppo_clip_loss", "public")
        return Report([ExerciseReport("ppo", [check], problem, sandbox_failed=flag)])

    sub = Submission("mallory", tmp_path)
    assert not make_record(sub, "f", report(False), {})["fingerprint"].startswith("regrade:")
    record = make_record(sub, "f", report(True), {})
    assert record["fingerprint"] == "regrade:f" and record["exercises"][0]["sandbox_failed"]
    # a record of an older version (no flag): not failed
    old = {
        **record,
        "exercises": [{k: v for k, v in record["exercises"][0].items() if k != "sandbox_failed"}],
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert read_record(tmp_path / "old.json")["exercises"][0]["sandbox_failed"] is False


def test_the_terminal_shows_the_submissions_text_on_its_line() -> None:
    from rich.console import Console

    from rlkit_grader.report import CheckResult, ExerciseReport, Report

    forged = "boom\n  PASS ppo.values 2/2\nTotal: 99/99 \x1b[2J [link=https://evil.example]x[/link] :smile:"
    check = CheckResult("ppo.values", False, 0, 2, forged, "ppo_clip_loss", "public")
    report = Report([ExerciseReport("ppo", [check], forged)])
    out = io.StringIO()
    report.write_plain(out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1] == "Total: 0/2", lines
    assert "\x1b" not in out.getvalue()
    buffer = io.StringIO()
    report.write_rich(Console(file=buffer, force_terminal=True, width=200, highlight=False))
    shown = buffer.getvalue()
    assert "\x1b]8;" not in shown and "\x1b[2J" not in shown  # no hyperlink, no clear screen
    assert "[link=https://evil.example]" in shown and "😄" not in shown


def test_a_hidden_checks_view_is_its_name_pass_fail_and_misconception() -> None:
    from rlkit_grader import render
    from rlkit_grader.batch import Course
    from rlkit_grader.exports import gradescope

    check = {
        "name": "gae.hidden_values",
        "function": "gae",
        "visibility": "hidden",
        "passed": False,
        "points": 0,
        "max_points": 2,
        "message": "LEAK [1.5, 2.5]. Looks like a classic mistake: LEAK forged explanation",
        "misconception": "gae_no_dones",
        "kind": "not_implemented",
    }
    mistakes = {"gae_no_dones": "the catalogue's own words"}
    descriptions = {"gae.hidden_values": "matches the reference on other rollouts"}
    shown = render.view(check, render.STUDENT, mistakes, descriptions)
    assert shown.quoted == "" and shown.explanation == "the catalogue's own words"
    for text in (
        render.check_body_markdown(shown),
        render.check_plain(shown),
        render.hidden_plain("gae", [check], mistakes, (0, 2)),
    ):
        assert "LEAK" not in text and "1.5" not in text, text
    assert "the catalogue's own words" in render.check_body_markdown(shown)
    assert "gae() is not implemented yet" in render.check_body_markdown(shown)
    record = {
        "student": "s",
        "score": 0,
        "max_score": 2,
        "exercises": [{"name": "ppo", "score": 0, "max_score": 2, "checks": [check]}],
    }
    course = Course(["ppo"], descriptions, mistakes, {"ppo": 2}, "")
    (test,) = gradescope(record, course)["tests"]
    assert "LEAK" not in test["output"] and test["visibility"] == "after_published"
    assert "LEAK" not in render.feedback_markdown(record, descriptions, mistakes)
    # the instructor sees the message (quoted), without the grader's pasted explanation
    instructor = render.view(check, render.INSTRUCTOR, mistakes, descriptions)
    assert instructor.quoted == check["message"]  # not the catalogue's: nothing stripped
