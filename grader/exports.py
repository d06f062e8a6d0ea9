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
            r.get("protection", ""),
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
                c, render.STUDENT, course.mistakes, course.descriptions, ex.get("problem")
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
    output = (
        f"rlkit: {record['score']}/{record['max_score']} (graded in: "
        f"{str(record.get('protection', '')).split(';')[0]})"
    )
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
