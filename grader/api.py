"""What the CLI, notebooks and tests call.

* ``check_workspace(path)``: the student's files, each exercise in the sandbox (``rlkit check``).
* ``check_module(exercise, module)``: in-process, for trusted code (a notebook cell that just
  defined the functions, the mistakes suite, an instructor's quick look).
* ``regenerate`` / ``verify``: the stored vectors from the reference solutions.

Every path grades from the stored vectors, so none of them needs the reference solutions (or
torch in the parent).
"""

from __future__ import annotations

import functools
import importlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grader import store
from grader.judges import judge, recognize
from grader.model import HIDDEN, PUBLIC, CallData, CheckData, ExerciseVectors, Outcome
from grader.report import CheckResult, ExerciseReport, Report

BUNDLE_DIR = "checks"
MANIFEST = "manifest.json"


def select_exercises(names: Iterable[str] = ()) -> list[Any]:
    """Registered exercises by name (all, in course order, when ``names`` is empty)."""
    from rlkit.errors import UsageError
    from rlkit.plugins import get_exercises

    known = get_exercises()
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown exercise {unknown[0]!r}; known: {', '.join(known)}")
    return [known[n] for n in names] if names else list(known.values())


def vectors_stem(exercise: Any, bundle: Path | None = None, hidden: bool = False) -> Path:
    """Where an exercise's vectors are: the student bundle's ``checks/`` first, else beside
    the installed checks module. For hidden checks (instructors) the installed ones come
    first: a bundle holds the public checks only."""
    local = None if bundle is None else Path(bundle) / BUNDLE_DIR / exercise.name
    try:
        package = store.package_vectors_stem(exercise.checks)
    except FileNotFoundError:
        package = None  # a bundle can still be checked without the course's checks installed
    for stem in (package, local) if hidden else (local, package):
        if stem is not None and store.exists(stem):
            return stem
    raise FileNotFoundError(f"no stored vectors for {exercise.name}")


@functools.lru_cache(maxsize=16)
def _load(stem: str, mtime_ns: int) -> ExerciseVectors:
    return store.load(Path(stem))


def load_vectors(
    exercise: Any, bundle: Path | None = None, hidden: bool = False
) -> ExerciseVectors:
    """The exercise's vectors (read once per file version; treat them as read-only)."""
    from rlkit.errors import RlkitError

    try:
        stem = vectors_stem(exercise, bundle, hidden)
        json_file = stem.with_name(stem.name + store.SUFFIX_JSON)
        return _load(str(stem), json_file.stat().st_mtime_ns)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise RlkitError(
            f"no usable checks for {exercise.name} ({exc}); an instructor regenerates them "
            "with `rlkit vectors --regenerate`"
        ) from None


# ----------------------------------------------------------------------------- grading


def grade(
    vectors: ExerciseVectors,
    checks: Sequence[CheckData],
    outcomes: Sequence[Sequence[Outcome | None]],
    problem: str | None = None,
) -> ExerciseReport:
    """Judge each check on its outcomes (one list per check, one outcome per call); a
    ``problem`` (the file is missing, does not import, ...) fails every check with that line."""
    report = ExerciseReport(vectors.exercise, problem=problem)
    for check, got in zip(checks, outcomes):
        mistake = None
        if problem is not None:
            passed, message = False, problem
        else:
            verdict = judge(check, list(got), vectors.arrays)
            passed, message = verdict.passed, verdict.message
            mistake = None if passed else recognize(check, list(got))
            if mistake is not None:
                message = (
                    f"{message.rstrip('. ')}. Looks like a classic mistake: "
                    f"{vectors.mistakes[mistake]}"
                )
        points = check.points if passed else 0
        report.checks.append(
            CheckResult(
                check.name,
                passed,
                points,
                check.points,
                message,
                check.function,
                check.visibility,
                misconception=mistake,
            )
        )
    return report


