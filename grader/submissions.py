"""Finding a class's submissions and turning each into a gradable workspace.

Two layouts, told apart by what is on disk:

* a folder per student: ``DIR/<student>/<exercise>.py`` (a notebook ``<exercise>.ipynb`` is
  accepted in place of a missing ``.py``); a ``DIR`` that itself holds exercise files is one
  student;
* nbgrader's: ``COURSE/submitted/<student>/<assignment>/<exercise>.ipynb`` (``DIR`` may be the
  course or its ``submitted/`` folder).

A notebook's answer is the module made of its code cells in notebook order, minus nbgrader's
test cells (``grade`` true and ``solution`` not true): duplicated cells redefine as in Python,
deleted test cells change nothing (the checks are not in the notebook). IPython magics and shell
lines are commented out. Whatever is wrong with a file (not UTF-8 JSON, not nbformat 4, a mangled
cell, a syntax error) becomes one line for that exercise, never an exception.

Every student is staged into a private folder holding only their exercise files, so stray files
in a submission (a forged ``checks/`` folder, say) are never seen by the grader.

Symbolic links are refused at every level, under the folder the instructor names: a student
folder, an assignment folder, an exercise file or notebook that is a link (it could point at
another student's work) earns nothing, and that student's row says so in one line
(``Submission.note``, or the exercise's problem). Files are opened without following links.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: a submitted file larger than this is not graded (no exercise answer is this long)
MAX_FILE_BYTES = 2_000_000
#: cell magics whose body is still Python (``%%time`` around a definition)
PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture")


@dataclass
class Submission:
    """One student's files: exercise name → the ``.py`` or ``.ipynb`` they handed in."""

    student: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    #: one line when (part of) the submission was refused (a symbolic link): an exercise it
    #: leaves without a file fails with this line instead of "missing"
    note: str | None = None

    def fingerprint(self, exercises: Sequence[str]) -> str:
        """Hash of what gets graded: a re-run skips the student while this is unchanged."""
        digest = hashlib.sha256()
        digest.update(f"note\0{self.note or ''}\0".encode())
        for name in exercises:
            file = self.files.get(name)
            digest.update(f"\0{name}\0{file.suffix if file else 'missing'}\0".encode())
            if file is None:
                continue
            try:
                if file.is_symlink() or file.stat().st_size > MAX_FILE_BYTES:  # not graded
                    digest.update(f"{os.readlink(file) if file.is_symlink() else ''}".encode())
                    digest.update(str(file.lstat().st_size).encode())
                else:
                    digest.update(file.read_bytes())
            except OSError as exc:
                digest.update(f"unreadable {exc}".encode())
        return digest.hexdigest()


# ----------------------------------------------------------------------------- discovery


def _hidden(path: Path) -> bool:
    return path.name.startswith((".", "_"))


#: the line a refused submission gets (no name in it: folder names are the students')
LINKED_STUDENT = (
    "the submission folder is a symbolic link (it could point at another student's work): "
    "nothing in it was graded; submit the folder itself"
)
LINKED_ASSIGNMENT = (
    "an assignment folder in the submission is a symbolic link (it could point at another "
    "student's work): nothing in it was graded; submit the folder itself"
)


def _exercise_files(folder: Path, exercises: Sequence[str]) -> dict[str, Path]:
    """``<exercise>.py`` (else ``.ipynb``) in ``folder``; a symbolic link is found too, and
    refused when staged (one line for that exercise)."""
    found = {}
    for name in exercises:
        for suffix in (".py", ".ipynb"):
            file = folder / f"{name}{suffix}"
            if file.is_symlink() or file.is_file():
                found[name] = file
                break
    return found


