"""A course folder nbgrader works in: ``nbgrader_config.py`` and ``source/<assignment>/`` with
one notebook per exercise. Then the instructor's usual nbgrader commands apply
(``generate_assignment``, ``release_assignment``, ``collect``, ``autograde``, ...)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rlkit.errors import RlkitError, UsageError

DEFAULT_ASSIGNMENT = "rlkit"
#: seconds one cell may run under nbgrader before it is interrupted (an infinite loop)
DEFAULT_TIMEOUT = 60

CONFIG = '''"""nbgrader's configuration for this course, written by `rlkit nbgrader build`.

The notebooks' test cells call rlkit's grader, so nbgrader (and the kernel it starts) must run
in the environment where rlkit is installed. nbgrader reads this file from the folder it runs
in: run nbgrader's commands in this folder (it is the course's root).
"""

import os
import warnings

c = get_config()  # noqa: F821 - provided by nbgrader

# nbgrader's gradebook with SQLAlchemy 2 warns "Object of type <SubmittedAssignment> not in
# session, add operation along ... will not proceed" for every student it autogrades; the
# grades are saved all the same (nbgrader's known behaviour), so the warning is left out.
warnings.filterwarnings("ignore", message=r"Object of type <Submitted\\w+> not in session")

c.CourseDirectory.course_id = {course_id!r}

# Where `nbgrader release_assignment` puts assignments and `nbgrader fetch_assignment` /
# `submit` / `collect` exchange them (nbgrader's default is /usr/local/share/nbgrader/exchange).
# nbgrader makes it writable by everyone (mode 0777) so students can submit. Students on other
# accounts (JupyterHub) need a folder they can all reach: set it to one outside this course
# folder, which holds the solutions and the course key.
c.Exchange.root = {exchange}

# A cell that runs longer than this (seconds) is interrupted: a student's infinite loop costs
# that notebook's remaining test cells, never the whole batch.
c.ExecutePreprocessor.timeout = {timeout}
c.Execute.interrupt_on_timeout = True

# A test cell the student deleted is put back and graded, as `rlkit grade` would grade it.
c.OverwriteCells.add_missing_cells = True

# nbgrader's steps before autograding, with rlkit's OverwriteCells: it puts the hidden tests
# back into the released hidden test cells without nbgrader's false "Attribute 'checksum' ...
# has changed!" warning for each of them (a cell a student did change is still reported).
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "rlkit_grader.notebooks.nbgrader_steps.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# The student's answer replaces exactly what the exercise stubs hold.
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
'''
#: the exchange folder's name in the course folder, when none is given
EXCHANGE = "exchange"
#: how the config names the course's own exchange folder (beside nbgrader_config.py)
_OWN_EXCHANGE = 'os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")'

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class BuildResult:
    config: Path
    config_written: bool
    #: nbgrader's exchange folder, as the config names it (None: a config kept from before)
    exchange: Path | None = None
    #: formula lines of the docstrings the lessons could not restate in LaTeX
    warnings: list[str] = field(default_factory=list)
    notebooks: list[Path] = field(default_factory=list)
    points: dict[str, int] = field(default_factory=dict)


def _write(path: Path, text: str) -> None:
    """Write whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _same_cells(path: Path, text: str) -> bool:
    """True when an existing notebook has the same cells (ids, sources, metadata)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False

    def key(nb: dict) -> list:
        return [
            (c.get("id"), "".join(c.get("source", "")), c.get("metadata"))
            for c in nb.get("cells", [])
        ]

    return key(old) == key(json.loads(text))


def build_course(
    course_dir: Path,
    exercises: Iterable[str] = (),
    assignment: str = DEFAULT_ASSIGNMENT,
    timeout: int = DEFAULT_TIMEOUT,
    force: bool = False,
    course_id: str | None = None,
    exchange: Path | None = None,
) -> BuildResult:
    """Write ``nbgrader_config.py`` (kept when it exists) and ``source/<assignment>/*.ipynb``.
    ``exchange``: nbgrader's exchange folder (default: ``exchange/`` in the course folder)."""
    from rlkit_grader.api import select_exercises
    from rlkit_grader.notebooks.build import build_notebook, to_json

    if not _NAME.match(assignment):
        raise UsageError(
            f"assignment name {assignment!r} is not usable as a folder name; use letters, "
            "digits, '_', '-' or '.'"
        )
    if timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if course_dir.exists() and not course_dir.is_dir():
        raise UsageError(f"{course_dir} exists and is not a folder; pass a course folder")
    selected = select_exercises(exercises)
    warnings: list[str] = []
    notebooks = {ex.name: build_notebook(ex, timeout, warnings) for ex in selected}
    texts = {name: to_json(nb) for name, nb in notebooks.items()}

    folder = course_dir / "source" / assignment
    clash = [
        folder / f"{name}.ipynb"
        for name, text in texts.items()
        if (folder / f"{name}.ipynb").exists() and not _same_cells(folder / f"{name}.ipynb", text)
    ]
    if clash and not force:
        raise RlkitError(
            f"{clash[0]} exists and differs from the exercise"
            + (f" (and {len(clash) - 1} more)" if len(clash) > 1 else "")
            + "; pass --force to rebuild it (your edits to it are lost)"
        )
    config = course_dir / "nbgrader_config.py"
    config_written = not config.exists()
    if config_written:
        _write(
            config,
            CONFIG.format(
                course_id=course_id or course_dir.resolve().name,
                timeout=int(timeout),
                exchange=_OWN_EXCHANGE if exchange is None else repr(str(exchange.absolute())),
            ),
        )
    result = BuildResult(config, config_written, warnings=warnings)
    if config_written:
        result.exchange = (course_dir / EXCHANGE) if exchange is None else exchange.absolute()
    for ex in selected:
        path = folder / f"{ex.name}.ipynb"
        _write(path, texts[ex.name])
        result.notebooks.append(path)
        result.points[ex.name] = sum(
            c["metadata"]["nbgrader"].get("points", 0)
            for c in notebooks[ex.name]["cells"]
            if c["metadata"]["nbgrader"]["grade"]
        )
    return result
