"""``rlkit gradescope build OUT.zip``: the autograder zip, unpacked into a temporary root laid
out like Gradescope's ``/autograder`` (``source/``, ``submission/``, ``results/``), grades a
correct, a wrong and a broken submission with its ``run_autograder``, and writes the results
``rlkit grade --format gradescope`` gives the same files with the same course key.

``setup.sh`` installs from the network (pip, torch's CPU index): here it is only checked
(bash parses it, every file it names is in the zip); ``run_autograder`` runs with this
environment's Python (``RLKIT_AUTOGRADER_PYTHON``) in place of the venv setup.sh makes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, rlkit_cmd

EXERCISE = "ppo"
SOLUTION = (ROOT / "solutions" / "ppo.py").read_text()
SIGN = (
    "return -torch.min(unclipped, clipped).mean()",
    "return torch.min(unclipped, clipped).mean()",
)
SUBMISSIONS = {
    "correct": SOLUTION,
    "wrong": SOLUTION.replace(*SIGN),
    "broken": SOLUTION.replace("def gae(", "def gae(:", 1),
}


@pytest.fixture(scope="module")
def autograder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("gradescope")
    zip_path = work / "autograder.zip"
    run = rlkit_cmd("gradescope", "build", str(zip_path), EXERCISE, timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    key = work / "rlkit-hidden.key"  # made beside the zip, and put in it
    assert key.is_file()
    return {"work": work, "zip": zip_path, "key": key, "run": run}


def run_autograder(autograder: dict, name: str, files: dict[str, str]) -> dict:
    """Unpack the zip into a fresh /autograder-like root, put ``files`` in submission/, run
    run_autograder as Gradescope does; returns results/results.json."""
    root = autograder["work"] / f"autograder-{name}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()
    with zipfile.ZipFile(autograder["zip"]) as zf:
        zf.extractall(root / "source")
    for filename, text in files.items():
        (root / "submission" / filename).write_text(text)
    env = {
        **os.environ,
        "RLKIT_AUTOGRADER_ROOT": str(root),
        "RLKIT_AUTOGRADER_PYTHON": sys.executable,
    }
    done = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        capture_output=True,
        text=True,
        env=env,
        cwd=root / "source",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads((root / "results" / "results.json").read_text())


def test_the_zip_holds_what_gradescope_runs(autograder: dict) -> None:
    with zipfile.ZipFile(autograder["zip"]) as zf:
        names = set(zf.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
        config = json.loads(zf.read("rlkit-gradescope.json"))
        requirements = zf.read("requirements.txt").decode().split()
        key = zf.read("rlkit-hidden.key")
    assert {"setup.sh", "run_autograder", "rlkit-gradescope.json", "requirements.txt"} <= names
    assert modes["setup.sh"] == modes["run_autograder"] == 0o755
    assert modes["rlkit-hidden.key"] == 0o600 and key == autograder["key"].read_bytes()
    wheels = sorted(n for n in names if n.startswith("wheels/"))
    assert any(w.startswith("wheels/rlkit-") for w in wheels)
    assert any(w.startswith("wheels/rlkit_solutions-") for w in wheels)  # the reference
    assert any(n.startswith(".rlkit-hidden/ppo-") for n in names)  # the key's hidden vectors
    assert config["exercises"] == [EXERCISE] and config["hidden_set"].startswith("key:")
    assert any(r.startswith("torch==") for r in requirements)
    assert "download.pytorch.org/whl/cpu" in setup and "rlkit_grader.gradescope prepare" in setup
    check = subprocess.run(["bash", "-n", "-c", setup], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "Students submit ppo.py (or ppo.ipynb)" in autograder["run"].stdout


def test_results_match_rlkit_grade_for_the_same_files(autograder: dict) -> None:
    # rlkit grade on the same three submissions, with the same course key
    klass = autograder["work"] / "class"
    for student, text in SUBMISSIONS.items():
        (klass / student).mkdir(parents=True)
        (klass / student / f"{EXERCISE}.py").write_text(text)
    out = autograder["work"] / "rlkit-grade"
    run = rlkit_cmd(
        "grade", str(klass), EXERCISE, "--out", str(out), "--format", "gradescope",
        "--key", str(autograder["key"]), timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    scores = {}
    for student, text in SUBMISSIONS.items():
        got = run_autograder(autograder, student, {f"{EXERCISE}.py": text})
        want = json.loads((out / student / "results.json").read_text())
        assert got["extra_data"].pop("student") == "submission"
        assert want["extra_data"].pop("student") == student
        assert got == want, student  # score, every test, its output, the protection
        scores[student] = got["score"]
        assert got["extra_data"]["hidden_set"].startswith("key:")
    top = sum(t["max_score"] for t in got["tests"])
    assert scores["correct"] == top > scores["wrong"] > scores["broken"] == 0
    broken = json.loads((out / "broken" / "results.json").read_text())
    assert "syntax error" in broken["tests"][0]["output"]


def test_results_say_which_protection_was_in_force(autograder: dict) -> None:
    got = run_autograder(autograder, "notebook-folder", {})
    # nothing submitted: a result all the same, every exercise saying which file is missing
    assert got["score"] == 0 and got["tests"]
    assert "ppo.py is missing from the submission" in got["tests"][0]["output"]
    correct = run_autograder(autograder, "again", {f"{EXERCISE}.py": SOLUTION})
    assert "Graded in a sandbox (bubblewrap" in correct["output"]  # this machine allows it
    from rlkit_grader.exports import protection_sentence

    fallback = protection_sentence(
        {"protection": "process isolation only (no sandbox): x; limits (bubblewrap failed "
         "here: setting up uid map: Permission denied)"}
    )  # fmt: skip
    assert fallback.startswith("Graded without a sandbox because bubblewrap could not start")
    assert "process isolation only" in fallback


def test_a_broken_autograder_still_writes_results(autograder: dict, tmp_path: Path) -> None:
    from rlkit_grader import gradescope

    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()
    (root / "source" / "rlkit-gradescope.json").write_text(
        json.dumps({"exercises": [EXERCISE], "hidden_set": "key:000000000000"})
    )  # its key file is missing
    results = gradescope.run(root)
    data = json.loads(results.read_text())
    assert data["score"] == 0 and "Not graded" in data["output"]
    assert "course key" in data["output"] and "ppo.py (or ppo.ipynb)" in data["output"]
    assert stat.S_IMODE(results.stat().st_mode) & 0o444
