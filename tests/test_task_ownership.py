"""A plugin never changes what it does not own (issue 16, items 1 and 2).

A real second plugin, pip-installed, adds an A2C trainer to CartPole with its own settings (the
adversarial kind: its entry point sorts before ``cartpole``, its hook asks to run first, it
gives a task help). Loaded first (on PYTHONPATH) or last (appended to sys.path), it leaves
``rlkit train cartpole`` and its help as the course's: the default stays SB3 PPO, the help is
the same in both orders; and its settings that share names with CartPole's and DQN's
(``--lr``, ``--gamma``, ``--num-envs``, ``--n-steps``) all have their flags, which set the
trainer that runs; every error names a flag that exists.

Before (measured on the same plugin): loaded first, the help said ``[default: native]`` and
``[default: a2c]`` and plain ``rlkit train cartpole`` trained the plugin's A2C; loaded last,
its ``--lr``, ``--gamma``, ``--num-envs`` and ``--n-steps`` did not exist ("No such option"),
and DQN's ``--lr`` and ``--gamma`` did not exist with no plugin at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import rlkit_cmd

from rlkit import hookimpl, plugins
from rlkit.cli import cli
from rlkit.registry import TaskSpec, TrainerSpec
from rlkit.settings import TaskOptions, setting

PLUGIN = '''
"""A course author's A2C for CartPole, as the issue's author wrote it."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rlkit import hookimpl
from rlkit.interfaces import Evaluation, Progress, Trainer, notify_metrics
from rlkit.registry import TrainerSpec
from rlkit.settings import setting


@dataclass
class A2CSettings:
    timesteps: int = setting(20_000, "Environment steps in total.", min=1, budget=True)
    learning_rate: float = setting(7e-4, "RMSprop's step size.", flag="--lr", min=0)
    num_envs: int = setting(8, "CartPoles stepped side by side.", min=1)
    n_steps: int = setting(5, "Steps per env per update.", min=1)
    gamma: float = setting(0.99, "Discount factor γ.", min=0, max=1)
    eval_episodes: int = 0
    seed: int = 0


class A2CTrainer(Trainer):
    """Counts steps (this test is about the command, not about A2C)."""

    task = "cartpole"
    backend = "native"

    def __init__(self, settings):
        self.settings, self.done = settings, 0

    def progress(self):
        return Progress(self.done, self.settings.timesteps, "timestep")

    def train(self, callbacks=()):
        while self.done < self.settings.timesteps:
            self.done = min(self.settings.timesteps, self.done + 1000)
            if not notify_metrics(callbacks, self, self.done, {"episode_reward": 1.0}):
                break
        return {}

    def evaluate(self, episodes=None, video=None):
        return Evaluation({}, ["Mean reward: 0.00 +/- 0.00"])

    def save(self, model_dir):
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        (Path(model_dir) / "a2c.json").write_text(json.dumps(asdict(self.settings)))

    @classmethod
    def load(cls, model_dir, settings=None):
        return cls(settings or A2CSettings(**json.loads((Path(model_dir) / "a2c.json").read_text())))


@hookimpl(tryfirst=True)  # the workaround that made it the default before
def register_trainers(register):
    register(
        TrainerSpec(
            "cartpole",
            "native",
            "a2c_demo:A2CTrainer",
            "A2C on the exercise functions",
            algorithms=("a2c",),
            settings="a2c_demo:A2CSettings",
            task_help="Train A2C on CartPole (this plugin does not own the task).",
        )
    )
