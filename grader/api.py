"""What the CLI, notebooks and tests call.

* ``check_workspace(path)``: the student's files, each exercise in the sandbox (``rlkit check``).
* ``check_module(exercise, module)``: in-process, for trusted code (a notebook cell that just
  defined the functions, the mistakes suite, an instructor's quick look).
* ``regenerate`` / ``verify``: the stored vectors from the reference solutions.

Every path grades from the stored vectors, so none of them needs the reference solutions (or
torch in the parent). The public checks' vectors are in the student's install; the hidden
checks' are the instructor's (``rlkit-solutions``, or drawn from a course key: ``rlkit_grader.hidden``).
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

from rlkit_grader import store
from rlkit_grader.judges import judge, recognize
from rlkit_grader.records import HIDDEN, PUBLIC, CallData, CheckData, ExerciseVectors, Outcome
from rlkit_grader.report import CheckResult, ExerciseReport, Report

BUNDLE_DIR = "checks"
HIDDEN_IMPORT_FAILED = (
    "your module imported for the public checks but failed to import (or crashed) when run "
    "for the hidden checks"
)
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
    """Where an exercise's public vectors are: the student bundle's ``checks/`` first, else
    beside the installed checks module. When grading hidden checks too (instructors) the
    installed ones come first. The hidden checks' own vectors: ``hidden_stem``."""
    local = None if bundle is None else Path(bundle) / BUNDLE_DIR / exercise.name
    try:
        package = store.package_vectors_stem(exercise.checks)
    except FileNotFoundError:
        package = None  # a bundle can still be checked without the course's checks installed
    for stem in (package, local) if hidden else (local, package):
        if stem is not None and store.exists(stem):
            return stem
    raise FileNotFoundError(f"no stored vectors for {exercise.name}")


def hidden_stem(exercise: Any) -> Path | None:
    """Where the built-in hidden checks' vectors are: beside ``Exercise.hidden``, in the
    instructor's distribution (ReferenceMissing, one line, where it is not installed); None
    for an exercise whose vectors beside its checks hold every check."""
    from rlkit.registry import ReferenceMissing

    if not getattr(exercise, "hidden", None):
        return None
    if not exercise.has(exercise.hidden):
        raise ReferenceMissing(exercise.missing("the hidden checks"))
    return store.package_vectors_stem(exercise.hidden)


def vector_parts(
    exercise: Any, bundle: Path | None = None, hidden: bool = False, hidden_set: Any = None
) -> list[Path]:
    """The stems an exercise's vectors are read from: the public part, then (``hidden``) the
    hidden set's part: built-in (``hidden_stem``) or drawn from a course key, computed from
    the reference when its cache is stale (``rlkit_grader.hidden``). Default: the active set."""
    public = vectors_stem(exercise, bundle, hidden)
    if not hidden:
        return [public]
    from rlkit_grader import hidden as hidden_sets

    chosen = hidden_set if hidden_set is not None else hidden_sets.active()
    if chosen.builtin:
        stem = hidden_stem(exercise)
        return [public] if stem is None else [public, stem]
    return [public, chosen.stem(exercise)]


def vectors_files(
    exercise: Any, bundle: Path | None = None, hidden: bool = False, hidden_set: Any = None
) -> list[Path]:
    """Every file an exercise's vectors are read from (to fingerprint them)."""
    return [
        stem.with_name(stem.name + suffix)
        for stem in vector_parts(exercise, bundle, hidden, hidden_set)
        for suffix in (store.SUFFIX_JSON, store.SUFFIX_NPZ)
    ]


@functools.lru_cache(maxsize=16)
def _load(parts: tuple[tuple[str, int], ...]) -> ExerciseVectors:
    """One exercise's vectors from its parts ((stem, mtime) each): public, [hidden]."""
    raws = [store.read_raw(Path(stem)) for stem, _ in parts]
    if len(raws) == 1:
        return store.from_json(*raws[0])
    return store.from_json(*store.merge(raws[0], raws[1]))


