"""The core's training session: `rlkit train TASK` built from a settings dataclass, the shared
options, `--set`, `--resume` policing, Ctrl-C and resume for a third-party plugin (the bandit
example, with a real SIGINT), and the no-ops that now fail loudly (`eval --video`, `plot -m`,
overlays of different tasks) or say what they show (plot titles)."""

from __future__ import annotations

import json
import os
import signal
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, interrupt_training

from rlkit import hookimpl, plugins
from rlkit.cli import cli
from rlkit.interfaces import Evaluation, Progress, Trainer, notify_metrics
from rlkit.registry import TrainerSpec
from rlkit.runs import Run, read_metrics
from rlkit.settings import setting


@dataclass
class ToySettings:
    steps: int = setting(5, "Steps in total.", min=1, budget=True)
    rate: float = setting(0.5, "How fast it learns.", flag=("--rate", "-r"))
    mode: str = setting("fast", "Which way.", choices=("fast", "slow"))
    eval_episodes: int = setting(0, "Episodes after training.", min=0, resume=True)
    quiet: bool = False  # no help: no flag, only --set
    seed: int = 0


class ToyTrainer(Trainer):
    """Counts steps; saves its count; stops when asked."""

    task = "toy"
    backend = "native"

    def __init__(self, settings: ToySettings) -> None:
        self.settings = settings
        self.done = 0

    def progress(self) -> Progress:
        return Progress(self.done, self.settings.steps)

    def train(self, callbacks=()):
        for cb in callbacks:
            cb.on_train_start(self)
        while self.done < self.settings.steps:
            self.done += 1
            value = self.settings.rate * self.done
            if not notify_metrics(callbacks, self, self.done, {"value": value, "other": 1.0}):
                break
        for cb in callbacks:
            cb.on_train_end(self)
        return {}

    def evaluate(self, episodes=None, video=None):
        return Evaluation({"done": self.done}, [f"Done: {self.done}"])

    def save(self, model_dir):
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        (Path(model_dir) / "count.json").write_text(json.dumps(self.done))

    @classmethod
    def load(cls, model_dir, settings=None):
        trainer = cls(settings or ToySettings())
        trainer.done = json.loads((Path(model_dir) / "count.json").read_text())
        return trainer


class StopAt(ToyTrainer):
    """Ctrl-C's effect, without a signal: the trainer is asked to stop at step 2."""

    def train(self, callbacks=()):
        class Ask:
            def on_train_start(self, trainer):
                pass

            def on_metrics(self, trainer, step, metrics):
                if step == 2:
                    trainer.request_stop()

            def on_train_end(self, trainer):
                pass

        return super().train([*callbacks, Ask()])


class CtrlCTwice(ToyTrainer):
    """A real Ctrl-C pressed twice during step 2: the second one stops at once."""

    def train(self, callbacks=()):
        class Twice:
            def on_train_start(self, trainer):
                pass

            def on_metrics(self, trainer, step, metrics):
                if step == 2:
                    os.kill(os.getpid(), signal.SIGINT)
                    os.kill(os.getpid(), signal.SIGINT)

            def on_train_end(self, trainer):
                pass

        return super().train([Twice(), *callbacks])


@pytest.fixture
def toy():
    """A plugin registering the toy task, for the length of one test."""
    plugin = types.ModuleType("toy_plugin")

    @hookimpl
    def register_trainers(register):
        for backend, factory in (
            ("native", "ToyTrainer"),
            ("other", "StopAt"),
            ("twice", "CtrlCTwice"),
        ):
            register(
                TrainerSpec(
                    "toy",
                    backend,
                    f"test_core_session:{factory}",
                    "a toy",
                    ("count",),
                    settings="test_core_session:ToySettings",
                    plot_metrics=("value", "other"),
                )
            )

    plugin.register_trainers = register_trainers  # type: ignore[attr-defined]
    name = plugins.register_plugin(plugin, name="toy")
    yield
    plugins.unregister_plugin(name)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_options_come_from_the_settings_dataclass(toy) -> None:
    result = invoke("train", "toy", "--help")
    assert result.exit_code == 0
    for text in ("--steps INTEGER", "Steps in total. [default: 5]", "-r, --rate FLOAT"):
        assert text in result.output, result.output
    for text in ("--mode fast|slow", "--backend native|other|twice", "--resume RUN"):
        assert text in result.output
    assert "--quiet" not in result.output  # no help, no flag
    assert "--path" not in result.output  # ToySettings has no impl: not a student trainer
    assert "toy" in invoke("train", "--help").output


