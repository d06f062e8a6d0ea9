"""Grading a class (``rlkit grade``): discover the submissions, grade the ones not graded yet,
keep one record per student as each finishes, then export grades, feedback and the class report.

Records live in a folder next to the output (``.<out stem>.grading/<student>.json``), each
written whole (temporary file + rename), so Ctrl-C never leaves half a result, and a re-run
skips every student whose files (and the checks) are unchanged since their record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkit_grader.submissions import Submission, discover, safe_name, stage

FORMATS = ("csv", "json", "gradescope")
#: ``--out`` suffix → format (a Gradescope export is a folder, or one ``results.json``)
SUFFIXES = {".csv": "csv", ".json": "json"}
#: what a report says when the grading engine does not name its isolation
UNNAMED_PROTECTION = "separate process with time and memory limits"
#: a record's protection when none of the student's files could run
NOTHING_RAN = "nothing ran (no file could be graded)"


def protection_label(text: str) -> str:
    """The protection in a few words (a CSV cell, Gradescope's output, the report's header):
    the full text (``Report.protection``, from the sandbox) is stated once per run."""
    text = str(text or "")
    if text.startswith("bubblewrap"):
        return "bubblewrap sandbox"
    if text.startswith("process isolation only"):
        failed = " (bubblewrap could not start here)" if "bubblewrap failed here" in text else ""
        return "no sandbox: process isolation only" + failed
    if text == NOTHING_RAN:
        return "nothing ran"
    return "process isolation" if text == UNNAMED_PROTECTION else (text.split(":")[0][:60] or "")


def out_format(out: Path, fmt: str | None) -> str:
    """The export's format from ``--format`` and ``--out``'s suffix; a suffix rlkit does not
    write (``grades.xlsx``) or one that contradicts ``--format`` is a usage error."""
    from rlkit.errors import UsageError

    suffix = out.suffix.lower()
    if fmt == "gradescope":
        if suffix not in ("", ".json"):
            raise UsageError(
                f"--out {out}: Gradescope results go to a folder (one <student>/results.json "
                "each) or to one results.json; pass a folder name or a .json file"
            )
        return fmt
    by_suffix = SUFFIXES.get(suffix)
    if by_suffix is None:
        what = f"the suffix {out.suffix}" if suffix else "no suffix"
        raise UsageError(
            f"--out {out} has {what}: rlkit grade writes .csv or .json grades (or a folder "
            "with --format gradescope); pass e.g. --out grades.csv"
        )
    if fmt is not None and fmt != by_suffix:
        raise UsageError(f"--format {fmt} but --out {out} ends in {out.suffix}; make them agree")
    return by_suffix


@dataclass
class Options:
    exercises: list[str] = field(default_factory=list)  # empty: all registered ones
    jobs: int | None = None
    limits: dict[str, float] = field(default_factory=dict)
    sandbox: str = "auto"  # passed to rlkit_grader.api.check_workspaces
    assignment: str | None = None
    #: grade only these students (folder names), even when unchanged; the others keep their
    #: records (``rlkit grade --student``)
    students: list[str] = field(default_factory=list)


@dataclass
class Layout:
    """Where one grading run writes (feedback and report default next to ``out``)."""

    out: Path
    format: str
    feedback: Path
    report: Path

    @classmethod
    def beside(
        cls, out: Path, fmt: str, feedback: Path | None = None, report: Path | None = None
    ) -> Layout:
        stem = out.stem if out.suffix else out.name
        return cls(
            out,
            fmt,
            feedback or out.with_name(f"{stem}-feedback"),
            report or out.with_name(f"{stem}-report"),
        )

    @property
    def records(self) -> Path:
        stem = self.out.stem if self.out.suffix else self.out.name
        return self.out.with_name(f".{stem}.grading")


@dataclass
class Course:
    """What the checks say about themselves: descriptions (safe to show for hidden checks)
    and the classic mistakes' explanations."""

    exercises: list[str]
    descriptions: dict[str, str]  # check name → description
    mistakes: dict[str, str]  # mistake name → explanation
    max_scores: dict[str, int]
    fingerprint: str  # changes when the checks or their vectors change
    #: the files read and staged for each student: the graded exercises' and those they import
    #: (``Exercise.requires``); only ``exercises`` are graded
    files: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, names: Sequence[str]) -> Course:
        from rlkit_grader.api import HIDDEN, load_vectors, select_exercises, vectors_files
        from rlkit_grader.hidden import active

        exercises = select_exercises(names)
        descriptions, mistakes, max_scores = {}, {}, {}
        digest = hashlib.sha256(active().label.encode())  # which hidden checks grade
        for ex in exercises:
            vectors = load_vectors(ex, hidden=True)
            checks = vectors.select(HIDDEN)
            descriptions.update({c.name: c.description for c in checks})
            mistakes.update(vectors.mistakes)
            max_scores[ex.name] = sum(c.points for c in checks)
            for file in vectors_files(ex, hidden=True):  # public and hidden parts
                with contextlib.suppress(OSError):
                    digest.update(file.read_bytes())
        names = [e.name for e in exercises]
        files = list(dict.fromkeys([*names, *(r for e in exercises for r in e.requires)]))
        return cls(names, descriptions, mistakes, max_scores, digest.hexdigest(), files)


