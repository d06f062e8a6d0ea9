"""Hidden checks an instructor makes their own (rlkit_grader.hidden): a course key draws other inputs
for every hidden check, the reference passes them, answers fitted to rlkit's public built-in
set do not, every grade names the set it used, and the notebooks' hidden cells find the key in
the course folder. And answers are out of a submission's reach in the sandbox."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rlkit.cli import cli
from rlkit_grader import hidden
from rlkit_grader.api import check_module, check_workspace, load_vectors, select_exercises
from rlkit_grader.records import HIDDEN, PUBLIC

ROOT = Path(__file__).resolve().parents[1]


def _key(folder: Path, text: str) -> hidden.HiddenSet:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hidden.KEY_FILE).write_text(text + "\n")
    return hidden.read_key(folder / hidden.KEY_FILE)


def _inputs(vectors, visibility: str) -> dict[str, list[np.ndarray]]:
    """Check name → the arrays its calls take, for the checks of one visibility."""
    return {
        c.name: [np.asarray(vectors.arrays[k]) for call in c.calls for k in call.input_keys()]
        for c in vectors.checks
        if c.visibility == visibility
    }


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b)
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[hidden.HiddenSet, hidden.HiddenSet]:
    base = tmp_path_factory.mktemp("keys")
    return _key(base / "a", "a" * 64), _key(base / "b", "b" * 64)


@pytest.mark.parametrize("name", ["log_prob", "reinforce", "ppo", "dpo", "dqn"])
def test_two_keys_draw_other_hidden_inputs_and_the_reference_passes_both(name: str, keys) -> None:
    exercise = select_exercises([name])[0]
    builtin = load_vectors(exercise, hidden=True, hidden_set=hidden.BUILTIN)
    sets = [load_vectors(exercise, hidden=True, hidden_set=k) for k in keys]
    public = _inputs(builtin, PUBLIC)
    for vectors in sets:  # the same checks, in the same order; the public ones unchanged
        assert [c.name for c in vectors.checks] == [c.name for c in builtin.checks]
        assert all(_same(public[n], a) for n, a in _inputs(vectors, PUBLIC).items())
    first, second, shipped = (_inputs(v, HIDDEN) for v in (*sets, builtin))
    assert first.keys() == second.keys() == shipped.keys() and first
    for check in first:
        assert not _same(first[check], second[check]), check
        assert not _same(first[check], shipped[check]), check
    reference = exercise.reference()
    for key in keys:
        with hidden.using(key):
            report = check_module(name, reference, HIDDEN)
        assert report.score == report.max_score, [c.message for c in report.checks if not c.passed]


def test_the_keys_vectors_are_cached_and_follow_the_key_and_the_reference(
    keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    exercise = select_exercises(["reinforce"])[0]
    a, b = keys
    stem = a.stem(exercise)
    assert stem.parent == a.key_file.parent / hidden.CACHE_DIR
    assert stat.S_IMODE(stem.parent.stat().st_mode) == 0o700
    mtime = stem.with_name(stem.name + ".vectors.json").stat().st_mtime_ns
    assert a.stem(exercise) == stem  # fresh: read again, not recomputed
    assert stem.with_name(stem.name + ".vectors.json").stat().st_mtime_ns == mtime
    assert (
        json.loads(stem.with_name(stem.name + ".vectors.json").read_text())["hidden_set"] == a.label
    )
    assert hidden.source_digest(a, exercise) != hidden.source_digest(b, exercise)
    before = hidden.source_digest(a, exercise)
    real = hidden._source_file
    solution = exercise.solution

    def edited(module: str) -> bytes:
        return real(module) + (b"\n# edited\n" if module == solution else b"")

    monkeypatch.setattr(hidden, "_source_file", edited)
    assert hidden.source_digest(a, exercise) != before  # a changed reference: regenerated
    fresh = a.stem(exercise)
    assert fresh != stem and not stem.with_name(stem.name + ".vectors.json").exists()


def _fitted_to_builtin() -> str:
    """A returns_to_go that knows the built-in hidden checks' answers and nothing else."""
    vectors = load_vectors(
        select_exercises(["reinforce"])[0], hidden=True, hidden_set=hidden.BUILTIN
    )
    table = {}
    for check in vectors.checks:
        if check.name != "returns_to_go.hidden_values":
            continue
        for call in check.calls:
            rewards = np.asarray(vectors.arrays[call.args[0]["array"]])
            table[rewards.tobytes().hex()] = call.expected.outputs[0].array.tolist()
    return (
        "import torch\n"
        f"TABLE = {table!r}\n"
        "def returns_to_go(rewards, gamma, dones=None):\n"
        "    found = TABLE.get(rewards.detach().numpy().tobytes().hex())\n"
        "    if found is None:\n"
        "        return torch.zeros_like(rewards)\n"
        "    return torch.tensor(found, dtype=rewards.dtype)\n"
        "def reinforce_loss(log_probs, returns, normalize=True):\n"
        "    raise NotImplementedError()\n"
    )