def _split(
    checks: Sequence[CheckData], flat: Sequence[Outcome | None]
) -> list[list[Outcome | None]]:
    out, i = [], 0
    for check in checks:
        out.append(list(flat[i : i + len(check.calls)]))
        i += len(check.calls)
    return out


def check_module(
    exercise: str,
    module: Any,
    visibility: str = PUBLIC,
    functions: Sequence[str] | None = None,
    bundle: Path | None = None,
) -> ExerciseReport:
    """Grade trusted code in this process: ``module`` is anything with the exercise's functions
    as attributes (a module, a namespace) or a mapping name → function."""
    from grader.worker import execute_calls

    vectors = load_vectors(select_exercises([exercise])[0], bundle)
    checks = vectors.select(visibility, list(functions) if functions else None)
    unique, where = _unique([c for check in checks for c in check.calls])
    metas = execute_calls(module, [c.request() for c in unique], vectors.arrays)
    ran = [Outcome.from_meta(*m) for m in metas]
    return grade(vectors, checks, _split(checks, [ran[i] for i in where]))


def check_function(exercise: str, function: Any, visibility: str = PUBLIC) -> ExerciseReport:
    """Grade one function (e.g. from a notebook cell): ``check_function("ppo", gae)``."""
    return check_module(exercise, {function.__name__: function}, visibility, [function.__name__])


def _unique(calls: Sequence[CallData]) -> tuple[list[CallData], list[int]]:
    """Calls with identical requests run once: the unique calls, and where each call maps."""
    seen: dict[str, int] = {}
    unique: list[CallData] = []
    where = []
    for call in calls:
        key = json.dumps(call.request(), sort_keys=True)
        if key not in seen:
            seen[key] = len(unique)
            unique.append(call)
        where.append(seen[key])
    return unique, where


def check_workspace(
    path: Path | str = ".",
    exercises: Iterable[str] = (),
    visibility: str = PUBLIC,
    limits: Mapping[str, float] | None = None,
) -> Report:
    """Grade the student's ``<path>/<exercise>.py`` files, each exercise in its own sandboxed
    process, all exercises at once."""
    from grader.sandbox import Job, Sandbox
    from rlkit.errors import RlkitError, UsageError

    start = time.perf_counter()
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(
            f"{folder} is not a folder; pass --path to your workspace "
            "(create one with `rlkit init DIR`)"
        )
    selected = select_exercises(exercises)
    if not any((folder / f"{ex.name}.py").is_file() for ex in selected):
        names = ", ".join(f"{ex.name}.py" for ex in selected)
        raise UsageError(
            f"{folder} has none of {names}; pass --path to your workspace "
            "(create one with `rlkit init DIR`)"
        )
    with Sandbox(limits) as sandbox:  # it starts loading torch now, while we prepare the jobs
        plans = []
        jobs = []
        broken: list[ExerciseReport] = []
        for ex in selected:
            try:
                vectors = load_vectors(ex, folder, hidden=visibility == HIDDEN)
            except RlkitError as exc:  # one broken exercise must not stop the others
                broken.append(ExerciseReport(ex.name, problem=exc.message))
                continue
            checks = vectors.select(visibility)
            file = folder / f"{ex.name}.py"
            unique, where = _unique([c for check in checks for c in check.calls])
            plans.append((ex, vectors, checks, file, where))
            if file.is_file():
                jobs.append(Job(ex.name, file, unique, vectors.arrays))
        results = sandbox.run(jobs)
    report = Report(exercises=broken)
    for ex, vectors, checks, file, where in plans:
        if ex.name not in results:
            problem = f"{file} not found: create it with `rlkit init DIR` (or pass --path)"
            report.exercises.append(grade(vectors, checks, [[] for _ in checks], problem))
            continue
        result = results[ex.name]
        flat = [result.outcomes[i] for i in where]
        report.exercises.append(grade(vectors, checks, _split(checks, flat), result.problem))
    order = [ex.name for ex in selected]
    report.exercises.sort(key=lambda e: order.index(e.name))
    report.seconds = time.perf_counter() - start
    return report


