"""Feedback meant for the student: one markdown file each, written as soon as they are graded.

A public check's message is shown whole (its inputs are in the student bundle anyway). A hidden
check shows only its name, what it tests, pass/fail and the classic mistake the answer behaves
like: never its inputs or expected values, which the judge's message may contain.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: phrases of the grader's own messages that carry no input or expected value
_SAFE_HIDDEN_PHRASES = {
    "is not implemented yet": "is not implemented yet",
    "is missing from your file": "is missing from your file",
    "timed out": "timed out",
    "out of memory": "was killed (out of memory?)",
}


def student_message(
    check: Mapping[str, Any],
    descriptions: Mapping[str, str],
    mistakes: Mapping[str, str],
    problem: str | None = None,
) -> str:
    """What the student may read about one check."""
    if check.get("passed"):
        return ""
    if problem:
        return problem
    if check.get("visibility") != "hidden":
        return str(check.get("message", ""))
    parts = []
    description = descriptions.get(str(check.get("name")))
    if description:
        parts.append(f"hidden check ({description}) fails")
    else:
        parts.append("hidden check fails")
    message = str(check.get("message", ""))
    function = check.get("function") or ""
    for phrase, says in _SAFE_HIDDEN_PHRASES.items():
        if phrase in message and function:
            parts[0] += f": {function}() {says}"
            break
    name = check.get("misconception")
    if name:
        explanation = mistakes.get(str(name), "")
        parts.append(f"Looks like a classic mistake ({name}): {explanation}".rstrip(": "))
    return ". ".join(parts)


def markdown(
    record: Mapping[str, Any], descriptions: Mapping[str, str], mistakes: Mapping[str, str]
) -> str:
    """The student's feedback file."""
    lines = [
        f"# Feedback for {record['student']}: {record['score']}/{record['max_score']}",
        "",
        f"Graded by rlkit on {record.get('graded_at', '')}. Every exercise was run with all "
        "checks, public and hidden; hidden checks use inputs you have not seen, so their "
        "feedback names the check and the mistake, not the inputs.",
        "",
    ]
    for ex in record["exercises"]:
        lines += [f"## {ex['name']}: {ex['score']}/{ex['max_score']}", ""]
        problem = ex.get("problem")
        if problem:
            lines += [f"**Could not be graded:** {problem}", ""]
        failing = [c for c in ex["checks"] if not c["passed"]]
        passing = [c for c in ex["checks"] if c["passed"]]
        if not failing:
            lines += ["All checks pass.", ""]
            continue
        if problem:
            continue
        for c in failing:
            tag = " (hidden)" if c.get("visibility") == "hidden" else ""
            text = student_message(c, descriptions, mistakes)
            lines.append(f"- ✗ `{c['name']}`{tag} {c['points']}/{c['max_points']}: {text}")
        if passing:
            names = ", ".join(f"`{c['name']}`" for c in passing)
            lines.append(f"- ✓ {len(passing)} checks pass: {names}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write(
    folder: Path,
    filename: str,
    record: Mapping[str, Any],
    descriptions: Mapping[str, str],
    mistakes: Mapping[str, str],
) -> Path:
    from grader.batch import write_whole

    path = folder / f"{filename}.md"
    write_whole(path, markdown(record, descriptions, mistakes))
    return path