def test_answers_fitted_to_the_builtin_set_fail_under_a_course_key(tmp_path: Path) -> None:
    """`rlkit grade`: the same submission gets the hidden check under `--key builtin` and loses
    it under the course key it made; every record names the set it was graded with."""
    subs = tmp_path / "subs"
    (subs / "mallory").mkdir(parents=True)
    (subs / "mallory" / "reinforce.py").write_text(_fitted_to_builtin())
    (subs / "ana").mkdir()
    (subs / "ana" / "reinforce.py").write_text((ROOT / "solutions" / "reinforce.py").read_text())
    results = {}
    for key in ("builtin", None):
        out = tmp_path / f"{key or 'course'}.json"
        args = ["grade", str(subs), "reinforce", "--out", str(out), "--jobs", "1"]
        result = CliRunner().invoke(cli, args + (["--key", key] if key else []))
        assert result.exit_code == 0, result.output
        results[key] = {r["student"]: r for r in json.loads(out.read_text())}
    course = hidden.read_key(tmp_path / hidden.KEY_FILE)  # made beside --out
    assert stat.S_IMODE((tmp_path / hidden.KEY_FILE).stat().st_mode) == 0o600
    for key, label in (("builtin", "builtin"), (None, course.label)):
        assert {r["hidden_set"] for r in results[key].values()} == {label}

    def hidden_check(record: dict) -> bool:
        (check,) = [
            c
            for ex in record["exercises"]
            for c in ex["checks"]
            if c["name"] == "returns_to_go.hidden_values"
        ]
        return check["passed"]

    assert hidden_check(results["builtin"]["mallory"])  # fitted to the public set: passes
    assert not hidden_check(results[None]["mallory"])  # the course's own: fails
    assert results[None]["mallory"]["score"] < results["builtin"]["mallory"]["score"]
    for key in results:
        ana = results[key]["ana"]
        assert ana["score"] == ana["max_score"] > 0
    # the same command again keeps every record (same key, same files)
    again = CliRunner().invoke(
        cli, ["grade", str(subs), "reinforce", "--out", str(tmp_path / "course.json")]
    )
    assert again.exit_code == 0 and "Graded 0 of 2" in again.output, again.output


def test_check_hidden_uses_the_key_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "reinforce.py").write_text(_fitted_to_builtin())
    monkeypatch.chdir(tmp_path)

    def hidden_points(*extra: str) -> tuple[str, bool]:
        args = ["check", "reinforce", "--path", str(ws), "--hidden", "--json", *extra]
        result = CliRunner().invoke(cli, args)
        data = json.loads(result.output)
        (check,) = [
            c for c in data["exercises"][0]["checks"] if c["name"] == "returns_to_go.hidden_values"
        ]
        return data["hidden_set"], check["passed"]

    assert hidden_points() == ("builtin", True)  # no key here: rlkit's own set
    course = _key(tmp_path, "c" * 64)
    assert hidden_points() == (course.label, False)
    assert hidden_points("--key", "builtin") == ("builtin", True)
    result = CliRunner().invoke(cli, ["check", "--path", str(ws), "--key", "builtin"])
    assert result.exit_code == 2 and "--hidden" in result.output


