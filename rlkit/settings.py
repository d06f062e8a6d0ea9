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

Nothing here imports torch: settings modules stay light, so ``rlkit train --help`` is instant.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlkit.errors import UsageError

#: fields the core's shared options set (``--impl``, ``--path``, ``--seed``, ``--algo``)
SHARED_FIELDS = ("impl", "path", "seed", "algo")


def setting(
    default: Any = dataclasses.MISSING,
    help: str | None = None,  # noqa: A002 - the name every CLI library uses
    *,
    flag: str | Sequence[str] | None = None,
    min: float | None = None,  # noqa: A002
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
    return tuple(f.metadata.get("flag") or ("--" + f.name.replace("_", "-"),))


def has_flag(f: dataclasses.Field) -> bool:
    return "help" in f.metadata and f.name not in SHARED_FIELDS


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
    names = [n for n in known if n not in SHARED_FIELDS]
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


def check_value(f: dataclasses.Field, value: Any) -> Any:
    """A value given for ``f``, checked against its ``min``/``choices`` (one-line errors) and
    made absolute when it names a path."""
    flag = flags_of(f)[0] if has_flag(f) else f.name
    if value is None:
        return value
    low = f.metadata.get("min")
    if low is not None and value < low:
        wanted = "a positive number" if low == 1 else "0 or more" if low == 0 else f"≥ {low}"
        raise UsageError(f"{flag} must be {wanted}, not {value}")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(map(str, choices))}, not {value!r}")
    if f.metadata.get("is_path"):
        return str(Path(value).expanduser().resolve())
    return value


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls(**values)`` after checking each value; the dataclass's own ``__post_init__``
    validates the rest (raising ``UsageError``)."""
    known = fields_of(cls)
    checked = {k: check_value(known[k], v) for k, v in values.items() if k in known}
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


def changed(settings: Any, changes: Mapping[str, Any]) -> Any:
    """``settings`` with ``changes`` (from ``--resume``): the dataclass's own
    ``resume_with(**changes)`` when it has one (a change that implies another), else
    ``dataclasses.replace`` (which validates again)."""
    known = fields_of(type(settings))
    checked = {k: check_value(known[k], v) for k, v in changes.items()}
    custom = getattr(settings, "resume_with", None)
    if callable(custom):
        return custom(**checked)
    return dataclasses.replace(settings, **checked)
