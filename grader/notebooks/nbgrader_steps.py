"""nbgrader's own steps, adjusted for the courses rlkit builds (named in the course's
``nbgrader_config.py``; imported by nbgrader, in rlkit's environment).

``OverwriteCells``: nbgrader's, without its false alarm for hidden tests. A hidden test cell is
locked, and ``generate_assignment`` releases it without its ``### BEGIN HIDDEN TESTS`` region;
at ``autograde`` nbgrader finds the student's copy differs from the source, warns "Attribute
'checksum' for cell ...-hidden-checks has changed!" (once per hidden cell, per notebook, per
student: 72 lines for six students) and puts the source back. A cell that is exactly what was
released is put back silently here; a locked cell the student did change still gets nbgrader's
warning (and is put back, as nbgrader does).
"""

from __future__ import annotations

from typing import Any

from nbgrader.api import MissingEntry
from nbgrader.preprocessors import OverwriteCells as _NbgraderOverwriteCells

BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"


def released(source: str) -> str:
    """A hidden test cell's source as ``nbgrader generate_assignment`` releases it (the hidden
    region removed, as nbgrader's ClearHiddenTests does)."""
    kept, inside = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            inside = True
        elif END_HIDDEN in line:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


class OverwriteCells(_NbgraderOverwriteCells):
    """nbgrader's OverwriteCells; a released hidden test cell is restored without a warning."""

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> tuple[Any, Any]:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", None)
        if grade_id is not None and cell.cell_type == "code":
            try:
                source = self.gradebook.find_source_cell(
                    grade_id, self.notebook_id, self.assignment_id
                )
            except MissingEntry:
                source = None
            if (
                source is not None
                and source.locked
                and source.cell_type == "code"
                and BEGIN_HIDDEN in source.source
                and cell.source.strip() == released(source.source).strip()
            ):
                cell.source = source.source  # what nbgrader would restore, without the alarm
        return super().preprocess_cell(cell, resources, cell_index)
