"""How course authors write checks: a ``Check`` names a function, its points, its visibility and
a judge, and builds its ``Call``s from a seeded random generator (numpy only, so the inputs are
reproducible and the vectors generated from them are stable).

A check module (``grader/checks/ppo.py``, or any plugin's) defines ``CHECKS: list[Check]``.
Its expected outcomes are computed once from the reference solution by
``rlkit vectors --regenerate`` and stored next to it as ``<module>.vectors.json`` + ``.npz``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlkit_grader.records import PUBLIC, VISIBILITIES

#: The generic judges the engine knows (see grader/judges.py). Params go next to "kind". A
#: judge specific to one exercise is named by import path instead, ``"pkg.module:function"``,
#: and lives beside that exercise's checks (see ``grader/judges.py`` for its signature).
GENERIC_JUDGES = ("structure", "values", "grads", "no_grad_leak", "detached", "no_inplace")

#: ``Call.grad_mode`` values: "" (autograd on, the default) or "inference" (the call runs under
#: ``torch.inference_mode()``, so a function that needs autograd fails, as its contract says).
GRAD_MODES = ("", "inference")


def is_judge_path(kind: object) -> bool:
    """``"pkg.module:function"``: an exercise-specific judge, loaded by import path."""
    return isinstance(kind, str) and ":" in kind and all(kind.partition(":")[::2])


@dataclass
class Call:
    """One call of an exercise function.

    ``args`` are passed positionally (in order), ``kwargs`` by name; numpy arrays become torch
    tensors (float32/float64/int64/bool), anything else is passed as is. ``grad_wrt`` names the
    args to differentiate; ``cotangents`` weight each output (None: not differentiated) so one
    backward pass gives every gradient. ``closed_form`` replaces the reference's output values
    by values known in closed form (the generator checks that the reference agrees).
    ``grad_mode="inference"`` runs the call under ``torch.inference_mode()`` (for functions
    whose contract says "without autograd").
    """

    function: str
    args: dict[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad_wrt: tuple[str, ...] = ()
    cotangents: tuple[np.ndarray | None, ...] = ()
    aux: dict[str, np.ndarray] = field(default_factory=dict)
    closed_form: tuple[np.ndarray | None, ...] | None = None
    grad_mode: str = ""

    def __post_init__(self) -> None:
        if self.grad_mode not in GRAD_MODES:
            raise ValueError(f"{self.function}: grad_mode must be one of {GRAD_MODES}")


@dataclass(frozen=True)
class Check:
    """A named, scored check of one function."""

    name: str
    function: str
    points: int
    description: str
    judge: dict[str, Any]
    cases: Callable[[np.random.Generator], list[Call]]
    visibility: str = PUBLIC
    #: checks with the same seed (and case builder) get the same inputs: run once, stored once
    seed: str = ""

    def __post_init__(self) -> None:
        if self.visibility not in VISIBILITIES:
            raise ValueError(f"{self.name}: visibility must be one of {VISIBILITIES}")
        kind = self.judge.get("kind")
        if kind not in GENERIC_JUDGES and not is_judge_path(kind):
            raise ValueError(
                f"{self.name}: unknown judge {kind!r}; use one of {', '.join(GENERIC_JUDGES)} or an "
                "import path 'package.module:function'"
            )

    def build(self) -> list[Call]:
        """The calls, from a generator seeded by the check's seed or name (reproducible)."""
        seed = self.seed or self.name
        return self.cases(np.random.default_rng(zlib.crc32(seed.encode())))


#: how a mistake's variant is keyed in the stored vectors: ``ignores_dones~1``
VARIANT_SEP = "~"


@dataclass(frozen=True)
class Mistake:
    """A classic wrong answer: named in feedback when a student's code behaves like it.

    ``impl`` is the mistake as it is usually made; ``variants`` are other ways to make the
    same mistake that behave differently on some inputs (the mistake made in one place of
    two, or only in float32...). Each variant is stored and recognized like the mistake
    itself, under the same name and explanation, so feedback names it too. Each must fail a
    public check and be named (``tests/test_mistake_variants.py`` holds every registered
    catalogue to that, as ``tests/test_exercise_mistakes.py`` does the mistakes).

    Recognition (``rlkit_grader.judges.recognize``): a failed check names the mistake when,
    on every call of the check, the student's code behaves like the mistake or one of its
    variants, or (a partial variant) behaves like the mistake on some calls and like the
    reference on the others.
    """

    name: str
    function: str
    explanation: str
    impl: Callable[..., Any]
    variants: tuple[Callable[..., Any], ...] = ()

    def implementations(self) -> list[tuple[str, Callable[..., Any]]]:
        """``(key, impl)`` for the mistake and each variant: ``name``, ``name~1``, ..."""
        return [(self.name, self.impl)] + [
            (f"{self.name}{VARIANT_SEP}{i}", impl) for i, impl in enumerate(self.variants, 1)
        ]


def mistake_name(key: str) -> str:
    """The catalogued mistake a stored key (``ignores_dones~1``: a variant) belongs to."""
    return key.split(VARIANT_SEP, 1)[0]


@dataclass(frozen=True)
class Alternative:
    """A correct answer written another way: it must pass every check."""

    name: str
    function: str
    impl: Callable[..., Any]


# ---------------------------------------------------------------------- helpers for authors

FLOATS = (np.float32, np.float64)


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, scale: float = 1.0
) -> np.ndarray:
    return np.asarray(rng.standard_normal(shape) * scale).astype(dtype)


def ints(rng: np.random.Generator, high: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(rng.integers(0, high, size=shape)).astype(np.int64)


def scalar_cot(dtype: Any) -> np.ndarray:
    """The cotangent of a scalar loss: 1, so the gradient is ∂loss/∂input."""
    return np.ones((), dtype=dtype)
