"""What each distribution holds, measured on the built wheels, and what a student's environment
made from the student's wheels can and cannot do.

* ``rlkit`` and ``rlkit-dqn`` (what students install): no reference solution (no line of one),
  no catalogue of mistakes, no vectors of a hidden check, every vectors file beside its public
  checks, and only rlkit's own top-level import names.
* ``rlkit-solutions`` and ``rlkit-dqn-instructor`` (instructors): the reference solutions, the
  mistakes, the hidden checks' vectors, and nothing else.
* A student's environment (those two wheels over the same third-party packages): ``rlkit
  init``, ``rlkit check`` and a notebook's public test cell give the reference full marks, and
  ``rlkit train --path`` trains; what needs the instructor's packages (``rlkit check --hidden``,
  ``rlkit vectors``, ``rlkit grade``, ``rlkit nbgrader build``, ``rlkit train`` on the reference)
  says in one line how to get them, and no answer is importable.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rlkit.plugins import get_exercises
from rlkit_grader import store

ROOT = Path(__file__).resolve().parents[1]
#: distribution → its folder in the repository
STUDENT = {"rlkit": ".", "rlkit-dqn": "plugins/rlkit-dqn"}
INSTRUCTOR = {
    "rlkit-solutions": "solutions",
    "rlkit-dqn-instructor": "plugins/rlkit-dqn-instructor",
}
#: the exercises whose answers the student's wheels must not hold (the course's and the DQN
#: plugin's; any other installed plugin is not built here)
BUILT = ("log_prob", "reinforce", "ppo", "dpo", "dqn")
EXERCISES = {name: ex for name, ex in get_exercises().items() if name in BUILT}
#: what the instructor's one line names
HINT = re.compile(r"pip install (rlkit-solutions|rlkit-dqn-instructor)")
IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "runs", ".*_cache", "*.pyc"
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every distribution built from a copy of the working tree (the tree stays clean)."""
    base = tmp_path_factory.mktemp("packaging")
    src, out = base / "src", base / "wheels"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    for folder in {**STUDENT, **INSTRUCTOR}.values():
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
            + ["--no-build-isolation", "-w", str(out), str(src / folder)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    found = {}
    for dist in (*STUDENT, *INSTRUCTOR):
        (wheel,) = out.glob(f"{dist.replace('-', '_')}-*.whl")
        found[dist] = wheel
    return found


def _files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as z:
        return {name: z.read(name) for name in z.namelist() if not name.endswith("/")}


def _top_level(files: dict[str, bytes]) -> set[str]:
    names = {f.split("/")[0] for f in files}
    return {n.removesuffix(".py") for n in names if not n.endswith((".dist-info", ".data"))}


def _answer_lines() -> dict[str, set[str]]:
    """Each reference function (``exercise.function``) → its non-trivial lines of code."""
    lines: dict[str, set[str]] = {}
    for name, ex in EXERCISES.items():
        source = Path(ex.reference().__file__).read_text()
        for node in ast.parse(source).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for stmt in body:
                for line in (ast.get_source_segment(source, stmt) or "").splitlines():
                    line = line.strip()
                    if len(line) > 30 and not line.startswith("#"):
                        lines.setdefault(f"{name}.{node.name}", set()).add(line)
    return lines


def _leaks(sources: dict[str, str]) -> dict[str, str]:
    """Reference functions copied into a file: two of its lines (or its one line) in one file
    (one line alone can be a torch idiom any policy uses, e.g. an entropy's sum)."""
    found = {}
    for function, lines in _answer_lines().items():
        for name, text in sources.items():
            if sum(line in text for line in lines) >= min(2, len(lines)):
                found[function] = name
    return found


def _vectors_docs(files: dict[str, bytes]) -> dict[str, dict]:
    return {
        name: json.loads(data) for name, data in files.items() if name.endswith(store.SUFFIX_JSON)
    }


def _hidden_check_names() -> set[str]:
    from rlkit_grader.records import HIDDEN

    return {
        c.name
        for ex in EXERCISES.values()
        for c in store.load_checks(ex.checks)
        if c.visibility == HIDDEN
    }


@pytest.mark.parametrize("dist", list(STUDENT))
def test_student_wheels_hold_no_answer(wheels: dict[str, Path], dist: str) -> None:
    files = _files(wheels[dist])
    # (rlkit plugin new's templates hold a sample exercise of their own, no course answer)
    names = [n for n in files if not n.endswith(".tmpl")]
    assert not [n for n in names if re.search(r"(^|/)(solutions|mistakes)(/|\.py$)", n)], names
    assert not [n for n in names if "instructor" in n or n.startswith("rlkit_solutions")]
    sources = {n: d.decode() for n, d in files.items() if n.endswith(".py")}
    catalogues = [
        n for n, t in sources.items() if re.search(r"^(MISTAKES|ALTERNATIVES)\b", t, re.M)
    ]
    assert not catalogues, catalogues
    leaked = _leaks(sources)
    assert not leaked, leaked
    # the vectors: beside the public checks only, and no hidden check in them
    vectors = [n for n in names if ".vectors." in n]
    assert vectors and all(
        re.fullmatch(r"(rlkit_grader/checks/\w+|rlkit_dqn/checks)\.vectors\.(json|npz)", n)
        for n in vectors
    ), vectors
    hidden = _hidden_check_names()
    for name, doc in _vectors_docs(files).items():
        assert {c["visibility"] for c in doc["checks"]} == {"public"}, name
        assert not hidden & {c["name"] for c in doc["checks"]}, name
        arrays = doc["arrays"]
        assert not any(k.startswith("h") for k in arrays), name
    data_files = [d for n, d in files.items() if not n.endswith((".py", ".md", ".tmpl"))]
    assert not any(h.encode() in data for data in data_files for h in hidden)


@pytest.mark.parametrize("dist", list(STUDENT))
def test_student_wheels_install_rlkits_own_names_only(wheels: dict[str, Path], dist: str) -> None:
    top = _top_level(_files(wheels[dist]))
    assert top, dist
    assert not {"exercises", "solutions", "rlkit-dqn", "tests", "plugins"} & top, top
    assert all(n.startswith("rlkit") for n in top), top


def test_every_installed_import_name_is_rlkits_own(wheels: dict[str, Path]) -> None:
    for dist in (*STUDENT, *INSTRUCTOR):
        top = _top_level(_files(wheels[dist]))
        assert all(n.startswith("rlkit") for n in top), (dist, top)


def test_instructor_wheels_hold_the_answers_and_nothing_else(wheels: dict[str, Path]) -> None:
    hidden = _hidden_check_names()
    expected = {
        "rlkit-solutions": {
            *(
                f"rlkit_solutions/{n}.py"
                for n in ("__init__", "log_prob", "reinforce", "ppo", "dpo")
            ),
            *(
                f"rlkit_solutions/mistakes/{n}.py"
                for n in ("__init__", "log_prob", "reinforce", "ppo", "dpo")
            ),
            *(
                f"rlkit_solutions/{n}.vectors.{s}"
                for n in ("log_prob", "reinforce", "ppo", "dpo")
                for s in ("json", "npz")
            ),
        },
        "rlkit-dqn-instructor": {
            *(f"rlkit_dqn_instructor/{n}.py" for n in ("__init__", "dqn", "mistakes")),
            "rlkit_dqn_instructor/dqn.vectors.json",
            "rlkit_dqn_instructor/dqn.vectors.npz",
        },
    }
    for dist, wanted in expected.items():
        files = _files(wheels[dist])
        package = {n for n in files if ".dist-info/" not in n}
        assert package == wanted, (dist, sorted(package ^ wanted))
        for name, doc in _vectors_docs(files).items():
            assert {c["visibility"] for c in doc["checks"]} == {"hidden"}, name
            assert {c["name"] for c in doc["checks"]} <= hidden
    sources = {
        n: d.decode() for w in INSTRUCTOR for n, d in _files(wheels[w]).items() if n.endswith(".py")
    }
    assert set(_leaks(sources)) == set(_answer_lines())  # every reference function is there


# ----------------------------------------------------------------------------- a student's env


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.fixture(scope="module")
def student_env(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the student's wheels over this environment's third-party packages
    (hard-linked: seconds, not a download), and nothing of rlkit's or its instructors'."""
    venv = tmp_path_factory.mktemp("student") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    target = _site_packages(venv)
    skip = re.compile(
        r"^(__editable__|rlkit|_?rlkit_|grader|exercises|solutions|distutils-precedence)"
    )
    for entry in ours.iterdir():
        if skip.match(entry.name) or entry.name.endswith(".pth"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, copy_function=os.link, symlinks=True)
        else:
            os.link(entry, target / entry.name)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
        + [str(wheels[d]) for d in STUDENT],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return venv


def _student(venv: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stdout + result.stderr
    return lines[0]


def test_a_students_environment_checks_and_trains_without_answers(
    student_env: Path, tmp_path: Path
) -> None:
    venv = student_env
    ws = tmp_path / "ws"
    init = _student(venv, "rlkit", "init", str(ws), cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert {f"{n}.py" for n in BUILT} <= {p.name for p in ws.iterdir()}
    todo = _student(venv, "rlkit", "check", "--path", str(ws), "--json", cwd=tmp_path)
    assert todo.returncode == 1 and json.loads(todo.stdout)["score"] == 0, todo.stderr
    for name, ex in EXERCISES.items():  # a student who wrote the reference's answers
        shutil.copy(ex.reference().__file__, ws / f"{name}.py")
    done = _student(venv, "rlkit", "check", "--path", str(ws), "--json", cwd=tmp_path)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["score"] == report["max_score"] > 0, done.stderr
    checks = [c for ex in report["exercises"] for c in ex["checks"]]
    assert checks and not any("hidden" in c["name"] for c in checks)

    # no answer is importable, and the hidden checks are nowhere
    probe = (
        "import importlib.util as u, sys\n"
        "names = ['rlkit_solutions', 'rlkit_dqn_instructor', 'solutions', 'exercises']\n"
        "print([n for n in names if u.find_spec(n) is not None])\n"
        "from rlkit_grader.api import load_vectors, select_exercises\n"
        "from rlkit.registry import ReferenceMissing\n"
        "for ex in select_exercises():\n"
        "    try:\n"
        "        load_vectors(ex, hidden=True)\n"
        "    except ReferenceMissing as exc:\n"
        "        print('missing', ex.name)\n"
    )
    seen = _student(venv, "python", "-c", probe, cwd=tmp_path)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.splitlines()[0] == "[]"
    assert {f"missing {n}" for n in BUILT} <= set(seen.stdout.splitlines())

    # a notebook's public test cell (the released notebook's): full marks for the reference
    cell = (
        "import runpy, sys\n"
        "from rlkit_grader.notebooks.feedback import check\n"
        "ns = runpy.run_path(sys.argv[1])\n"
        "print('points', int(check('ppo', 'gae', ns)), int(check('ppo', 'ppo_clip_loss', ns)))\n"
    )
    nb = _student(venv, "python", "-c", cell, str(ws / "ppo.py"), cwd=tmp_path)
    points = re.search(r"points (\d+) (\d+)", nb.stdout)
    assert nb.returncode == 0 and points, nb.stdout + nb.stderr
    assert int(points[1]) > 0 and int(points[2]) > 0 and "FAIL" not in nb.stdout, nb.stdout

    # rlkit train --path: the student's own functions train
    run = tmp_path / "run"
    train = _student(
        venv,
        "rlkit",
        "train",
        "cartpole",
        "--algo",
        "reinforce",
        "--path",
        str(ws),
        "--timesteps",
        "1500",
        "--eval-episodes",
        "1",
        "--out",
        str(run),
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    assert "Mean reward: " in train.stdout and (run / "metrics.csv").is_file()


@pytest.mark.parametrize(
    "command",
    [
        ("check", "--hidden", "--path", "{ws}"),
        ("vectors",),
        ("grade", "{ws}", "--out", "{tmp}/grades.csv"),
        ("nbgrader", "build", "{tmp}/course"),
        ("train", "cartpole", "--backend", "native", "--algo", "ppo", "--out", "{tmp}/run"),
        ("train", "cartpole", "--backend", "native", "--algo", "dqn", "--out", "{tmp}/run"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_what_needs_the_instructors_packages_says_how_in_one_line(
    student_env: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    ws = tmp_path / "ws"
    assert _student(student_env, "rlkit", "init", str(ws), cwd=tmp_path).returncode == 0
    args = [a.format(ws=ws, tmp=tmp_path) for a in command]
    line = _one_line(_student(student_env, "rlkit", *args, cwd=tmp_path))
    assert HINT.search(line) and "not installed" in line, line
    if command[0] == "train":
        assert "--path" in line, line
    assert not list(tmp_path.glob("**/rlkit-hidden.key")), "a key was made for nothing"


def test_a_student_install_has_no_vectors_of_hidden_checks(student_env: Path) -> None:
    site = _site_packages(student_env)
    hidden = _hidden_check_names()
    for path in site.glob("**/*.vectors.npz"):
        assert "rlkit" in str(path) or "grader" in str(path), path
        with np.load(path, allow_pickle=False) as npz:
            assert npz.files
        doc = json.loads(path.with_name(path.name.replace(".npz", ".json")).read_text())
        assert not hidden & {c["name"] for c in doc["checks"]}, path


def test_a_students_environment_runs_the_courses_trl_dpo_run(
    student_env: Path, tmp_path: Path
) -> None:
    """TRL's run trains with TRL's own loss: it needs no reference solution (a student's
    install scores its held-out answers with TRL's own log-probabilities)."""
    run = tmp_path / "run"
    args = ("rlkit", "train", "dpo", "--max-steps", "1", "--out", str(run))
    result = _student(student_env, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Held-out preferred rate" in result.stdout and (run / "config.json").is_file()
