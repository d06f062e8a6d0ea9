"""`rlkit check`, `rlkit init`, `rlkit release` and `rlkit vectors` as a student and an
instructor use them."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlkit.cli import cli
from rlkit.plugins import get_exercises
from rlkit_grader import store
from rlkit_grader.api import load_vectors

ROOT = Path(__file__).resolve().parent.parent
RLKIT = str(Path(sys.executable).parent / "rlkit")
#: every registered exercise (the course's and any installed plugin's), in course order
COURSE = tuple(name for name, ex in get_exercises().items() if ex.solution is not None)


def _module_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    return Path(spec.origin)


def _solution(name: str) -> Path:
    return _module_file(get_exercises()[name].solution)


def _stub(name: str) -> Path:
    return _module_file(get_exercises()[name].stub)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("solved")
    for name in COURSE:
        shutil.copy(_solution(name), ws / f"{name}.py")
    return ws


def test_check_on_fresh_stubs_reports_every_exercise_unimplemented(tmp_path: Path) -> None:
    code, out = _run("init", str(tmp_path / "ws"))
    assert code == 0 and "rlkit check" in out
    code, out = _run("check", "--path", str(tmp_path / "ws"), "--json")
    assert code == 1
    data = json.loads(out)
    assert {"exercises", "score", "max_score"} <= set(data)
    assert [e["name"] for e in data["exercises"]] == list(COURSE)
    assert data["score"] == 0 and data["max_score"] > 0
    for exercise in data["exercises"]:
        assert set(exercise) == {"name", "score", "max_score", "checks"}
        for check in exercise["checks"]:
            assert set(check) == {"name", "passed", "points", "max_points", "message"}
            assert check["passed"] is False and check["points"] == 0
            assert "not implemented yet" in check["message"]


def test_check_on_the_solutions_gives_full_marks_in_plain_text(solved: Path) -> None:
    proc = subprocess.run(
        [RLKIT, "check", "--path", str(solved)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("log_prob: ") and "all checks pass" in lines[0]
    assert "  PASS log_prob.values 2/2" in lines
    assert not any("FAIL" in line for line in lines)
    total_line = next(line for line in lines if line.startswith("Total: "))
    total = total_line.split()[-1].split("/")
    assert total[0] == total[1], total_line
    assert "\x1b[" not in proc.stdout  # no colour codes when not a terminal


def test_check_draws_a_table_on_a_terminal(solved: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen(
        [RLKIT, "check", "log_prob", "--path", str(solved)],
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    out = b"".join(chunks).decode(errors="replace")
    assert "✓" in out and "log_prob.values" in out and "PASS" not in out


def test_one_exercise_json_and_hidden_checks_for_instructors(solved: Path) -> None:
    code, out = _run("check", "ppo", "--path", str(solved), "--json")
    public = json.loads(out)
    code_h, out_h = _run("check", "ppo", "--path", str(solved), "--json", "--hidden")
    hidden = json.loads(out_h)
    assert code == code_h == 0
    assert [e["name"] for e in public["exercises"]] == ["ppo"]
    assert len(hidden["exercises"][0]["checks"]) > len(public["exercises"][0]["checks"])
    assert hidden["score"] == hidden["max_score"]


def test_a_buggy_answer_gets_a_counterexample_and_the_mistake_named(tmp_path: Path) -> None:
    source = (ROOT / "solutions" / "ppo.py").read_text()
    buggy = source.replace(
        "clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages",
        "clipped = torch.clamp(ratio * advantages, 1.0 - clip_eps, 1.0 + clip_eps)",
    )
    assert buggy != source
    (tmp_path / "ppo.py").write_text(buggy)
    code, out = _run("check", "ppo", "--path", str(tmp_path), "--json")
    assert code == 1
    checks = {c["name"]: c for c in json.loads(out)["exercises"][0]["checks"]}
    message = checks["ppo_clip_loss.values"]["message"]
    assert "ppo_clip_loss(log_probs=" in message and "expected" in message and "got" in message
    assert "clips the product r·A instead of the ratio" in message
    assert all(c["passed"] for n, c in checks.items() if n.startswith("gae."))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["check", "nope"], "unknown exercise 'nope'"),
        (["check", "--path", "/does/not/exist"], "is not a folder"),
        (["check", "ppo", "--path", "/"], "/ has none of ppo.py"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], words: str) -> None:
    proc = subprocess.run([RLKIT, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_init_writes_stubs_and_readme_and_never_overwrites_work(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert _run("init", str(ws))[0] == 0
    for name in COURSE:
        assert (ws / f"{name}.py").read_text() == _stub(name).read_text()
    readme = (ws / "README.md").read_text()
    assert "rlkit check" in readme and "log_prob.py" in readme
    (ws / "ppo.py").write_text("# my answers\n")
    (ws / "dpo.py").unlink()
    code, out = _run("init", str(ws))  # adds what is missing, keeps the answers
    assert code == 0 and "Kept your" in out and "ppo.py" in out and "--force" in out
    assert (ws / "ppo.py").read_text() == "# my answers\n"
    assert "YOUR CODE HERE" in (ws / "dpo.py").read_text()
    assert _run("init", str(ws), "--force")[0] == 0
    assert "YOUR CODE HERE" in (ws / "ppo.py").read_text()


def test_a_missing_file_names_the_command_that_adds_it_and_that_command_works(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(ROOT / "solutions" / "log_prob.py", ws / "log_prob.py")
    code, out = _run("check", "log_prob", "ppo", "--path", str(ws))
    assert code == 1 and f"`rlkit init {ws}` adds its stub" in out, out
    assert _run("init", str(ws))[0] == 0  # what the message says to run
    assert (ws / "log_prob.py").read_text() == (ROOT / "solutions" / "log_prob.py").read_text()
    assert (ws / "ppo.py").is_file()


def _train_lines(text: str) -> list[str]:
    return [
        " ".join(line.split("#")[0].split())
        for line in text.splitlines()
        if line.strip().startswith("rlkit train") and "--path" in line
    ]


def test_the_workspace_readme_trains_with_the_main_readmes_commands(tmp_path: Path) -> None:
    assert _run("init", str(tmp_path / "ws"))[0] == 0
    workspace = _train_lines((tmp_path / "ws" / "README.md").read_text())
    main = [
        c.replace("--path my-work", "--path .")
        for c in _train_lines((ROOT / "README.md").read_text())
    ]
    assert workspace and set(workspace) <= set(main), (workspace, main)
    for command in workspace:  # and each names options the command has
        words = command.split()
        code, out = _run(*words[1:3], "--help")
        assert code == 0, out
        assert all(w in out for w in words if w.startswith("--")), (command, out)


def _solution_lines() -> set[str]:
    """Every non-trivial line of code in the reference solutions' function bodies."""
    lines = set()
    for name in COURSE:
        source = _solution(name).read_text()
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                for stmt in body:
                    for line in (ast.get_source_segment(source, stmt) or "").splitlines():
                        line = line.strip()
                        if len(line) > 15:
                            lines.add(line)
    return lines


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release") / "bundle"
    code, text = _run("release", str(out))
    assert code == 0, text
    return out


