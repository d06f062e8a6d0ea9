"""Mistakes are recognized by behaviour, variants included (issue 16, items 4 and 5): a declared
variant of a catalogued mistake is stored and named under the mistake's name; a partial
variant (the mistake on some calls, the reference on the others) is named with no declaration;
code wrong in another way is not. And the judges say which output's gradient they mean.

Before: ``recognize`` named a mistake only when the student's code matched the catalogued
implementation on every call of a check, so both the variant and the partial variant below got
no name; the gradient judges said "the gradient with respect to `values` is wrong" and
"gradient flows into `values` ...; it is data, not something to learn" whatever the output.

The exercise is built in-process (checks, reference, catalogue) and its vectors generated with
``rlkit_grader.store.generate``, as ``rlkit vectors --regenerate`` does for a plugin."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlkit_grader import store
from rlkit_grader.api import grade
from rlkit_grader.executor import execute_calls
from rlkit_grader.records import Outcome
from rlkit_grader.spec import FLOATS, Call, Check, Mistake, mistake_name, normal, scalar_cot


def td_errors(rewards, values, next_values, dones, gamma):
    return rewards + gamma * (1.0 - dones.to(rewards.dtype)) * next_values - values


def wrong_mask(rewards, values, next_values, dones, gamma):
    keep = 1.0 - dones.to(rewards.dtype)
    return rewards + gamma * keep * next_values - keep * values


def wrong_mask_on_reward(rewards, values, next_values, dones, gamma):
    """The same misconception, written another way: (1 − done) on the wrong term."""
    keep = 1.0 - dones.to(rewards.dtype)
    return keep * rewards + gamma * keep * next_values - values


def ignores_dones(rewards, values, next_values, dones, gamma):
    return rewards + gamma * next_values - values


def a2c_terms(log_probs, values, returns):
    """(policy_loss, value_loss): the critic learns from value_loss only."""
    advantages = returns - values.detach()
    return -(log_probs * advantages).mean(), ((returns - values) ** 2).mean()


def _td(rng: np.random.Generator) -> list[Call]:
    calls = []
    for dtype in FLOATS:
        for t in (3, 6):
            dones = np.zeros(t, dtype=bool)
            dones[1] = True
            args = {
                "rewards": normal(rng, (t,), dtype),
                "values": normal(rng, (t,), dtype),
                "next_values": normal(rng, (t,), dtype),
                "dones": dones,
                "gamma": 0.9,
            }
            calls.append(Call("td_errors", args))
    return calls


def _a2c(cotangents):
    def cases(rng: np.random.Generator) -> list[Call]:
        args = {name: normal(rng, (5,), np.float64) for name in ("log_probs", "values", "returns")}
        cots = tuple(None if c is None else scalar_cot(np.float64) for c in cotangents)
        return [Call("a2c_terms", args, grad_wrt=("log_probs", "values"), cotangents=cots)]

    return cases


CHECKS = [
    Check("td.values", "td_errors", 2, "r + γ(1 − done)V' − V", {"kind": "values"}, _td),
    Check(
        "a2c.policy_leak",
        "a2c_terms",
        1,
        "the policy loss passes no gradient to the critic's values",
        {"kind": "no_grad_leak", "args": ["values"]},
        _a2c((1, None)),
    ),
    Check(
        "a2c.value_grads",
        "a2c_terms",
        1,
        "the value loss trains the critic",
        {"kind": "grads"},
        _a2c((None, 1)),
    ),
]
MISTAKES = [
    Mistake(
        "wrong_mask",
        "td_errors",
        "puts (1 − done) on the wrong term; it multiplies the next value only.",
        wrong_mask,
        variants=(wrong_mask_on_reward,),
    ),
    Mistake("ignores_dones", "td_errors", "forgets (1 − done).", ignores_dones),
]


@pytest.fixture(scope="module")
def vectors():
    reference = SimpleNamespace(td_errors=td_errors, a2c_terms=a2c_terms)
    doc, arrays = store.generate(
        "toy",
        ("td_errors", "a2c_terms"),
        CHECKS,
        reference,
        MISTAKES,
        {"a2c_terms": ("policy_loss", "value_loss")},
    )
    return doc, store.from_json(doc, arrays)


def check(vectors, **functions):
    """Grade ``functions`` (the reference for the others) on every check, as check_module."""
    _, vec = vectors
    fns = {"td_errors": td_errors, "a2c_terms": a2c_terms, **functions}
    outcomes = []
    for c in vec.checks:
        metas = execute_calls(fns, [call.request() for call in c.calls], vec.arrays)
        outcomes.append([Outcome.from_meta(*m) for m in metas])
    return {r.name: r for r in grade(vec, vec.checks, outcomes).checks}


def test_a_declared_variant_is_stored_under_the_mistake_s_name(vectors) -> None:
    doc, _ = vectors
    (td,) = [c for c in doc["checks"] if c["name"] == "td.values"]
    assert td["caught"] == ["wrong_mask", "wrong_mask~1", "ignores_dones"]
    assert set(doc["mistakes"]) == {"wrong_mask", "ignores_dones"}  # explanations: by name
    assert mistake_name("wrong_mask~1") == "wrong_mask"


@pytest.mark.parametrize(
    ("impl", "named"),
    [
        (wrong_mask, "wrong_mask"),
        (wrong_mask_on_reward, "wrong_mask"),  # the declared variant
        (ignores_dones, "ignores_dones"),
    ],
)
def test_the_mistake_and_its_variant_are_named(vectors, impl, named) -> None:
    result = check(vectors, td_errors=impl)["td.values"]
    assert not result.passed and result.misconception == named
    assert "Looks like a classic mistake" in result.message


def test_a_partial_variant_is_named_without_a_declaration(vectors) -> None:
    """The mistake made on float32 inputs only: like the reference on the float64 calls, like
    the catalogued mistake on the others."""

    def float32_only(rewards, values, next_values, dones, gamma):
        if rewards.dtype == torch.float32:
            return ignores_dones(rewards, values, next_values, dones, gamma)
        return td_errors(rewards, values, next_values, dones, gamma)

    result = check(vectors, td_errors=float32_only)["td.values"]
    assert not result.passed and result.misconception == "ignores_dones"


def test_code_wrong_another_way_is_not_named(vectors) -> None:
    def off_by_one(rewards, values, next_values, dones, gamma):
        return td_errors(rewards, values, next_values, dones, gamma) + 1.0

    def half_wrong(rewards, values, next_values, dones, gamma):  # reference or nonsense
        if rewards.dtype == torch.float32:
            return off_by_one(rewards, values, next_values, dones, gamma)
        return td_errors(rewards, values, next_values, dones, gamma)

    for impl in (off_by_one, half_wrong):
        result = check(vectors, td_errors=impl)["td.values"]
        assert not result.passed and result.misconception is None


def test_gradient_messages_name_the_output(vectors) -> None:
    def leaks(log_probs, values, returns):  # the advantage is not detached
        return -(log_probs * (returns - values)).mean(), ((returns - values) ** 2).mean()

    def frozen_critic(log_probs, values, returns):  # the value loss cannot train the critic
        advantages = returns - values.detach()
        return -(log_probs * advantages).mean(), ((returns - values.detach()) ** 2).mean()

    leak = check(vectors, a2c_terms=leaks)["a2c.policy_leak"]
    assert not leak.passed
    assert leak.message.startswith("the gradient of `policy_loss` flows into `values`")
    assert "not something to learn" not in leak.message  # values are the critic's: learned
    assert "a2c_terms() must pass none to `values` here" in leak.message
    frozen = check(vectors, a2c_terms=frozen_critic)["a2c.value_grads"]
    assert not frozen.passed
    assert frozen.message.startswith("no gradient of `value_loss` reaches `values`")


def _registered_variants() -> list:
    from rlkit.plugins import get_exercises
    from rlkit_grader.api import mistakes_suite

    found = []
    for name, exercise in get_exercises().items():
        if exercise.solution is None or not exercise.has(exercise.mistakes):
            continue
        suite = mistakes_suite(exercise)
        for mistake in getattr(suite, "MISTAKES", []):
            for key, impl in mistake.implementations()[1:]:
                found.append((name, mistake, key, impl))
    return found


def test_every_registered_variant_is_caught_and_named() -> None:
    """Each variant in an installed exercise's catalogue fails a public check that names its
    mistake (none may be declared yet: then there is nothing to hold)."""
    import importlib

    from rlkit.plugins import get_exercises
    from rlkit_grader.api import check_module
    from rlkit_grader.records import PUBLIC

    for name, mistake, key, impl in _registered_variants():
        exercise = get_exercises()[name]
        module = importlib.import_module(exercise.solution)
        functions = {f: getattr(module, f) for f in exercise.functions}
        functions[mistake.function] = impl
        report = check_module(name, functions, PUBLIC, [mistake.function])
        failed = [c for c in report.checks if not c.passed]
        assert failed, f"{key} passes every public check"
        assert any(c.misconception == mistake.name for c in failed), key
