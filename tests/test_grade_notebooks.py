"""``rlkit grade`` on nbgrader submissions: the answer module taken from a notebook (test cells
out, magics commented, duplicated cells as in Python), broken notebooks as one clear line, and a
real nbgrader ``submitted/`` class graded end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, rlkit_cmd

from rlkit_grader.submissions import NotebookProblem, discover, notebook_module

SOLUTION = (ROOT / "solutions" / "ppo.py").read_text()
SIGN = (
    "return -torch.min(unclipped, clipped).mean()",
    "return torch.min(unclipped, clipped).mean()",
)


def cell(kind: str, source: str, **nbgrader: object) -> dict:
    meta = {"nbgrader": {"schema_version": 3, **nbgrader}} if nbgrader else {}
    c = {"cell_type": kind, "metadata": meta, "source": source.splitlines(keepends=True)}
    if kind == "code":
        c.update(execution_count=None, outputs=[])
    return c


def notebook(*cells: dict) -> bytes:
    nb = {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb).encode()


def answer(source: str, grade_id: str = "answer") -> dict:
    return cell("code", source, grade=False, solution=True, locked=False, grade_id=grade_id)


def test_cell(source: str = "assert False, 'a visible test'", grade_id: str = "test") -> dict:
    return cell(
        "code", source, grade=True, solution=False, locked=True, points=2, grade_id=grade_id
    )


test_cell.__test__ = False  # a helper, not a test


def test_module_is_the_answer_cells_in_order_without_test_cells() -> None:
    nb = notebook(
        cell("markdown", "# PPO"),
        cell("code", "import math\n%matplotlib inline\n!pip install nothing"),
        answer("def f():\n    return 1\n"),
        test_cell("raise SystemExit('tests must not be in the module')"),
        # a duplicated cell (the later one wins), starting as a module would
        answer("from __future__ import annotations\n\ndef f():\n    return 2\n", "again"),
        cell("code", "for i in range(2):\n    %time f()\n"),
    )
    module = notebook_module(nb, "ppo.ipynb")
    assert "SystemExit" not in module and "markdown" not in module
    assert "# %matplotlib inline" in module and "# !pip install nothing" in module
    namespace: dict = {}
    exec(compile(module, "ppo.ipynb", "exec"), namespace)
    assert namespace["f"]() == 2


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"cells": [', "not valid notebook JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (json.dumps({"nbformat": 3, "worksheets": []}).encode(), "not a Jupyter notebook in nbformat 4"),
        (notebook(cell("code", "x = 1"), {"source": "y"}), "the 2nd cell from the top is mangled"),
        (notebook({"cell_type": "code", "metadata": {}, "source": 42}), "the 1st cell from the top is mangled"),
        (notebook(cell("code", "import torch"), answer("def f(:\n    pass")), "syntax error in ppo.ipynb, the 2nd cell from the top, line 1: "),
        # an nbgrader answer cell the student ran: named as Jupyter shows it
        (notebook(cell("markdown", "# f"), cell("code", "import torch"), {**answer("x = 1\ndef f(:\n    pass", "f-answer"), "execution_count": 5}),
         "syntax error in ppo.ipynb, your answer cell for f(), In [5], the 3rd cell from the top, line 2: "),
    ],
)  # fmt: skip
def test_broken_notebooks_are_one_line(data: bytes, says: str) -> None:
    with pytest.raises(NotebookProblem) as caught:
        notebook_module(data, "ppo.ipynb")
    assert says in str(caught.value) and "\n" not in str(caught.value)


def write_course(root: Path) -> None:
    """nbgrader's layout: submitted/<student>/<assignment>/ppo.ipynb."""
    students = {
        "ana": notebook(cell("code", "import torch"), answer(SOLUTION), test_cell()),
        # duplicated answer cells (a wrong one first), a magic, the test cell deleted
        "ben": notebook(
            cell("code", "%load_ext autoreload\nimport torch"),
            answer(SOLUTION.replace(*SIGN)),
            answer(SOLUTION, "answer-copy"),
        ),
        "dan": notebook(answer(SOLUTION))[:-40],  # truncated: corrupt JSON
        "eve": notebook(answer(SOLUTION), {"cell_type": "code", "source": None}),  # mangled
    }
    for student, data in students.items():
        folder = root / "submitted" / student / "week1"
        folder.mkdir(parents=True)
        (folder / "ppo.ipynb").write_bytes(data)
    (root / "nbgrader_config.py").write_text("c = get_config()\n")


def test_discover_nbgrader_layout(tmp_path: Path) -> None:
    write_course(tmp_path)
    found = discover(tmp_path, ["log_prob", "ppo"])
    assert [s.student for s in found] == ["ana", "ben", "dan", "eve"]
    assert found[0].files == {"ppo": tmp_path / "submitted" / "ana" / "week1" / "ppo.ipynb"}


def test_grade_an_nbgrader_class(tmp_path: Path) -> None:
    write_course(tmp_path / "course")
    out = tmp_path / "grades.json"
    run = rlkit_cmd("grade", str(tmp_path / "course"), "ppo", "--out", str(out), timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    rows = {r["student"]: r for r in json.loads(out.read_text())}
    full = rows["ana"]["max_score"]
    assert rows["ana"]["score"] == full > 0
    assert rows["ben"]["score"] == full  # the later (correct) cell wins, the magic is harmless
    assert rows["dan"]["score"] == 0
    assert "not valid notebook JSON" in rows["dan"]["exercises"][0]["problem"]
    assert rows["eve"]["score"] == 0
    assert "the 2nd cell from the top is mangled" in rows["eve"]["exercises"][0]["problem"]
    feedback = (tmp_path / "grades-feedback" / "dan.md").read_text()
    assert "not valid notebook JSON" in feedback


def test_staging_copies_only_plain_exercise_files(tmp_path: Path) -> None:
    from rlkit_grader.submissions import MAX_FILE_BYTES, stage

    alice, mallory = tmp_path / "class" / "alice", tmp_path / "class" / "mallory"
    alice.mkdir(parents=True)
    mallory.mkdir()
    (alice / "ppo.py").write_text(SOLUTION)
    (mallory / "ppo.py").symlink_to(alice / "ppo.py")  # another student's answer
    (mallory / "dpo.py").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    (mallory / "checks").mkdir()  # a forged checks folder is never staged
    (sub,) = [
        s
        for s in discover(tmp_path / "class", ["ppo", "dpo", "reinforce"])
        if s.student == "mallory"
    ]
    problems = stage(sub, tmp_path / "stage", ["ppo", "dpo", "reinforce"])
    assert problems == {
        "ppo": "ppo.py is a symbolic link; submit the file itself",
        "dpo": "dpo.py is larger than 2 MB",
        "reinforce": "reinforce.py is missing from the submission",
    }
    assert list((tmp_path / "stage").iterdir()) == []
