"""The class's grades as a file: JSON (one object per student, the exercises as in
``rlkit check --json``), CSV (one row per student, one column per exercise) or Gradescope
(a ``results.json`` per student). Every file is written whole.

Text that can come from a submission or its folder's name is data: JSON encodes it, a CSV cell
that a spreadsheet would read as a formula (``= + - @``, tab, CR first) gets a leading ``'``,
and Gradescope's outputs are Markdown built by ``rlkit_grader.render`` (the submission's text fenced,
a hidden check's message never shown)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlkit_grader import render
from rlkit_grader.batch import Course, write_whole
from rlkit_grader.submissions import safe_name

#: fields of a record that are bookkeeping, not grades
_PRIVATE = ("fingerprint",)


def to_json(records: Sequence[Mapping[str, Any]]) -> str:
    rows = [{k: v for k, v in r.items() if k not in _PRIVATE} for r in records]
    return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"


def to_csv(records: Sequence[Mapping[str, Any]], exercises: Sequence[str]) -> str:
    """One row per student; ``protection`` in a few words (the full text is stated once, by
    ``rlkit grade`` and at the end of the class report)."""
    from rlkit_grader.batch import protection_label

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["student", "score", "max_score", *exercises, "protection", "hidden_set", "note"]
    )
    for r in records:
        scores = {e["name"]: e["score"] for e in r["exercises"]}
        row = [
            r["student"],
            r["score"],
            r["max_score"],
            *(scores.get(e, 0) for e in exercises),
            protection_label(r.get("protection", "")),
            r.get("hidden_set", ""),
            r.get("note") or "",
        ]
        writer.writerow([render.csv_cell(cell) for cell in row])
    return buffer.getvalue()


def gradescope(record: Mapping[str, Any], course: Course) -> dict[str, Any]:
    """A Gradescope autograder ``results.json``: one test per check, its output Markdown
    (``output_format: md``) as in the feedback file. Public checks show their full message
    (fenced) at once; hidden ones appear after the grades are published, with their name,
    pass/fail and misconception only."""
    tests = []
    for ex in record["exercises"]:
        for c in ex["checks"]:
            hidden = c.get("visibility") == "hidden"
            shown = render.view(
                c,
                render.STUDENT,
                course.mistakes,
                course.descriptions,
                ex.get("problem"),
                notebook=render.is_notebook(ex),
            )
            tests.append(
                {
                    "name": f"{ex['name']}: {c['name']}" + (" (hidden)" if hidden else ""),
                    "score": c["points"],
                    "max_score": c["max_points"],
                    "status": "passed" if c["passed"] else "failed",
                    "output": render.check_body_markdown(shown),
                    "output_format": "md",
                    "visibility": "after_published" if hidden else "visible",
                }
            )
    output = f"rlkit: {record['score']}/{record['max_score']}. {protection_sentence(record)}"
    if record.get("note"):
        output += "\n\n**Not graded.** What the grader saw:\n\n" + render.fence(record["note"])
    return {
        "score": record["score"],
        "output": output,
        "output_format": "md",
        "test_output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "student": record["student"],
            "protection": record.get("protection"),
            "hidden_set": record.get("hidden_set"),
        },
    }


def protection_sentence(record: Mapping[str, Any]) -> str:
    """One plain sentence on what protected the grading of this submission (the full text
    goes to ``extra_data``, for the instructor)."""
    from rlkit_grader.batch import protection_label

    text = str(record.get("protection", "") or "")
    label = protection_label(text)
    if label == "bubblewrap sandbox":
        return (
            "Graded in a sandbox (bubblewrap: no network, no other files visible, time and "
            "memory limits)."
        )
    if label.startswith("no sandbox"):
        why = (
            " because bubblewrap could not start in this container (no user namespaces)"
            if "bubblewrap failed here" in text
            else ""
        )
        return (
            f"Graded without a sandbox{why}: process isolation only (time and memory limits; "
            "the code ran with the grader's own rights in this container)."
        )
    if label == "nothing ran":
        return "None of the submitted code ran."
    return f"Graded with: {label}." if label else ""


#: the first line of rlkit's CSV grades
CSV_HEADER = "student,score,max_score,"


def foreign(out: Path, fmt: str) -> str | None:
    """What an existing ``--out`` file is when rlkit did not write it (nbgrader's export, a
    spreadsheet...): rlkit never overwrites another tool's output. None: absent or rlkit's."""
    if fmt == "gradescope" and out.suffix != ".json":
        if out.exists() and not out.is_dir():
            return "a file, not a folder"
        return None
    if not out.exists():
        return None
    if out.is_dir():
        return "a folder"
    try:
        with open(out, encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return "a file rlkit cannot read"
    if not head.strip():
        return None
    if fmt == "csv":
        if head.startswith(CSV_HEADER):
            return None
        if head.startswith("assignment,duedate,timestamp,student_id"):
            return "nbgrader's export (nbgrader export)"
        return "a CSV file rlkit did not write"
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "a file rlkit did not write"
    if (
        fmt == "json"
        and isinstance(data, list)
        and all(isinstance(r, dict) and "student" in r and "exercises" in r for r in data)
    ):
        return None
    if fmt == "gradescope" and isinstance(data, dict) and "tests" in data:
        return None
    return "a JSON file rlkit did not write"


def write(records: Sequence[Mapping[str, Any]], course: Course, out: Path, fmt: str) -> list[Path]:
    """Write the export; returns the files written."""
    if fmt == "json":
        write_whole(out, to_json(records))
        return [out]
    if fmt == "csv":
        write_whole(out, to_csv(records, course.exercises))
        return [out]
    if out.suffix == ".json":  # one student (e.g. inside Gradescope's autograder)
        from rlkit.errors import UsageError

        if len(records) != 1:
            raise UsageError(
                f"--out {out} is one results.json but there are {len(records)} students; "
                "pass a folder to --out for one <student>/results.json each"
            )
        write_whole(out, json.dumps(gradescope(records[0], course), indent=1) + "\n")
        return [out]
    written = []
    for r in records:
        path = out / safe_name(r["student"]) / "results.json"
        write_whole(path, json.dumps(gradescope(r, course), indent=1) + "\n")
        written.append(path)
    return written
