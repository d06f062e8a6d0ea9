"""`rlkit train cartpole`, `rlkit eval` and `rlkit plot` on real short trainings, both
backends, through click's CliRunner; error paths give one line and exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from rlkit.cli import cli
from rlkit.runs import read_metrics


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def mean_reward(output: str) -> float:
    """X of the course's line ``Mean reward: X +/- Y``."""
    found = re.search(r"Mean reward: (\d+\.\d\d) \+/- \d+\.\d\d\n", output)
    assert found, output
    return float(found.group(1))


@pytest.fixture(scope="module")
def native_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "native"
    result = invoke(
        "train",
        "cartpole",
        "--backend",
        "native",
        "--timesteps",
        "4096",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert 0 <= mean_reward(result.output) <= 500
    return out


@pytest.fixture(scope="module")
def sb3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sb3"
    result = invoke(
        "train",
        "cartpole",
        "--timesteps",
        "2048",
        "--seed",
        "1",
        "--out",
        str(out),
        "--eval-episodes",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert "Mean reward: " in result.output
    return out


def check_run_dir(run: Path, backend: str) -> None:
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "cartpole" and config["backend"] == backend
    assert config["settings"]["algo"] in ("ppo", "a2c", "reinforce")
    assert "gymnasium" in config["versions"] and "torch" in config["versions"]
    assert config["plot"]["metrics"][:2] == ["episode_reward", "entropy"]
    rows = read_metrics(run / "metrics.csv")
    assert rows and all("timesteps" in row for row in rows)
    for key in ("episode_reward", "episode_length", "entropy", "policy_loss", "value_loss"):
        assert any(key in row for row in rows), key
    assert list((run / "tb").glob("events.out.tfevents.*"))
    with Image.open(run / "curves.png") as image:
        assert image.width > 300


def test_native_run_directory(native_run: Path) -> None:
    check_run_dir(native_run, "native")
    assert (native_run / "model" / "checkpoint.pt").is_file()
    settings = json.loads((native_run / "config.json").read_text())["settings"]
    assert settings["impl"] == "solution" and settings["seed"] == 3


def test_sb3_run_directory(sb3_run: Path) -> None:
    check_run_dir(sb3_run, "sb3")
    assert (sb3_run / "model" / "model.zip").is_file()
    rows = read_metrics(sb3_run / "metrics.csv")
    assert rows[-1]["timesteps"] == 2048 and 0 < rows[-1]["entropy"] <= 0.7


@pytest.mark.parametrize("which", ["native_run", "sb3_run"])
def test_eval_prints_mean_reward_and_writes_gif(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run = request.getfixturevalue(which)
    gif = tmp_path / "agent.gif"
    result = invoke("eval", str(run), "--episodes", "3", "--video", str(gif))
    assert result.exit_code == 0, result.output
    assert 8 <= mean_reward(result.output) <= 500
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames >= 4
        assert image.size == (300, 200)


def test_resume_continues_the_curve(native_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(native_run, run)
    before = read_metrics(run / "metrics.csv")
    result = invoke(
        "train", "cartpole", "--resume", str(run), "--timesteps", "6144", "--eval-episodes", "0"
    )
    assert result.exit_code == 0, result.output
    rows = read_metrics(run / "metrics.csv")
    assert rows[: len(before)] == before and len(rows) > len(before)
    assert rows[-1]["timesteps"] >= 6144 > before[-1]["timesteps"]
    config = json.loads((run / "config.json").read_text())
    assert config["settings"]["timesteps"] == 6144 and config["resumed"][0]["to"] == 6144
    again = invoke("train", "cartpole", "--resume", str(run))
    assert again.exit_code == 2
    assert "has trained all 6144 of its timesteps; pass --timesteps N with N > 6144" in again.output


def test_sb3_resume_and_a2c(sb3_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(sb3_run, run)
    result = invoke(
        "train", "cartpole", "--resume", str(run), "--timesteps", "4096", "--eval-episodes", "0"
    )
    assert result.exit_code == 0, result.output
    assert read_metrics(run / "metrics.csv")[-1]["timesteps"] == 4096
    a2c = invoke(
        "train",
        "cartpole",
        "--algo",
        "a2c",
        "--timesteps",
        "500",
        "--out",
        str(tmp_path / "a2c"),
        "--eval-episodes",
        "1",
    )
    assert a2c.exit_code == 0, a2c.output
    rows = read_metrics(tmp_path / "a2c" / "metrics.csv")
    assert rows and "policy_loss" in rows[-1] and "entropy" in rows[-1]


def test_native_reinforce_run(tmp_path: Path) -> None:
    out = tmp_path / "reinforce"
    result = invoke(
        "train",
        "cartpole",
        "--algo",
        "reinforce",
        "--timesteps",
        "1500",
        "--out",
        str(out),
        "--set",
        "learning_rate=0.01",
        "--eval-episodes",
        "2",
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["algo"] == "reinforce" and settings["learning_rate"] == 0.01
    assert json.loads((out / "config.json").read_text())["backend"] == "native"


def test_plot_redraws_a_cartpole_run(native_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again.png"
    result = invoke("plot", str(native_run), "-o", str(out))
    assert result.exit_code == 0 and out.is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--algo", "sac"], "unknown algorithm 'sac' for cartpole"),
        (["--backend", "native", "--algo", "a2c"], "unknown algorithm 'a2c' for the native"),
        (["--backend", "jax"], "unknown backend 'jax'"),
        (["--timesteps", "-5"], "--timesteps must be a positive number"),
        (["--backend", "sb3", "--impl", "student"], "apply to --backend native only"),
        (["--backend", "native", "--set", "learning_rate=fast"], "not a valid float"),
        (["--backend", "native", "--set", "nope=1"], "expected KEY=VALUE"),
        (["--backend", "native", "--set", "num_envs=0"], "--num-envs must be a positive number"),
        (["--backend", "native", "--set", "n_steps=0"], "--set n_steps must be a positive"),
        (["--resume", "no/such/run"], "not a run directory"),
        (["--resume", "RUN", "--algo", "ppo"], "drop --algo"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], expected: str, tmp_path: Path) -> None:
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    out = tmp_path / "never"
    result = (
        invoke("train", "cartpole", *args, "--out", str(out))
        if "--resume" not in args
        else invoke("train", "cartpole", *args)
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0]
    assert not out.exists()


def test_unreadable_run_dir_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    for args in (["eval", str(tmp_path)], ["train", "cartpole", "--resume", str(tmp_path)]):
        result = invoke(*args)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    broken = tmp_path / "run"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"task": "cartpole", "backend": "native"}))
    result = invoke("eval", str(broken))
    assert result.exit_code == 2 and "no usable native checkpoint" in result.output


def test_existing_run_dir_is_not_overwritten(native_run: Path) -> None:
    result = invoke("train", "cartpole", "--backend", "native", "--out", str(native_run))
    assert result.exit_code == 2 and "--resume" in result.output
