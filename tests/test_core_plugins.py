"""Plugin discovery from entry points, runtime registration, and broken plugins."""

from __future__ import annotations

import json
import textwrap
import types
from pathlib import Path

import pytest
from conftest import rlkit_cmd

from rlkit import hookimpl, plugins
from rlkit.registry import EnvSpec, TrainerSpec


def _fake_distribution(site: Path, name: str, module: str, code: str) -> None:
    """A minimal installed distribution with an ``rlkit`` entry point, as pip would leave it."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[rlkit]\n{name} = {module}\n")


def test_builtin_plugins_are_found_through_entry_points() -> None:
    plugins.load_plugins()
    names = {name for name, _ in plugins.pm.list_name_plugin()}
    assert {"course", "cartpole", "dpo"} <= names
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert infos["course"].distribution == "rlkit"
    assert {"log_prob", "reinforce", "ppo", "dpo"} <= set(plugins.get_exercises())


def test_third_party_plugin_is_discovered(bandit_plugin: Path) -> None:
    result = rlkit_cmd("plugins", "--json", pythonpath=bandit_plugin)
    assert result.returncode == 0, result.stderr
    by_name = {p["name"]: p for p in json.loads(result.stdout)}
    assert by_name["bandit"]["distribution"] == "rlkit-bandit"
    assert by_name["bandit"]["envs"] == ["Bandit-v0"]
    assert by_name["bandit"]["trainers"] == ["bandit/native/reinforce"]
    assert by_name["bandit"]["commands"] == ["train bandit"]
    assert "course" in by_name  # built-ins load the same way, side by side


def test_broken_plugin_is_one_line_and_the_rest_works(tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path, "brokenthing", "brokenthing_plugin", "import this_module_does_not_exist\n"
    )
    result = rlkit_cmd("plugins", pythonpath=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "brokenthing" in line]
    assert len(lines) == 1, result.stdout
    assert "this_module_does_not_exist" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    listed = rlkit_cmd("list", "--json", pythonpath=tmp_path)
    assert listed.returncode == 0
    assert "ppo" in {e["name"] for e in json.loads(listed.stdout)["exercises"]}


def test_plugin_whose_hook_raises_is_reported(tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path,
        "raiser",
        "raiser_plugin",
        """
        from rlkit import hookimpl

        @hookimpl
        def register_envs(register):
            raise RuntimeError("boom in register_envs")
    """,
    )
    result = rlkit_cmd("plugins", "--json", pythonpath=tmp_path)
    data = json.loads(result.stdout)
    errors = {p["name"]: p.get("error") for p in data if "error" in p}
    assert errors == {"raiser": "register_envs failed: RuntimeError: boom in register_envs"}
    assert any(p["name"] == "cartpole" for p in data)


def test_plugin_with_a_misspelled_hook_argument_is_reported(tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path,
        "typo",
        "typo_plugin",
        """
        from rlkit import hookimpl

        @hookimpl
        def register_envs(regster):
            pass
    """,
    )
    result = rlkit_cmd("plugins", "--json", pythonpath=tmp_path)
    assert result.returncode == 0, result.stderr
    errors = {p["name"]: p.get("error", "") for p in json.loads(result.stdout) if "error" in p}
    assert errors["typo"].startswith("invalid plugin typo_plugin: PluginValidationError")
    assert "regster" in errors["typo"]


def test_rlkit_load_plugins_limits_what_loads() -> None:
    result = rlkit_cmd("plugins", "--json", env={"RLKIT_LOAD_PLUGINS": "course"})
    assert [p["name"] for p in json.loads(result.stdout)] == ["course"]


def test_plugin_registered_at_runtime() -> None:
    plugin = types.ModuleType("runtime_plugin")

    @hookimpl
    def register_envs(register):
        register(EnvSpec("Runtime-v0", "gymnasium:make", "made at runtime"))

    @hookimpl
    def register_trainers(register):
        register(TrainerSpec("runtime", "native", "rlkit.interfaces:Trainer"))

    plugin.register_envs = register_envs  # type: ignore[attr-defined]
    plugin.register_trainers = register_trainers  # type: ignore[attr-defined]
    name = plugins.register_plugin(plugin, name="runtime")
    try:
        envs = plugins.get_envs()
        assert envs["Runtime-v0"].plugin == "runtime"
        assert ("runtime", "native", "runtime") in plugins.get_trainers()
    finally:
        plugins.unregister_plugin(name)
    assert "Runtime-v0" not in plugins.get_envs()


def test_duplicate_registration_keeps_the_first_and_reports() -> None:
    plugin = types.ModuleType("dupe")

    @hookimpl
    def register_exercises(register):
        from rlkit.registry import Exercise

        register(Exercise("ppo", ("x",), "a", None, "b"))

    plugin.register_exercises = register_exercises  # type: ignore[attr-defined]
    plugins.register_plugin(plugin, name="dupe")
    try:
        assert plugins.get_exercises()["ppo"].plugin == "course"
        assert "already registered by course" in plugins.broken["dupe"]
    finally:
        plugins.unregister_plugin("dupe")


def test_resolve_names_the_missing_extra() -> None:
    from rlkit.errors import RlkitError
    from rlkit.registry import resolve

    with pytest.raises(RlkitError, match="pip install 'rlkit\\[all\\]'"):
        resolve("no_such_backend_module:Trainer")
