"""``rlkit grade`` on a class of folder submissions, end to end through the real CLI and the
real sandbox: the grades in every format, the feedback, the class report, resume and Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, rlkit_cmd

EXERCISES = ("reinforce", "ppo")  # two exercises keep the class fast; the loop is the same
SIGN = (
    "return -torch.min(unclipped, clipped).mean()",
    "return torch.min(unclipped, clipped).mean()",
)


def solution(name: str) -> str:
    return (ROOT / "solutions" / f"{name}.py").read_text()


def zeros(name: str) -> str:
    functions = {"reinforce": ("returns_to_go", "reinforce_loss"), "ppo": ("ppo_clip_loss", "gae")}
    body = ["import torch", ""]
    for f in functions[name]:
        body += [f"def {f}(*args, **kwargs):", "    return torch.zeros(())", ""]
    return "\n".join(body)


def write_class(root: Path) -> None:
    students = {
        "alice": {e: solution(e) for e in EXERCISES},  # correct
        "bob": {e: zeros(e) for e in EXERCISES},
        "carol": {"reinforce": solution("reinforce"), "ppo": "def ppo_clip_loss(:\n    pass\n"},
        "dave": {"reinforce": solution("reinforce"), "ppo": solution("ppo").replace(*SIGN)},
        "erin": {"reinforce": solution("reinforce"), "ppo": solution("ppo").replace(*SIGN)},
        "frank": {"log_prob": "def log_prob():\n    pass\n"},  # reinforce.py missing
    }
    for student, files in students.items():
        (root / student).mkdir(parents=True)
        for name, text in files.items():
            (root / student / f"{name}.py").write_text(text)
    # a file that is not UTF-8 (latin-1 bytes in a string)
    (root / "frank" / "ppo.py").write_bytes(solution("ppo").encode() + b"\nNAME = '\xe9t\xe9'\n")


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("grade")
    write_class(root / "class")
    out = root / "out" / "grades.json"
    run = rlkit_cmd("grade", str(root / "class"), *EXERCISES, "--out", str(out), timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    return {
        "root": root,
        "out": out,
        "run": run,
        "rows": {r["student"]: r for r in json.loads(out.read_text())},
    }


def test_json_grades_field_by_field(graded: dict) -> None:
    rows = graded["rows"]
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    alice = rows["alice"]
    assert alice["score"] == alice["max_score"] > 0
    assert [e["name"] for e in alice["exercises"]] == list(EXERCISES)
    for ex in alice["exercises"]:
        assert ex["score"] == ex["max_score"] == sum(c["max_points"] for c in ex["checks"])
        for check in ex["checks"]:  # the fields of `rlkit check --json`, and the visibility
            assert {"name", "passed", "points", "max_points", "message"} <= set(check)
            assert check["visibility"] in ("public", "hidden")
        assert any(c["visibility"] == "hidden" for c in ex["checks"])  # hidden checks ran
    assert all(r["max_score"] == alice["max_score"] for r in rows.values())
    assert 0 <= rows["bob"]["score"] < alice["max_score"]
    assert "protection" in alice and alice["protection"]
    assert "fingerprint" not in alice


def test_broken_submissions_score_zero_where_affected(graded: dict) -> None:
    rows = graded["rows"]
    carol = {e["name"]: e for e in rows["carol"]["exercises"]}
    assert carol["ppo"]["score"] == 0
    assert "syntax error" in carol["ppo"]["problem"] and "ppo.py line 1" in carol["ppo"]["problem"]
    assert carol["reinforce"]["score"] == carol["reinforce"]["max_score"]
    frank = {e["name"]: e for e in rows["frank"]["exercises"]}
    assert frank["reinforce"]["score"] == 0
    assert frank["reinforce"]["problem"] == "reinforce.py is missing from the submission"
    # not UTF-8: Python would refuse the file; only that exercise pays
    assert frank["ppo"]["score"] == 0
    assert "ppo.py is not UTF-8 text (byte 0xe9 on line" in frank["ppo"]["problem"]


def test_csv_and_gradescope_exports_from_the_same_records(graded: dict) -> None:
    out_dir = graded["out"].parent
    run = rlkit_cmd(
        "grade", str(graded["root"] / "class"), *EXERCISES, "--out", str(out_dir / "grades.csv")
    )
    assert run.returncode == 0, run.stderr
    assert "6 students already graded and unchanged" in run.stderr  # nothing graded twice
    rows = list(csv.DictReader((out_dir / "grades.csv").open()))
    assert list(rows[0])[:5] == ["student", "score", "max_score", "reinforce", "ppo"]
    by = {r["student"]: r for r in rows}
    for name, record in graded["rows"].items():
        assert int(by[name]["score"]) == record["score"]
        assert int(by[name]["max_score"]) == record["max_score"]
        for ex in record["exercises"]:
            assert int(by[name][ex["name"]]) == ex["score"]

    run = rlkit_cmd(
        "grade", str(graded["root"] / "class"), *EXERCISES, "--out", str(out_dir / "grades"),
        "--format", "gradescope",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for name, record in graded["rows"].items():
        result = json.loads((out_dir / "grades" / name / "results.json").read_text())
        assert result["score"] == record["score"]
        assert sum(t["score"] for t in result["tests"]) == record["score"]
        assert sum(t["max_score"] for t in result["tests"]) == record["max_score"]
        for test in result["tests"]:
            assert set(test) >= {"name", "score", "max_score", "output", "visibility"}
            assert test["visibility"] in ("visible", "after_published")


def _hidden_values(graded: dict) -> list[str]:
    """The inputs and expected values that the hidden checks' messages carry."""
    secret = set()
    for record in graded["rows"].values():
        for ex in record["exercises"]:
            for c in ex["checks"]:
                if c["visibility"] == "hidden" and not c["passed"]:
                    secret.update(re.findall(r"=(\[[^\]]{8,}\])", c["message"]))
                    secret.update(re.findall(r"expected (-?[0-9.e+-]{4,})", c["message"]))
    return sorted(secret)


