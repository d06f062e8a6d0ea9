"""Student workspaces (``rlkit init``) and student bundles (``rlkit release``).

A bundle is a workspace plus ``checks/``: the public checks' vectors (inputs, expected outcomes
of the reference, outcomes of classic mistakes) as JSON + ``.npz``, and a manifest.
``rlkit check --path BUNDLE`` grades against those, so the bundle works with an rlkit install
that has no reference solutions. It holds no solution code and no hidden check.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from rlkit_grader import store
from rlkit_grader.api import BUNDLE_DIR, MANIFEST, select_exercises

README = """# Your rlkit workspace

Each file is one exercise. Read its docstrings (the math, the shapes, the pitfall to avoid),
then replace every `raise NotImplementedError()` under `# YOUR CODE HERE` with your answer.

{exercises}

Check your answers as often as you like, from this folder:

    rlkit check              # every exercise
    rlkit check {first}     # just one
    rlkit check --json       # machine-readable

Each failing check shows a small counterexample (inputs, expected, got) and, when your answer
looks like a classic mistake, names it. {bundle_note}

When the checks pass, train with your own code (from this folder):

{train}

`rlkit train --help` lists every task, and `rlkit init .` adds the stub of an exercise you do
not have yet (it never touches your files).
"""

#: (exercises the command needs, the command as the main README writes it, what it shows)
TRAIN_COMMANDS = (
    (("log_prob", "ppo"), "rlkit train cartpole --algo ppo --path .", "your PPO balances the pole"),
    (
        ("log_prob", "reinforce"),
        "rlkit train cartpole --algo reinforce --path .",
        "your REINFORCE does too",
    ),
    (("dpo",), "rlkit train dpo --backend native --path .", "your DPO loss aligns a small LM"),
)

BUNDLE_NOTE = (
    "The checks come from `checks/` in this folder: leave it as it is. Your "
    "instructor also runs hidden checks on other inputs, so make your code correct, "
    "not just the examples."
)


def _stub_file(exercise: Any) -> Path:
    spec = importlib.util.find_spec(exercise.stub)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"stub module {exercise.stub} is not installed")
    return Path(spec.origin)


def _readme(exercises: list[Any], bundle: bool) -> str:
    lines = [
        f"{i}. `{e.name}.py` — {e.title or e.name}: {', '.join(e.functions)}"
        for i, e in enumerate(exercises, 1)
    ]
    names = {e.name for e in exercises}
    commands = [(c, why) for needs, c, why in TRAIN_COMMANDS if set(needs) <= names]
    width = max((len(c) for c, _ in commands), default=0)
    train = "\n".join(f"    {c.ljust(width)}   # {why}" for c, why in commands)
    return README.format(
        exercises="\n".join(lines),
        first=exercises[0].name if exercises else "",
        bundle_note=BUNDLE_NOTE if bundle else "",
        train=train or "    rlkit train --help",
    )


def init_workspace(directory: Path, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the stubs that ``directory`` lacks, and the README; a file that exists is kept
    (it may hold a student's answers) unless ``force``. Returns (written, kept)."""
    from rlkit.errors import UsageError

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder; pick another name")
    exercises = select_exercises()
    directory.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for exercise in exercises:
        target = directory / f"{exercise.name}.py"
        if target.exists() and not force:
            kept.append(target)
            continue
        target.write_text(_stub_file(exercise).read_text())
        written.append(target)
    readme = directory / "README.md"
    if force or not readme.exists() or readme.read_text().startswith(README[:24]):
        readme.write_text(_readme(exercises, bundle=False))  # ours: keep it current
        written.append(readme)
    else:
        kept.append(readme)
    return written, kept


def release_bundle(directory: Path, force: bool = False) -> list[Path]:
    """Write the student bundle: stubs, README, ``checks/`` with public vectors only."""
    from rlkit import __version__
    from rlkit.errors import UsageError

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not force:
        raise UsageError(f"{directory} is not empty; pick a new folder or pass --force")
    exercises = select_exercises()
    written, _ = init_workspace(directory, force=True)
    (directory / "README.md").write_text(_readme(exercises, bundle=True))
    checks_dir = directory / BUNDLE_DIR
    names = []
    for exercise in exercises:
        stem = store.package_vectors_stem(exercise.checks)
        doc, arrays = store.public_part(*store.read_raw(stem))
        out = checks_dir / exercise.name
        store.write(doc, arrays, out)
        written += [
            out.with_name(out.name + store.SUFFIX_JSON),
            out.with_name(out.name + store.SUFFIX_NPZ),
        ]
        names.append(exercise.name)
    manifest = checks_dir / MANIFEST
    manifest.write_text(
        json.dumps({"format": store.FORMAT, "rlkit": __version__, "exercises": names}, indent=1)
        + "\n"
    )
    return [*written, manifest]