def test_nbgrader_course_hidden_cells_run_the_course_keys_checks(tmp_path: Path) -> None:
    from rlkit_grader.notebooks import feedback

    course = tmp_path / "course"
    result = CliRunner().invoke(cli, ["nbgrader", "build", str(course), "reinforce"])
    assert result.exit_code == 0, result.output
    key = hidden.read_key(course / hidden.KEY_FILE)
    notebook = json.loads((course / "source" / "rlkit" / "reinforce.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"]]
    hidden_cells = [c for c in cells if "BEGIN HIDDEN TESTS" in c]
    assert hidden_cells and all(f"hidden_set={key.label!r}" in c for c in hidden_cells)
    assert not any(key.key.decode() in c for c in cells)  # the key itself is in no cell
    namespace: dict = {}
    exec((ROOT / "solutions" / "reinforce.py").read_text(), namespace)
    below = course / "autograded" / "ana" / "rlkit"  # where nbgrader runs the notebook
    below.mkdir(parents=True)
    cwd = Path.cwd()
    try:
        os.chdir(below)
        points = feedback.check(
            "reinforce", "returns_to_go", namespace, hidden=True, hidden_set=key.label
        )
        assert int(points) == points.max_points > 0
        fitted: dict = {}
        exec(_fitted_to_builtin(), fitted)
        assert int(feedback.check("reinforce", "returns_to_go", fitted, hidden=True)) > 0
        assert (
            int(
                feedback.check(
                    "reinforce", "returns_to_go", fitted, hidden=True, hidden_set=key.label
                )
            )
            == 0
        )
        os.chdir(tmp_path)  # not in the course: the cell says why, in one line
        lost = feedback.check(
            "reinforce", "returns_to_go", namespace, hidden=True, hidden_set=key.label
        )
        assert int(lost) == 0
    finally:
        os.chdir(cwd)


def test_a_key_file_is_never_shorter_than_16_bytes(tmp_path: Path) -> None:
    from rlkit.errors import UsageError

    (tmp_path / "k").write_text("short\n")
    with pytest.raises(UsageError, match="too short"):
        hidden.read_key(tmp_path / "k")
    made = hidden.create_key(tmp_path / "new.key")
    assert len(made.key or b"") == 64 and made.label.startswith("key:")
    assert hidden.create_key(tmp_path / "new.key") == made  # kept, never overwritten


IMPORTS = {
    "rlkit_solutions": "from rlkit_solutions.reinforce import *\n",
    "solutions": "from solutions.reinforce import *\n",
    "importlib": "import importlib\n"
    "_m = importlib.import_module('rlkit_solutions.reinforce')\n"
    "returns_to_go, reinforce_loss = _m.returns_to_go, _m.reinforce_loss\n",
    "file": f"exec(open({str(ROOT / 'solutions' / 'reinforce.py')!r}).read())\n",
    "mistakes": "from rlkit_solutions.mistakes.reinforce import ALTERNATIVES as _a\n"
    "returns_to_go = [a.impl for a in _a if a.function == 'returns_to_go'][0]\n",
}


@pytest.mark.parametrize("attempt", list(IMPORTS))
def test_a_submission_cannot_import_the_answers_in_the_sandbox(
    tmp_path: Path, attempt: str
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "reinforce.py").write_text(IMPORTS[attempt])
    report = check_workspace(ws, ["reinforce"], HIDDEN, sandbox="bwrap")
    assert report.score == 0, [c.message for e in report.exercises for c in e.checks][:3]