def test_release_holds_stubs_public_checks_and_no_solution_code(bundle: Path) -> None:
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    expected = {f"{n}.py" for n in COURSE} | {"README.md", "checks/manifest.json"}
    expected |= {f"checks/{n}{s}" for n in COURSE for s in (store.SUFFIX_JSON, store.SUFFIX_NPZ)}
    assert set(files) == expected
    for name in COURSE:
        assert (bundle / f"{name}.py").read_text() == _stub(name).read_text()
    text = "\n".join(
        (bundle / f).read_text(errors="replace") for f in files if not f.endswith(".npz")
    )
    leaked = [line for line in _solution_lines() if line in text]
    assert not leaked, leaked
    for name in COURSE:
        doc, _ = store.read_raw(bundle / "checks" / name)
        assert doc["checks"] and {c["visibility"] for c in doc["checks"]} == {"public"}
        full = load_vectors(get_exercises()[name], hidden=True)
        hidden = [c.name for c in full.checks if c.visibility == "hidden"]
        assert hidden and not any(h in text for h in hidden)


CHECK_WITHOUT_SOLUTIONS = """
import sys
sys.modules["rlkit_solutions"] = None  # the reference solutions are not installed
sys.modules["rlkit_dqn_instructor"] = None
import rlkit_grader.store
def hidden(*args, **kwargs):
    raise FileNotFoundError("the package's vectors are not available")
rlkit_grader.store.package_vectors_stem = hidden
from rlkit.cli import main
sys.argv = ["rlkit", "check", "--path", sys.argv[1], "--json"]
main()
"""


def test_a_released_bundle_self_checks_without_solutions_or_package_vectors(
    bundle: Path, tmp_path: Path
) -> None:
    student = tmp_path / "student"
    shutil.copytree(bundle, student)
    run = [sys.executable, "-c", CHECK_WITHOUT_SOLUTIONS, str(student)]
    stubs = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert stubs.returncode == 1, stubs.stderr
    assert json.loads(stubs.stdout)["score"] == 0
    for name in COURSE:
        shutil.copy(_solution(name), student / f"{name}.py")
    solved = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert solved.returncode == 0, solved.stdout[-2000:] + solved.stderr
    data = json.loads(solved.stdout)
    assert data["score"] == data["max_score"] > 0


def test_hidden_checks_of_a_bundle_come_from_the_installed_package(
    bundle: Path, tmp_path: Path
) -> None:
    student = tmp_path / "graded"
    shutil.copytree(bundle, student)
    shutil.copy(ROOT / "solutions" / "dpo.py", student / "dpo.py")
    public = json.loads(_run("check", "dpo", "--path", str(student), "--json")[1])
    code, out = _run("check", "dpo", "--path", str(student), "--json", "--hidden")
    names = [c["name"] for c in json.loads(out)["exercises"][0]["checks"]]
    assert code == 0 and "dpo_loss.hidden_values" in names
    assert len(names) > len(public["exercises"][0]["checks"])


def test_release_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, out = _run("release", str(tmp_path))
    assert code == 2 and "not empty" in out


def test_vectors_command_reports_up_to_date() -> None:
    code, out = _run("vectors", "reinforce")
    assert code == 0 and "reinforce: up to date" in out
