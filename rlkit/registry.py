"""What plugins register: small frozen records that name things by import path, so that
registering costs nothing and heavy modules (torch, SB3, TRL) load only when used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlkit.errors import RlkitError

#: A callable, or an import path "package.module:attribute" to load it lazily.
Ref = str | Callable[..., Any]


def resolve(ref: Ref) -> Any:
    """Load ``"package.module:attr"`` (or return a callable unchanged)."""
    if not isinstance(ref, str):
        return ref
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise RlkitError(
            f"cannot load {ref}: missing module {missing!r}; "
            "install the extra it needs, e.g. `pip install 'rlkit[all]'`."
        ) from exc
    except AttributeError as exc:
        raise RlkitError(f"cannot load {ref}: {exc}") from exc
    return obj


@dataclass(frozen=True)
class Exercise:
    """An exercise: a module of functions students write, with its reference and its checks.

    ``name`` is the file students edit (``ppo`` → ``ppo.py``) and leads everywhere: the stub
    ``exercises.ppo``, the solution ``solutions.ppo``, the checks, the notebook.
    """

    name: str
    functions: tuple[str, ...]
    stub: str
    solution: str | None
    checks: str
    title: str = ""
    order: int = 100
    plugin: str = ""


@dataclass(frozen=True)
class EnvSpec:
    """An environment a trainer can use; ``factory(**kwargs)`` returns a gymnasium-API Env."""

    name: str
    factory: Ref
    description: str = ""
    plugin: str = ""

    def make(self, **kwargs: Any) -> Any:
        return resolve(self.factory)(**kwargs)


@dataclass(frozen=True)
class TrainerSpec:
    """A trainer for one task on one backend, e.g. (``cartpole``, ``sb3``)."""

    task: str
    backend: str
    factory: Ref
    description: str = ""
    algorithms: tuple[str, ...] = field(default_factory=tuple)
    plugin: str = ""

    def load(self) -> Any:
        """The Trainer class."""
        return resolve(self.factory)
