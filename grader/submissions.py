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
    #: handed in as notebooks (nbgrader's layout, or only .ipynb files): feedback speaks of
    #: notebooks and their cells, never of a .py file
    notebooks: bool = False
    #: exercise → where each line of its staged module came from (notebooks only; ``stage``)
    cells: dict[str, CellMap] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        """The kind of file this student hands in: ``.ipynb`` or ``.py``."""
        if self.notebooks or (
            self.files and all(f.suffix == ".ipynb" for f in self.files.values())
        ):
            return ".ipynb"
        return ".py"

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
) -> tuple[dict[str, Path], str | None, set[str]]:
    """An nbgrader student folder: ``<assignment>/<exercise>.ipynb``; a linked assignment
    folder is not looked into (the note says so). Also: the names of its sub-folders (the
    assignments this student handed in)."""
    from rlkit.errors import UsageError

    entries = sorted(d for d in student.iterdir() if not _hidden(d))
    seen = {d.name for d in entries if d.is_dir()}
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
    return found, (LINKED_ASSIGNMENT if linked else None), seen


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
    nbgrader = root.name == "submitted" and (root.parent / "nbgrader_config.py").is_file()
    if (root / "submitted").is_dir():
        root = root / "submitted"
        nbgrader = True
    elif (root / "nbgrader_config.py").is_file():
        raise UsageError(
            f"{root} is an nbgrader course without a submitted/ folder: collect the "
            "submissions first (`nbgrader collect ASSIGNMENT`)"
        )
    own = _exercise_files(root, exercises)
    if own:  # the folder is one student's submission
        if assignment is not None:
            raise UsageError(_no_assignment(root, assignment, set(), own=True))
        return [Submission(root.resolve().name, root, own)]
    students = []
    assignments: set[str] = set()
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
        notebooks = nbgrader
        if not files:
            files, note, seen = _notebooks(folder, exercises, assignment)
            assignments |= seen
            notebooks = notebooks or bool(seen)
        students.append(Submission(folder.name, folder, files, note=note, notebooks=notebooks))
    if assignment is not None and students and assignment not in assignments:
        raise UsageError(_no_assignment(root, assignment, assignments))
    return students


def _no_assignment(root: Path, assignment: str, found: set[str], own: bool = False) -> str:
    """The one line for an ``--assignment`` that no student handed in."""
    name = _printable(assignment)
    if own or not found:
        return (
            f"--assignment {name}: {_printable(root)} holds the students' files directly, not "
            "nbgrader's submitted/<student>/<assignment>/ folders; leave --assignment out"
        )
    known = ", ".join(_printable(a) for a in sorted(found)[:10])
    more = f" (and {len(found) - 10} more)" if len(found) > 10 else ""
    return (
        f"no student handed in an assignment named {name!r} in {_printable(root)}; the "
        f"assignments there: {known}{more}"
    )


# ----------------------------------------------------------------------------- notebooks


class NotebookProblem(ValueError):
    """What is wrong with a submitted file (a notebook or a .py), in one line for the student."""


#: what kind of problem kept an exercise from being graded (``Problem.kind``): the class report
#: tells "not answered" (nothing handed in) from "did not run" (a file that cannot run)
PROBLEM_KINDS = ("missing", "refused", "unreadable", "syntax", "import", "grader")


class Problem(str):
    """A one-line problem (a ``str``, as records keep it) with its kind, set by the grader."""

    kind: str = "unreadable"

    def __new__(cls, text: str, kind: str = "unreadable") -> Problem:
        obj = super().__new__(cls, text)
        obj.kind = kind if kind in PROBLEM_KINDS else "unreadable"
        return obj


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


#: an nbgrader answer cell's id names its function: ``gae-answer``
_ANSWER_ID = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,60})-answer$")


@dataclass(frozen=True)
class Cell:
    """A notebook cell as the student sees it in Jupyter: its place from the top, its prompt
    (``In [7]``, when it ran) and, for an nbgrader answer cell, the function it answers."""

    position: int  # 1 = the first cell from the top, markdown cells included
    execution_count: int | None = None
    answer_for: str | None = None

    def describe(self) -> str:
        where = f"the {_ordinal(self.position)} cell from the top"
        prompt = f"In [{self.execution_count}]" if self.execution_count is not None else ""
        parts = [f"your answer cell for {self.answer_for}()"] if self.answer_for else []
        parts += [f"cell {prompt}" if prompt and not parts else prompt, where]
        return ", ".join(p for p in parts if p)


@dataclass
class CellMap:
    """Which cell each line of a notebook's staged module came from."""

    filename: str
    #: (first line of the cell's source in the module, the cell), in module order
    starts: list[tuple[int, Cell]] = field(default_factory=list)

    def at(self, line: int) -> tuple[Cell, int] | None:
        """The cell holding module line ``line`` and the line's number inside the cell."""
        found = None
        for first, cell in self.starts:
            if first <= line:
                found = (cell, line - first + 1)
        return found

    def where(self, line: int) -> str:
        """``your answer cell for gae(), In [7], the 9th cell from the top, line 3``."""
        found = self.at(line)
        if found is None:
            return f"{self.filename}, outside the cells"
        cell, inside = found
        return f"{cell.describe()}, line {inside}"


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


