"""A trainer's settings are a dataclass whose fields carry their own help and flag, as TRL's
``DPOConfig`` and CleanRL's ``Args`` do; the core builds ``rlkit train TASK``'s options from it.

    @dataclass
    class PPOSettings:
        timesteps: int = setting(60_000, "Environment steps in total.", min=1, budget=True)
        learning_rate: float = setting(7e-3, "Adam's step size.", flag="--lr")
        clip_eps: float = 0.2          # no help: no flag of its own, still `--set clip_eps=0.3`
        seed: int = 0                  # impl, path, seed, algo: set by the core's shared options

A field's metadata (``setting`` writes it; a plain ``field(metadata={"help": ...})`` works too):

``help``     the option's help; a field with help gets a flag of its own
``flag``     its names (default ``--field-name``), e.g. ``("--lr", "--learning-rate")``
``min``      the smallest value allowed (checked with a one-line error)
``choices``  the values allowed
``is_path``  a file or folder: stored as an absolute path, so a run reopens from anywhere
``resume``   ``--resume RUN`` may change it (everything else is the run's own)
``budget``   it sets how long training runs (``--resume`` names it to train further); implies
             ``resume``
``max``      the largest value allowed

This module is also the one home of the option plumbing: the options every task shares
(``SHARED``), the implementation names (``IMPLS``), and ``TaskOptions``, which merges the
settings of a task's trainers into one option per setting name. ``rlkit.train_command`` makes
click options of it, ``rlkit.session`` reads the values back through it; errors name the flag
the command really has (``TaskOptions.label``), or ``--set NAME=VALUE`` where there is none.

Nothing here imports torch: settings modules stay light, so ``rlkit train --help`` is instant.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlkit.errors import UsageError

if TYPE_CHECKING:
    from rlkit.registry import TrainerSpec

#: the options every ``rlkit train TASK`` has, by the name its value arrives under (``--set``
#: arrives as ``overrides``); a settings field of one of these names gets no flag of its own
SHARED = ("backend", "algo", "impl", "path", "seed", "out", "resume", "overrides")
#: fields the shared options fill in (``--impl``, ``--path``, ``--seed``, ``--algo``)
SHARED_FIELDS = ("impl", "path", "seed", "algo")
#: the command-line names the shared options (and help) take: no setting may take one
SHARED_FLAGS = (*("--set" if n == "overrides" else f"--{n}" for n in SHARED), "-h", "--help")
#: the implementations a trainer can run on: the reference solutions, or a student's files
IMPLS = ("solution", "student")


def setting(
    default: Any = dataclasses.MISSING,
    help: str | None = None,  # noqa: A002 - the name every CLI library uses
    *,
    flag: str | Sequence[str] | None = None,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    choices: Sequence[Any] | None = None,
    is_path: bool = False,
    resume: bool = False,
    budget: bool = False,
    metavar: str | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its command-line help (see the module docstring)."""
    metadata: dict[str, Any] = {"resume": resume or budget, "budget": budget}
    if help is not None:
        metadata["help"] = help
    if flag is not None:
        metadata["flag"] = (flag,) if isinstance(flag, str) else tuple(flag)
    if min is not None:
        metadata["min"] = min
    if max is not None:
        metadata["max"] = max
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if is_path:
        metadata["is_path"] = True
    if metavar is not None:
        metadata["metavar"] = metavar
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class NoSettings:
    """For a trainer registered without a settings dataclass."""


def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass; a trainer's settings must be one")
    return {f.name: f for f in dataclasses.fields(cls)}


def flags_of(f: dataclasses.Field) -> tuple[str, ...]:
    """The option names of a field: its ``flag`` metadata, else ``--field-name``."""
    flag = f.metadata.get("flag") or ("--" + f.name.replace("_", "-"),)
    return (flag,) if isinstance(flag, str) else tuple(flag)


def has_flag(f: dataclasses.Field) -> bool:
    """Does the field ask for a flag of its own? (It has help, and no shared option sets it.)"""
    return "help" in f.metadata and f.name not in SHARED


def may_resume(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("resume") or f.metadata.get("budget"))


