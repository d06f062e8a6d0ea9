"""The report a check produces: per exercise, per check, with points; as JSON, as plain text (not
a terminal) or as a rich table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class CheckResult:
    name: str
    passed: bool
    points: int
    max_points: int
    message: str = ""
    function: str = ""
    visibility: str = "public"
    #: the name of the classic mistake the answer behaves like (None: none recognized)
    misconception: str | None = None

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
    #: one line when the whole exercise could not be graded (missing file, syntax error, ...)
    problem: str | None = None

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
        todo = sorted({c.function for c in failed if "not implemented yet" in c.message})
        if todo and len(todo) == len({c.function for c in failed}):
            return f"not implemented yet: {', '.join(todo)}"
        return f"{len(failed)} of {len(self.checks)} checks fail"

    def rows(self) -> list[tuple[bool | None, str, str, str]]:
        """(passed, check, points, feedback) per line to show; a function that is still a stub
        gets one line instead of one per check (``passed`` is None for it)."""
        rows: list[tuple[bool | None, str, str, str]] = []
        stubbed: dict[str, list[CheckResult]] = {}
        for c in self.checks:
            if not c.passed and c.function and "not implemented yet" in c.message:
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
        return {
            "name": self.name,
            "score": self.score,
            "max_score": self.max_score,
            "checks": [c.to_json() for c in self.checks],
        }


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
        for e in self.exercises:
            out.write(f"{e.name}: {e.score}/{e.max_score} - {e.status()}\n")
            for passed, name, points, message in e.rows():
                mark = {True: "PASS", False: "FAIL", None: "TODO"}[passed]
                line = f"  {mark} {name} {points}"
                if message:
                    line += f"  {message}"
                out.write(line + "\n")
        if self.protection:
            out.write(f"Protection: {self.protection}\n")
        out.write(f"Total: {self.score}/{self.max_score}\n")

    def write_rich(self, console: Any) -> None:
        from rich.table import Table

        for e in self.exercises:
            style = "green" if e.passed else "red"
            table = Table(
                title=f"[bold]{e.name}[/bold]  {e.score}/{e.max_score}  "
                f"[{style}]{e.status()}[/{style}]",
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
                table.add_row(mark[passed], name, points, message)
            console.print(table)
        style = "green" if self.passed else "red"
        console.print(
            f"[bold {style}]Total: {self.score}/{self.max_score}[/bold {style}]"
            f"  ({self.seconds:.1f} s)"
        )
        if self.protection:
            console.print(f"[dim]Protection: {self.protection}[/dim]", highlight=False)