# ----------------------------------------------------------------------------- records


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (never half a file, even on Ctrl-C)."""
    from rlkit.runs import written_whole

    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as partial:
        partial.write_text(text, encoding="utf-8")


def _apply_problems(report: Any, problems: Mapping[str, str]) -> None:
    """The staging problems (missing file, corrupt notebook, a symbolic link, ...) replace the
    engine's generic message: every check of that exercise fails with the one line that says
    why, and earns nothing."""
    for ex in report.exercises:
        problem = problems.get(ex.name)
        if problem is None:
            continue
        ex.problem = problem
        for check in ex.checks:
            check.passed, check.points, check.message, check.misconception = (
                False,
                0,
                problem,
                None,
            )
            check.kind = "problem"


def _sandbox_trouble(report: Any) -> bool:
    """Did grading fail for a reason outside the student's code (a sandbox killed by Ctrl-C,
    say)? Only the grader's own flag (``ExerciseReport.sandbox_failed``, set from what it
    observed) says so, never a message's text, which a submission can write. Such a result is
    kept for this run's export but graded again by the next run."""
    return any(getattr(ex, "sandbox_failed", False) is True for ex in report.exercises)


def make_record(
    submission: Submission, fingerprint: str, report: Any, problems: Mapping[str, str]
) -> dict[str, Any]:
    """One student's result: the fields of ``rlkit check --json`` plus what the class report
    and feedback need (visibility, function, misconception, failure kind, problem and its
    kind, the file handed in, sandbox_failed, protection, and a note when the submission was
    refused). A notebook's lines are said as Jupyter shows them (its cells), never as the
    ``.py`` module the grader made of it."""
    if _sandbox_trouble(report):
        fingerprint = "regrade:" + fingerprint
    _apply_problems(report, problems)
    exercises = []
    for ex in report.exercises:
        data = ex.to_json()
        sandbox_failed = getattr(ex, "sandbox_failed", False) is True
        data["problem"] = ex.problem
        data["problem_kind"] = _problem_kind(ex.problem, problems.get(ex.name), sandbox_failed)
        data["sandbox_failed"] = sandbox_failed
        file = submission.files.get(ex.name)
        data["file"] = file.name if file is not None and not file.is_symlink() else None
        data["checks"] = [
            {
                **c.to_json(),
                "function": c.function,
                "visibility": c.visibility,
                "misconception": getattr(c, "misconception", None),
                "kind": str(getattr(c, "kind", "") or ""),
            }
            for c in ex.checks
        ]
        cell_map = getattr(submission, "cells", {}).get(ex.name)
        if cell_map is not None:  # the student's notebook, in Jupyter's terms
            from rlkit_grader.submissions import in_notebook_terms

            if data["problem"]:
                data["problem"] = in_notebook_terms(data["problem"], ex.name, cell_map)
            for check in data["checks"]:
                check["message"] = in_notebook_terms(check["message"], ex.name, cell_map)
        exercises.append(data)
    kinds = sorted({f.suffix.lstrip(".") for f in submission.files.values()})
    nothing_ran = bool(problems) and all(ex.name in problems for ex in report.exercises)
    return {
        "student": submission.student,
        "score": report.score,
        "max_score": report.max_score,
        "exercises": exercises,
        "protection": getattr(report, "protection", "")
        or (NOTHING_RAN if nothing_ran else UNNAMED_PROTECTION),
        "files": kinds,
        "note": submission.note,
        "seconds": round(float(getattr(report, "seconds", 0.0)), 3),
        "graded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": fingerprint,
        "hidden_set": _hidden_set(),
    }


def _problem_kind(problem: str | None, staged: str | None, sandbox_failed: bool) -> str | None:
    """Why an exercise could not be graded, as the grader knows it (never read from text a
    submission can write): the staging's own kind (missing, refused, unreadable, syntax), the
    sandbox's failure ("grader"), else the module did not import ("import")."""
    if not problem:
        return None
    if staged is not None:
        return str(getattr(staged, "kind", "unreadable"))
    return "grader" if sandbox_failed else "import"