def test_settings_given_land_in_config_json(toy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke(
        "train", "toy", "-r", "2", "--steps", "3", "--set", "quiet=yes", "--seed", "4",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "count" and config["backend"] == "native"
    settings = config["settings"]
    assert (settings["rate"], settings["steps"], settings["quiet"], settings["seed"]) == (
        2.0,
        3,
        True,
        4,
    )
    assert [row["value"] for row in read_metrics(out / "metrics.csv")] == [2.0, 4.0, 6.0]
    assert (out / "curves.png").is_file() and (out / "model" / "count.json").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "0"], "--steps must be a positive number, not 0"),
        (["--mode", "sideways"], "--mode must be one of fast, slow, not 'sideways'"),
        (["--set", "quiet=maybe"], "--set quiet: 'maybe' is not a valid bool"),
        (["--set", "speed=1"], "expected KEY=VALUE with KEY one of: steps, rate, mode"),
        (["--backend", "gpu"], "unknown backend 'gpu'; use one of: native, other, twice"),
        (["--algo", "ppo"], "unknown algorithm 'ppo' for toy; use one of: count"),
    ],
)
def test_bad_settings_are_one_line_and_leave_nothing(
    toy, tmp_path: Path, args: list[str], expected: str
) -> None:
    out = tmp_path / "run"
    result = invoke("train", "toy", *args, "--out", str(out))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {result.output.strip()[7:]}"]
    assert expected in result.output
    assert not out.exists()


