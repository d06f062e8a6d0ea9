"""The report a check produces: per exercise, per check, with points; as JSON, as plain text (not
a terminal) or as a rich table.

A ``CheckResult``'s ``message`` is the judge's sentence, which can embed what the submission
produced (its exception text, its values): every output quotes it (``rlkit_grader.render``), and what
a student may see of a hidden check is decided by ``rlkit_grader.render.view`` alone. Whether the
sandbox itself failed is the flag ``ExerciseReport.sandbox_failed``, set by the grader from what
it observed, never read out of a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

#: failure kinds of a check (``CheckResult.kind``), as the grader observed them
FAILURE_KINDS = (
    "not_implemented",  # the function raises NotImplementedError (a stub)
    "missing",  # the file has no such function
    "timeout",  # a call ran past its time
    "crash",  # the worker died during a call (exit, signal, out of memory)
    "exception",  # the function raised
    "no_result",  # no record came back for a call
    "wrong",  # every call ran; the judge found the results wrong
    "problem",  # the exercise could not be graded at all (ExerciseReport.problem)
)


def failure_kind(outcomes: Sequence[Any]) -> str:
    """The kind of a failing check from its calls' outcomes (``rlkit_grader.records.Outcome`` or
    None): the first call that did not run names it, else "wrong". Only the closed set of
    ``FAILURE_KINDS`` comes out, whatever a worker claimed."""
    for got in outcomes:
        if got is None:
            return "no_result"
        if not getattr(got, "ok", False):
            kind = str(getattr(got, "error_kind", "") or "")
            if kind in ("not_implemented", "missing", "timeout"):
                return kind
            return "crash" if kind in ("exit", "fatal") else "exception"
    return "wrong"


@dataclass
class CheckResult:
    name: str
    passed: bool
    points: int
    max_points: int
    #: the judge's sentence; it may embed text the submission produced: always quoted
    message: str = ""
    function: str = ""
    visibility: str = "public"
    #: the name of the classic mistake the answer behaves like (None: none recognized); its
    #: explanation is the catalogue's (``ExerciseVectors.mistakes``)
    misconception: str | None = None
    #: how it failed, one of FAILURE_KINDS ("" when passed or not known; see failure_kind)
    kind: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "points": self.points,
            "max_points": self.max_points,
            "message": self.message,
        }


@dataclass
class ExerciseReport:
    name: str
    checks: list[CheckResult] = field(default_factory=list)
    #: one line when the whole exercise could not be graded (missing file, syntax error, ...);
    #: it may embed the submission's text (an import error): always quoted
    problem: str | None = None
    #: the sandbox itself failed (it could not start, died, ran past its budget): set by the
    #: grader from what it observed, never from a message. ``rlkit grade`` grades such a result
    #: again on its next run.
    sandbox_failed: bool = False

    @property
    def score(self) -> int:
        return sum(c.points for c in self.checks)

    @property
    def max_score(self) -> int:
        return sum(c.max_points for c in self.checks)

    @property
    def passed(self) -> bool:
        return self.problem is None and all(c.passed for c in self.checks)

    def status(self) -> str:
        """One line: what the exercise as a whole looks like."""
        if self.problem:
            return self.problem
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return "all checks pass"
        todo = sorted({c.function for c in failed if _stub(c)})
        if todo and len(todo) == len({c.function for c in failed}):
            return f"not implemented yet: {', '.join(todo)}"
        return f"{len(failed)} of {len(self.checks)} checks fail"

    def rows(self) -> list[tuple[bool | None, str, str, str]]:
        """(passed, check, points, feedback) per line to show; a function that is still a stub
        gets one line instead of one per check (``passed`` is None for it)."""
        rows: list[tuple[bool | None, str, str, str]] = []
        stubbed: dict[str, list[CheckResult]] = {}
        for c in self.checks:
            if not c.passed and c.function and _stub(c):
                stubbed.setdefault(c.function, []).append(c)
        shown: set[str] = set()
        for c in self.checks:
            if c.function in stubbed:
                if c.function not in shown:
                    shown.add(c.function)
                    group = stubbed[c.function]
                    total = sum(g.max_points for g in group)
                    rows.append(
                        (
                            None,
                            f"{c.function}.*",
                            f"0/{total}",
                            f"{c.function}() is not implemented yet ({len(group)} checks waiting)",
                        )
                    )
                continue
            message = "" if self.problem and c.message == self.problem else c.message
            rows.append((c.passed, c.name, f"{c.points}/{c.max_points}", message))
        return rows

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "score": self.score,
            "max_score": self.max_score,
            "checks": [c.to_json() for c in self.checks],
        }
        if self.sandbox_failed:  # only then: `rlkit check --json` keeps its documented keys
            data["sandbox_failed"] = True
        return data


def _stub(c: CheckResult) -> bool:
    """A check failing because its function is still a stub (the observed kind when the grader
    set one; else the grader's own sentence, for the student's own terminal only)."""
    if c.kind:
        return c.kind == "not_implemented"
    return "not implemented yet" in c.message


@dataclass
class Report:
    exercises: list[ExerciseReport] = field(default_factory=list)
    seconds: float = 0.0
    #: what protected the grading (the sandbox and its limits, or "process isolation only")
    protection: str = ""

    @property
    def score(self) -> int:
        return sum(e.score for e in self.exercises)

    @property
    def max_score(self) -> int:
        return sum(e.max_score for e in self.exercises)

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.exercises)

    def to_json(self) -> dict[str, Any]:
        return {
            "exercises": [e.to_json() for e in self.exercises],
            "score": self.score,
            "max_score": self.max_score,
            "protection": self.protection,
        }

    def write_plain(self, out: TextIO) -> None:
        """One line per check; text that may come from the submission is made printable and
        kept on its line (no control characters, no forged lines)."""
        from rlkit_grader.render import one_line

        for e in self.exercises:
            out.write(f"{e.name}: {e.score}/{e.max_score} - {one_line(e.status())}\n")
            for passed, name, points, message in e.rows():
                mark = {True: "PASS", False: "FAIL", None: "TODO"}[passed]
                line = f"  {mark} {name} {points}"
                if message:
                    line += f"  {one_line(message)}"
                out.write(line + "\n")
        if self.protection:
            out.write(f"Protection: {self.protection}\n")
        out.write(f"Total: {self.score}/{self.max_score}\n")

    def write_rich(self, console: Any) -> None:
        """A table per exercise; the feedback goes in as plain ``Text`` (never rich markup or
        emoji codes), made printable."""
        from rich.table import Table
        from rich.text import Text

        from rlkit_grader.render import printable

        for e in self.exercises:
            style = "green" if e.passed else "red"
            table = Table(
                title=Text.assemble(
                    (e.name, "bold"),
                    f"  {e.score}/{e.max_score}  ",
                    (printable(e.status()), style),
                ),
                title_justify="left",
                expand=False,
                show_lines=False,
            )
            table.add_column("", width=2)
            table.add_column("check", no_wrap=True)
            table.add_column("points", justify="right")
            table.add_column("feedback", overflow="fold")
            for passed, name, points, message in e.rows():
                mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]…[/yellow]"}
                table.add_row(mark[passed], Text(name), points, Text(printable(message)))
            console.print(table)
        style = "green" if self.passed else "red"
        console.print(
            f"[bold {style}]Total: {self.score}/{self.max_score}[/bold {style}]"
            f"  ({self.seconds:.1f} s)"
        )
        if self.protection:
            console.print(f"[dim]Protection: {self.protection}[/dim]", highlight=False)