def test_feedback_shows_no_hidden_inputs_or_expected_values(graded: dict) -> None:
    feedback = graded["out"].parent / "grades-feedback"
    secrets = _hidden_values(graded)
    assert secrets, "the class should fail some hidden checks on values"
    dave = (feedback / "dave.md").read_text()
    assert "ppo_clip_loss.hidden_values" in dave and "clip_loss_wrong_sign" in dave
    assert "expected" in dave  # the public checks' counterexamples are there...
    for student in graded["rows"]:
        text = (feedback / f"{student}.md").read_text()
        for secret in secrets:  # ...the hidden ones' are not
            assert secret not in text, (student, secret)
    gradescope = graded["out"].parent / "grades"
    if gradescope.is_dir():
        for result in gradescope.glob("*/results.json"):
            for test in json.loads(result.read_text())["tests"]:
                if test["visibility"] == "after_published":
                    assert "expected" not in test["output"], test


def test_class_report_counts_a_misconception_of_two_students(graded: dict) -> None:
    report = graded["out"].parent / "grades-report"
    data = json.loads((report / "report.json").read_text())
    sign = {m["name"]: m for m in data["misconceptions"]}["clip_loss_wrong_sign"]
    assert sign["students"] == 2 and sorted(sign["names"]) == ["dave", "erin"]
    assert sign["counterexample"]["visibility"] == "public"
    assert "expected" in sign["counterexample"]["message"]
    assert data["students"] == 6
    assert data["exercises"]["ppo"]["full_marks"] == 1  # alice
    assert data["problems"]["ppo"]["students"] == 2  # carol's syntax error, frank's bytes
    html = (report / "index.html").read_text()
    assert "clip_loss_wrong_sign" in html and html.count("data:image/png;base64,") == 2


def test_rerun_regrades_only_what_changed(graded: dict) -> None:
    root, out = graded["root"], graded["out"]
    (root / "class" / "bob" / "ppo.py").write_text(solution("ppo"))
    run = rlkit_cmd("grade", str(root / "class"), *EXERCISES, "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "5 students already graded and unchanged" in run.stderr
    assert "Graded 1 of 6 students" in run.stdout
    rows = {r["student"]: r for r in json.loads(out.read_text())}
    bob = {e["name"]: e for e in rows["bob"]["exercises"]}
    assert bob["ppo"]["score"] == bob["ppo"]["max_score"]
    assert rows["alice"]["graded_at"] == graded["rows"]["alice"]["graded_at"]


def test_ctrl_c_then_rerun_completes_the_batch(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "class" / f"s{i}").mkdir(parents=True)
        (tmp_path / "class" / f"s{i}" / "ppo.py").write_text(solution("ppo"))
    out = tmp_path / "grades.csv"
    command = [
        str(Path(sys.executable).with_name("rlkit")),
        "grade",
        str(tmp_path / "class"),
        "ppo",
    ]
    proc = subprocess.Popen(
        [*command, "--out", str(out), "--jobs", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    records = tmp_path / ".grades.grading"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(records.glob("*.json"))) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done = len(list(records.glob("*.json")))
    assert proc.returncode == 130, err
    assert "run the same command again" in err and 1 <= done < 3
    assert not list(records.glob("*.partial"))
    run = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"{done} students already graded" in run.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 and all(r["score"] == r["max_score"] for r in rows)


def test_nothing_to_grade_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = rlkit_cmd("grade", str(tmp_path / "empty"), "--out", str(tmp_path / "g.csv"))
    assert run.returncode != 0
    assert "no submissions" in run.stderr and "Traceback" not in run.stderr
    (tmp_path / "empty" / "alice").mkdir()  # a student folder without any exercise file
    (tmp_path / "empty" / "alice" / "notes.txt").write_text("hello")
    run = rlkit_cmd("grade", str(tmp_path / "empty"), "--out", str(tmp_path / "g.csv"))
    assert run.returncode != 0 and "nothing to grade" in run.stderr
    shutil.rmtree(tmp_path / "empty")


def test_refuses_in_one_line_when_no_sandbox_can_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlkit.errors import RlkitError
    from rlkit_grader import batch, sandbox

    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    (tmp_path / "class" / "ana").mkdir(parents=True)
    (tmp_path / "class" / "ana" / "ppo.py").write_text(solution("ppo"))
    layout = batch.Layout.beside(tmp_path / "grades.csv", "csv")
    with pytest.raises(RlkitError) as caught:
        batch.grade_class(tmp_path / "class", layout, batch.Options(["ppo"], sandbox="bwrap"))
    message = caught.value.message
    assert "bubblewrap" in message and "--no-sandbox" in message and "\n" not in message
    assert not list(layout.records.glob("*.json"))


def test_no_sandbox_grades_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "class" / "ana").mkdir(parents=True)
    (tmp_path / "class" / "ana" / "ppo.py").write_text(solution("ppo").replace(*SIGN))
    out = tmp_path / "grades.json"
    run = rlkit_cmd(
        "grade", str(tmp_path / "class"), "ppo", "--out", str(out), "--no-sandbox",
        "--timeout", "2",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (ana,) = json.loads(out.read_text())
    assert 0 < ana["score"] < ana["max_score"]
    assert ana["protection"] and "bubblewrap" not in ana["protection"].split(";")[0]
    assert "2 s per call" in ana["protection"]
