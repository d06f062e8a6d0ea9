"""Which hidden checks grade: rlkit's built-in set, or a course's own, drawn from its key.

rlkit's repository is public, so the built-in hidden checks' inputs (in ``rlkit-solutions``) are
public too: an answer could be fitted to them. A course key is a secret the instructor keeps
(``rlkit-hidden.key`` in the course folder, made by ``rlkit nbgrader build`` or ``rlkit grade``,
or any file passed as ``--key``). Every hidden check draws its inputs from a generator seeded
with HMAC-SHA256(key, check) (``rlkit_grader.store.check_seed``); their expected values and the
classic mistakes' outcomes come from the instructor's reference, computed once and cached
beside the key (``.rlkit-hidden/``), and again whenever the key, the reference, the checks, the
mistakes or the judges change. Only the public checks' vectors are in a student's install.

Every grade names the set it used: ``builtin``, or ``key:<fingerprint>`` (12 hex digits of a
hash of the key: it tells two keys apart and reveals nothing of either).

A command picks the set once (``using``); ``rlkit_grader.api.load_vectors(..., hidden=True)`` reads
the active one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkit_grader import store

#: the course key's file name in a course folder
KEY_FILE = "rlkit-hidden.key"
#: the cache of a key's hidden vectors, beside the key file
CACHE_DIR = ".rlkit-hidden"
BUILTIN_LABEL = "builtin"
#: what ``--key`` takes for the built-in set
BUILTIN_OPTION = "builtin"
#: modules whose source decides a hidden set's vectors besides the exercise's own
ENGINE = ("rlkit_grader.store", "rlkit_grader.judges", "rlkit_grader.spec")


def fingerprint(key: bytes) -> str:
    """12 hex digits that name a key in grades without revealing it."""
    return hashlib.sha256(b"rlkit-hidden-set\0" + key).hexdigest()[:12]


@dataclass(frozen=True)
class HiddenSet:
    """The hidden checks' inputs: built-in (``key`` None) or drawn from a course key."""

    key: bytes | None = field(default=None, repr=False)  # never in a log or a traceback
    key_file: Path | None = None

    @property
    def builtin(self) -> bool:
        return self.key is None

    @property
    def label(self) -> str:
        """What a grade records: ``builtin`` or ``key:<fingerprint>``."""
        return BUILTIN_LABEL if self.key is None else f"key:{fingerprint(self.key)}"

    def describe(self) -> str:
        """One line for the instructor."""
        if self.key is None:
            return (
                "hidden checks: rlkit's built-in set (its inputs are public in rlkit's "
                f"repository; a course key makes them your own: --key or {KEY_FILE})"
            )
        return f"hidden checks: drawn from the course key {self.key_file} ({self.label})"

    @property
    def cache(self) -> Path:
        assert self.key_file is not None
        return self.key_file.parent / CACHE_DIR

    def stem(self, exercise: Any) -> Path:
        """The stem of this set's hidden vectors of ``exercise``: built-in, or this key's,
        computed from the reference when missing or stale."""
        if self.key is None:
            from rlkit_grader.api import hidden_stem

            stem = hidden_stem(exercise)
            if stem is None:
                raise FileNotFoundError(f"{exercise.name} stores its hidden checks with its checks")
            return stem
        return _keyed_stem(self, exercise)


BUILTIN = HiddenSet()

# ----------------------------------------------------------------------------- key files