def check_workspaces(
    paths: Sequence[Path | str],
    exercises: Iterable[str] = (),
    visibility: str = PUBLIC,
    limits: Mapping[str, float] | None = None,
    sandbox: str = "auto",
    jobs: int | None = None,
) -> Iterator[tuple[int, Report]]:
    """Grade many workspaces (a class): yields ``(index into paths, Report)`` as each one
    finishes, in any order. A workspace that cannot be graded at all (not a folder, none of the
    files) gets a Report whose exercises all carry that one-line problem, never an exception."""
    from rlkit.errors import RlkitError

    names = list(exercises)
    select_exercises(names)  # an unknown exercise name stops the batch before it starts
    for i, path in enumerate(paths):
        try:
            report = check_workspace(path, names, visibility, limits)
        except RlkitError as exc:
            report = _unreadable(names, visibility, exc.message)
        yield i, report


def _unreadable(names: Sequence[str], visibility: str, problem: str) -> Report:
    """A Report for a workspace that could not be graded: every selected exercise fails with
    ``problem`` (with its checks and max points, so a class's totals stay comparable)."""
    from rlkit.errors import RlkitError

    report = Report()
    for ex in select_exercises(names):
        try:
            vectors = load_vectors(ex, hidden=visibility == HIDDEN)
        except RlkitError as exc:
            report.exercises.append(ExerciseReport(ex.name, problem=exc.message))
            continue
        checks = vectors.select(visibility)
        report.exercises.append(grade(vectors, checks, [[] for _ in checks], problem))
    return report


# ----------------------------------------------------------------------------- vectors


#: the course's classic mistakes and alternative answers live with its tests (source tree)
MISTAKES_DIR = Path(__file__).resolve().parent.parent / "tests" / "mistakes"


def mistakes_suite(exercise: str) -> Any | None:
    """``tests/mistakes/<exercise>_mistakes.py`` (MISTAKES, ALTERNATIVES), if present."""
    import importlib.util

    file = MISTAKES_DIR / f"{exercise}_mistakes.py"
    if not file.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"rlkit_mistakes_{exercise}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_vectors(exercise: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Vectors for one registered exercise, from its reference solution (needs torch)."""
    from rlkit.errors import RlkitError

    if exercise.solution is None:
        raise RlkitError(
            f"{exercise.name} has no reference solution installed; vectors are generated from it"
        )
    reference = importlib.import_module(exercise.solution)
    checks = store.load_checks(exercise.checks)
    suite = mistakes_suite(exercise.name)
    mistakes = list(getattr(suite, "MISTAKES", [])) if suite is not None else []
    return store.generate(exercise.name, exercise.functions, checks, reference, mistakes)


def regenerate(names: Iterable[str] = ()) -> list[tuple[Path, int]]:
    """Rewrite the stored vectors of the given (default: all) exercises; returns each file
    written with the number of classic mistakes its feedback can name."""
    written = []
    for ex in select_exercises(names):
        doc, arrays = build_vectors(ex)
        stem = store.package_vectors_stem(ex.checks)
        store.write(doc, arrays, stem)
        written.append((stem.with_name(stem.name + store.SUFFIX_JSON), len(doc["mistakes"])))
    return written


def verify(names: Iterable[str] = ()) -> dict[str, list[str]]:
    """Exercise → what is stale in its stored vectors (empty list: up to date)."""
    stale = {}
    for ex in select_exercises(names):
        stem = store.package_vectors_stem(ex.checks)
        if not store.exists(stem):
            stale[ex.name] = ["no stored vectors"]
            continue
        stale[ex.name] = store.differences(store.read_raw(stem), build_vectors(ex))
    return stale


__all__ = [
    "HIDDEN",
    "PUBLIC",
    "check_function",
    "check_module",
    "check_workspace",
    "regenerate",
    "verify",
]