def load_vectors(
    exercise: Any, bundle: Path | None = None, hidden: bool = False, hidden_set: Any = None
) -> ExerciseVectors:
    """The exercise's vectors (read once per file version; treat them as read-only): the
    public checks', and with ``hidden`` the hidden checks' too, from ``hidden_set`` (a
    ``rlkit_grader.hidden.HiddenSet``; default: the active one, rlkit's built-in set unless a
    command chose a course key)."""
    from rlkit.errors import RlkitError

    try:
        parts = []
        for stem in vector_parts(exercise, bundle, hidden, hidden_set):
            json_file = stem.with_name(stem.name + store.SUFFIX_JSON)
            parts.append((str(stem), json_file.stat().st_mtime_ns))
        return _load(tuple(parts))
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
    ``problem`` (the file is missing, does not import, ...) fails every check with that line.
    A judge that raises (whatever the outcomes hold) fails its check only, with one line that
    says the grader could not judge the result and why; recognizing a mistake that raises
    names no mistake. A failed check's ``kind`` is what the grader observed
    (``rlkit_grader.report.failure_kind``): a refused or unjudgeable result counts as "wrong"."""
    from rlkit_grader.report import failure_kind

    report = ExerciseReport(vectors.exercise, problem=problem)
    for check, got in zip(checks, outcomes):
        mistake = None
        if problem is not None:
            passed, message = False, problem
        else:
            judged = False
            try:
                verdict = judge(check, list(got), vectors.arrays)
                passed, message, judged = verdict.passed, verdict.message, True
            except Exception as exc:  # noqa: BLE001 - one check's failure, never the batch's
                why = type(exc).__name__
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                why += f": {first}" if first else ""
                passed, message = False, f"the grader could not judge this result ({why})"
            if judged and not passed:
                try:
                    mistake = recognize(check, list(got))
                    explanation = None if mistake is None else vectors.mistakes[mistake]
                except Exception:  # noqa: BLE001 - no mistake named, the verdict stands
                    mistake = explanation = None
                if explanation is not None:
                    message = f"{message.rstrip('. ')}. Looks like a classic mistake: {explanation}"
        points = check.points if passed else 0
        kind = "" if passed else "problem" if problem is not None else failure_kind(list(got))
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
                kind=kind,
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
    from rlkit_grader.executor import execute_calls

    vectors = load_vectors(select_exercises([exercise])[0], bundle, hidden=visibility == HIDDEN)
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
        key = _key(call)
        if key not in seen:
            seen[key] = len(unique)
            unique.append(call)
        where.append(seen[key])
    return unique, where


def _key(call: CallData) -> str:
    return json.dumps(call.request(), sort_keys=True)


def _by_visibility(checks: Sequence[CheckData]) -> tuple[Any, Any]:
    """The unique calls of public checks, and those only hidden checks make: each as
    ``(calls, {request key: index})``."""
    public: dict[str, CallData] = {}
    for check in checks:
        if check.visibility == PUBLIC:
            for call in check.calls:
                public.setdefault(_key(call), call)
    hidden: dict[str, CallData] = {}
    for check in checks:
        if check.visibility != PUBLIC:
            for call in check.calls:
                if _key(call) not in public:
                    hidden.setdefault(_key(call), call)
    return tuple((list(d.values()), {k: i for i, k in enumerate(d)}) for d in (public, hidden))


def _workspace_problem(folder: Path, selected: Sequence[Any]) -> str | None:
    """Why ``folder`` cannot be graded at all (one line), or None."""
    if not folder.is_dir():
        return (
            f"{folder} is not a folder; pass --path to your workspace "
            "(create one with `rlkit init DIR`)"
        )
    if not any((folder / f"{ex.name}.py").is_file() for ex in selected):
        names = ", ".join(f"{ex.name}.py" for ex in selected)
        return (
            f"{folder} has none of {names}; pass --path to your workspace "
            "(create one with `rlkit init DIR`)"
        )
    return None


def _grade_workspace(
    box: Any, folder: Path, selected: Sequence[Any], visibility: str, own_checks: bool = True
) -> Report:
    """One student's workspace in a running sandbox: the files are read here (never followed
    through links) and their sources sent to the sandbox; verdicts are computed here.
    ``own_checks``: a student bundle's ``checks/`` may supply the vectors (self-checks); never
    when grading, where a submission could ship its own expected values."""
    from rlkit.errors import RlkitError
    from rlkit_grader.sandbox import Job, JobResult, read_source, submission_files

    start = time.perf_counter()
    plans = []
    jobs = []
    report = Report()
    files = submission_files(folder)
    for ex in selected:
        try:
            bundle = folder if own_checks else None
            vectors = load_vectors(ex, bundle, hidden=visibility == HIDDEN)
        except RlkitError as exc:  # one broken exercise must not stop the others
            report.exercises.append(ExerciseReport(ex.name, problem=exc.message))
            continue
        checks = vectors.select(visibility)
        file = folder / f"{ex.name}.py"
        # Calls only hidden checks make run in a worker of their own: their inputs never share
        # a process with the public calls, whose text the student sees.
        public, hidden = _by_visibility(checks)
        problem = None
        if not (file.exists() or file.is_symlink()):
            problem = (
                f"{file} not found: `rlkit init {folder}` adds its stub and keeps your "
                "other files (or pass --path to your workspace)"
            )
        else:
            try:
                files[file.name] = read_source(file)
            except ValueError as exc:
                problem = str(exc)
        plans.append((ex, vectors, checks, public, hidden, problem))
        if problem is None:
            for name, (calls, _) in ((ex.name, public), (f"{ex.name}#hidden", hidden)):
                if calls:
                    jobs.append(Job(name, file, calls, vectors.arrays, files, module=ex.name))
    results = box.run(jobs)
    empty = JobResult()
    for ex, vectors, checks, public, hidden, problem in plans:
        if problem is not None:
            report.exercises.append(grade(vectors, checks, [[] for _ in checks], problem))
            continue
        ran = [results.get(ex.name, empty), results.get(f"{ex.name}#hidden", empty)]
        flat = []
        for check in checks:
            for call in check.calls:
                key = _key(call)
                side = 0 if key in public[1] else 1
                outcomes, index = ran[side].outcomes, (public, hidden)[side][1][key]
                flat.append(outcomes[index] if index < len(outcomes) else None)
        # The hidden worker's text never reaches the student: a module that failed only there
        # gets the grader's own line.
        result_problem = ran[0].problem
        if result_problem is None and ran[1].problem is not None:
            result_problem = ran[1].problem if ran[1].sandbox_failed else HIDDEN_IMPORT_FAILED
        exercise = grade(vectors, checks, _split(checks, flat), result_problem)
        exercise.sandbox_failed = any(r.sandbox_failed for r in ran)
        report.exercises.append(exercise)
    order = [ex.name for ex in selected]
    report.exercises.sort(key=lambda e: order.index(e.name))
    report.protection = box.protection
    report.seconds = time.perf_counter() - start
    return report


def check_workspace(
    path: Path | str = ".",
    exercises: Iterable[str] = (),
    visibility: str = PUBLIC,
    limits: Mapping[str, float] | None = None,
    sandbox: str = "auto",
) -> Report:
    """Grade the student's ``<path>/<exercise>.py`` files, each exercise in its own sandboxed
    worker, all exercises at once. ``sandbox``: ``"auto"`` (bubblewrap when it can start,
    else process isolation), ``"bwrap"`` (RlkitError naming what to install when it cannot)
    or ``"none"``; ``Report.protection`` says what was in force."""
    from rlkit.errors import UsageError
    from rlkit_grader.sandbox import Sandbox

    start = time.perf_counter()
    folder = Path(path)
    selected = select_exercises(exercises)
    problem = _workspace_problem(folder, selected)
    if problem:
        raise UsageError(problem)
    with Sandbox(limits, sandbox) as box:  # it starts loading torch now, while we prepare
        report = _grade_workspace(box, folder, selected, visibility)
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
    finishes, in any order. ``jobs`` sandboxes (default: one per core) each import torch once
    and then grade student after student. A workspace that cannot be graded at all (not a
    folder, none of the files) gets a Report whose exercises all carry that one-line problem,
    never an exception; ``sandbox="bwrap"`` raises RlkitError before the first one when no
    sandbox can start."""
    import os
    import queue
    import threading

    from rlkit_grader.sandbox import Sandbox, SandboxFailed

    names = list(exercises)
    selected = select_exercises(names)  # an unknown exercise name stops the batch at once
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(paths)):
        todo.put(i)
    done: queue.Queue[tuple[int, Report | BaseException]] = queue.Queue()
    stop = threading.Event()
    workers = max(1, min(jobs or os.cpu_count() or 1, len(paths)))
    boxes: list[Any] = []
    lock = threading.Lock()

    def new_box() -> Any:
        box = Sandbox(limits, sandbox)
        with lock:
            boxes.append(box)
        return box

    def serve() -> None:
        box = None
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            folder = Path(paths[i])
            try:
                problem = _workspace_problem(folder, selected)
                if problem:
                    done.put((i, _unreadable(names, visibility, problem)))
                    continue
                if box is None or box.broken:
                    box = new_box()
                    box.ready()
                report = _grade_workspace(box, folder, selected, visibility, own_checks=False)
                done.put((i, report))
            except SandboxFailed as exc:
                failed = _unreadable(names, visibility, str(exc))
                for exercise in failed.exercises:
                    exercise.sandbox_failed = True  # observed here: graded again next run
                done.put((i, failed))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                done.put((i, exc))
                stop.set()

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    try:
        for _ in range(len(paths)):
            i, result = done.get()
            if isinstance(result, BaseException):
                raise result
            yield i, result
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=0.1)
        with lock:
            for box in boxes:
                box.close()


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


