"""nbgrader runs the notebooks in the instructor's environment, where the reference answers are
installed: an answer cell that imports them earns nothing, in a real kernel, while the same
functions written in the notebook earn full marks."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def _run(cells: list[str]) -> list[str]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return [
        "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        for cell in nb.cells
    ]


def test_an_answer_imported_from_the_reference_earns_nothing_in_a_kernel() -> None:
    solution = (ROOT / "solutions" / "reinforce.py").read_text()
    check = (
        "from rlkit_grader.notebooks.feedback import check\n"
        "print('points', int(check('reinforce', 'returns_to_go', globals())))"
    )
    out = _run(
        [
            "from rlkit_solutions.reinforce import *",
            check,
            f"exec({solution!r})",  # the same code, written in the notebook
            check,
        ]
    )
    assert "points 0" in out[1] and "imported from rlkit_solutions.reinforce" in out[1], out[1]
    assert "points 0" not in out[3] and "points" in out[3], out[3]