def notebook_cells(data: bytes, filename: str) -> list[tuple[Cell, str]]:
    """(the cell as Jupyter shows it, Python source) of every answer code cell, in order."""
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
            raise NotebookProblem(
                f"{filename}: the {_ordinal(number)} cell from the top is mangled (no cell_type)"
            )
        if cell["cell_type"] != "code" or _is_test_cell(cell):
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise NotebookProblem(
                f"{filename}: the {_ordinal(number)} cell from the top is mangled (its source "
                "is not text)"
            )
        cells.append((_cell(number, cell), _uncomment_magics(source)))
    return cells


def _cell(number: int, cell: dict) -> Cell:
    """What Jupyter shows of a cell (its prompt, an nbgrader answer cell's function); the
    notebook is the student's: only an int prompt and an identifier are taken from it."""
    count = cell.get("execution_count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count < 10**7:
        count = None
    meta = cell.get("metadata")
    nb = meta.get("nbgrader") if isinstance(meta, dict) else None
    grade_id = nb.get("grade_id") if isinstance(nb, dict) else None
    match = _ANSWER_ID.match(grade_id) if isinstance(grade_id, str) else None
    answer = match.group(1) if match and isinstance(nb, dict) and nb.get("solution") else None
    return Cell(number, count, answer)


def notebook_module(data: bytes, filename: str) -> str:
    """The student's module: the answer cells joined; a syntax error names its cell."""
    return notebook_source(data, filename)[0]


def notebook_source(data: bytes, filename: str) -> tuple[str, CellMap]:
    """The student's module and where each of its lines came from; a syntax error names its
    cell as Jupyter shows it (its prompt, its place from the top, the function it answers)."""
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
    cell_map = CellMap(filename)
    line = 1 + len(future)
    for cell, source in cells:
        header = f"# --- {filename}, cell {cell.position} from the top ---\n"
        cell_map.starts.append((line + 1, cell))
        text = header + source.rstrip("\n") + "\n\n"
        parts.append(text)
        line += text.count("\n")
    module = "".join(parts)
    try:  # parsing only, nothing runs: the parent can say which cell is broken
        compile(module, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = cell_map.where(exc.lineno or 1) if cell_map.starts else "no code cell"
        raise NotebookProblem(f"syntax error in {filename}, {where}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise NotebookProblem(f"{filename} cannot be compiled ({type(exc).__name__})") from None
    return module, cell_map


# ----------------------------------------------------------------------------- staging


def stage(submission: Submission, folder: Path, exercises: Sequence[str]) -> dict[str, str]:
    """Write the student's exercise modules into ``folder`` (``<exercise>.py`` each); returns
    exercise → the one-line problem (a ``Problem``, with its kind) for every exercise that
    cannot be graded. A notebook's cell map goes to ``submission.cells``."""
    folder.mkdir(parents=True, exist_ok=True)
    problems: dict[str, str] = {}
    for name in exercises:
        file = submission.files.get(name)
        if submission.note == LINKED_STUDENT or (file is None and submission.note):
            problems[name] = Problem(submission.note or "", "refused")
            continue
        if file is None:
            problems[name] = Problem(
                f"{name}{submission.suffix} is missing from the submission", "missing"
            )
            continue
        if file.is_symlink():  # it could point at another student's file, or anywhere
            problems[name] = Problem(
                f"{file.name} is a symbolic link; submit the file itself", "refused"
            )
            continue
        try:
            data = _read_plain(file)
        except _TooBig:
            problems[name] = Problem(
                f"{file.name} is larger than {MAX_FILE_BYTES // 1_000_000} MB", "unreadable"
            )
            continue
        except OSError as exc:
            problems[name] = Problem(
                f"{file.name} cannot be read ({exc.strerror or exc})", "unreadable"
            )
            continue
        try:
            if file.suffix == ".ipynb":
                module, cell_map = notebook_source(data, file.name)
                submission.cells[name] = cell_map
                data = module.encode("utf-8")
            else:
                check_text(data, file.name)
        except NotebookProblem as exc:
            kind = "syntax" if str(exc).startswith("syntax error") else "unreadable"
            problems[name] = Problem(str(exc), kind)
            continue
        (folder / f"{name}.py").write_bytes(data)
    return problems


# ----------------------------------------------------------------------------- notebook terms


def in_notebook_terms(text: str, exercise: str, cell_map: CellMap) -> str:
    """A grader's line about the staged module ``<exercise>.py`` said of the notebook the
    student handed in: ``ppo.py line 12`` becomes the cell as Jupyter shows it, ``ppo.py``
    the notebook's name. Only the grader's own phrasing is rewritten (the text stays quoted
    wherever it is shown: it may hold what the submission wrote)."""
    module = re.escape(f"{exercise}.py")
    notebook = cell_map.filename

    def cell_line(match: re.Match[str]) -> str:
        return cell_map.where(int(match.group(1)))

    text = re.sub(
        rf"^syntax error at {module} line (\d+): ",
        lambda m: f"syntax error in {notebook}, {cell_line(m)}: ",
        text,
    )
    text = re.sub(
        rf"^importing {module} took longer than ([0-9.]+ s) \(code running at import time\?\)",
        lambda m: (
            f"running the code cells of {notebook} took longer than {m.group(1)} (a cell "
            "that never finishes, an infinite loop?)"
        ),
        text,
    )
    text = re.sub(rf"^{module} failed to import: ", f"a code cell of {notebook} raised: ", text)
    text = re.sub(rf"\({module} line (\d+)\)", lambda m: f"({cell_line(m)})", text)
    return text.replace("is missing from your file", "is not defined in your notebook")


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
