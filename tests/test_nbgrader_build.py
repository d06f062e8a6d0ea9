"""`rlkit nbgrader build` without a kernel: the notebooks are valid for nbformat and nbgrader,
worth the grader's points, derived from the stub and solution (no second copy), their formulas
render; and the test cells' helper gives the feedback and points nbgrader reads."""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import rlkit_cmd

from rlkit_grader.api import load_vectors, select_exercises
from rlkit_grader.notebooks import feedback
from rlkit_grader.notebooks.course import build_course
from rlkit_grader.notebooks.source import load_exercise_source, module_file
from rlkit_grader.records import HIDDEN, PUBLIC


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("course")
    build_course(root, assignment="a1", timeout=42)
    return root


def notebooks(course: Path) -> dict[str, nbformat.NotebookNode]:
    return {
        p.stem: nbformat.read(p, as_version=4)
        for p in sorted((course / "source" / "a1").glob("*.ipynb"))
    }


def test_one_valid_notebook_per_exercise_worth_the_graders_points(course: Path) -> None:
    from nbgrader.nbgraderformat import MetadataValidator

    nbs = notebooks(course)
    assert sorted(nbs) == sorted(ex.name for ex in select_exercises())  # plugins' included
    for ex in select_exercises():
        nb = nbs[ex.name]
        nbformat.validate(nb)
        MetadataValidator().validate_nb(nb)
        metas = [c.metadata["nbgrader"] for c in nb.cells]
        assert all(m["schema_version"] == 3 for m in metas)
        ids = [m["grade_id"] for m in metas]
        assert len(ids) == len(set(ids)), ids
        checks = load_vectors(ex, hidden=True).select(HIDDEN)
        for fn in ex.functions:
            for visibility, gid in ((PUBLIC, f"{fn}-checks"), (HIDDEN, f"{fn}-hidden-checks")):
                points = sum(
                    c.points for c in checks if c.function == fn and c.visibility == visibility
                )
                cell = next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == gid)
                assert cell.metadata["nbgrader"]["points"] == points > 0, gid
                assert cell.metadata["nbgrader"]["grade"] and cell.metadata["nbgrader"]["locked"]
                assert ("### BEGIN HIDDEN TESTS" in cell.source) == (visibility == HIDDEN)
        # imports live in a locked set-up cell, never in answer or test cells
        setup = nb.cells[1]
        assert setup.metadata["nbgrader"]["locked"] and "import torch" in setup.source
        assert "%load_ext rlkit_grader.notebooks.feedback" in setup.source


def test_answer_cells_are_the_stub_with_the_reference_inside_the_solution_region(
    course: Path,
) -> None:
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    for name, nb in notebooks(course).items():
        source = load_exercise_source(select_exercises([name])[0])
        released, _ = ClearSolutions().preprocess(nb, {"language": "python"})
        released, _ = ClearHiddenTests().preprocess(released, {})
        answers = [c for c in released.cells if c.metadata["nbgrader"]["solution"]]
        assert len(answers) == len(source.functions)
        stub_text = module_file(select_exercises([name])[0].stub).read_text()
        for cell, fn in zip(answers, source.functions):
            # exactly the stub's function: what a student released the file way also starts from
            assert cell.source.strip() in stub_text, fn.name
            assert "YOUR CODE HERE" in cell.source
        for cell in released.cells:
            assert "HIDDEN TESTS" not in cell.source and "hidden=True" not in cell.source


def test_formulas_are_latex_that_renders(course: Path) -> None:
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("path")
    found = 0
    for nb in notebooks(course).values():
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                for eq in re.findall(r"\$\$ (.+?) \$\$", cell.source):
                    parser.parse(f"${eq}$")
                    found += 1
    assert found >= 15
    ppo = notebooks(course)["ppo"]
    assert any(r"\delta_{t} = r_{t} + \gamma \cdot V_{t+1}" in c.source for c in ppo.cells)


def test_config_sets_the_cell_timeout(course: Path) -> None:
    config = (course / "nbgrader_config.py").read_text()
    assert "c.ExecutePreprocessor.timeout = 42" in config
    assert "c.OverwriteCells.add_missing_cells = True" in config


