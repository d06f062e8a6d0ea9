"""A Gradescope autograder made from the course (``rlkit gradescope build OUT.zip``), as
otter-grader makes one: when a class outgrows one machine, each submission is graded in its
own Gradescope container by the same grader as ``rlkit grade``.

The zip holds what Gradescope asks for (its "autograder specifications"):

* ``setup.sh``: run once, as root, when Gradescope builds the image: a virtual environment
  with rlkit and the instructor's distributions (wheels built from the instructor's install,
  the others pinned to the versions installed there; torch's CPU build), then the hidden
  checks' expected values for the course key, computed from the reference once
  (``python -m rlkit_grader.gradescope prepare``);
* ``run_autograder``: run for each submission: ``python -m rlkit_grader.gradescope run``
  grades ``/autograder/submission`` (the student's ``ppo.py`` or ``ppo.ipynb``, ...; at its top
  or in one folder) with every check, public and hidden, in the sandbox, and writes
  ``/autograder/results/results.json`` - the same results as ``rlkit grade --format
  gradescope`` on the same files;
* ``rlkit-gradescope.json`` (the exercises, the limits, which hidden set), ``requirements.txt``,
  ``wheels/``, and the course key ``rlkit-hidden.key`` with its cached vectors
  (``.rlkit-hidden/``): the instructor's hidden data. Gradescope shows the autograder zip to
  course staff only; keep it as you keep the key.

Protection: Gradescope gives each submission its own container, so a submission never sees
another's. Inside it, grading uses bubblewrap where the container allows user namespaces;
where it does not, the grader falls back to process isolation (time and memory limits; the
code runs with the grader's own rights in that container, as root on Gradescope) and the
results say so plainly (the top-level ``output`` in a sentence, ``extra_data.protection`` in
full). A failure of the autograder itself still writes results: 0 with the reason.

``RLKIT_AUTOGRADER_ROOT`` (default ``/autograder``) and ``RLKIT_AUTOGRADER_PYTHON`` let the
scripts run against another root (the tests lay one out in a temporary folder).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the autograder's settings, in the zip (and in /autograder/source once unpacked)
CONFIG = "rlkit-gradescope.json"
ROOT_ENV = "RLKIT_AUTOGRADER_ROOT"
PYTHON_ENV = "RLKIT_AUTOGRADER_PYTHON"
#: where torch's CPU wheels are (Gradescope has no GPU; the CUDA build is gigabytes)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu 22.04 or
# later: Python 3.10+). Written by `rlkit gradescope build` (rlkit {version}).
set -euo pipefail
ROOT="${{{root_env}:-/autograder}}"
SOURCE="$ROOT/source"
PYTHON="${{RLKIT_SETUP_PYTHON:-python3}}"
if ! "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q python3-venv python3-pip
fi
"$PYTHON" -m venv "$SOURCE/venv"
"$SOURCE/venv/bin/python" -m pip install -q --upgrade pip
# rlkit and the instructor's distributions (wheels/), the rest as pinned in requirements.txt;
# torch's CPU build
"$SOURCE/venv/bin/python" -m pip install -q --extra-index-url {torch_index} \\
    -r "$SOURCE/requirements.txt" "$SOURCE"/wheels/*.whl
# the hidden checks' expected values for the course key: computed once, here
"$SOURCE/venv/bin/python" -I -m rlkit_grader.gradescope prepare "$ROOT"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission, in that submission's own container: it grades
# $ROOT/submission and writes $ROOT/results/results.json. Written by `rlkit gradescope build`.
ROOT="${{{root_env}:-/autograder}}"
PYTHON="${{{python_env}:-$ROOT/source/venv/bin/python}}"
exec "$PYTHON" -I -m rlkit_grader.gradescope run "$ROOT"
"""


# ----------------------------------------------------------------------------- building


@dataclass
class Built:
    """What ``build`` wrote."""

    zip: Path
    exercises: list[str]
    hidden_set: str
    wheels: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)