def _hidden_set() -> str:
    """Which hidden checks graded: ``builtin`` or ``key:<fingerprint>`` (rlkit_grader.hidden)."""
    from rlkit_grader.hidden import active

    return active().label


def read_record(path: Path) -> dict[str, Any] | None:
    """A record written by an earlier run, or None (unreadable or not a record: graded again).
    Records from versions without the ``sandbox_failed`` flag read as not failed (an old
    ``regrade:`` fingerprint still matches nothing, so such a student is graded once more)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str):
        return None
    exercises = data.get("exercises")
    if not isinstance(exercises, list) or not all(isinstance(ex, dict) for ex in exercises):
        return None
    for ex in exercises:
        ex["sandbox_failed"] = ex.get("sandbox_failed") is True
    return data


# ----------------------------------------------------------------------------- the loop


@dataclass
class Outcome:
    """What a run did: every current student's record (graded now or kept), and counts."""

    records: list[dict[str, Any]]
    course: Course
    graded: int
    skipped: int
    interrupted: bool = False
    #: with ``--student``: the other students whose files changed since their record (or who
    #: have none), not graded by this run
    stale: list[str] = field(default_factory=list)


Progress = Callable[[str, dict[str, Any] | None], None]


def _results(
    paths: Sequence[Path], options: Options, names: Sequence[str]
) -> Iterator[tuple[int, Any]]:
    """``(index into paths, Report or the exception that grading that student raised)``, one
    per path. The engine stops at the first exception without saying whose it was, so the
    students it had not yet answered are graded again, in order (one sandbox): the first of
    them not answered is the one whose grading raised; the rest go on in a new batch. Only
    ``RlkitError`` (no sandbox can start here, which is no student's doing) stops it all."""
    from rlkit.errors import RlkitError
    from rlkit_grader import api
    from rlkit_grader.records import HIDDEN

    def engine(left: list[int], jobs: int | None) -> Iterator[tuple[int, Any]]:
        return api.check_workspaces(
            [str(paths[i]) for i in left],
            names,
            HIDDEN,
            options.limits or None,
            sandbox=options.sandbox,
            jobs=jobs,
        )

    left, jobs = list(range(len(paths))), options.jobs
    while left:
        answered: list[int] = []
        ordered = jobs == 1 or len(left) == 1  # then the engine answers in order
        results = engine(left, jobs)
        try:
            for j, report in results:
                answered.append(left[j])
                yield left[j], report
            return
        except RlkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - one student's row, never the batch
            rest = [i for i in left if i not in answered]
            if ordered and answered == left[: len(answered)]:
                yield rest[0], exc
                left, jobs = rest[1:], options.jobs
            elif jobs != 1:
                left, jobs = rest, 1  # find whose it was
            else:  # answers out of order: grade each of the rest alone
                for i in rest:
                    try:
                        yield from ((i, report) for _, report in engine([i], 1))
                    except RlkitError:
                        raise
                    except Exception as alone:  # noqa: BLE001
                        yield i, alone
                return
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()


def _failed_record(
    submission: Submission,
    fingerprint: str,
    problems: Mapping[str, str],
    course: Course,
    exc: BaseException,
) -> dict[str, Any]:
    """The row of a student whose grading or recording raised: 0 for every exercise that could
    not be graded, with the reason in one line. Graded again by the next run (the fault is
    the grader's)."""
    from rlkit_grader import api
    from rlkit_grader.records import HIDDEN

    first = (str(exc).strip().splitlines() or [""])[0][:200]
    why = type(exc).__name__ + (f": {first}" if first else "")
    problem = f"the grader could not grade this submission ({why})"
    fingerprint = "regrade:" + fingerprint
    try:
        return make_record(
            submission, fingerprint, api._unreadable(course.exercises, HIDDEN, problem), problems
        )
    except Exception:  # noqa: BLE001 - the row is built by hand then
        exercises = [
            {
                "name": name,
                "score": 0,
                "max_score": course.max_scores.get(name, 0),
                "checks": [],
                "problem": problems.get(name) or problem,
                "sandbox_failed": False,
            }
            for name in course.exercises
        ]
        return {
            "student": submission.student,
            "score": 0,
            "max_score": sum(e["max_score"] for e in exercises),
            "exercises": exercises,
            "protection": UNNAMED_PROTECTION,
            "files": [],
            "note": getattr(submission, "note", None),
            "seconds": 0.0,
            "graded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fingerprint": fingerprint,
        }