def test_check_helper_prints_the_report_and_returns_the_points(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import rlkit_exercises.ppo
    import rlkit_solutions.ppo

    points = feedback.check("ppo", "gae", vars(rlkit_exercises.ppo))
    out = capsys.readouterr()
    assert points == 0 and points.max_points > 0 and str(points) == "0"
    assert "gae() is not implemented yet" in out.out
    # 0 points: one line on stderr, what `nbgrader validate` shows (the cell scores 0 anyway)
    assert out.err == "0 points: not implemented yet: gae\n"
    assert feedback.check("ppo", "gae", vars(rlkit_solutions.ppo)) == points.max_points
    hidden = feedback.check("ppo", "gae", vars(rlkit_solutions.ppo), hidden=True)
    out = capsys.readouterr()
    assert hidden > 0 and "hidden checks" in out.out and out.err == ""  # points: no stderr


def test_check_helper_is_silent_on_stderr_and_stops_infinite_loops(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import warnings

    import rlkit_solutions.ppo

    def noisy(*args, **kwargs):  # correct, but warns and prints to stderr
        warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
        print("debug", file=sys.stderr)
        return rlkit_solutions.ppo.gae(*args, **kwargs)

    def stuck(*args, **kwargs):
        while True:
            with contextlib.suppress(BaseException):  # a student hiding from the stop
                pass

    full = feedback.check("ppo", "gae", {"gae": noisy})
    assert full == full.max_points
    assert capsys.readouterr().err == ""  # the function's warning and stderr are swallowed
    assert feedback.check("ppo", "gae", {"gae": stuck}, time_limit=0.3) == 0
    out = capsys.readouterr()
    assert "took longer than 0.3 s" in out.out
    assert out.err == "0 points: the checks took longer than 0.3 s (an infinite loop?)\n"
    assert feedback.check("ppo", "gae", {}) == 0
    out = capsys.readouterr()
    assert "gae is not defined" in out.out and out.err.count("\n") == 1


def test_cell_watch_zeroes_test_cells_after_a_failed_cell() -> None:
    from types import SimpleNamespace as NS

    watch = feedback.CellWatch()
    watch.pre_run_cell(NS(raw_cell="def f():\n    return 1\nwhile True: pass", cell_id="c1"))
    watch.post_run_cell(NS(error_before_exec=None, error_in_exec=KeyboardInterrupt()))
    problem = watch.problem()
    assert problem is not None and "def f():" in problem and "infinite loop" in problem
    # fixed and run again (same cell id): the notebook is gradable again
    watch.pre_run_cell(NS(raw_cell="def f():\n    return 1", cell_id="c1"))
    watch.post_run_cell(NS(error_before_exec=None, error_in_exec=None))
    assert watch.problem() is None


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = rlkit_cmd("nbgrader", "build", str(tmp_path / "c"), "no_such_exercise")
    assert bad.returncode == 2 and "unknown exercise 'no_such_exercise'" in bad.stderr
    assert "Traceback" not in bad.stderr
    ok = rlkit_cmd("nbgrader", "build", str(tmp_path / "c"), "log_prob")
    assert ok.returncode == 0, ok.stderr
    nb = tmp_path / "c" / "source" / "rlkit" / "log_prob.ipynb"
    nb.write_text(nb.read_text().replace("YOUR CODE HERE", "MY EDIT"))
    again = rlkit_cmd("nbgrader", "build", str(tmp_path / "c"), "log_prob")
    assert again.returncode == 1 and "--force" in again.stderr
    forced = rlkit_cmd("nbgrader", "build", str(tmp_path / "c"), "log_prob", "--force")
    assert forced.returncode == 0 and "Kept" in forced.stdout


def test_a_stop_never_lands_inside_an_import(tmp_path: Path) -> None:
    """The first check in a fresh kernel imports torch; a time limit that fires during that
    import would leave torch half-initialized (the next import segfaults the kernel)."""
    import subprocess

    script = (
        "from rlkit_grader.notebooks.feedback import check\n"
        "def gae(*a, **k):\n"
        "    while True:\n"
        "        pass\n"
        "check('ppo', 'gae', {'gae': gae}, time_limit=0.05)\n"
        "import rlkit_solutions.ppo\n"
        "print('points', int(check('ppo', 'gae', vars(rlkit_solutions.ppo))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "took longer than 0.05 s" in run.stdout
    assert re.search(r"points [1-9]", run.stdout), run.stdout


def test_solution_only_helpers_travel_inside_the_solution_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin's reference may use a helper the stub does not have: the notebook carries it
    inside the solution region (released notebooks hold none of it), and the answer still runs."""
    from rlkit.registry import Exercise
    from rlkit_grader.notebooks.build import answer_source

    (tmp_path / "nbstub_mod.py").write_text(
        '"""Doc."""\n\nimport math\n\n\ndef area(r):\n    """pi r²."""\n'
        "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )
    (tmp_path / "nbsol_mod.py").write_text(
        '"""Doc."""\n\nimport math\n\nSCALE = 1.0\n\n\ndef _square(x):\n    return x * x\n\n\n'
        'def area(r):\n    """pi r²."""\n    return SCALE * math.pi * _square(r)\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ex = Exercise("nbx", ("area",), "nbstub_mod", "nbsol_mod", "nbx_checks")
    source = load_exercise_source(ex)
    assert source.setup == "import math"
    cell = answer_source(source.functions[0])
    namespace: dict = {}
    exec(source.setup + "\n" + cell, namespace)  # noqa: S102 - our own test code
    assert namespace["area"](2.0) == pytest.approx(4 * 3.141592653589793)
    region = cell.split("### BEGIN SOLUTION")[1]
    assert "def _square" in region and "SCALE = 1.0" in region
    assert cell.split("### BEGIN SOLUTION")[0].rstrip().endswith('"""pi r²."""')


def _markdown(nb: nbformat.NotebookNode, grade_id: str) -> str:
    return next(c.source for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == grade_id)


def test_lessons_restate_every_formula_with_its_condition(course: Path) -> None:
    """Item 13: before, "$$ y = r $$", "$$ \\delta = 1 $$" and "$$ G_t = r_t $$" stood alone,
    the PPO lesson never showed the clipped objective and "How this notebook works" sat
    under "The formulas:"."""
    nbs = notebooks(course)
    reinforce = _markdown(nbs["reinforce"], "returns_to_go-lesson")
    assert "When `dones[t]` is true the episode ended at step t: $$ G_{t} = r_{t} $$" in reinforce
    loss = _markdown(nbs["reinforce"], "reinforce_loss-lesson")
    assert "With `normalize` (the default): $$ \\hat{G} = (G - " in loss
    assert "Otherwise: $$ \\hat{G} = G $$" in loss
    for nb in nbs.values():  # no formula that only holds under a condition stands alone
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                lines = set(cell.source.splitlines())
                for alone in ("$$ y = r $$", "$$ G_{t} = r_{t} $$", "$$ \\delta = 1 $$"):
                    assert alone not in lines, (alone, cell.source)
    # each function shows its key equation; PPO's is the clipped objective, in the intro too
    intro = _markdown(nbs["ppo"], "ppo-intro")
    clipped = r"\min(r \cdot A, \mathrm{clip}(r, 1-\epsilon, 1+\epsilon) \cdot A)"
    assert clipped in _markdown(nbs["ppo"], "ppo_clip_loss-lesson")
    formulas, how = intro.index("### The formulas"), intro.index("### How this notebook works")
    assert formulas < intro.index(clipped) < how
    for name in ("log_prob", "reinforce", "ppo", "dpo"):
        for fn in select_exercises([name])[0].functions:
            assert "**Key equation" in _markdown(nbs[name], f"{fn}-lesson"), fn
    if "dqn" in nbs:  # the DQN plugin: the Huber case split with its conditions
        huber = _markdown(nbs["dqn"], "dqn_loss-lesson")
        assert r"$$ \mathrm{Huber}(x) = \frac{1}{2} \cdot x^2 $$ if |x| ≤ 1" in huber
        assert r"$$ \mathrm{Huber}(x) = |x| - \frac{1}{2} $$ otherwise" in huber
        target = _markdown(nbs["dqn"], "td_target-lesson")
        assert "there is no next state: $$ y = r $$" in target


def test_a_plugins_formulas_are_restated_or_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 6: a plugin's docstring with its formulas outside a ``Math:`` paragraph (before:
    none of them in the lesson, and nothing said)."""
    from rlkit.registry import Exercise
    from rlkit_grader.notebooks.build import _function_lesson, lessons

    doc = (
        "λ-returns. [T], [T] → [T].\n\n"
        "Recursion: walking backwards,\n"
        "    G_t = r_t + γ·((1 − λ)·V_{t+1} + λ·G_{t+1})\n"
        "and at the end G_{T−1} = r_{T−1}.\n\n"
        "The TD error δ_t = r_t + γ·V_{t+1} − V_t drives it.\n\n"
        "When ``lam`` is 0 the return is the one-step target: G_t = r_t + γ·V_{t+1}.\n\n"
        "    weird = ⊗ something ⊕\n\n"
        "Shapes: [T] float; mask[:, 0] = 0 always.\n\n"
        "Pitfalls: log(0) = −inf.\n"
    )
    body = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    (tmp_path / "lamstub_mod.py").write_text(
        f'"""Exercise — TD(λ)."""\n\n\ndef lam_return(rewards, values, lam):\n    """{doc}"""\n'
        + body
    )
    (tmp_path / "lamsol_mod.py").write_text(
        f'"""Exercise — TD(λ)."""\n\n\ndef lam_return(rewards, values, lam):\n    """{doc}"""\n'
        "    return rewards\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    source = load_exercise_source(
        Exercise("lamx", ("lam_return",), "lamstub_mod", "lamsol_mod", "x")
    )
    _, functions = lessons(source)
    found = functions["lam_return"]
    cell = _function_lesson(1, source.functions[0], source.functions[0].signature, found)
    assert (
        r"G_{t} = r_{t} + \gamma \cdot ((1 - \lambda) \cdot V_{t+1} + \lambda \cdot G_{t+1})"
        in cell
    )
    assert r"$$ \delta_{t} = r_{t} + \gamma \cdot V_{t+1} - V_{t} $$" in cell
    assert r"When `lam` is 0 the return is the one-step target: $$ G_{t} = r_{t} + " in cell
    assert "**Key equation" in cell
    assert r"\log(0)" not in cell and r"\mathrm{mask}" not in cell  # Pitfalls, Shapes
    assert found.skipped == ["weird = ⊗ something ⊕"]  # named by rlkit nbgrader build