def _local_source(name: str) -> Path | None:
    """The folder an installed distribution was installed from (pip's direct_url.json), if
    it was a local folder; several metadata copies of one name are looked through."""
    import importlib.metadata as md
    from urllib.parse import unquote, urlparse

    wanted = name.lower().replace("_", "-")
    for dist in md.distributions():
        if (dist.metadata["Name"] or "").lower().replace("_", "-") != wanted:
            continue
        text = dist.read_text("direct_url.json")
        if not text:
            continue
        with contextlib.suppress(ValueError, KeyError, TypeError):
            info = json.loads(text)
            url = urlparse(info["url"])
            if url.scheme == "file" and "dir_info" in info:
                folder = Path(unquote(url.path))
                if (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file():
                    return folder
    return None


def distributions(exercises: Sequence[Any]) -> list[str]:
    """The distributions grading these exercises needs: rlkit, and whichever holds each
    exercise's stub, checks, reference, mistakes and hidden vectors."""
    import importlib.metadata as md

    owners = md.packages_distributions()
    names = ["rlkit"]
    for ex in exercises:
        for module in (ex.stub, ex.checks, ex.solution, ex.mistakes, ex.hidden):
            if not module:
                continue
            for dist in owners.get(module.split(".")[0], []):
                if dist not in names:
                    names.append(dist)
    return names


def build(
    out: Path,
    exercises: Sequence[str] = (),
    limits: dict[str, float] | None = None,
) -> Built:
    """Write the autograder zip for the selected exercises with the active hidden set (the
    command picks it: a course key, or the built-in set)."""
    import importlib.metadata as md

    from rlkit.errors import RlkitError, UsageError
    from rlkit_grader import hidden
    from rlkit_grader.api import select_exercises

    if out.suffix != ".zip":
        raise UsageError(f"{out}: the autograder is a .zip file (Gradescope's upload)")
    selected = select_exercises(exercises)
    chosen = hidden.active()
    built = Built(out, [e.name for e in selected], chosen.label)
    with tempfile.TemporaryDirectory(prefix="rlkit-gradescope-") as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        sources = []
        for name in distributions(selected):
            folder = _local_source(name)
            if folder is not None:
                sources.append(str(folder))
            else:
                built.pinned.append(f"{name}=={md.version(name)}")
        if sources:
            run = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                 "-w", str(wheels), *sources],
                capture_output=True, text=True,
            )  # fmt: skip
            if run.returncode != 0:
                last = (run.stderr.strip().splitlines() or ["pip wheel failed"])[-1]
                raise RlkitError(f"could not build the wheels of {', '.join(sources)}: {last}")
        built.wheels = sorted(p.name for p in wheels.glob("*.whl"))
        torch = md.version("torch").split("+")[0]
        requirements = [*built.pinned, f"torch=={torch}"]
        config = {
            "exercises": built.exercises,
            "limits": dict(limits or {}),
            "hidden_set": chosen.label,
            "rlkit": md.version("rlkit"),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        files: dict[str, bytes] = {
            "setup.sh": SETUP_SH.format(
                version=md.version("rlkit"), root_env=ROOT_ENV, torch_index=TORCH_CPU_INDEX
            ).encode(),
            "run_autograder": RUN_AUTOGRADER.format(
                root_env=ROOT_ENV, python_env=PYTHON_ENV
            ).encode(),
            CONFIG: (json.dumps(config, indent=1) + "\n").encode(),
            "requirements.txt": ("\n".join(requirements) + "\n").encode(),
        }
        for wheel in sorted(wheels.glob("*.whl")):
            files[f"wheels/{wheel.name}"] = wheel.read_bytes()
        if not chosen.builtin:  # the course key and its computed vectors
            assert chosen.key_file is not None
            files[hidden.KEY_FILE] = chosen.key_file.read_bytes()
            for ex in selected:
                stem = chosen.stem(ex)
                for part in stem.parent.glob(stem.name + ".*"):
                    files[f"{hidden.CACHE_DIR}/{part.name}"] = part.read_bytes()
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                executable = name in ("setup.sh", "run_autograder")
                secret = name == hidden.KEY_FILE or name.startswith(hidden.CACHE_DIR)
                mode = 0o755 if executable else 0o600 if secret else 0o644
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        partial.replace(out)
    return built


# ----------------------------------------------------------------------------- running


def _config(root: Path) -> dict[str, Any]:
    return json.loads((root / "source" / CONFIG).read_text(encoding="utf-8"))


def _hidden_set(root: Path, config: dict[str, Any]) -> Any:
    from rlkit.errors import RlkitError
    from rlkit_grader import hidden

    label = config.get("hidden_set", hidden.BUILTIN_LABEL)
    if label == hidden.BUILTIN_LABEL:
        return hidden.BUILTIN
    chosen = hidden.read_key(root / "source" / hidden.KEY_FILE)
    if chosen.label != label:
        raise RlkitError(
            f"the course key in the autograder is {chosen.label}, not {label}: rebuild the zip"
        )
    return chosen


def prepare(root: Path) -> None:
    """setup.sh's last step: the hidden checks' vectors for the course key, computed now."""
    from rlkit_grader import hidden
    from rlkit_grader.api import select_exercises

    config = _config(root)
    chosen = _hidden_set(root, config)
    with hidden.using(chosen):
        hidden.prepare(chosen, select_exercises(config["exercises"]))


def _submission(folder: Path, exercises: Sequence[str]) -> Path:
    """Where the student's files are: the submission folder itself, or the one folder in it
    (an uploaded zip of a folder)."""
    if _has_files(folder, exercises):
        return folder
    inner = [
        d
        for d in folder.iterdir()
        if d.is_dir() and not d.is_symlink() and not d.name.startswith((".", "_"))
    ]
    if len(inner) == 1:
        return inner[0]
    return folder


def _has_files(folder: Path, exercises: Sequence[str]) -> bool:
    names = [f"{e}{suffix}" for e in exercises for suffix in (".py", ".ipynb")]
    return any((folder / n).exists() or (folder / n).is_symlink() for n in names)


def _nothing_submitted(folder: Path, exercises: Sequence[str]) -> dict[str, Any]:
    """No exercise file at all: every check 0, each exercise saying which file was missing."""
    from rlkit_grader import api, batch, exports
    from rlkit_grader.records import HIDDEN
    from rlkit_grader.submissions import Submission, stage

    course = batch.Course.load(exercises)
    submission = Submission("submission", folder, {})
    with tempfile.TemporaryDirectory() as empty:
        problems = stage(submission, Path(empty), course.exercises)
    report = api._unreadable(course.exercises, HIDDEN, "nothing was submitted")
    record = batch.make_record(submission, "", report, problems)
    return exports.gradescope(record, course)


def grade(root: Path) -> dict[str, Any]:
    """The results of grading ``root/submission`` (Gradescope's results.json data)."""
    from rlkit_grader import batch, exports, hidden

    config = _config(root)
    exercises = list(config["exercises"])
    chosen = _hidden_set(root, config)
    scratch = Path(tempfile.mkdtemp(prefix="rlkit-autograder-"))
    try:
        with hidden.using(chosen):
            layout = batch.Layout.beside(scratch / "results.json", "gradescope")
            options = batch.Options(
                exercises=exercises,
                jobs=1,
                limits={k: float(v) for k, v in (config.get("limits") or {}).items()},
                sandbox="auto",  # bubblewrap where the container allows; the results say which
            )
            folder = _submission(root / "submission", exercises)
            if not _has_files(folder, exercises):
                return _nothing_submitted(folder, exercises)
            outcome = batch.grade_class(folder, layout, options)
            (record,) = outcome.records
            return exports.gradescope(record, outcome.course)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def failed(exc: BaseException, exercises: Sequence[str] = ()) -> dict[str, Any]:
    """Results when the autograder itself could not grade (0, with the reason in a line)."""
    from rlkit.errors import RlkitError
    from rlkit_grader import render

    why = exc.message if isinstance(exc, RlkitError) else f"{type(exc).__name__}: {exc}"
    files = ", ".join(f"{e}.py (or {e}.ipynb)" for e in exercises)
    expected = f" The autograder grades {files}." if files else ""
    return {
        "score": 0,
        "output": "**Not graded.** What the autograder saw:\n\n"
        + render.fence(render.one_line(why)[:500])
        + expected,
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"error": render.one_line(why)[:2000]},
    }


def run(root: Path) -> Path:
    """run_autograder's work: grade, and write ``root/results/results.json`` whatever
    happens (Gradescope shows a failed autograder as an error, with no score)."""
    results = root / "results" / "results.json"
    exercises: list[str] = []
    try:
        exercises = list(_config(root).get("exercises", []))
        data = grade(root)
    except Exception as exc:  # noqa: BLE001 - the student still gets a result, and why
        data = failed(exc, exercises)
    results.parent.mkdir(parents=True, exist_ok=True)
    partial = results.with_name(".results.json.partial")
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    partial.replace(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rlkit_grader.gradescope run|prepare [ROOT]`` (the zip's scripts)."""
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("run", "prepare"):
        print("usage: python -m rlkit_grader.gradescope run|prepare [ROOT]", file=sys.stderr)
        return 2
    root = Path(args[1] if len(args) > 1 else os.environ.get(ROOT_ENV, "/autograder"))
    if args[0] == "prepare":
        prepare(root)
        print(f"rlkit autograder ready in {root}")
        return 0
    results = run(root)
    print(f"rlkit: wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
