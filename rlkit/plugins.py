"""The plugin manager: built-in and third-party plugins load the same way, from entry points in
the ``rlkit`` group. A plugin that fails to import or to register is reported in one line and
everything else keeps working."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from rlkit import hookspecs
from rlkit.registry import EnvSpec, Exercise, TrainerSpec

ENTRY_POINT_GROUP = "rlkit"

pm = pluggy.PluginManager("rlkit")
pm.add_hookspecs(hookspecs)

#: plugin name → one-line reason it is not working
broken: dict[str, str] = {}
#: plugin name → (distribution, version) that provides it
_dist_of: dict[str, tuple[str, str]] = {}
_loaded = False


@dataclass
class PluginInfo:
    name: str
    distribution: str = ""
    version: str = ""
    exercises: list[str] = field(default_factory=list)
    envs: list[str] = field(default_factory=list)
    trainers: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (multi-line messages joined with "; ", long ones cut)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def load_plugins() -> None:
    """Load every plugin named by an ``rlkit`` entry point (once).

    ``RLKIT_LOAD_PLUGINS=a,b`` loads only those (empty: none), like ``LLM_LOAD_PLUGINS``.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    wanted = os.environ.get("RLKIT_LOAD_PLUGINS")
    allow = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allow is not None and ep.name not in allow:
            continue
        if pm.get_plugin(ep.name) is not None or ep.name in broken:
            continue
        try:
            module = ep.load()
        except BaseException as exc:  # noqa: BLE001 - any failure must stay one line
            if isinstance(exc, KeyboardInterrupt):
                raise
            broken[ep.name] = f"failed to import {ep.value}: {_one_line(exc)}"
            continue
        try:
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as exc:  # a hook with a wrong name or arguments
            broken[ep.name] = f"invalid plugin {ep.value}: {_one_line(exc)}"
            continue
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _dist_of[ep.name] = (dist.name, dist.version)


def register_plugin(plugin: ModuleType | object, name: str | None = None) -> str:
    """Register a plugin object at runtime (tests, notebooks, scripts)."""
    registered = pm.register(plugin, name=name)
    _reset_caches()
    assert registered is not None
    return registered


def unregister_plugin(name: str) -> None:
    pm.unregister(name=name)
    broken.pop(name, None)
    _reset_caches()


def _call_each(hook_name: str, **kwargs: Any) -> None:
    """Call one hook implementation at a time, so a failing plugin cannot break the others."""
    load_plugins()
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order
        args = {
            k: v(impl.plugin_name) if callable(v) and k == "register" else v
            for k, v in kwargs.items()
            if k in impl.argnames
        }
        try:
            impl.function(**args)
        except Exception as exc:  # noqa: BLE001
            broken[impl.plugin_name] = f"{hook_name} failed: {_one_line(exc)}"


_cache: dict[str, Any] = {}


def _reset_caches() -> None:
    _cache.clear()


def _collect(
    hook_name: str,
    key: Callable[[Any], Any],
    expand: Callable[[Any], list[Any]] = lambda item: [item],
) -> dict[Any, Any]:
    if hook_name in _cache:
        return _cache[hook_name]
    found: dict[Any, Any] = {}

    def make_register(plugin_name: str) -> Callable[[Any], None]:
        def register(item: Any) -> None:
            for one in expand(replace(item, plugin=plugin_name)):
                k = key(one)
                if k in found:
                    broken.setdefault(
                        plugin_name,
                        f"{hook_name}: {k!r} is already registered by {found[k].plugin}",
                    )
                    continue
                found[k] = one

        return register

    _call_each(hook_name, register=make_register)
    _cache[hook_name] = found
    return found


def get_exercises() -> dict[str, Exercise]:
    """Registered exercises by name, in course order."""
    found = _collect("register_exercises", lambda e: e.name)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def get_envs() -> dict[str, EnvSpec]:
    return _collect("register_envs", lambda e: e.name)


def get_trainers() -> dict[tuple[str, str, str], TrainerSpec]:
    """Registered trainers by ``(task, backend, algorithm)``, in registration order: a spec
    offering several algorithms is kept once per algorithm (``spec.algorithm`` names it)."""
    return _collect(
        "register_trainers",
        lambda t: (t.task, t.backend, t.algorithm),
        lambda t: [replace(t, algorithms=(a,)) for a in t.algorithms] or [t],
    )


def trainers_of(task: str) -> list[TrainerSpec]:
    """The trainers of one task, in registration order (the first is the default)."""
    return [spec for spec in get_trainers().values() if spec.task == task]


def register_commands(cli: Any, train: Any) -> dict[str, list[str]]:
    """Let every plugin add its commands; returns plugin name → command names it added."""
    added: dict[str, list[str]] = {}
    load_plugins()
    for impl in pm.hook.register_commands.get_hookimpls():
        before = set(cli.commands) | {f"train {c}" for c in train.commands}
        args = {k: v for k, v in {"cli": cli, "train": train}.items() if k in impl.argnames}
        try:
            impl.function(**args)
        except Exception as exc:  # noqa: BLE001
            broken[impl.plugin_name] = f"register_commands failed: {_one_line(exc)}"
            continue
        after = set(cli.commands) | {f"train {c}" for c in train.commands}
        added[impl.plugin_name] = sorted(after - before)
    return added


def plugin_infos(commands: dict[str, list[str]] | None = None) -> list[PluginInfo]:
    """What each loaded plugin registers, for ``rlkit plugins``."""
    load_plugins()
    infos: dict[str, PluginInfo] = {}
    for name, _plugin in pm.list_name_plugin():
        dist, ver = _dist_of.get(name, ("", ""))
        infos[name] = PluginInfo(name=name, distribution=dist, version=ver)
    for ex in get_exercises().values():
        infos.setdefault(ex.plugin, PluginInfo(ex.plugin)).exercises.append(ex.name)
    for env in get_envs().values():
        infos.setdefault(env.plugin, PluginInfo(env.plugin)).envs.append(env.name)
    tasks: dict[str, str] = {}  # task → the plugin whose trainer comes first: its command
    for tr in get_trainers().values():
        infos.setdefault(tr.plugin, PluginInfo(tr.plugin)).trainers.append(
            f"{tr.task}/{tr.backend}/{tr.algorithm}"
        )
        tasks.setdefault(tr.task, tr.plugin)
    for task, name in tasks.items():
        infos.setdefault(name, PluginInfo(name)).commands.append(f"train {task}")
    for name, cmds in (commands or {}).items():
        infos.setdefault(name, PluginInfo(name)).commands.extend(cmds)
    for info in infos.values():
        info.commands = sorted(set(info.commands))
    return sorted(infos.values(), key=lambda i: i.name)
