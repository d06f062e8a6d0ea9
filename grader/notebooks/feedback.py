"""What a notebook's test cells run, in the student's kernel (trusted code, in-process).

``check(exercise, function, globals())`` grades one function with the same stored vectors and
judges as ``rlkit check``, prints the same report, and returns the points as the cell's value:
nbgrader reads a test cell whose output is a number as partial credit. nbgrader scores any
stderr output as a failure, so a cell that earns points writes nothing there (warnings and
whatever the student's code prints while it is checked are swallowed); a cell that earns 0
writes one line to stderr saying why, which is what ``nbgrader validate`` shows a student.

Loaded as an IPython extension (``%load_ext rlkit_grader.notebooks.feedback``, in the notebook's set-up
cell) it also watches the cells: grading (``rlkit grade`` and nbgrader alike) runs the student's
cells top to bottom as one program, so a cell that raised or never finished (an infinite loop
that nbgrader interrupted) makes every test cell after it score 0, with the reason, instead of
letting the functions defined before the loop collect full marks.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: seconds one test cell may spend running the student's function on every check's inputs
#: (``RLKIT_NOTEBOOK_TIME_LIMIT`` in the kernel's environment overrides it)
TIME_LIMIT = 20.0
TIME_LIMIT_ENV = "RLKIT_NOTEBOOK_TIME_LIMIT"
MISTAKE_MARK = "Looks like a classic mistake:"


class Points(int):
    """A test cell's score: ``7`` as text (what nbgrader reads), "7 / 9 points" in Jupyter."""

    max_points: int = 0

    def __new__(cls, points: int, max_points: int) -> Points:
        obj = super().__new__(cls, points)
        obj.max_points = max_points
        return obj

    def _repr_html_(self) -> str:
        color = "green" if int(self) == self.max_points else "firebrick"
        return f'<b style="color:{color}">{int(self)} / {self.max_points} points</b>'


# ----------------------------------------------------------------------------- the cell watch


@dataclass
class CellWatch:
    """The last outcome of every non-test cell, keyed by cell id (by source where the front end
    sends no id, as nbclient does): the cells that failed the last time they ran."""

    failed: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    tests: set[str] = field(default_factory=set)
    current: str | None = None

    def pre_run_cell(self, info: Any) -> None:
        raw = getattr(info, "raw_cell", "") or ""
        self.current = getattr(info, "cell_id", None) or raw
        self.sources[self.current] = raw

    prompts: dict[str, int] = field(default_factory=dict)

    def post_run_cell(self, result: Any) -> None:
        key = self.current
        if key is None or key in self.tests:
            return
        count = getattr(result, "execution_count", None)
        if isinstance(count, int):
            self.prompts[key] = count
        error = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
        if error is None:
            self.failed.pop(key, None)
        else:
            self.failed[key] = _describe_error(error)

    def problem(self) -> str | None:
        """One paragraph when some non-test cell failed the last time it ran: the cell as
        Jupyter shows it (its prompt, ``In [5]``, and its first line)."""
        if not self.failed:
            return None
        key, error = next(iter(self.failed.items()))
        first = next((s for s in self.sources.get(key, "").splitlines() if s.strip()), "")
        more = f" (and {len(self.failed) - 1} more)" if len(self.failed) > 1 else ""
        prompt = f"In [{self.prompts[key]}], " if key in self.prompts else ""
        return (
            f"0 points: the cell {prompt}starting `{first.strip()[:60]}`, {error}{more}. "
            "Grading runs all your code cells top to bottom as one program, so every cell must "
            "finish without an error. Fix that cell, run it again, then run this one."
        )