def grade_class(
    root: Path,
    layout: Layout,
    options: Options,
    progress: Callable[[int, int], Progress] | None = None,
    on_record: Callable[[dict[str, Any], Course], None] | None = None,
) -> Outcome:
    """Grade every student under ``root`` not already graded with unchanged files; records are
    kept as each finishes and ``on_record`` runs for each (feedback files). Ctrl-C returns what
    is done with ``interrupted`` set."""
    from rlkit.errors import UsageError

    course = Course.load(options.exercises)
    outputs = [layout.out, layout.feedback, layout.report, layout.records]
    students = discover(root, course.files, options.assignment, exclude=outputs)
    if not students:
        raise UsageError(
            f"no submissions in {root}: expected a folder per student with "
            f"{', '.join(f'{e}.py' for e in course.exercises)} (or .ipynb), or nbgrader's "
            "submitted/<student>/<assignment>/"
        )
    if not any(s.files for s in students):
        raise UsageError(
            f"none of the {len(students)} folders in {root} has "
            f"{', '.join(f'{e}.py' for e in course.exercises)} (or .ipynb): nothing to grade"
        )
    names = {s.student: safe_name(s.student) for s in students}
    if len(set(names.values())) != len(names):
        raise UsageError("two students' folder names map to the same file name; rename one")
    chosen = _chosen(options.students, students, root)
    layout.records.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    todo: list[tuple[Submission, str]] = []
    stale: list[str] = []
    for sub in students:
        fingerprint = hashlib.sha256(
            "\0".join(
                [
                    sub.fingerprint(course.files),
                    course.fingerprint,  # the checks and their vectors
                    options.sandbox,
                    repr(sorted(options.limits.items())),
                ]
            ).encode()
        ).hexdigest()
        old = read_record(layout.records / f"{names[sub.student]}.json")
        if chosen is not None and sub.student not in chosen:  # --student: kept as recorded
            if old is not None:
                records[sub.student] = old
            if old is None or old.get("fingerprint") != fingerprint:
                stale.append(sub.student)
        elif chosen is None and old is not None and old.get("fingerprint") == fingerprint:
            records[sub.student] = old
        else:
            todo.append((sub, fingerprint))
    skipped = len(records)
    tick = progress(len(todo), skipped) if progress else None
    interrupted = False
    if todo:
        try:
            _grade(todo, course, layout, options, names, records, tick, on_record)
        except KeyboardInterrupt:  # every record written so far is whole: a re-run resumes
            interrupted = True
    ordered = [records[s.student] for s in students if s.student in records]
    return Outcome(ordered, course, len(records) - skipped, skipped, interrupted, stale)


def _chosen(wanted: Sequence[str], students: Sequence[Submission], root: Path) -> set[str] | None:
    """``--student`` names, each a student folder under ``root`` (None: every student)."""
    from rlkit.errors import UsageError
    from rlkit_grader.render import one_line

    if not wanted:
        return None
    known = [s.student for s in students]
    for name in wanted:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(one_line(c) for c in close)}?" if close else ""
            raise UsageError(
                f"--student {one_line(name)}: no such student folder in {one_line(root)} "
                f"({len(known)} students){hint}"
            )
    return set(wanted)


def _grade(
    todo: list[tuple[Submission, str]],
    course: Course,
    layout: Layout,
    options: Options,
    names: Mapping[str, str],
    records: dict[str, dict[str, Any]],
    tick: Progress | None,
    on_record: Callable[[dict[str, Any], Course], None] | None,
) -> None:
    """Stage, grade and record ``todo`` (Ctrl-C propagates once the sandboxes are closed)."""
    scratch = Path(tempfile.mkdtemp(prefix="rlkit-grade-"))
    try:
        paths: list[Path] = []
        problems: list[Mapping[str, str]] = []
        for i, (sub, _) in enumerate(todo):
            folder = scratch / f"s{i}"  # no student name in the path the sandbox sees
            try:
                problems.append(stage(sub, folder, course.files))
            except Exception as exc:  # noqa: BLE001 - that student's row says why
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)  # empty: graded as "none of the files"
                why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                problem = f"the grader could not read this submission ({why})"
                problems.append(dict.fromkeys(course.exercises, problem))
            paths.append(folder)
        results = _results(paths, options, course.exercises)
        try:
            for i, report in results:
                sub, fingerprint = todo[i]
                try:
                    if isinstance(report, BaseException):
                        raise report
                    record = make_record(sub, fingerprint, report, problems[i])
                except Exception as exc:  # noqa: BLE001 - one student's row, never the batch
                    record = _failed_record(sub, fingerprint, problems[i], course, exc)
                records[sub.student] = record  # the row exists whatever happens next
                with contextlib.suppress(Exception):  # not kept: graded again next run
                    write_whole(layout.records / f"{names[sub.student]}.json", json.dumps(record))
                if on_record is not None:
                    with contextlib.suppress(Exception):  # the export writes what is missing
                        on_record(record, course)
                shutil.rmtree(paths[i], ignore_errors=True)
                if tick is not None:
                    tick(sub.student, record)
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