def mistakes_suite(exercise: Any) -> Any | None:
    """The exercise's catalogue of classic mistakes and correct alternatives (a module with
    ``MISTAKES`` and ``ALTERNATIVES``), as registered in ``Exercise.mistakes``; None if it has
    none. ``exercise`` is a registered Exercise or its name. The catalogue is the
    instructor's (its alternatives are answers): ReferenceMissing where it is not installed."""
    from rlkit.registry import ReferenceMissing, resolve

    if isinstance(exercise, str):
        exercise = select_exercises([exercise])[0]
    if not exercise.mistakes:
        return None
    if not exercise.has(exercise.mistakes):
        raise ReferenceMissing(exercise.missing("the classic mistakes"))
    return resolve(exercise.mistakes)


def output_names(exercise: Any) -> dict[str, tuple[str, ...]]:
    """function → the documented names of its outputs (``OUTPUTS`` in the checks module)."""
    return dict(getattr(importlib.import_module(exercise.checks), "OUTPUTS", {}))


def _generation_inputs(exercise: Any) -> tuple[Any, list[Any], list[Any], dict[str, Any]]:
    """(reference, checks, mistakes, outputs): what vectors are generated from (needs torch;
    ReferenceMissing, one line, in a student's install)."""
    reference = exercise.reference()
    checks = store.load_checks(exercise.checks)
    suite = mistakes_suite(exercise)
    mistakes = list(getattr(suite, "MISTAKES", [])) if suite is not None else []
    return reference, checks, mistakes, output_names(exercise)


