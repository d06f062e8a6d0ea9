"""The CLI through click's runner and through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from conftest import ROOT, rlkit_cmd

import rlkit
from rlkit.cli import cli


def test_help_lists_builtin_and_plugin_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("plugins", "list", "train", "eval", "plot"):
        assert f"  {command}" in result.output
    train_help = CliRunner().invoke(cli, ["train", "--help"])
    assert train_help.exit_code == 0 and "TASK" in train_help.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"rlkit, version {rlkit.__version__}"


def test_list_json_names_course_exercises() -> None:
    result = CliRunner().invoke(cli, ["list", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    exercises = {e["name"]: e["functions"] for e in data["exercises"]}
    assert exercises["ppo"] == ["ppo_clip_loss", "gae"]
    assert exercises["dpo"] == ["sequence_log_probs", "dpo_loss"]


def test_plugins_table_renders() -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert "course" in result.output and "log_prob" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["trian"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_eval_of_a_non_run_is_one_line_exit_2(tmp_path: Path) -> None:
    result = rlkit_cmd("eval", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "config.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_plot_redraws_and_overlays(tmp_path: Path) -> None:
    from rlkit.runs import Run

    for name, slope in (("a", 1.0), ("b", 2.0)):
        run = Run.create(tmp_path / name, "t", "native", {}, plot_metrics=["reward", "entropy"])
        for step in range(1, 40):
            run.log(step, {"reward": slope * step, "entropy": 1.0 / step, "loss": 0.1})
        run.close()
    single = CliRunner().invoke(cli, ["plot", str(tmp_path / "a")])
    assert single.exit_code == 0, single.output
    assert (tmp_path / "a" / "curves.png").stat().st_size > 10_000
    out = tmp_path / "both.png"
    both = CliRunner().invoke(
        cli, ["plot", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out)]
    )
    assert both.exit_code == 0 and out.stat().st_size > 10_000


def test_console_script_runs_in_a_subprocess() -> None:
    result = rlkit_cmd("--version")
    assert result.returncode == 0 and rlkit.__version__ in result.stdout
    result = rlkit_cmd("list")
    assert result.returncode == 0 and "reinforce" in result.stdout


def test_cli_import_stays_light() -> None:
    """`rlkit --help` must not import torch or any backend: that is what keeps it instant."""
    code = (
        "import sys; from rlkit.cli import cli; from rlkit import plugins;"
        "plugins.get_exercises(); plugins.get_trainers(); plugins.get_envs();"
        "heavy = {'torch', 'stable_baselines3', 'trl', 'transformers', 'gymnasium', 'nbgrader',"
        " 'matplotlib', 'numpy'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_readme_test_command_is_what_ci_runs() -> None:
    """One source of truth: .ci/run executes the README's test command verbatim."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command in readme