def read_key(path: Path) -> HiddenSet:
    """The set drawn from the key in ``path`` (any text; ``rlkit`` writes 64 hex digits)."""
    from rlkit.errors import UsageError

    path = Path(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the course key {path}: {exc.strerror or exc}") from None
    if len(key) < 16:
        raise UsageError(
            f"the course key {path} is too short ({len(key)} bytes; at least 16): delete it "
            "and let rlkit make one"
        )
    return HiddenSet(key, path.resolve())


def create_key(path: Path) -> HiddenSet:
    """A new random key in ``path`` (readable by its owner only); an existing one is kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return read_key(path)


def choose(option: str | None, default_file: Path | None, create: bool) -> tuple[HiddenSet, bool]:
    """The set a command uses, and whether it made a new key. ``option``: ``--key``'s value
    (``builtin``, or a key file, made when ``create``); else ``default_file`` when it exists
    (or ``create``); else the built-in set."""
    from rlkit.errors import UsageError

    if option == BUILTIN_OPTION:
        return BUILTIN, False
    path = Path(option) if option else default_file
    if path is None:
        return BUILTIN, False
    if path.is_file():
        return read_key(path), False
    if path.exists():
        raise UsageError(f"the course key {path} is not a file")
    if option and not create:
        raise UsageError(f"no course key {path}: pass an existing key file, or --key builtin")
    if not create:
        return BUILTIN, False
    return create_key(path), True


def find_key(start: Path, wanted: str) -> HiddenSet:
    """The key named ``wanted`` (its label) in ``start`` or a folder above it: an nbgrader
    notebook runs in ``autograded/<student>/<assignment>/`` below its course folder."""
    from rlkit.errors import RlkitError

    if wanted == BUILTIN_LABEL:
        return BUILTIN
    for folder in [Path(start).resolve(), *Path(start).resolve().parents]:
        candidate = folder / KEY_FILE
        if candidate.is_file():
            found = read_key(candidate)
            if found.label == wanted:
                return found
    raise RlkitError(
        f"the course key these hidden checks were built with ({wanted}) is not in {start} or "
        f"a folder above it: grade in the course folder that holds its {KEY_FILE}"
    )


# ----------------------------------------------------------------------------- the active set

_active: HiddenSet = BUILTIN
_lock = threading.Lock()


def active() -> HiddenSet:
    """The set ``load_vectors(..., hidden=True)`` uses when none is passed."""
    return _active


@contextlib.contextmanager
def using(hidden_set: HiddenSet) -> Iterator[HiddenSet]:
    """Grade with ``hidden_set`` inside the block (every thread of the command)."""
    global _active
    before, _active = _active, hidden_set
    try:
        yield hidden_set
    finally:
        _active = before


# ----------------------------------------------------------------------------- a key's vectors


def _source_file(module: str) -> bytes:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"module {module} is not installed")
    return Path(spec.origin).read_bytes()


def source_digest(hidden_set: HiddenSet, exercise: Any) -> str:
    """What a key's cached vectors were computed from: the key, the reference, the checks,
    the mistakes and the engine that judges them (a change to any regenerates them)."""
    from rlkit.registry import ReferenceMissing

    if not exercise.has(exercise.solution):
        raise ReferenceMissing(
            exercise.missing() + "; a course key's hidden checks are computed from it"
        )
    digest = hashlib.sha256(f"{store.FORMAT}\0{hidden_set.label}\0{exercise.name}".encode())
    for module in (exercise.solution, exercise.checks, exercise.mistakes, *ENGINE):
        if module:
            digest.update(module.encode() + b"\0" + _source_file(module) + b"\0")
    return digest.hexdigest()[:16]


def _keyed_stem(hidden_set: HiddenSet, exercise: Any) -> Path:
    cache = hidden_set.cache
    stem = cache / f"{exercise.name}-{source_digest(hidden_set, exercise)}"
    if store.exists(stem):
        return stem
    with _lock:
        if store.exists(stem):
            return stem
        from rlkit_grader.api import build_hidden

        assert hidden_set.key is not None
        doc, arrays = build_hidden(exercise, hidden_set.key)
        doc = {**doc, "hidden_set": hidden_set.label}
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache)) / stem.name
        try:
            store.write(doc, arrays, partial)
            for suffix in (store.SUFFIX_NPZ, store.SUFFIX_JSON):  # the .json last: it says done
                os.replace(
                    partial.with_name(partial.name + suffix), stem.with_name(stem.name + suffix)
                )
        finally:
            for leftover in partial.parent.iterdir():
                leftover.unlink()
            partial.parent.rmdir()
        for old in cache.glob(f"{exercise.name}-*.vectors.*"):
            if not old.name.startswith(stem.name + "."):
                with contextlib.suppress(OSError):
                    old.unlink()
    return stem


def prepare(hidden_set: HiddenSet, exercises: Any) -> None:
    """Find the set's vectors of every exercise now (computing a key's when its cache is
    stale), before grading starts in several threads: where the instructor's distribution is
    missing, ReferenceMissing says so in one line before anything else happens."""
    from rlkit_grader.api import vector_parts

    for exercise in exercises:
        vector_parts(exercise, hidden=True, hidden_set=hidden_set)


def course_folder(submissions: Path, out: Path) -> Path:
    """Where ``rlkit grade`` keeps the course key: an nbgrader course's own folder (its
    notebooks' hidden cells find the key there), else the folder of ``--out``."""
    submissions = Path(submissions)
    if (submissions / "submitted").is_dir() or (submissions / "nbgrader_config.py").is_file():
        return submissions
    return Path(out).absolute().parent


def use_for_command(
    option: str | None,
    default_file: Path | None,
    exercises: Any = (),
    create: bool = False,
    announce: bool = True,
) -> HiddenSet:
    """Pick the hidden set for the running click command (``choose``), make it the active
    one until the command ends, find (or compute) its vectors now, and say which it is
    (``announce``) and that a key was made on stderr."""
    import click

    from rlkit.registry import ReferenceMissing
    from rlkit_grader.api import select_exercises

    selected = select_exercises(exercises)
    for exercise in selected if option != BUILTIN_OPTION else ():
        if exercise.solution and not exercise.has(exercise.solution):  # before a key is made
            raise ReferenceMissing(exercise.missing("the hidden checks"))
    chosen, made = choose(option, default_file, create)
    if made:
        click.echo(
            f"Made the course key {chosen.key_file}: the hidden checks' inputs are drawn from "
            "it. Keep it with the course (the same key grades the same way), and keep it from "
            "students.",
            err=True,
        )
    context = click.get_current_context(silent=True)
    if context is not None:
        context.with_resource(using(chosen))
    prepare(chosen, selected)
    if announce:
        click.echo(chosen.describe()[0].upper() + chosen.describe()[1:], err=True)
    return chosen