'''

PYPROJECT = """
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "a2c-demo"
version = "1.0"
dependencies = ["rlkit"]

[project.entry-points.rlkit]
a2c = "a2c_demo"

[tool.setuptools]
py-modules = ["a2c_demo"]
"""

#: what `rlkit train cartpole` runs with no option, asked the way the command asks
PROBE = (
    "from rlkit.plugins import get_task; from rlkit.session import Session; "
    "s = Session(get_task('cartpole'), {}).choose(); print(s.plugin, s.backend, s.algorithm)"
)


@pytest.fixture(scope="module")
def a2c_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The A2C plugin really pip-installed into a folder (entry point and all)."""
    root = tmp_path_factory.mktemp("a2c")
    (root / "src").mkdir()
    (root / "src" / "a2c_demo.py").write_text(PLUGIN)
    (root / "src" / "pyproject.toml").write_text(PYPROJECT)
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(root / "src")],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return site


def rlkit_with(site: Path | None, order: str, *args: str) -> subprocess.CompletedProcess:
    """``rlkit ARGS`` with the plugin's folder first on sys.path (PYTHONPATH: found before
    rlkit's own entry points), last (appended after site-packages and the checkout), or not
    at all."""
    if site is None:
        return rlkit_cmd(*args)
    if order == "first":
        return rlkit_cmd(*args, pythonpath=site)
    code = (
        f"import sys; sys.path.append({str(site)!r}); sys.argv = ['rlkit', *{list(args)!r}]; "
        "from rlkit.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def probe(site: Path | None, order: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if site is not None and order == "first":
        env["PYTHONPATH"] = str(site)
    code = (f"import sys; sys.path.append({str(site)!r}); " if order == "last" else "") + PROBE
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def option_lines(help_text: str) -> dict[str, str]:
    """Each option of a help page → its whole (wrapped) help text, spaces normalized."""
    options: dict[str, list[str]] = {}
    current = None
    for line in help_text.split("Options:", 1)[1].splitlines():
        if line.startswith("  -"):
            current = line.split()[0]
            options[current] = [line]
        elif current is not None and line.startswith("      "):
            options[current].append(line)
        else:
            current = None
    return {k: " ".join(" ".join(v).split()) for k, v in options.items()}


@pytest.mark.parametrize("order", ["first", "last"])
def test_a_plugin_adding_an_algorithm_leaves_the_default_and_the_help(a2c_site, order) -> None:
    baseline = rlkit_with(None, order, "train", "cartpole", "--help")
    helped = rlkit_with(a2c_site, order, "train", "cartpole", "--help")
    assert baseline.returncode == helped.returncode == 0, helped.stderr
    assert probe(None, order) == probe(a2c_site, order) == "cartpole sb3 ppo"
    # the task's help is its owner's, the defaults shown are the course's
    assert helped.stdout.split("Options:")[0] == baseline.stdout.split("Options:")[0]
    before, after = option_lines(baseline.stdout), option_lines(helped.stdout)
    assert "[default: sb3]" in after["--backend"] and "[default: ppo]" in after["--algo"]
    assert "a2c" in after["--algo"]  # ... and the new algorithm is offered
    # every option the course's command had is still there; only the help of those the new
    # trainer shares (and --algo, which lists it) mention it
    assert set(before) <= set(after)
    changed = {k for k in before if before[k] != after[k]}
    shared = {"--algo", "--lr", "--gamma", "--num-envs", "--timesteps", "--eval-episodes"}
    assert changed <= shared, changed
    for flag in changed - {"--algo"}:
        assert "native a2c" in after[flag], after[flag]


def test_the_help_is_the_same_in_both_load_orders(a2c_site) -> None:
    first = rlkit_with(a2c_site, "first", "train", "cartpole", "--help")
    last = rlkit_with(a2c_site, "last", "train", "cartpole", "--help")
    assert first.stdout == last.stdout
    listed = rlkit_with(a2c_site, "first", "plugins", "--json")
    by_name = {p["name"]: p for p in json.loads(listed.stdout)}
    assert by_name["cartpole"]["commands"] == ["train cartpole"]  # the owner's command
    assert by_name["a2c"]["trainers"] == ["cartpole/native/a2c"]
    assert by_name["a2c"]["commands"] == [] and by_name["a2c"]["warnings"] == []


@pytest.mark.parametrize("order", ["first", "last"])
def test_shared_setting_names_keep_their_flags(a2c_site, order, tmp_path: Path) -> None:
    helped = option_lines(rlkit_with(a2c_site, order, "train", "cartpole", "--help").stdout)
    for flag in ("--lr", "--gamma", "--num-envs", "--n-steps"):
        assert flag in helped, flag
    # two helps for one flag: each trainer's own, named
    assert "RMSprop's step size" in helped["--lr"] and "Adam's step size" in helped["--lr"]
    assert "[default: 32 (native ppo), 5 (native a2c)]" in helped["--n-steps"]
    run = tmp_path / "run"
    trained = rlkit_with(
        a2c_site, order, "train", "cartpole", "--algo", "a2c", "--n-steps", "7", "--lr", "0.5",
        "--gamma", "0.9", "--num-envs", "3", "--out", str(run),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["backend"] == "native" and config["algo"] == "a2c"
    got = {k: config["settings"][k] for k in ("n_steps", "learning_rate", "gamma", "num_envs")}
    assert got == {"n_steps": 7, "learning_rate": 0.5, "gamma": 0.9, "num_envs": 3}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--algo", "a2c", "--n-steps", "0"], "--n-steps must be a positive number, not 0"),
        (["--algo", "a2c", "--set", "n_steps=0"], "--n-steps must be a positive number, not 0"),
        (["--backend", "native", "--set", "n_steps=0"], "--n-steps must be a positive number"),
        (["--algo", "a2c", "--gamma", "2"], "--gamma must be between 0 and 1, not 2.0"),
        (["--n-steps", "3", "--backend", "sb3"], "--n-steps does not apply to --backend sb3"),
    ],
)
def test_every_error_names_a_flag_that_exists(a2c_site, args, says, tmp_path: Path) -> None:
    result = rlkit_with(a2c_site, "last", "train", "cartpole", *args, "--out", str(tmp_path / "r"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"Error: {says}"] or says in result.stderr
    flag = says.split()[0]
    helped = rlkit_with(a2c_site, "last", "train", "cartpole", "--help").stdout
    assert flag in option_lines(helped)  # the flag the error names exists


def test_without_the_plugin_dqn_s_lr_and_gamma_have_their_flags() -> None:
    helped = option_lines(rlkit_cmd("train", "cartpole", "--help").stdout)
    assert "0.0025 (native dqn)" in helped["--lr"] and "native dqn)" in helped["--gamma"]
    assert "--n-steps" not in helped  # PPO's n_steps has no help: --set n_steps=...


# ---------------------------------------------------------------------------- in-process


@dataclass
class OwnerSettings:
    steps: int = setting(5, "Steps in total.", min=1, budget=True)
    rate: float = 0.5  # no help: no flag of its own here
    alpha: float = setting(0.1, "Step size α.", flag=("--alpha", "-a"))
    lr: float = setting(0.01, "The owner's step size.")
    seed: int = 0


@dataclass
class GuestSettings:
    steps: int = setting(9, "Steps in total.", min=1, budget=True)
    rate: float = setting(0.25, "How fast the guest learns.", min=0)
    alpha: float = setting(0.2, "Step size α.")
    learning_rate: float = setting(0.001, "The guest's step size.", flag="--lr")
    seed: int = 0


def _plugin(name: str, *specs: object) -> str:
    module = types.ModuleType(f"{name}_plugin")
    tasks = [s for s in specs if isinstance(s, TaskSpec)]
    trainers = [s for s in specs if isinstance(s, TrainerSpec)]

    @hookimpl
    def register_tasks(register):
        for spec in tasks:
            register(spec)

    @hookimpl
    def register_trainers(register):
        for spec in trainers:
            register(spec)

    module.register_tasks = register_tasks  # type: ignore[attr-defined]
    module.register_trainers = register_trainers  # type: ignore[attr-defined]
    return plugins.register_plugin(module, name=name)


OWNED = TaskSpec("owned", "slow", "b", help="The owner's task.")
OWNER = [
    TrainerSpec("owned", "fast", "x:Y", algorithms=("a",), settings=f"{__name__}:OwnerSettings"),
    TrainerSpec("owned", "slow", "x:Y", algorithms=("b",), settings=f"{__name__}:OwnerSettings"),
]
GUEST = TrainerSpec(
    "owned", "fast", "x:Y", algorithms=("guest",), settings=f"{__name__}:GuestSettings",
    task_help="The guest's help.",
)  # fmt: skip


@pytest.mark.parametrize("guest_first", [True, False])
def test_the_owner_declares_the_default_whatever_registers_first(guest_first) -> None:
    order = [("aaa", [GUEST]), ("mmm", [OWNED, *OWNER])]
    names = [_plugin(n, *specs) for n, specs in (order if guest_first else order[::-1])]
    try:
        task = plugins.get_task("owned")
        assert task is not None and task.owner == "mmm" and task.declared
        assert (task.default.backend, task.default.algorithm) == ("slow", "b")
        assert [s.algorithm for s in task.trainers] == ["a", "b", "guest"]  # owner's first
        assert task.help == "The owner's task."
        assert task.default_algorithm("fast") == "a" and task.default_backend("guest") == "fast"
        result = CliRunner().invoke(cli, ["train", "owned", "--help"])
        assert "[default: slow]" in result.output and "[default: b]" in result.output
        assert "The guest's help" not in result.output
    finally:
        for name in names:
            plugins.unregister_plugin(name)


def test_a_shared_task_nobody_declares_is_reported() -> None:
    spec = TrainerSpec("shared", "native", "x:Y", algorithms=("one",))
    names = [
        _plugin("zzz", spec),
        _plugin("bbb", TrainerSpec("shared", "native", "x:Y", algorithms=("two",))),
    ]
    try:
        task = plugins.get_task("shared")
        assert task is not None and task.owner == "bbb" and not task.declared  # by name
        lines = plugins.task_problems()["bbb"]
        assert any("no plugin declares it" in line for line in lines), lines
    finally:
        for name in names:
            plugins.unregister_plugin(name)


def test_settings_of_one_name_merge_and_conflicts_are_reported() -> None:
    owner, guest = OWNER[0], GUEST
    owner = TrainerSpec(**{**owner.__dict__, "plugin": "mmm"})
    guest = TrainerSpec(**{**guest.__dict__, "plugin": "aaa"})
    options = TaskOptions([owner, guest])
    # rate: only the guest's field has help; the flag exists and sets whichever trainer runs
    assert options.settings["rate"].flags == ("--rate",)
    assert "[default: 0.5 (fast a), 0.25 (fast guest)]" in options.settings["rate"].help(
        [owner, guest]
    )
    # alpha: every owner's flags, one option
    assert options.settings["alpha"].flags == ("--alpha", "-a")
    # --lr: the owner's `lr` keeps it; the guest's learning_rate is reported, and --set names it
    assert options.settings["lr"].flags == ("--lr",)
    assert options.settings["learning_rate"].flags == ()
    assert options.label("learning_rate") == "--set learning_rate"
    ((plugin, line),) = options.conflicts
    assert plugin == "aaa" and "asks for --lr, which is lr's" in line
    assert "use --set learning_rate=VALUE" in line
