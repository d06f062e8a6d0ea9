"""Fidelity, for every registered exercise (a plugin's too): every classic mistake fails the
public checks and is named in the feedback; every alternative correct answer passes every check,
hidden ones included. Runs in-process through the same judges and stored vectors as
`rlkit check`. The catalogues are the ones the exercises register (``Exercise.mistakes``)."""

from __future__ import annotations

import importlib

import pytest

from rlkit.plugins import get_exercises
from rlkit_grader.api import check_module, mistakes_suite
from rlkit_grader.records import HIDDEN, PUBLIC

EXERCISES = {name: ex for name, ex in get_exercises().items() if ex.solution is not None}
SUITES = {name: mistakes_suite(ex) for name, ex in EXERCISES.items()}


def _reference(exercise: str) -> dict:
    module = importlib.import_module(EXERCISES[exercise].solution)
    return {n: getattr(module, n) for n in EXERCISES[exercise].functions}


def _cases(kind: str) -> list:
    return [
        pytest.param(ex, item, id=f"{ex}:{item.function}:{item.name}")
        for ex, suite in SUITES.items()
        if suite is not None
        for item in getattr(suite, kind)
    ]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_exercise_has_mistakes_for_each_function_and_alternatives(name: str) -> None:
    suite = SUITES[name]
    assert suite is not None, f"{name} registers no mistakes (Exercise.mistakes)"
    assert len(suite.MISTAKES) >= 6, name
    assert len({m.name for m in suite.MISTAKES}) == len(suite.MISTAKES), name
    functions = set(EXERCISES[name].functions)
    for item in [*suite.MISTAKES, *suite.ALTERNATIVES]:
        assert item.function in functions, (name, item.name)
    assert {m.function for m in suite.MISTAKES} == functions, "a function has no mistakes"
    assert {a.function for a in suite.ALTERNATIVES} >= {m.function for m in suite.MISTAKES}


@pytest.mark.parametrize(("exercise", "mistake"), _cases("MISTAKES"))
def test_mistake_is_caught_by_public_checks_and_named(exercise, mistake) -> None:
    functions = {**_reference(exercise), mistake.function: mistake.impl}
    report = check_module(exercise, functions, PUBLIC, [mistake.function])
    failed = [c for c in report.checks if not c.passed]
    assert failed, f"{mistake.name} passes every public check"
    named = [c.name for c in failed if mistake.explanation in c.message]
    assert named, f"no failing check names {mistake.name}:\n" + "\n".join(
        f"{c.name}: {c.message}" for c in failed
    )


@pytest.mark.parametrize(("exercise", "alternative"), _cases("ALTERNATIVES"))
def test_alternative_passes_every_check(exercise, alternative) -> None:
    functions = {**_reference(exercise), alternative.function: alternative.impl}
    report = check_module(exercise, functions, HIDDEN, [alternative.function])
    failed = [f"{c.name}: {c.message}" for c in report.checks if not c.passed]
    assert not failed, "\n".join(failed)
    assert report.score == report.max_score
