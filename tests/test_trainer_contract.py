"""One contract between the trainers and the checks: every call a real trainer makes to an
exercise function (its arguments' dtypes, ranks and requires_grad, which ones are passed by
position or by keyword) is a call the public checks make too. So an answer that passes the
public checks is never called in a way they did not try (the float32 ``dones`` that crashed a
correct ``gae`` written with ``~dones``). The native CartPole PPO and REINFORCE trainers and the
native DPO trainer run a few real steps with the reference solutions wrapped to record calls."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections import defaultdict
from typing import Any

import pytest
import torch

from rlkit.plugins import get_exercises
from rlkit_grader.api import load_vectors, mistakes_suite
from rlkit_grader.records import PUBLIC, CallData

Signature = tuple[tuple[str, str, Any], ...]
COURSE = ("log_prob", "reinforce", "ppo", "dpo")


def _kind(value: Any, requires_grad: bool | None = None) -> Any:
    if isinstance(value, torch.Tensor):
        return (str(value.dtype).removeprefix("torch."), value.dim(), value.requires_grad)
    return "None" if value is None else type(value).__name__


def _recorded_signature(fn: Any, args: tuple, kwargs: dict) -> Signature:
    names = list(inspect.signature(fn).parameters)
    return tuple(
        [(names[i], "pos", _kind(a)) for i, a in enumerate(args)]
        + [(k, "kw", _kind(v)) for k, v in sorted(kwargs.items())]
    )


def _check_signature(call: CallData, arrays: Any) -> Signature:
    def kind(spec: dict, position: int | None) -> Any:
        if "array" not in spec:
            value = spec.get("value")
            return "None" if value is None else type(value).__name__
        a = arrays[spec["array"]]
        return (str(a.dtype), a.ndim, position in call.grad_wrt)

    return tuple(
        [(n, "pos", kind(s, i)) for i, (n, s) in enumerate(zip(call.arg_names, call.args))]
        + [(k, "kw", kind(s, None)) for k, s in sorted(call.kwargs.items())]
    )


@pytest.fixture(scope="module")
def trainer_calls() -> dict[str, set[Signature]]:
    """function → the signatures of the calls the real trainers made to it."""
    calls: dict[str, set[Signature]] = defaultdict(set)
    patch = pytest.MonkeyPatch()
    for name in COURSE:
        module = importlib.import_module(get_exercises()[name].solution)
        for function in get_exercises()[name].functions:
            original = getattr(module, function)

            def record(*args: Any, _f: Any = original, _n: str = function, **kwargs: Any) -> Any:
                calls[_n].add(_recorded_signature(_f, args, kwargs))
                return _f(*args, **kwargs)

            patch.setattr(module, function, functools.wraps(original)(record))
    try:
        from rlkit_cartpole.native import NativeCartPoleTrainer as CartPoleTrainer
        from rlkit_cartpole.native import make_config

        CartPoleTrainer(make_config("ppo", timesteps=512, seed=0)).train([])
        CartPoleTrainer(make_config("reinforce", timesteps=100, seed=0)).train([])
        from rlkit_dpo.config import DPOSettings
        from rlkit_dpo.native import NativeDPOTrainer as DPOTrainer

        DPOTrainer(DPOSettings(max_steps=1, per_device_train_batch_size=4, eval_prompts=0)).train()
    finally:
        patch.undo()
    return dict(calls)


def test_the_trainers_use_every_function_they_are_built_from(trainer_calls) -> None:
    used = {"log_prob", "entropy", "returns_to_go", "reinforce_loss", "ppo_clip_loss", "gae"}
    used |= {"sequence_log_probs", "dpo_loss"}
    assert used <= set(trainer_calls), sorted(trainer_calls)


def test_gae_and_returns_to_go_get_plain_data_and_bool_dones(trainer_calls) -> None:
    for signature in trainer_calls["gae"]:
        kinds = {name: kind for name, _, kind in signature}
        assert kinds["dones"] == ("bool", 1, False), signature
        assert kinds["last_value"] == "float", signature
        assert not kinds["rewards"][2] and not kinds["values"][2], "gae's inputs are plain data"
    for signature in trainer_calls["returns_to_go"]:
        kinds = {name: kind for name, _, kind in signature}
        assert kinds["dones"] == ("bool", 1, False) and not kinds["rewards"][2], signature


@pytest.mark.parametrize("exercise", COURSE)
def test_every_trainer_call_is_one_the_public_checks_make(exercise, trainer_calls) -> None:
    vectors = load_vectors(get_exercises()[exercise])
    checked: dict[str, set[Signature]] = defaultdict(set)
    for check in vectors.select(PUBLIC):
        for call in check.calls:
            checked[call.function].add(_check_signature(call, vectors.arrays))
    for function in get_exercises()[exercise].functions:
        for signature in trainer_calls.get(function, ()):
            assert signature in checked[function], (
                f"a trainer calls {function} as {signature}; the public checks only as:\n"
                + "\n".join(map(str, sorted(checked[function], key=str)))
            )


@pytest.mark.parametrize("alternative", ["logical_not_dones", "where_dones"])
def test_a_gae_written_with_bool_operations_trains(alternative: str, monkeypatch) -> None:
    """Correct answers that rely on ``dones`` being bool (``~dones``, ``torch.where``) pass the
    checks, so they must train too."""
    from rlkit_cartpole.native import NativeCartPoleTrainer, make_config

    suite = mistakes_suite("ppo")
    gae = next(a.impl for a in suite.ALTERNATIVES if a.name == alternative)
    monkeypatch.setattr(importlib.import_module("rlkit_solutions.ppo"), "gae", gae)
    summary = NativeCartPoleTrainer(make_config("ppo", timesteps=1024, seed=0)).train([])
    assert summary["timesteps"] >= 1024 and torch.isfinite(torch.tensor(summary["value_loss"]))


def test_last_value_reaches_gae_as_taught(monkeypatch) -> None:
    """A gae that ignores last_value fails its check, and now also trains differently: the
    bootstrap of a cut-off segment comes only through last_value."""
    import numpy as np
    from rlkit_cartpole.native import gae_segments
    from rlkit_cartpole.objectives import PPOObjective

    rewards = np.ones((4, 2), dtype=np.float32)
    terminated = np.zeros((4, 2), dtype=bool)
    terminated[1, 0] = True  # env 0 ends an episode at t=1; env 1 runs past the rollout
    valid = np.ones((4, 2), dtype=bool)
    valid[2, 0] = False  # env 0's autoreset step
    values = torch.arange(10, dtype=torch.float32).view(5, 2)
    segments = gae_segments(rewards, values, terminated, np.zeros_like(terminated), valid)
    reference = PPOObjective().advantages(segments)
    mistake = next(
        m.impl for m in mistakes_suite("ppo").MISTAKES if m.name == "gae_ignores_last_value"
    )
    monkeypatch.setattr(importlib.import_module("rlkit_solutions.ppo"), "gae", mistake)
    ignored = PPOObjective().advantages(segments)
    assert not torch.allclose(reference[0], ignored[0])
