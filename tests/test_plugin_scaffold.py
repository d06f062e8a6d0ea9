"""`rlkit plugin new`: the packages it writes (the plugin students install, and its answers for
instructors) install with pip, and rlkit then lists it, copies its stub in `rlkit init`, checks
it in `rlkit check` (the stub fails, the solution passes), trains with it, and the package's own
tests pass; the students' package holds no answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import rlkit_cmd


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A plugin written by `rlkit plugin new td-walk DIR`, pip-installed into a folder with its
    instructors' package."""
    root = tmp_path_factory.mktemp("scaffold")
    package = root / "td"
    made = rlkit_cmd("plugin", "new", "td-walk", str(package))
    assert made.returncode == 0, made.stderr
    site = root / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--target", str(site), str(package), str(package / "instructor"),
        ],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return package, site


def test_the_package_has_every_part(scaffolded: tuple[Path, Path]) -> None:
    package, site = scaffolded
    module = package / "rlkit_td_walk"
    for part in (
        "__init__.py", "exercises/td_walk.py", "checks.py", "checks.vectors.json",
        "checks.vectors.npz", "settings.py", "trainer.py",
    ):  # fmt: skip
        assert (module / part).is_file(), part
    answers = package / "instructor" / "rlkit_td_walk_instructor"
    for part in ("__init__.py", "td_walk.py", "td_walk.vectors.json", "mistakes.py"):
        assert (answers / part).is_file(), part
    assert (package / "tests" / "test_td_walk.py").is_file()
    assert 'td_walk = "rlkit_td_walk"' in (package / "pyproject.toml").read_text()
    assert (site / "rlkit_td_walk" / "checks.vectors.npz").is_file()  # the vectors ship
    shipped = {
        p.relative_to(site / "rlkit_td_walk").as_posix()
        for p in (site / "rlkit_td_walk").rglob("*")
    }
    assert not [p for p in shipped if "solution" in p or "mistakes" in p], shipped  # no answer
    assert (site / "rlkit_td_walk_instructor" / "td_walk.vectors.npz").is_file()


def test_rlkit_lists_inits_checks_and_trains_it(scaffolded: tuple[Path, Path], tmp_path) -> None:
    package, site = scaffolded
    listed = rlkit_cmd("plugins", "--json", pythonpath=site)
    assert '"td_walk/native/td0"' in listed.stdout and '"td_walk"' in listed.stdout, listed.stdout

    work = tmp_path / "ws"
    assert rlkit_cmd("init", str(work), pythonpath=site).returncode == 0
    assert "raise NotImplementedError()" in (work / "td_walk.py").read_text()
    stub = rlkit_cmd("check", "td_walk", "--path", str(work), pythonpath=site)
    assert stub.returncode == 1 and "td_errors" in stub.stdout, stub.stdout

    solution = package / "instructor" / "rlkit_td_walk_instructor" / "td_walk.py"
    (work / "td_walk.py").write_text(solution.read_text())
    passed = rlkit_cmd("check", "td_walk", "--path", str(work), "--hidden", pythonpath=site)
    assert passed.returncode == 0, passed.stdout

    run = tmp_path / "run"
    trained = rlkit_cmd(
        "train", "td_walk", "--episodes", "100", "--path", str(work), "--out", str(run),
        pythonpath=site, env={"TQDM_DISABLE": "1"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "RMS error" in trained.stdout and (run / "curves.png").is_file()


def test_the_package_s_own_tests_pass(scaffolded: tuple[Path, Path]) -> None:
    package, site = scaffolded
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         str(package / "tests")],
        capture_output=True, text=True, cwd=package, timeout=300,
        env={**os.environ, "PYTHONPATH": str(site)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["Bad Name"], "use lowercase letters"),
        (["ppo"], "already registered by the course plugin"),
    ],
)
def test_bad_names_are_refused_in_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    result = rlkit_cmd("plugin", "new", *args, str(tmp_path / "out"))
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = rlkit_cmd("plugin", "new", "td-walk", str(tmp_path))
    assert result.returncode == 2 and "not an empty folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# ---------------------------------------------------------------------------- issue 16, item 7
RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("where", [".", "instructor"])
def test_the_package_passes_ruff_as_generated(scaffolded: tuple[Path, Path], where: str) -> None:
    """Inside the package (its own pyproject's settings), as an author runs it."""
    package, _ = scaffolded
    for args in (["check", where], ["format", "--check", where]):
        result = subprocess.run(
            [str(RUFF), *args], capture_output=True, text=True, cwd=package, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_says_what_it_trains_and_how_to_test(scaffolded: tuple[Path, Path]) -> None:
    package, _ = scaffolded
    readme = (package / "README.md").read_text()
    assert 'pip install -e ".[dev]" -e instructor' in readme and "python -m pytest" in readme
    assert "TD(0) on a five-state random walk" in readme  # what this package trains
    pyproject = (package / "pyproject.toml").read_text()
    assert 'dev = ["pytest' in pyproject and "TD(0) on a random walk" in pyproject
    assert "register_tasks" in (package / "rlkit_td_walk" / "__init__.py").read_text()


@pytest.fixture(scope="module")
def cartpole_algo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`rlkit plugin new actor-critic DIR --task cartpole`, pip-installed with its answers."""
    root = tmp_path_factory.mktemp("scaffold_cartpole")
    package = root / "ac"
    made = rlkit_cmd("plugin", "new", "actor-critic", str(package), "--task", "cartpole")
    assert made.returncode == 0, made.stderr
    assert "rlkit train cartpole --algo actor_critic" in made.stdout
    site = root / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--target", str(site), str(package), str(package / "instructor"),
        ],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return package, site


def test_an_algorithm_for_an_existing_task(cartpole_algo: tuple[Path, Path], tmp_path) -> None:
    package, site = cartpole_algo
    readme = (package / "README.md").read_text()
    assert "TD(0)" not in readme and "random walk" not in readme  # it trains CartPole
    assert "rlkit train cartpole --algo actor_critic" in readme and ".[dev]" in readme
    assert "CartPole" in (package / "pyproject.toml").read_text()
    init = (package / "rlkit_actor_critic" / "__init__.py").read_text()
    assert "register_tasks" not in init  # the task stays the CartPole plugin's

    plugins = json.loads(rlkit_cmd("plugins", "--json", pythonpath=site).stdout)
    listed = {p["name"]: p for p in plugins}
    assert listed["actor_critic"]["trainers"] == ["cartpole/native/actor_critic"]
    assert listed["actor_critic"]["commands"] == [] and listed["actor_critic"]["warnings"] == []
    helped = " ".join(rlkit_cmd("train", "cartpole", "--help", pythonpath=site).stdout.split())
    assert "[default: sb3]" in helped and "[default: ppo]" in helped and "actor_critic" in helped

    work = tmp_path / "ws"
    assert rlkit_cmd("init", str(work), pythonpath=site).returncode == 0
    solution = package / "instructor" / "rlkit_actor_critic_instructor" / "actor_critic.py"
    (work / "actor_critic.py").write_text(solution.read_text())
    run = tmp_path / "run"
    trained = rlkit_cmd(
        "train", "cartpole", "--algo", "actor_critic", "--timesteps", "2048", "--lr", "0.003",
        "--path", str(work), "--out", str(run), pythonpath=site, env={"TQDM_DISABLE": "1"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "Mean reward:" in trained.stdout and (run / "curves.png").is_file()
    config = json.loads((run / "config.json").read_text())
    assert (config["backend"], config["algo"]) == ("native", "actor_critic")
    assert config["settings"]["impl"] == "student"


def test_the_cartpole_package_s_tests_and_ruff_pass(cartpole_algo: tuple[Path, Path]) -> None:
    package, site = cartpole_algo
    for args in (["check", ".", "instructor"], ["format", "--check", ".", "instructor"]):
        linted = subprocess.run(
            [str(RUFF), *args], capture_output=True, text=True, cwd=package, timeout=60
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         str(package / "tests")],
        capture_output=True, text=True, cwd=package, timeout=300,
        env={**os.environ, "PYTHONPATH": str(site)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "8 passed" in result.stdout  # 5 mistakes (one a variant), 1 alternative, 2 more


@pytest.mark.parametrize(
    ("task", "says"),
    [
        ("dpo", "the template can add an algorithm to cartpole; for dpo, start from"),
        ("nope", "no installed plugin trains 'nope'"),
    ],
)
def test_a_task_the_template_cannot_serve_is_one_line(task, says, tmp_path: Path) -> None:
    result = rlkit_cmd("plugin", "new", "x-algo", str(tmp_path / "out"), "--task", task)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_name_the_task_already_has_is_refused(tmp_path: Path) -> None:
    result = rlkit_cmd("plugin", "new", "reinforce", str(tmp_path / "out"), "--task", "cartpole")
    assert result.returncode == 2 and "an exercise named 'reinforce'" in result.stderr
    result = rlkit_cmd("plugin", "new", "a2c", str(tmp_path / "out"), "--task", "cartpole")
    assert result.returncode == 2 and "already has an algorithm named 'a2c'" in result.stderr