def value_type(cls: type, name: str) -> type:
    """The plain type of a field (``int`` for ``int | None``), from its annotation."""
    hints = typing.get_type_hints(cls)
    hint = hints.get(name, str)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = options[0] if options else str
    return hint if hint in (bool, int, float, str) else str


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def parse_value(cls: type, name: str, raw: str, label: str) -> Any:
    """``raw`` (text from ``--set``) as the field's type; "none" for an optional field."""
    kind = value_type(cls, name)
    hint = typing.get_type_hints(cls).get(name)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(hint)
    if optional and raw.lower() in {"none", "null", ""}:
        return None
    try:
        if kind is bool:
            if raw.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"true", "1", "yes"}
        return kind(raw)
    except ValueError:
        raise UsageError(f"{label}: {raw!r} is not a valid {kind.__name__}") from None


def parse_overrides(items: Iterable[str], cls: type, allowed: Iterable[str] | None = None) -> dict:
    """``("learning_rate=1e-3", ...)`` (``--set``) → typed values of ``cls``'s fields."""
    known = fields_of(cls)
    names = [n for n in known if n not in SHARED]
    if allowed is not None:
        names = [n for n in names if n in set(allowed)]
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise UsageError(
                f"--set {item!r}: expected KEY=VALUE with KEY one of: {', '.join(names)}"
            )
        values[key] = parse_value(cls, key, raw.strip(), f"--set {key}")
    return values


def check_value(f: dataclasses.Field, value: Any, label: str | None = None) -> Any:
    """A value given for ``f``, checked against its ``min``/``max``/``choices`` (one-line
    errors that name ``label``: the flag the command has for it, else ``--set NAME``) and made
    absolute when it names a path."""
    flag = label or (flags_of(f)[0] if has_flag(f) else f"--set {f.name}")
    if value is None:
        return value
    low, high = f.metadata.get("min"), f.metadata.get("max")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and ((low is not None and value < low) or (high is not None and value > high)):
        if high is not None and low is not None:
            wanted = f"between {low} and {high}"
        elif high is not None:
            wanted = f"≤ {high}"
        else:
            wanted = "a positive number" if low == 1 else "0 or more" if low == 0 else f"≥ {low}"
        raise UsageError(f"{flag} must be {wanted}, not {value}")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(map(str, choices))}, not {value!r}")
    if f.metadata.get("is_path"):
        return str(Path(value).expanduser().resolve())
    return value


def validate(settings: Any) -> None:
    """Check every field of a settings instance against its metadata (for a dataclass's
    ``__post_init__``: what the command line checked already, for settings built in code)."""
    for name, f in fields_of(type(settings)).items():
        check_value(f, getattr(settings, name), name)


