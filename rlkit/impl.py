"""Pick an implementation of the exercise functions: the reference solutions, or the student's
own files. Trainers build their Objectives from whatever this returns, which is how a student's
``ppo_clip_loss`` ends up training CartPole."""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rlkit.errors import NotImplementedExercise, RlkitError, UsageError
from rlkit.settings import IMPLS

#: what a student reads where the reference is not installed (theirs is the --path)
STUDENT_HINT = "; students pass --path to your workspace"


def load_exercise_functions(
    exercise: str, impl: str = "solution", path: Path | None = None
) -> SimpleNamespace:
    """The functions of one exercise (e.g. ``ppo``) as a namespace.

    ``impl="solution"``: the reference, from the instructor's distribution
    (``rlkit-solutions``); where only the student's install is, one line says how to get it
    (``rlkit.registry.ReferenceMissing``).

    ``impl="student"`` imports ``<path>/<exercise>.py`` (default: the current folder) and wraps
    each function so that a stub still raising ``NotImplementedError``, or a function that
    crashes, stops the run with one line naming the exercise to fix.
    """
    from rlkit.plugins import get_exercises

    exercises = get_exercises()
    if exercise not in exercises:
        from rlkit.plugins import broken

        hint = f"; broken plugins: {', '.join(broken)} (see `rlkit plugins`)" if broken else ""
        known = ", ".join(exercises) or "none"
        raise UsageError(f"unknown exercise {exercise!r} (known: {known}){hint}")
    spec = exercises[exercise]
    if impl == "solution":
        if spec.solution is None:
            raise RlkitError(
                f"{exercise} registers no reference solution; pass --path to your workspace"
            )
        module = spec.reference(STUDENT_HINT)
        return SimpleNamespace(**{f: getattr(module, f) for f in spec.functions})
    if impl != "student":
        raise UsageError(f"--impl must be one of {', '.join(IMPLS)}, not {impl!r}")
    folder = Path(path) if path is not None else Path.cwd()
    file = folder / f"{exercise}.py"
    if not file.is_file():
        raise UsageError(
            f"{file} not found: create a workspace with `rlkit init DIR` and pass --path DIR"
        )
    module = _import_file(file, exercise)
    functions = {}
    for name in spec.functions:
        fn = getattr(module, name, None)
        if not callable(fn):
            raise RlkitError(f"{file} has no function {name}(); the exercise needs it")
        functions[name] = _guarded(fn, exercise, name, str(file))
    return SimpleNamespace(**functions)


def _import_file(file: Path, exercise: str) -> Any:
    name = f"rlkit_student_{exercise}"
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise RlkitError(
            f"{file}:{exc.lineno}: syntax error ({exc.msg}); fix it, then `rlkit check {exercise}`"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the student's module failed at import
        raise RlkitError(
            f"{file} failed to import ({type(exc).__name__}: {exc}); "
            f"fix it, then `rlkit check {exercise}`"
        ) from None
    return module


def _guarded(fn: Callable[..., Any], exercise: str, name: str, file: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise NotImplementedExercise(exercise, name, file) from None
        except RlkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - one line, naming what to fix
            raise RlkitError(
                f"your {exercise}.{name} raised {type(exc).__name__}: {exc}; "
                f"run `rlkit check {exercise}` for a precise diagnosis"
            ) from None

    return call
