"""`rlkit plugin new`: the packages it writes (the plugin students install, and its answers for
instructors) install with pip, and rlkit then lists it, copies its stub in `rlkit init`, checks
it in `rlkit check` (the stub fails, the solution passes), trains with it, and the package's own
tests pass; the students' package holds no answer."""

from __future__ import annotations

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