def build(cls: type, values: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> Any:
    """``cls(**values)`` after checking each value (errors name ``labels[name]``, the flag the
    command has); the dataclass's own ``__post_init__`` validates the rest (``UsageError``)."""
    known = fields_of(cls)
    labels = labels or {}
    checked = {k: check_value(known[k], v, labels.get(k)) for k, v in values.items() if k in known}
    try:
        return cls(**checked)
    except TypeError as exc:  # a required field without a value
        raise UsageError(f"bad settings for {cls.__name__}: {exc}") from None


def from_dict(cls: type, saved: Mapping[str, Any]) -> Any:
    """The settings a run saved (``config.json``), ignoring keys ``cls`` does not know."""
    known = fields_of(cls)
    return cls(**{k: v for k, v in saved.items() if k in known})


def to_dict(settings: Any) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def changed(
    settings: Any, changes: Mapping[str, Any], labels: Mapping[str, str] | None = None
) -> Any:
    """``settings`` with ``changes`` (from ``--resume``): the dataclass's own
    ``resume_with(**changes)`` when it has one (a change that implies another), else
    ``dataclasses.replace`` (which validates again)."""
    known = fields_of(type(settings))
    labels = labels or {}
    checked = {k: check_value(known[k], v, labels.get(k)) for k, v in changes.items()}
    custom = getattr(settings, "resume_with", None)
    if callable(custom):
        return custom(**checked)
    return dataclasses.replace(settings, **checked)


# ---------------------------------------------------------------------------- a task's options
def trainer_label(spec: TrainerSpec) -> str:
    """``native dqn``: how help and errors name one trainer of a task."""
    return f"{spec.backend} {spec.algorithm}"


def _bool_flags(flags: Sequence[str]) -> list[str]:
    """A switch's names: ``--x`` also gives ``--no-x``."""
    return [*flags, *(f"--no-{f.removeprefix('--')}" for f in flags[:1] if f.startswith("--"))]


@dataclasses.dataclass
class Setting:
    """One setting name across the trainers of a task, and the option the command has for it.

    ``owners`` are every trainer whose settings have the field (in task order, the default's
    owner first); ``flags`` the option's names (empty: only ``--set NAME=VALUE``), gathered
    from every owner whose field asks for a flag; the value given goes to whichever trainer
    runs. ``kind`` is the value's type when every owner agrees (click checks it), else None
    and the session parses the text for the trainer it picked."""

    name: str
    owners: list[tuple[TrainerSpec, dataclasses.Field]]
    flags: tuple[str, ...] = ()
    flagged: list[tuple[TrainerSpec, dataclasses.Field]] = dataclasses.field(default_factory=list)
    kind: type | None = str
    is_bool: bool = False

    @property
    def label(self) -> str:
        """What errors call it: its flag, or ``--set NAME`` where it has none."""
        return self.flags[0] if self.flags else f"--set {self.name}"

    def help(self, specs: Sequence[TrainerSpec]) -> str:
        """The owners' help (each trainer's where they differ) and each trainer's default."""
        texts: dict[str, list[TrainerSpec]] = {}
        for spec, f in self.flagged:
            texts.setdefault(f.metadata["help"], []).append(spec)
        if len(texts) == 1:
            text = next(iter(texts))
        else:
            text = (
                "; ".join(
                    f"{', '.join(trainer_label(s) for s in group)}: {t.rstrip('.')}"
                    for t, group in texts.items()
                )
                + "."
            )
        defaults = self.defaults_text(specs)
        return f"{text} {defaults}".strip()

    def defaults_text(self, specs: Sequence[TrainerSpec]) -> str:
        """``[default: 80000 (sb3), 60000 (native ppo)]``: each trainer's own default, naming
        which trainers have the setting when not all of them do."""
        partial = len(self.owners) < len(specs)
        by_value: dict[str, list[TrainerSpec]] = {}
        for spec, f in self.owners:
            by_value.setdefault(str(default_of(f)), []).append(spec)
        if set(by_value) == {"None"}:  # "not set": the help says what that means
            return ""
        if len(by_value) == 1 and not partial:
            return f"[default: {next(iter(by_value))}]"
        parts = []
        for value, group in by_value.items():
            labels: list[str] = []
            for backend in dict.fromkeys(s.backend for s in group):
                mine = [s for s in group if s.backend == backend]
                every = [s for s in specs if s.backend == backend]
                labels += [backend] if len(mine) == len(every) else [trainer_label(s) for s in mine]
            parts.append(f"{value} ({', '.join(labels)})")
        return "[default: " + ", ".join(parts) + "]"


class TaskOptions:
    """The options ``rlkit train TASK`` has for the settings of the task's trainers
    (``specs``, in task order: the owner's first).

    Settings of the same name are one option: it exists when any trainer's field asks for a
    flag (has help), its names are every such field's flags, its help every such field's help,
    and it sets that field of whichever trainer runs. What cannot be merged is a conflict,
    reported in one line (``conflicts``: plugin, line) while everything else works: two
    different settings asking for the same flag (the first in task order keeps it), a flag
    that a shared option has, or a switch and a value under one name. A setting left without
    a flag is still ``--set NAME=VALUE``, and errors say so."""

    def __init__(self, specs: Sequence[TrainerSpec]) -> None:
        self.specs = list(specs)
        self.settings: dict[str, Setting] = {}
        self.conflicts: list[tuple[str, str]] = []
        taken: dict[str, str] = {flag: "a shared option's" for flag in SHARED_FLAGS}
        owners: dict[str, list[tuple[TrainerSpec, dataclasses.Field]]] = {}
        for spec in self.specs:
            for name, f in fields_of(spec.settings_class()).items():
                owners.setdefault(name, []).append((spec, f))
        for name, found in owners.items():
            setting_ = Setting(name, found)
            self.settings[name] = setting_
            if name in SHARED:
                continue
            types_ = {value_type(spec.settings_class(), name) for spec, _ in found}
            setting_.kind = types_.pop() if len(types_) == 1 else None
            wanting = [(spec, f) for spec, f in found if has_flag(f)]
            if not wanting:
                continue
            first_is_bool = value_type(wanting[0][0].settings_class(), name) is bool
            setting_.is_bool = first_is_bool
            flags: list[str] = []
            losses: list[tuple[TrainerSpec, str]] = []
            for spec, f in wanting:
                if (value_type(spec.settings_class(), name) is bool) != first_is_bool:
                    kinds = ("a value", "a switch") if first_is_bool else ("a switch", "a value")
                    losses.append(
                        (
                            spec,
                            f"is {kinds[0]} where {trainer_label(wanting[0][0])}'s is {kinds[1]}",
                        )
                    )
                    continue
                mine = list(flags_of(f))
                wanted = _bool_flags(mine) if first_is_bool else mine
                lost = [flag for flag in wanted if taken.get(flag, name) != name]
                if lost:
                    whose = sorted({taken[flag] for flag in lost})
                    losses.append(
                        (
                            spec,
                            f"asks for {', '.join(lost)}, which "
                            f"{'is' if len(lost) == 1 else 'are'} "
                            + " and ".join(w if w.endswith("'s") else f"{w}'s" for w in whose),
                        )
                    )
                for flag in wanted:
                    if flag in lost:
                        continue
                    taken[flag] = name
                    if flag not in flags and not (first_is_bool and flag.startswith("--no-")):
                        flags.append(flag)
                if any(flag not in lost for flag in mine):
                    setting_.flagged.append((spec, f))
            setting_.flags = tuple(flags)
            for spec, why in losses:
                is_bool = value_type(spec.settings_class(), name) is bool
                if not flags or (first_is_bool and not is_bool):
                    where = f"--set {name}=VALUE"  # a switch takes no value
                else:  # the value is parsed for whichever trainer runs
                    where = f"{flags[0]} " + ("true|false" if is_bool else "VALUE")
                self._conflict(
                    spec, f"setting {name!r} of {trainer_label(spec)} {why}: use {where} for it"
                )

    def _conflict(self, spec: TrainerSpec, line: str) -> None:
        self.conflicts.append((spec.plugin, f"rlkit train {spec.task}: {line}"))

    def __iter__(self) -> typing.Iterator[Setting]:
        return iter(self.settings.values())

    def with_flags(self) -> list[Setting]:
        return [s for s in self.settings.values() if s.flags]

    def label(self, name: str) -> str:
        """What errors call a setting or shared option: the flag the command has for it."""
        if name == "overrides":
            return "--set"
        if name in SHARED:
            return "--" + name
        found = self.settings.get(name)
        return found.label if found is not None else f"--set {name}"

    @property
    def labels(self) -> dict[str, str]:
        return {name: s.label for name, s in self.settings.items()}

    def may_resume(self, name: str, specs: Sequence[TrainerSpec] | None = None) -> bool:
        """Can ``--resume`` change this setting (for any of ``specs``: default every trainer)?"""
        found = self.settings.get(name)
        if found is None or name in SHARED:
            return False
        wanted = specs if specs is not None else self.specs
        return any(may_resume(f) for spec, f in found.owners if spec in wanted)

    def resume_flags(self, specs: Sequence[TrainerSpec] | None = None) -> list[str]:
        """What ``--resume`` may change, as the user types it."""
        return [
            s.flags[0] if s.flags else f"--set {s.name}=..."
            for s in self.settings.values()
            if self.may_resume(s.name, specs)
        ]


def names(flags: Sequence[str]) -> str:
    """``--a``, ``--a and --b``, ``--a, --b and --c``."""
    return flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " and " + flags[-1]