def _describe_error(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "was stopped before it finished (it ran too long: an infinite loop?)"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"raised {type(error).__name__}" + (f": {text[:120]}" if text else "")


_WATCH: CellWatch | None = None


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext rlkit_grader.notebooks.feedback``: start watching the cells (once per kernel)."""
    global _WATCH
    if _WATCH is None:
        _WATCH = CellWatch()
        ipython.events.register("pre_run_cell", _WATCH.pre_run_cell)
        ipython.events.register("post_run_cell", _WATCH.post_run_cell)


def _watch() -> CellWatch | None:
    if _WATCH is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return None
        shell = get_ipython()
        if shell is None:
            return None
        load_ipython_extension(shell)
    return _WATCH


# ----------------------------------------------------------------------------- limits


class _TimeUp(BaseException):
    """Raised into the checked code when its time is up (a BaseException: ``except Exception``
    in the student's code does not swallow it)."""


@dataclass
class _Deadline:
    active: bool = True
    why: str | None = None


@contextlib.contextmanager
def _deadline(seconds: float, state: _Deadline) -> Iterator[None]:
    """Stop the code inside after ``seconds`` or on an interrupt (Jupyter's stop button,
    nbgrader's cell timeout). After the first stop the timer repeats every few milliseconds, so
    code that swallows the exception is stopped again until control is back here."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread: no limit here
        return

    def on_signal(signum: int, frame: Any) -> None:
        if not state.active:
            return
        if state.why is None:
            state.why = "interrupted" if signum == signal.SIGINT else "time"
            signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
        raise _TimeUp()

    old_alarm = signal.signal(signal.SIGALRM, on_signal)
    old_int = signal.signal(signal.SIGINT, on_signal)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        while True:  # a last signal may land while we disarm: disarm again
            try:
                state.active = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                # a timer signal already on its way must not find the default action
                # (terminate the kernel): ignore SIGALRM unless someone handles it
                keep = old_alarm if callable(old_alarm) else signal.SIG_IGN
                signal.signal(signal.SIGALRM, keep)
                signal.signal(signal.SIGINT, old_int)
                break
            except _TimeUp:
                continue


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings, no stdout/stderr from the checked code (nbgrader: stderr = failure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield


# ----------------------------------------------------------------------------- the check


def check(
    exercise: str,
    function: str,
    namespace: Mapping[str, Any],
    hidden: bool = False,
    time_limit: float | None = None,
    hidden_set: str | None = None,
) -> Points:
    """Grade ``namespace[function]`` on the exercise's public (or hidden) checks, print the
    feedback and return the points (the test cell's value, read by nbgrader). ``hidden_set``
    (``key:<fingerprint>``, written by ``rlkit nbgrader build``): the course key's hidden
    checks, the key found in the notebook's folder or one above it (rlkit_grader.hidden)."""
    if time_limit is None:
        try:
            time_limit = float(os.environ.get(TIME_LIMIT_ENV, TIME_LIMIT))
        except ValueError:
            time_limit = TIME_LIMIT
    watch = _watch()
    if watch is not None and watch.current is not None:
        watch.tests.add(watch.current)
    with _hidden_set(hidden_set) as problem:
        if problem is not None:
            why = f"cannot run the hidden checks of {function}() here: {problem}"
            print(f"0 points: {why}")
            _zero(why)
            return Points(0, 0)
        max_points, text, points = _run(exercise, function, namespace, hidden, time_limit, watch)
    print(text)
    if points == 0 and max_points:
        _zero(_why_zero(function, text, hidden))
    return Points(points, max_points)


def _zero(why: str) -> None:
    """The one line a 0-point cell writes to stderr: ``nbgrader validate`` shows a failed
    cell's stderr (else only "Partial credit; passed some but not all of the tests"), and the
    cell scores 0 either way."""
    import sys

    from rlkit_grader.render import one_line

    print(f"0 points: {one_line(why)[:300]}", file=sys.stderr)


def _why_zero(function: str, text: str, hidden: bool) -> str:
    """Why a test cell earned nothing, in a line, from the feedback just printed (grader
    text; a hidden cell's feedback holds nothing the function wrote)."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    if first.startswith("0 points: "):
        return first[len("0 points: ") :]
    if hidden:
        return f"{function}() fails its hidden checks (the lines above say which)"
    why = first.split(" - ", 1)[1] if " - " in first else first
    failed = next(
        (ln.strip()[len("FAIL ") :] for ln in lines[1:] if ln.strip().startswith("FAIL ")), ""
    )
    return f"{why}; {failed}" if failed and not why.startswith("not implemented") else why


@contextlib.contextmanager
def _hidden_set(label: str | None) -> Iterator[str | None]:
    """Inside: the hidden checks named by ``label`` are the active set (None: the built-in
    set); yields a one-line problem instead when its key is not found."""
    if label is None:
        yield None
        return
    from pathlib import Path

    from rlkit.errors import RlkitError
    from rlkit_grader import hidden as hidden_sets

    try:
        chosen = hidden_sets.find_key(Path.cwd(), label)
    except RlkitError as exc:
        yield exc.message
        return
    with hidden_sets.using(chosen):
        yield None


def _run(
    exercise: str,
    function: str,
    namespace: Mapping[str, Any],
    hidden: bool,
    time_limit: float,
    watch: CellWatch | None,
) -> tuple[int, str, int]:
    """(max points, feedback text, points)."""
    from rlkit.errors import RlkitError
    from rlkit_grader.records import HIDDEN, PUBLIC

    visibility = HIDDEN if hidden else PUBLIC
    try:
        with _quiet():
            from rlkit_grader.api import load_vectors, select_exercises

            vectors = load_vectors(select_exercises([exercise])[0], hidden=hidden)
    except RlkitError as exc:
        return 0, f"0 points: cannot check {function}() here: {exc.message}", 0
    checks = [c for c in vectors.select(visibility, [function]) if c.visibility == visibility]
    max_points = sum(c.points for c in checks)
    kind = "hidden checks" if hidden else "checks"
    problem = watch.problem() if watch is not None else None
    if problem is not None:
        return max_points, problem, 0
    if not callable(namespace.get(function)):
        return (
            max_points,
            f"0/{max_points}: {function} is not defined: run the cell with `def {function}` "
            "above first (and keep its name).",
            0,
        )

    source = _answer_package(namespace[function]) if watch is not None else None
    if source is not None:
        return (
            max_points,
            f"0/{max_points}: {function} is imported from {source} (the instructor's reference "
            "answers), not written in this notebook: write it in its answer cell.",
            0,
        )

    from rlkit_grader.api import check_module

    with _quiet():
        # Import what the checks import before the clock starts: a stop in the middle of
        # `import torch` leaves torch half-initialized, and the next import crashes the kernel.
        import torch  # noqa: F401

        for module in ("rlkit_grader.executor", "rlkit_grader.judges"):
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
    state = _Deadline()
    report = None
    crash = None
    try:
        with _quiet(), _deadline(time_limit, state):
            report = check_module(exercise, namespace, visibility, [function])
    except _TimeUp:
        pass
    except Exception as exc:  # noqa: BLE001 - the grader failing must not look like a pass
        crash = f"{type(exc).__name__}: {exc}"
    if state.why is not None or report is None:
        if state.why == "time":
            reason = f"the {kind} took longer than {time_limit:g} s (an infinite loop?)"
        elif state.why == "interrupted":
            reason = "the checks were interrupted before they finished"
        elif hidden:  # the error's text may hold the hidden inputs: never shown
            reason = "the hidden checks could not run (the public checks usually show why)"
        else:
            reason = f"the checks could not run ({crash})"
        return max_points, f"{function}: 0/{max_points} - {reason}", 0

    from rlkit_grader.report import ExerciseReport, Report

    results = [c for c in report.checks if c.visibility == visibility]
    part = ExerciseReport(function, results, report.problem)
    if hidden:
        return max_points, _hidden_text(part, vectors.mistakes), part.score
    out = io.StringIO()
    Report([part]).write_plain(out)
    return max_points, out.getvalue().rstrip("\n"), part.score


def _answer_package(function: Any) -> str | None:
    """The instructor-only package ``function`` comes from (the reference solutions, a
    mistakes catalogue's alternatives), or None. nbgrader runs the notebooks in the
    instructor's environment, where those are installed: an answer cell that imports them
    would otherwise earn full marks."""
    module = str(getattr(function, "__module__", None) or "")
    top = module.split(".")[0]
    if not top or top == "__main__":
        return None
    answers = {"rlkit_solutions"}
    with contextlib.suppress(Exception):
        from rlkit.plugins import get_exercises

        for ex in get_exercises().values():
            for name in (ex.solution, ex.mistakes, ex.hidden):
                if name:
                    answers.add(name.split(".")[0].split(":")[0])
    if top in answers or top.endswith("_instructor"):
        return module
    return None


def _hidden_text(part: Any, mistakes: Mapping[str, str]) -> str:
    """Hidden checks: name, pass/fail and the misconception (from the catalogue), never the
    message (inputs, expected values, or text the student's code wrote from them): what
    ``rlkit_grader.render.view`` lets a student see."""
    from rlkit_grader.render import hidden_plain

    return hidden_plain(
        f"{part.name} (hidden checks)", part.checks, mistakes, (part.score, part.max_score)
    )