def build_hidden(exercise: Any, key: bytes | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hidden checks' vectors of one exercise: built-in (``key`` None, each check seeded
    by its name) or drawn from a course key, with the reference's and the mistakes' outcomes."""
    reference, checks, mistakes, outputs = _generation_inputs(exercise)
    hidden = [(i, c) for i, c in enumerate(checks) if c.visibility == HIDDEN]
    return store.generate(
        exercise.name,
        exercise.functions,
        [c for _, c in hidden],
        reference,
        mistakes,
        outputs,
        key=key,
        prefix="h",
        index=[i for i, _ in hidden],
    )


def build_vectors(exercise: Any) -> list[tuple[Path, dict[str, Any], dict[str, np.ndarray]]]:
    """The stored vectors of one registered exercise, from its reference solution (needs
    torch), as the files they go to: ``(stem, doc, arrays)`` for the public checks (beside
    the checks module) and for the built-in hidden checks (beside ``Exercise.hidden``, the
    instructor's); one file of every check for an exercise that names no ``hidden``."""
    reference, checks, mistakes, outputs = _generation_inputs(exercise)
    public_stem = store.package_vectors_stem(exercise.checks)
    args = (exercise.name, exercise.functions)
    if not exercise.hidden:
        return [(public_stem, *store.generate(*args, checks, reference, mistakes, outputs))]
    public = [c for c in checks if c.visibility == PUBLIC]
    stem = hidden_stem(exercise)
    assert stem is not None
    return [
        (public_stem, *store.generate(*args, public, reference, mistakes, outputs)),
        (stem, *build_hidden(exercise)),
    ]


def regenerate(names: Iterable[str] = ()) -> list[tuple[Path, int]]:
    """Rewrite the stored vectors of the given (default: all) exercises; returns each file
    written with the number of classic mistakes its feedback can name."""
    written = []
    for ex in select_exercises(names):
        for stem, doc, arrays in build_vectors(ex):
            store.write(doc, arrays, stem)
            written.append((stem.with_name(stem.name + store.SUFFIX_JSON), len(doc["mistakes"])))
    return written


def verify(names: Iterable[str] = ()) -> dict[str, list[str]]:
    """Exercise → what is stale in its stored vectors, public and built-in hidden parts
    (empty list: up to date)."""
    stale = {}
    for ex in select_exercises(names):
        stale[ex.name] = []
        for stem, doc, arrays in build_vectors(ex):
            if not store.exists(stem):
                stale[ex.name].append(f"no stored vectors at {stem}")
                continue
            stale[ex.name] += store.differences(store.read_raw(stem), (doc, arrays))
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