def _notebooks(
    student: Path, exercises: Sequence[str], assignment: str | None
) -> tuple[dict[str, Path], str | None]:
    """An nbgrader student folder: ``<assignment>/<exercise>.ipynb``; a linked assignment
    folder is not looked into (the note says so)."""
    from rlkit.errors import UsageError

    entries = sorted(d for d in student.iterdir() if not _hidden(d))
    if assignment is not None:
        entries = [d for d in entries if d.name == assignment]
    linked = [d for d in entries if d.is_symlink() and d.is_dir()]
    folders = [d for d in entries if not d.is_symlink() and d.is_dir()]
    found: dict[str, Path] = {}
    for name in exercises:
        hits = [d / f"{name}.ipynb" for d in folders if (d / f"{name}.ipynb").is_file()]
        hits += [
            d / f"{name}.ipynb" for d in folders if (d / f"{name}.ipynb").is_symlink()
        ]  # refused when staged, with its own line
        hits = sorted(set(hits))
        if len(hits) > 1:
            where = ", ".join(h.parent.name for h in hits)
            raise UsageError(
                f"{_printable(student.name)} has {name}.ipynb in several assignments "
                f"({_printable(where)}); pass --assignment NAME"
            )
        if hits:
            found[name] = hits[0]
    return found, (LINKED_ASSIGNMENT if linked else None)


def _printable(text: str) -> str:
    from rlkit_grader.render import one_line

    return one_line(text)


def discover(
    root: Path,
    exercises: Sequence[str],
    assignment: str | None = None,
    exclude: Iterable[Path] = (),
) -> list[Submission]:
    """Every student under ``root`` (sorted by name), whatever the layout; a student folder
    with none of the exercise files is still a student (who scores 0)."""
    from rlkit.errors import UsageError

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; pass the folder of the class's submissions")
    skip = {Path(p).resolve() for p in exclude}
    if (root / "submitted").is_dir():
        root = root / "submitted"
    elif (root / "nbgrader_config.py").is_file():
        raise UsageError(
            f"{root} is an nbgrader course without a submitted/ folder: collect the "
            "submissions first (`nbgrader collect ASSIGNMENT`)"
        )
    own = _exercise_files(root, exercises)
    if own:  # the folder is one student's submission
        return [Submission(root.resolve().name, root, own)]
    students = []
    for folder in sorted(root.iterdir()):
        if _hidden(folder):
            continue
        if folder.is_symlink():  # never followed: it could be another student's folder
            if folder.resolve() not in skip:
                students.append(Submission(folder.name, folder, {}, note=LINKED_STUDENT))
            continue
        if not folder.is_dir() or folder.resolve() in skip:
            continue
        files = _exercise_files(folder, exercises)
        note = None
        if not files:
            files, note = _notebooks(folder, exercises, assignment)
        students.append(Submission(folder.name, folder, files, note=note))
    return students


# ----------------------------------------------------------------------------- notebooks


class NotebookProblem(ValueError):
    """What is wrong with a submitted file (a notebook or a .py), in one line for the student."""


def _is_test_cell(cell: dict) -> bool:
    meta = cell.get("metadata")
    nb = meta.get("nbgrader") if isinstance(meta, dict) else None
    return isinstance(nb, dict) and nb.get("grade") is True and nb.get("solution") is not True