def test_stop_request_saves_exits_130_and_resume_continues(toy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    stopped = invoke("train", "toy", "--backend", "other", "--out", str(out))
    assert stopped.exit_code == 130
    assert (
        f"Interrupted at 2 steps; the run is saved. Continue with: rlkit train toy --resume {out}"
    ) in stopped.output
    assert json.loads((out / "model" / "count.json").read_text()) == 2

    changed = invoke("train", "toy", "--resume", str(out), "-r", "9")
    assert changed.exit_code == 2
    assert "drop --rate (only --steps, --eval-episodes may change)" not in changed.output
    assert "drop --rate" in changed.output and "only --steps and --eval-episodes" in changed.output

    resumed = invoke("train", "toy", "--resume", str(out), "--steps", "4")
    assert resumed.exit_code == 0, resumed.output
    assert f"Resuming {out} at step 2 of 4" in resumed.output
    assert json.loads((out / "model" / "count.json").read_text()) == 4
    resumed = invoke("train", "toy", "--resume", str(out), "--set", "eval_episodes=1")
    assert resumed.exit_code == 2 and "has trained all 4 of its steps" in resumed.output
    assert "pass --steps N with N > 4" in resumed.output
    config = json.loads((out / "config.json").read_text())
    assert [(r["from"], r["to"]) for r in config["resumed"]] == [(2, 4)]
    assert config["settings"]["steps"] == 4


def test_a_second_ctrl_c_stops_at_once_and_saves(toy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("train", "toy", "--backend", "twice", "--steps", "9", "--out", str(out))
    assert result.exit_code == 130
    assert "stopping after the current step (press it again to stop at once)" in result.output
    assert "Stopped at once at 2 steps; the run so far is saved. Continue with: " in (result.output)
    assert [row["step"] for row in read_metrics(out / "metrics.csv")] == [1.0]
    assert json.loads((out / "model" / "count.json").read_text()) == 2


def test_a_run_that_fails_before_its_first_step_leaves_nothing(toy, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def boom(self, callbacks=()):
        raise RuntimeError("no data")

    original = ToyTrainer.train
    ToyTrainer.train = boom
    try:
        result = CliRunner().invoke(cli, ["train", "toy", "--out", str(out)])
    finally:
        ToyTrainer.train = original
    assert isinstance(result.exception, RuntimeError)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_resume_names_the_task_of_another_run(toy, tmp_path: Path) -> None:
    run = Run.create(tmp_path / "cp", "cartpole", "native", {"algo": "ppo"})
    result = invoke("train", "toy", "--resume", str(run.path))
    assert result.exit_code == 2
    assert "is a cartpole run, not a toy run; continue it with `rlkit train cartpole" in (
        result.output
    )


# ------------------------------------------------------------------- the bandit example
def test_bandit_plugin_gets_ctrl_c_and_resume(bandit_plugin: Path, tmp_path: Path) -> None:
    """The example plugin, pip-installed as a third party would, has no Ctrl-C or resume code:
    a real SIGINT stops it after a step, saves and exits 130; `--resume` continues to exactly
    the run never interrupted, which learns the better arm; `rlkit eval` evaluates it."""
    run = tmp_path / "run"
    env = {"PYTHONPATH": str(bandit_plugin), "TQDM_DISABLE": "1"}
    args = ["train", "bandit", "--steps", "1000000", "--out", str(run)]
    stopped = interrupt_training(args, run, rows=5, env=env, timeout=30)
    err = stopped.stderr
    assert stopped.returncode == 130, err
    assert "Traceback" not in err
    done = len(read_metrics(run / "metrics.csv"))
    assert err.strip().splitlines()[-1] == (
        f"Interrupted at {done} steps; the run is saved. "
        f"Continue with: rlkit train bandit --resume {run}"
    )

    sys.path.insert(0, str(ROOT / "examples" / "rlkit-bandit"))
    import rlkit_bandit

    name = plugins.register_plugin(rlkit_bandit, name="bandit")
    try:
        total = max(done + 10, 120)
        resumed = invoke("train", "bandit", "--resume", str(run), "--steps", str(total))
        assert resumed.exit_code == 0, resumed.output
        assert f"Resuming {run} at step {done} of {total}" in resumed.output
        assert float(resumed.output.split("P(best arm) = ")[1].split(";")[0]) > 0.9
        assert (run / "curves.png").is_file()
        evaluated = invoke("eval", str(run), "--episodes", "20")
        assert evaluated.exit_code == 0 and evaluated.output.startswith("Mean reward: ")
        whole = tmp_path / "whole"
        again = invoke("train", "bandit", "--steps", str(total), "--out", str(whole))
        assert again.exit_code == 0, again.output
    finally:
        plugins.unregister_plugin(name)
        sys.path.remove(str(ROOT / "examples" / "rlkit-bandit"))
    rows, reference = read_metrics(run / "metrics.csv"), read_metrics(whole / "metrics.csv")
    assert [r["step"] for r in rows] == [float(s) for s in range(1, total + 1)]
    assert [(r["reward"], r["loss"]) for r in rows] == [(r["reward"], r["loss"]) for r in reference]


# ------------------------------------------------------------------- no silent no-ops
def _toy_run(path: Path, task: str, impl: str | None = None, algo: str = "ppo") -> Run:
    settings = {"algo": algo, **({"impl": impl} if impl else {})}
    run = Run.create(path, task, "native", settings, plot_metrics=["reward", "entropy"])
    for step in range(1, 30):
        run.log(step, {"reward": float(step), "entropy": 1.0 / step})
    run.close()
    return run


def test_eval_video_of_a_run_without_an_environment_is_an_error(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "dpo", "dpo", "native", {"algo": "dpo"})
    gif = tmp_path / "x.gif"
    result = invoke("eval", str(run.path), "--video", str(gif))
    assert result.exit_code == 2
    assert "--video records an agent in its environment; a dpo run has none" in result.output
    assert not gif.exists()


def test_plot_of_a_missing_metric_is_an_error(tmp_path: Path) -> None:
    run = _toy_run(tmp_path / "a", "cartpole")
    out = tmp_path / "x.png"
    result = invoke("plot", str(run.path), "-m", "nosuchmetric", "-o", str(out))
    assert result.exit_code == 2 and not out.exists()
    assert "no metric 'nosuchmetric'" in result.output and "entropy, reward" in result.output


def test_overlaying_runs_of_different_tasks_is_refused(tmp_path: Path) -> None:
    cartpole, dpo = _toy_run(tmp_path / "c", "cartpole"), _toy_run(tmp_path / "d", "dpo")
    out = tmp_path / "x.png"
    result = invoke("plot", str(cartpole.path), str(dpo.path), "-o", str(out))
    assert result.exit_code == 2 and not out.exists()
    assert "cannot overlay runs of different tasks" in result.output
    assert f"{dpo.path} is dpo" in result.output


def test_plot_titles_say_algorithm_backend_and_whose_code(tmp_path: Path) -> None:
    from rlkit.plotting import figure

    ppo = _toy_run(tmp_path / "p", "cartpole", impl="solution", algo="ppo")
    reinforce = _toy_run(tmp_path / "r", "cartpole", impl="student", algo="reinforce")
    assert ppo.title == "cartpole · ppo · native · reference solution"
    assert reinforce.title == "cartpole · reinforce · native · your code"
    fig = figure([reinforce])
    assert fig._suptitle.get_text() == reinforce.title
    both = figure([ppo, reinforce])
    assert ppo.title in both._suptitle.get_text() and reinforce.title in both._suptitle.get_text()


def test_top_level_help_names_a_command_that_works_anywhere() -> None:
    result = invoke("--help")
    assert "--impl student" not in result.output
    assert "rlkit train cartpole" in result.output and "--path my-work" in result.output


def test_trainers_are_listed_per_algorithm_with_the_exercises_they_use() -> None:
    result = invoke("list", "--json")
    trainers = {
        (t["task"], t["backend"], t["algorithm"]): t["exercises"]
        for t in json.loads(result.output)["trainers"]
    }
    assert trainers[("cartpole", "native", "ppo")] == ["log_prob", "ppo"]
    assert trainers[("cartpole", "native", "reinforce")] == ["log_prob", "reinforce"]
    assert trainers[("cartpole", "sb3", "ppo")] == [] and ("cartpole", "sb3", "a2c") in trainers
    assert trainers[("dpo", "trl", "dpo")] == trainers[("dpo", "native", "dpo")] == ["dpo"]
