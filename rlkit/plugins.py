"""The plugin manager: built-in and third-party plugins load the same way, from entry points in
the ``rlkit`` group. A plugin that fails to import or to register is reported in one line and
everything else keeps working.

Plugins load in the order of their entry points' names, never in the order Python happens to
find their distributions, so what a command does cannot depend on where a package was
installed. A task's default trainer is its owner's declaration (``TaskSpec``), so installing a
plugin that adds an algorithm to a task never changes what ``rlkit train TASK`` runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from rlkit import hookspecs
from rlkit.registry import EnvSpec, Exercise, TaskSpec, TrainerSpec

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
    #: what works, but not as its author may think (``task_problems``)
    warnings: list[str] = field(default_factory=list)


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
    # by name, not by discovery order (which follows sys.path: a checkout, PYTHONPATH, ...)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value)):
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


def get_task_specs() -> dict[str, TaskSpec]:
    """The tasks plugins declare (``register_tasks``), by name."""
    return _collect("register_tasks", lambda t: t.name)


@dataclass(frozen=True)
class Task:
    """A task as ``rlkit train NAME`` presents it: its trainers with the owner's first (in the
    order the owner registers them), then each other plugin's (by plugin name, each in its
    own order); the default trainer the owner declares; the command's help."""

    name: str
    owner: str
    trainers: tuple[TrainerSpec, ...]
    default: TrainerSpec
    help: str = ""
    #: whether the owner declared the task (``TaskSpec``) or it was inferred
    declared: bool = False
    #: one line each: what is ambiguous or wrong about the task's ownership or default
    problems: tuple[str, ...] = ()

    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(s.backend for s in self.trainers))

    @property
    def algorithms(self) -> list[str]:
        return list(dict.fromkeys(s.algorithm for s in self.trainers))

    def default_algorithm(self, backend: str) -> str:
        """The algorithm ``--backend BACKEND`` alone trains."""
        return next(s.algorithm for s in self.preferred() if s.backend == backend)

    def default_backend(self, algorithm: str) -> str:
        """The backend ``--algo ALGORITHM`` alone trains on."""
        return next(s.backend for s in self.preferred() if s.algorithm == algorithm)

    def preferred(self) -> list[TrainerSpec]:
        """The trainers in the order the session picks among them: the default, then those of
        its algorithm, then those of its backend, then the rest (each group in task order)."""
        d = self.default

        def rank(s: TrainerSpec) -> int:
            if s is d:
                return 0
            return 1 if s.algorithm == d.algorithm else 2 if s.backend == d.backend else 3

        return sorted(self.trainers, key=rank)


def _owner(name: str, specs: list[TrainerSpec]) -> tuple[str, list[str]]:
    """Who owns a task nobody declared: the one plugin whose trainers give it a help text,
    else the one plugin with trainers for it; else (ambiguous) the first by name, and a line
    saying so."""
    helping = sorted({s.plugin for s in specs if s.task_help})
    plugins_ = sorted({s.plugin for s in specs})
    candidates = helping if helping else plugins_
    if len(candidates) == 1:
        return candidates[0], []
    owner = candidates[0]
    return owner, [
        f"task {name!r} has trainers from {', '.join(plugins_)} and no plugin declares it "
        f"(register_tasks: TaskSpec); its default is {owner}'s first trainer"
    ]


def get_task(name: str) -> Task | None:
    """The task ``name`` (None: no trainer is registered for it)."""
    if ("task", name) in _cache:
        return _cache[("task", name)]
    specs = [spec for spec in get_trainers().values() if spec.task == name]
    if not specs:
        return None
    declared = get_task_specs().get(name)
    problems: list[str] = []
    if declared is not None:
        owner = declared.plugin
    else:
        owner, problems = _owner(name, specs)
    ordered = [s for s in specs if s.plugin == owner] + sorted(
        (s for s in specs if s.plugin != owner), key=lambda s: s.plugin
    )  # sorted() is stable: each plugin's trainers keep their order
    default = ordered[0]
    if declared is not None:
        found = [
            s
            for s in ordered
            if s.backend == declared.backend
            and (not declared.algorithm or s.algorithm == declared.algorithm)
        ]
        if found:
            default = found[0]
        else:
            wanted = declared.backend + (f"/{declared.algorithm}" if declared.algorithm else "")
            problems.append(
                f"task {name!r}: the default {declared.plugin} declares ({wanted}) is not "
                f"registered; the default is {default.backend}/{default.algorithm}"
            )
    help_text = (declared.help if declared is not None else "") or next(
        (s.task_help for s in ordered if s.task_help), ""
    )
    task = Task(
        name, owner, tuple(ordered), default, help_text, declared is not None, tuple(problems)
    )
    _cache[("task", name)] = task
    return task


def get_tasks() -> dict[str, Task]:
    """Every task that has a trainer, by name (sorted)."""
    names = sorted({spec.task for spec in get_trainers().values()})
    return {n: t for n in names if (t := get_task(n)) is not None}


def trainers_of(task: str) -> list[TrainerSpec]:
    """The trainers of one task: the owner's first, then the other plugins' (see ``Task``);
    the task's default is ``get_task(task).default``, declared by its owner."""
    found = get_task(task)
    return list(found.trainers) if found is not None else []


def task_problems() -> dict[str, list[str]]:
    """Plugin name → lines about its tasks and settings that work, but not as their authors
    may think: a task with trainers from several plugins that nobody declares, a declared
    default that is not registered, and settings of the same name whose flags conflict
    (``rlkit.settings.TaskOptions``). Imports each task's settings modules (light)."""
    from rlkit.settings import TaskOptions

    found: dict[str, list[str]] = {}
    for task in get_tasks().values():
        for line in task.problems:
            found.setdefault(task.owner, []).append(line)
        try:
            options = TaskOptions(task.trainers)
        except Exception as exc:  # noqa: BLE001 - a settings module that fails to import
            found.setdefault(task.owner, []).append(
                f"task {task.name!r}: its options cannot be built: {_one_line(exc)}"
            )
            continue
        for plugin, line in options.conflicts:
            found.setdefault(plugin, []).append(line)
    return found


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
    for tr in get_trainers().values():
        infos.setdefault(tr.plugin, PluginInfo(tr.plugin)).trainers.append(
            f"{tr.task}/{tr.backend}/{tr.algorithm}"
        )
    for task in get_tasks().values():  # the task's command is its owner's
        infos.setdefault(task.owner, PluginInfo(task.owner)).commands.append(f"train {task.name}")
    for name, cmds in (commands or {}).items():
        infos.setdefault(name, PluginInfo(name)).commands.extend(cmds)
    for name, lines in task_problems().items():
        infos.setdefault(name, PluginInfo(name)).warnings.extend(lines)
    for info in infos.values():
        info.commands = sorted(set(info.commands))
    return sorted(infos.values(), key=lambda i: i.name)
