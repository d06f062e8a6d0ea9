"""The README's nbgrader sequence, run as written (issue 16, items 8, 10, 11, 12): every command
of its block, in order, in a temporary folder, with two students who take the released
assignment from the exchange, answer and submit it before the README's ``nbgrader collect``.
Afterwards both grade files are there, rlkit's and nbgrader's, with the same totals; the exchange is the course's own folder (nothing made in
/usr/local/share/nbgrader/exchange); the runs carry none of the false warnings (nbgrader's
"root '.' is not absolute", the hidden test cells' "checksum has changed", SQLAlchemy's "not in
session"); and ``nbgrader validate`` says why an unanswered function's test cell earned 0,
not only "Partial credit".

Before (README at a884dc2): ``rlkit grade --out grades.csv`` then ``nbgrader export --to
grades.csv``: nbgrader's export replaced rlkit's grades; release_assignment made
/usr/local/share/nbgrader/exchange as root; 72 checksum warnings per autograde of six students.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

BIN = Path(sys.executable).parent
DEFAULT_EXCHANGE = Path("/usr/local/share/nbgrader/exchange")


def readme_sequence() -> list[str]:
    """The commands of the README's nbgrader block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Instructors: nbgrader", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "RLKIT_NOTEBOOK_TIME_LIMIT": "5",
    }


def run(command: str, cwd: Path) -> str:
    words = shlex.split(command)
    done = subprocess.run(
        [str(BIN / words[0]), *words[1:]],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{command}\n{out[-4000:]}"
    return out


def _cells(nb: dict) -> dict[str, dict]:
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"]}


def answered(released: dict, source: dict, unanswered: tuple[str, ...] = ()) -> dict:
    """The released notebook with the reference in its answer cells (but ``unanswered``)."""
    nb = copy.deepcopy(released)
    solutions = _cells(source)
    for gid, cell in _cells(nb).items():
        if cell["metadata"]["nbgrader"]["solution"] and gid.split("-")[0] not in unanswered:
            lines = "".join(solutions[gid]["source"]).split("\n")
            cell["source"] = "\n".join(
                ln
                for ln in lines
                if "### BEGIN SOLUTION" not in ln and "### END SOLUTION" not in ln
            )
    return nb


def students_submit(course: Path, work: Path, course_id: str) -> None:
    """Students take the released assignment from the exchange (what ``fetch_assignment``
    copies), answer ppo.ipynb and submit it (``--student``: one account plays both); ben
    leaves gae unanswered."""
    exchange = course / "exchange"
    (released_file,) = exchange.glob("*/outbound/week1/ppo.ipynb")
    released = json.loads(released_file.read_text())
    source = json.loads((course / "source" / "week1" / "ppo.ipynb").read_text())
    for name, unanswered in (("ana", ()), ("ben", ("gae",))):
        home = work / f"home-{name}"
        (home / "week1").mkdir(parents=True)
        nb = answered(released, source, unanswered)
        (home / "week1" / "ppo.ipynb").write_text(json.dumps(nb))
        run(
            f"nbgrader submit week1 --course {course_id} --student {name} "
            f"--Exchange.root={exchange}",
            home,
        )


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("readme")
    had_default_exchange = DEFAULT_EXCHANGE.exists()
    commands = readme_sequence()
    assert commands[0].startswith("rlkit nbgrader build course/") and commands[1] == "cd course"
    cwd, outputs = work, {}
    for command in commands:
        if command.startswith("cd "):
            cwd = cwd / command[3:]
            continue
        if command.startswith("nbgrader collect"):  # the students hand in, before collect
            config = (cwd / "nbgrader_config.py").read_text()
            course_id = re.search(r"course_id = '([^']+)'", config)[1]
            students_submit(cwd, work, course_id)
        outputs[command] = run(command, cwd)
    return {
        "work": work,
        "course": cwd,
        "outputs": outputs,
        "commands": commands,
        "had_default_exchange": had_default_exchange,
    }


def test_the_readme_sequence_leaves_both_grade_files(sequence: dict) -> None:
    course = sequence["course"]
    ours = [c for c in sequence["commands"] if c.startswith("rlkit grade")]
    theirs = [c for c in sequence["commands"] if c.startswith("nbgrader export")]
    assert ours and theirs
    rlkit_file = course / ours[0].split("--out ")[1].split()[0]
    nbgrader_file = course / theirs[0].split("--to ")[1].split()[0]
    assert rlkit_file != nbgrader_file
    with rlkit_file.open() as f:
        rlkit_rows = {r["student"]: r for r in csv.DictReader(f)}
    with nbgrader_file.open() as f:
        nbgrader_rows = {r["student_id"]: r for r in csv.DictReader(f)}
    students = {"ana", "ben"}
    assert set(rlkit_rows) == set(nbgrader_rows) == students
    for student in students:  # the same totals, in both files
        assert float(rlkit_rows[student]["score"]) == pytest.approx(
            float(nbgrader_rows[student]["score"])
        ), student
    assert 0 < float(rlkit_rows["ben"]["score"]) < float(rlkit_rows["ana"]["score"])
    # nbgrader's feedback, and rlkit's beside its grades
    assert list((course / "feedback" / "ben" / "week1").glob("ppo.html"))
    assert (course / "rlkit-grades-feedback" / "ben.html").is_file()


def test_the_exchange_is_the_courses_own(sequence: dict) -> None:
    course = sequence["course"]
    assert (course / "exchange").is_dir()
    assert list((course / "exchange").glob("*/outbound/week1/ppo.ipynb"))
    assert list((course / "exchange").glob("*/feedback/*.html"))  # release_feedback
    if not sequence["had_default_exchange"]:
        assert not DEFAULT_EXCHANGE.exists()


def test_no_false_warnings(sequence: dict) -> None:
    for command, out in sequence["outputs"].items():
        assert "is not absolute" not in out, command
        assert "has changed!" not in out, command  # the hidden test cells' checksum
        assert "not in session" not in out, command


def test_validate_says_why_a_cell_earned_nothing(sequence: dict) -> None:
    course = sequence["course"]
    out = run("nbgrader validate submitted/ben/week1/ppo.ipynb", course)
    assert "0 points: not implemented yet: gae" in out
