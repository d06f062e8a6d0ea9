"""Checks of exercise 2: returns_to_go, reinforce_loss."""

from __future__ import annotations

import numpy as np

from rlkit_grader.judges import (
    Arrays,
    Failure,
    Got,
    close,
    describe_call,
    each_call,
    fmt,
    mismatch,
    tolerance,
)
from rlkit_grader.records import HIDDEN, CallData, CheckData, Outcome
from rlkit_grader.spec import FLOATS, Call, Check, normal, scalar_cot

HERE = __name__

GAMMAS = (0.99, 0.9, 0.5, 0.0, 1.0)


def _dones(rng: np.random.Generator, t: int, p: float = 0.3) -> np.ndarray:
    dones = rng.random(t) < p
    if t > 2:
        dones[t // 2] = True
    return dones


def _rtg(with_dones: bool, sizes=(1, 4, 9), gammas=GAMMAS):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for dtype in FLOATS:
            for i, t in enumerate(sizes):
                for gamma in gammas[i % 2 :: 2] if len(sizes) > 1 else gammas:
                    rewards = normal(rng, (t,), dtype)
                    if with_dones:
                        dones = _dones(rng, t)
                        if i == 2:
                            dones[-1] = True  # an episode ending exactly at the last step
                        calls.append(
                            Call(
                                "returns_to_go",
                                {"rewards": rewards, "gamma": gamma, "dones": dones},
                            )
                        )
                    elif i % 2:
                        calls.append(Call("returns_to_go", {"rewards": rewards, "gamma": gamma}))
                    else:
                        calls.append(
                            Call(
                                "returns_to_go", {"rewards": rewards, "gamma": gamma, "dones": None}
                            )
                        )
        return calls

    return cases


def _restarts(rng: np.random.Generator) -> list[Call]:
    """The whole rollout, then each episode alone: the sums must agree."""
    rewards = normal(rng, (10,), np.float64)
    dones = np.zeros(10, dtype=bool)
    dones[[2, 3, 7]] = True  # episodes [0..2], [3], [4..7], [8..9] (the last one cut off)
    calls = [Call("returns_to_go", {"rewards": rewards, "gamma": 0.9, "dones": dones})]
    for start, stop in ((0, 3), (3, 4), (4, 8), (8, 10)):
        calls.append(Call("returns_to_go", {"rewards": rewards[start:stop].copy(), "gamma": 0.9}))
    return calls


def restarts_after_dones(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """Call 0 is a rollout of several episodes, calls 1.. its episodes alone. The rollout's
    returns must be the reference's; the student's own per-episode returns are shown too, so
    a sum that does not restart after a done step is visible as such."""
    call = check.calls[0]
    dones = arrays[call.args[call.arg_names.index("dones")]["array"]]

    def restarts(c: CallData, g: Outcome) -> str | None:
        if c is not call:
            return None
        want, have = c.expected.outputs[0].array, g.outputs[0].array  # type: ignore[union-attr]
        ok = close(have, want, *tolerance(g.outputs[0].dtype, "normal", c, arrays))
        if ok.all():
            return None
        episodes = [o.outputs[0].array for o in got[1:] if o is not None and o.ok]
        own = ""
        if len(episodes) == len(got) - 1:
            alone = np.concatenate(episodes)
            own = f" (your function on each episode alone gives {fmt(alone)})"
        return (
            f"for {describe_call(c, arrays)}, the sum must restart after each done step "
            f"(dones at steps {fmt(np.flatnonzero(dones))}): {mismatch(have, want, ok)}{own}"
        )

    return each_call(check, got, arrays, restarts)


def _long(rng: np.random.Generator) -> list[Call]:
    calls = []
    for dtype in FLOATS:
        rewards = np.ones(1000, dtype=dtype)
        calls.append(Call("returns_to_go", {"rewards": rewards, "gamma": 0.99}))
        # a REINFORCE batch: 8 whole episodes of up to 500 steps laid end to end
        dones = rng.random(4000) < 0.002
        dones[-1] = True
        calls.append(
            Call(
                "returns_to_go",
                {"rewards": normal(rng, (4000,), dtype), "gamma": 0.99, "dones": dones},
            )
        )
    return calls


def _loss(normalize: bool | None, grads: tuple[str, ...] = (), sizes=(2, 5, 16)):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for dtype in FLOATS:
            for t in sizes:
                log_probs = -np.abs(normal(rng, (t,), dtype))
                returns = normal(rng, (t,), dtype, 5.0) + dtype(3.0)
                kwargs = {} if normalize is None else {"normalize": normalize}
                calls.append(
                    Call(
                        "reinforce_loss",
                        {"log_probs": log_probs, "returns": returns},
                        kwargs,
                        grad_wrt=grads,
                        cotangents=(scalar_cot(dtype),) if grads else (),
                    )
                )
        return calls

    return cases


def _loss_mixed(grads: tuple[str, ...] = ()):
    def cases(rng: np.random.Generator) -> list[Call]:
        return _loss(True, grads)(rng) + _loss(False, grads)(rng)

    return cases


CHECKS: list[Check] = [
    Check(
        "returns_to_go.shapes_dtypes",
        "returns_to_go",
        1,
        "returns a [T] tensor in the rewards' dtype",
        {"kind": "structure"},
        _rtg(True),
        seed="returns_to_go.rollouts",
    ),
    Check(
        "returns_to_go.values_single_episode",
        "returns_to_go",
        2,
        "G_t = r_t + γ·G_{t+1} on one episode (dones omitted or None), γ from 0 to 1",
        {"kind": "values"},
        _rtg(False),
    ),
    Check(
        "returns_to_go.values_with_dones",
        "returns_to_go",
        2,
        "matches the reference on rollouts of several episodes",
        {"kind": "values"},
        _rtg(True),
        seed="returns_to_go.rollouts",
    ),
    Check(
        "returns_to_go.restarts_after_dones",
        "returns_to_go",
        1,
        "a rollout's returns equal its episodes' returns computed one at a time",
        {"kind": f"{HERE}:restarts_after_dones"},
        _restarts,
    ),
    Check(
        "returns_to_go.long_episode",
        "returns_to_go",
        1,
        "finite and right on 1000 steps, and on 4000 (a batch of whole CartPole episodes)",
        {"kind": "values", "tolerance": "loose"},
        _long,
    ),
    Check(
        "returns_to_go.no_inplace",
        "returns_to_go",
        1,
        "leaves rewards and dones unchanged",
        {"kind": "no_inplace"},
        _rtg(True),
        seed="returns_to_go.rollouts",
    ),
    Check(
        "returns_to_go.hidden_values",
        "returns_to_go",
        2,
        "matches the reference on other rollouts",
        {"kind": "values"},
        _rtg(True, sizes=(3, 7, 20), gammas=(0.95, 0.8, 0.3)),
        visibility=HIDDEN,
    ),
    Check(
        "reinforce_loss.shapes_dtypes",
        "reinforce_loss",
        1,
        "returns a 0-dim tensor in the inputs' dtype",
        {"kind": "structure"},
        _loss_mixed(),
        seed="reinforce_loss.cases",
    ),
    Check(
        "reinforce_loss.values_normalized",
        "reinforce_loss",
        2,
        "−mean(log π · Ĝ) with standardized returns (the default, and normalize=True)",
        {"kind": "values"},
        lambda rng: _loss(None)(rng) + _loss(True, sizes=(3, 8))(rng),
    ),
    Check(
        "reinforce_loss.values_unnormalized",
        "reinforce_loss",
        1,
        "−mean(log π · G) with normalize=False",
        {"kind": "values"},
        _loss(False),
    ),
    Check(
        "reinforce_loss.gradient",
        "reinforce_loss",
        2,
        "passes the right gradient to the log-probs",
        {"kind": "grads"},
        _loss_mixed(("log_probs",)),
    ),
    Check(
        "reinforce_loss.no_grad_into_returns",
        "reinforce_loss",
        1,
        "no gradient flows into the returns",
        {"kind": "no_grad_leak", "args": ["returns"]},
        _loss_mixed(("log_probs", "returns")),
    ),
    Check(
        "reinforce_loss.no_inplace",
        "reinforce_loss",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _loss_mixed(),
        seed="reinforce_loss.cases",
    ),
    Check(
        "reinforce_loss.hidden_values",
        "reinforce_loss",
        2,
        "matches the reference on other inputs",
        {"kind": "values", "grads": True},
        lambda rng: (
            _loss(True, ("log_probs",), sizes=(4, 11, 64))(rng)
            + _loss(False, ("log_probs",), sizes=(3, 9))(rng)
        ),
        visibility=HIDDEN,
    ),
]
