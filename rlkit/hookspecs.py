"""The plugin hooks. A plugin is a module (or package) named by an entry point in the ``rlkit``
group that implements some of these with ``@rlkit.hookimpl``. Each hook gets a ``register``
callback, so a plugin reads like a list of what it adds (the simonw/llm pattern)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from rlkit.registry import EnvSpec, Exercise, TaskSpec, TrainerSpec

hookspec = pluggy.HookspecMarker("rlkit")
hookimpl = pluggy.HookimplMarker("rlkit")


@hookspec
def register_exercises(register: Callable[[Exercise], None]) -> None:
    """Register exercises: ``register(Exercise(name=..., functions=..., ...))``."""


@hookspec
def register_envs(register: Callable[[EnvSpec], None]) -> None:
    """Register environments: ``register(EnvSpec(name=..., factory="module:callable"))``."""


@hookspec
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Declare the tasks this plugin owns: ``register(TaskSpec("cartpole", "sb3", "ppo",
    help=...))`` makes sb3/ppo what ``rlkit train cartpole`` runs when no ``--backend`` or
    ``--algo`` is given, whatever other plugins add to the task."""


@hookspec
def register_trainers(register: Callable[[TrainerSpec], None]) -> None:
    """Register trainers: ``register(TrainerSpec(task, backend, factory, algorithms=(...),
    settings="pkg.settings:MySettings", exercises=(...)))``. ``rlkit train TASK`` is built from
    them (see ``rlkit.session``); a trainer for an existing task adds an algorithm to it (the
    task's default stays its owner's: ``register_tasks``)."""


@hookspec
def register_commands(cli: click.Group, train: click.Group) -> None:
    """Add click commands: to ``cli`` (``rlkit X``) or to ``train`` (``rlkit train X``; a
    registered trainer needs none: its task's command is generated)."""