def _uncomment_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes (``%...``, ``!...``) so the cell is Python;
    a cell magic other than timing/capture comments out its whole cell (its body is not Python)."""
    lines = source.split("\n")
    first = lines[0].strip() if lines else ""
    if first.startswith("%%") and not first.startswith(PYTHON_CELL_MAGICS):
        return "\n".join("# " + line for line in lines)
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            indent = line[: len(line) - len(stripped)]
            line = f"{indent}pass  # {stripped}" if indent else f"# {stripped}"
        out.append(line)
    return "\n".join(out)


def notebook_cells(data: bytes, filename: str) -> list[tuple[int, str]]:
    """(cell number counting from 1, Python source) of every answer code cell, in order."""
    try:
        nb = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotebookProblem(
            f"{filename} is not UTF-8 text: the notebook file is corrupt"
        ) from None
    except (json.JSONDecodeError, RecursionError):
        raise NotebookProblem(
            f"{filename} is not valid notebook JSON (corrupt or truncated file)"
        ) from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        version = nb.get("nbformat") if isinstance(nb, dict) else None
        raise NotebookProblem(
            f"{filename} is not a Jupyter notebook in nbformat 4 (found nbformat {version!r})"
        )
    cells = []
    for number, cell in enumerate(nb["cells"], 1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise NotebookProblem(f"{filename}: cell {number} is mangled (no cell_type)")
        if cell["cell_type"] != "code" or _is_test_cell(cell):
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise NotebookProblem(f"{filename}: cell {number} is mangled (its source is not text)")
        cells.append((number, _uncomment_magics(source)))
    return cells


def notebook_module(data: bytes, filename: str) -> str:
    """The student's module: the answer cells joined; a syntax error names its cell."""
    cells = notebook_cells(data, filename)
    # Each cell compiles on its own in Jupyter, so a cell may start with a __future__ import;
    # in one module those must come first.
    future = sorted(
        {ln for _, src in cells for ln in src.split("\n") if ln.startswith("from __future__ ")}
    )
    cells = [
        (n, "\n".join("" if ln in future else ln for ln in src.split("\n"))) for n, src in cells
    ]
    parts = ["".join(f"{ln}\n" for ln in future)]
    starts = []
    line = 1 + len(future)
    for number, source in cells:
        header = f"# --- {filename}, cell {number} ---\n"
        starts.append((line + 1, number))
        text = header + source.rstrip("\n") + "\n\n"
        parts.append(text)
        line += text.count("\n")
    module = "".join(parts)
    try:  # parsing only, nothing runs: the parent can say which cell is broken
        compile(module, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        at = exc.lineno or 1
        first, cell = max(((s, n) for s, n in starts if s <= at), default=(1, 0))
        where = f"cell {cell}, line {at - first + 1}" if cell else f"line {at}"
        raise NotebookProblem(f"syntax error in {filename} ({where}): {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise NotebookProblem(f"{filename} cannot be compiled ({type(exc).__name__})") from None
    return module


# ----------------------------------------------------------------------------- staging


def stage(submission: Submission, folder: Path, exercises: Sequence[str]) -> dict[str, str]:
    """Write the student's exercise modules into ``folder`` (``<exercise>.py`` each); returns
    exercise → the one-line problem for every exercise that cannot be graded."""
    folder.mkdir(parents=True, exist_ok=True)
    problems = {}
    for name in exercises:
        file = submission.files.get(name)
        if submission.note == LINKED_STUDENT or (file is None and submission.note):
            problems[name] = submission.note
            continue
        if file is None:
            problems[name] = f"{name}.py is missing from the submission"
            continue
        if file.is_symlink():  # it could point at another student's file, or anywhere
            problems[name] = f"{file.name} is a symbolic link; submit the file itself"
            continue
        try:
            data = _read_plain(file)
        except _TooBig:
            problems[name] = f"{file.name} is larger than {MAX_FILE_BYTES // 1_000_000} MB"
            continue
        except OSError as exc:
            problems[name] = f"{file.name} cannot be read ({exc.strerror or exc})"
            continue
        try:
            if file.suffix == ".ipynb":
                data = notebook_module(data, file.name).encode("utf-8")
            else:
                check_text(data, file.name)
        except NotebookProblem as exc:
            problems[name] = str(exc)
            continue
        (folder / f"{name}.py").write_bytes(data)
    return problems


class _TooBig(Exception):
    pass


def _read_plain(file: Path) -> bytes:
    """The bytes of a regular file, opened without following a link (a link swapped in after
    discovery is refused too) and without blocking on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(file, flags)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise _TooBig()
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _TooBig()
    return data


def check_text(data: bytes, filename: str) -> None:
    """A Python file must be UTF-8 (or declare its encoding, PEP 263), as Python requires."""
    import io
    import tokenize

    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        data.decode(encoding)
    except SyntaxError as exc:  # an unknown coding declaration
        raise NotebookProblem(f"{filename}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise NotebookProblem(
            f"{filename} is not UTF-8 text (byte {data[exc.start]:#04x} on line {line}): "
            "save it as UTF-8"
        ) from None


_SAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def safe_name(student: str) -> str:
    """A file name for the student's records and feedback (their folder name when it is
    plain, else a readable form with a short hash so two students never collide)."""
    clean = _SAFE.sub("_", student).lstrip(".") or "student"
    if clean == student:
        return student
    return f"{clean}-{hashlib.sha256(student.encode()).hexdigest()[:8]}"
