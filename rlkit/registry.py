"""What plugins register: small frozen records that name things by import path, so that
registering costs nothing and heavy modules (torch, SB3, TRL) load only when used."""

from __future__ import annotations

import importlib
import importlib.util
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


class ReferenceMissing(RlkitError):
    """What needs the instructor's distribution of an exercise (its reference solution,
    classic mistakes, hidden checks' vectors) where only the student's install is: one line
    saying how to get it."""


@dataclass(frozen=True)
class Exercise:
    """An exercise, one self-contained unit: the functions students write, their stub, the
    reference solution, the checks, and the catalogue of classic mistakes and correct
    alternatives. Every part is named by import path (nothing loads at registration).

    ``name`` is the file students edit (``ppo`` → ``ppo.py``) and leads everywhere: the stub
    ``rlkit_exercises.ppo`` and the public checks ``rlkit_grader.checks.ppo`` (with their public
    vectors beside them, and any judge specific to the exercise, named in a check as
    ``"pkg.module:function"``) are in the student's install; the solution
    ``rlkit_solutions.ppo``, the hidden checks' vectors beside the module named by ``hidden``
    and the mistakes ``rlkit_solutions.mistakes.ppo`` (``MISTAKES``, ``ALTERNATIVES``) are in
    the instructor's distribution ``instructor`` (here ``rlkit-solutions``). See
    grader/README.md.
    """

    name: str
    functions: tuple[str, ...]
    stub: str
    solution: str | None
    checks: str
    title: str = ""
    order: int = 100
    plugin: str = ""
    #: module with ``MISTAKES: list[rlkit_grader.spec.Mistake]`` and ``ALTERNATIVES: list[Alternative]``
    mistakes: str | None = None
    #: the module beside which the hidden checks' vectors are stored (``<module>.vectors.json``
    #: + ``.npz``), in the instructor's distribution; None: the vectors beside ``checks`` hold
    #: every check, hidden ones included (one distribution for students and instructors)
    hidden: str | None = None
    #: the distribution instructors install for the parts above (``rlkit-solutions``), and
    #: where it is in a checkout of its repository (``solutions``): the one line a student's
    #: install gives when something needs them
    instructor: str = ""
    instructor_path: str = ""
    #: other exercises whose files this one imports (``rlhf.py`` does ``from ppo import
    #: ppo_clip_loss``): graded beside it, so ``rlkit grade subs/ rlhf`` stages ``ppo.py`` too
    requires: tuple[str, ...] = ()

    def missing(self, what: str = "the reference solution") -> str:
        """``"the reference solution of ppo is not installed: instructors `pip install
        rlkit-solutions` (from a checkout: `pip install -e solutions`)"``."""
        dist = self.instructor or f"the {self.plugin or self.name} plugin's instructor package"
        where = f" (from a checkout: `pip install -e {self.instructor_path}`)"
        verb = "are" if what.endswith("s") else "is"
        return f"{what} of {self.name} {verb} not installed: instructors `pip install {dist}`" + (
            where if self.instructor_path else ""
        )

    def has(self, module: str | None) -> bool:
        """Is ``module`` (the solution, the mistakes, the hidden vectors' module) installed?"""
        if not module:
            return False
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # its parent package is absent
            return False

    def reference(self, student_hint: str = "") -> Any:
        """The reference solution module; ReferenceMissing (one line, ``student_hint``
        appended) where it is not installed."""
        if not self.has(self.solution):
            raise ReferenceMissing(self.missing() + student_hint)
        return importlib.import_module(self.solution)  # type: ignore[arg-type]


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
class TaskSpec:
    """A task (``rlkit train NAME``) as its owner declares it: which trainer runs when no
    ``--backend``/``--algo`` is given, and the command's help. The plugin that registers it
    owns the task; any plugin may add trainers to it (``TrainerSpec(NAME, ...)``), and
    installing one never changes the default, whatever order plugins load in.

    ``backend`` and ``algorithm`` name the default trainer (``algorithm`` empty: the first
    the owner registers on that backend). A task nobody declares is owned by the plugin
    whose trainers give it a ``task_help``, else by the only plugin with trainers for it;
    where that is ambiguous, ``rlkit plugins`` says so.
    """

    name: str
    backend: str
    algorithm: str = ""
    help: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class TrainerSpec:
    """A trainer: one task, one backend, the algorithms it offers, e.g. (``cartpole``,
    ``native``, ``ppo``). The registry keeps one entry per (task, backend, algorithm), so a
    plugin can add an algorithm to another plugin's task (``cartpole --algo dqn``).

    ``settings`` names the settings dataclass (a light module: no torch) whose fields become
    ``rlkit train TASK``'s options (see ``rlkit.settings``); ``exercises`` are the exercises
    whose functions the trainer calls (``--path`` checks them before training);
    ``plot_metrics`` are drawn in ``curves.png`` (the first two share the headline panel)
    against ``x_metric``; ``task_help`` is ``rlkit train TASK --help``'s text where the task's
    ``TaskSpec`` gives none (the owner's spec gives it).

    Which trainer runs by default is the task owner's choice (``TaskSpec``); a plugin adding
    an algorithm to another plugin's task registers only its TrainerSpecs.
    """

    task: str
    backend: str
    factory: Ref
    description: str = ""
    algorithms: tuple[str, ...] = field(default_factory=tuple)
    plugin: str = ""
    settings: Ref | None = None
    exercises: tuple[str, ...] = field(default_factory=tuple)
    plot_metrics: tuple[str, ...] = field(default_factory=tuple)
    x_metric: str = "step"
    task_help: str = ""

    @property
    def algorithm(self) -> str:
        """The (first) algorithm; a trainer that names none trains "its task's" algorithm."""
        return self.algorithms[0] if self.algorithms else self.task

    def load(self) -> Any:
        """The Trainer class."""
        return resolve(self.factory)

    def settings_class(self) -> type:
        """The settings dataclass (an empty one when the trainer registered none)."""
        if self.settings is None:
            from rlkit.settings import NoSettings

            return NoSettings
        return resolve(self.settings)
