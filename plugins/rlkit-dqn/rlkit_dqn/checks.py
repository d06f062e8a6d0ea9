"""Checks of the DQN exercise: td_target, double_dqn_target, dqn_loss.

Written with the course's check engine (``rlkit_grader.spec``), like ``grader/checks/ppo.py``. The
expected outcomes are stored beside this file (``checks.vectors.json`` + ``.npz``); rebuild them
with ``rlkit vectors --regenerate dqn`` after changing a check or the reference solution.

Several value checks use square batches (B = A): a max or a gather along the wrong dimension
then still runs and returns a wrong [B] result, which the feedback can name, instead of
crashing on a shape mismatch.
"""

from __future__ import annotations

import numpy as np
from rlkit_grader.records import HIDDEN
from rlkit_grader.spec import FLOATS, Call, Check, ints, normal, scalar_cot

GAMMAS = (0.99, 0.9, 0.5, 1.0)
SQUARE = ((2, 2), (3, 3), (6, 6))


def _dones(rng: np.random.Generator, b: int, with_dones: bool) -> np.ndarray:
    if not with_dones:
        return np.zeros(b, dtype=bool)
    dones = rng.random(b) < 0.4
    dones[0] = True  # at least one terminal transition, and (for b > 1) one that is not
    if b > 1:
        dones[-1] = False
    return dones


def _q(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Q-values around 5 with a spread of 3: distinct maxima, no ties."""
    return (5.0 + normal(rng, shape, np.float64, 3.0)).astype(dtype)


# ------------------------------------------------------------------------- td_target


def _td(with_dones: bool, shapes=SQUARE, gammas=GAMMAS, grads: tuple[str, ...] = ()):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for dtype in FLOATS:
            for i, (b, a) in enumerate(shapes):
                gamma = gammas[i % len(gammas)]
                calls.append(
                    Call(
                        "td_target",
                        {
                            "rewards": normal(rng, (b,), dtype),
                            "next_q_values": _q(rng, (b, a), dtype),
                            "dones": _dones(rng, b, with_dones),
                            "gamma": gamma,
                        },
                        grad_wrt=grads,
                        cotangents=(np.ones(b, dtype=dtype),) if grads else (),
                    )
                )
        return calls

    return cases


def _td_all_done(rng: np.random.Generator) -> list[Call]:
    """Every transition ends its episode: the target is the reward alone (closed form)."""
    calls = []
    for dtype in FLOATS:
        rewards = normal(rng, (5,), dtype)
        call = Call(
            "td_target",
            {
                "rewards": rewards,
                "next_q_values": _q(rng, (5, 2), dtype),
                "dones": np.ones(5, dtype=bool),
                "gamma": 0.99,
            },
        )
        call.closed_form = (rewards.copy(),)
        calls.append(call)
    return calls


# ------------------------------------------------------------------------- double_dqn_target


def _double(
    with_dones: bool,
    shapes=SQUARE,
    gammas=GAMMAS,
    grads: tuple[str, ...] = (),
    disagree: bool = False,
):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for dtype in FLOATS:
            for i, (b, a) in enumerate(shapes):
                online, target = _q(rng, (b, a), dtype), _q(rng, (b, a), dtype)
                if disagree:  # the online argmax is never the target's argmax
                    rows = np.arange(b)
                    best_t = target.argmax(-1)
                    online[rows, best_t] = online.min(-1) - 1.0
                rewards = normal(rng, (b,), dtype)
                dones = _dones(rng, b, with_dones)
                gamma = gammas[i % len(gammas)]
                call = Call(
                    "double_dqn_target",
                    {
                        "rewards": rewards,
                        "next_q_online": online,
                        "next_q_target": target,
                        "dones": dones,
                        "gamma": gamma,
                    },
                    grad_wrt=grads,
                    cotangents=(np.ones(b, dtype=dtype),) if grads else (),
                )
                if disagree:
                    value = target[np.arange(b), online.argmax(-1)].astype(np.float64)
                    y = rewards.astype(np.float64) + gamma * (1.0 - dones) * value
                    call.closed_form = (y.astype(dtype),)
                calls.append(call)
        return calls

    return cases


# ------------------------------------------------------------------------- dqn_loss


def _loss_case(
    rng: np.random.Generator,
    b: int,
    a: int,
    dtype: type,
    errors: str,
    grads: tuple[str, ...],
) -> Call:
    q_values = _q(rng, (b, a), dtype)
    actions = ints(rng, a, (b,))
    sign = np.where(rng.random(b) < 0.5, -1.0, 1.0)
    if errors == "small":  # |Q(s, a) − y| < 1: the quadratic part
        size = rng.uniform(0.05, 0.9, b)
    elif errors == "large":  # |Q(s, a) − y| > 1: the linear part
        size = rng.uniform(1.5, 20.0, b)
    elif errors == "extreme":
        size = rng.uniform(100.0, 5000.0, b)
    else:  # both sides of δ = 1, never right on it
        size = np.where(rng.random(b) < 0.5, rng.uniform(0.05, 0.9, b), rng.uniform(1.2, 6.0, b))
        size[0], size[-1] = 0.3, 3.0
    taken = q_values.astype(np.float64)[np.arange(b), actions]
    targets = (taken - sign * size).astype(dtype)
    return Call(
        "dqn_loss",
        {"q_values": q_values, "actions": actions, "targets": targets},
        grad_wrt=grads,
        cotangents=(scalar_cot(dtype),) if grads else (),
    )


def _loss(
    errors: str = "mixed",
    shapes=((2, 2), (4, 4), (8, 2), (32, 3)),
    grads: tuple[str, ...] = (),
):
    def cases(rng: np.random.Generator) -> list[Call]:
        return [_loss_case(rng, b, a, dtype, errors, grads) for dtype in FLOATS for b, a in shapes]

    return cases


CHECKS: list[Check] = [
    # td_target
    Check(
        "td_target.shapes_dtypes",
        "td_target",
        1,
        "returns a [B] tensor in the rewards' dtype",
        {"kind": "structure"},
        _td(True),
        seed="td_target.cases",
    ),
    Check(
        "td_target.values_no_dones",
        "td_target",
        2,
        "r + γ·max_a' Q(s', a') when no episode ends",
        {"kind": "values"},
        _td(False),
    ),
    Check(
        "td_target.values_with_dones",
        "td_target",
        2,
        "nothing is bootstrapped from the next state where done is true",
        {"kind": "values"},
        _td(True),
        seed="td_target.cases",
    ),
    Check(
        "td_target.reward_only_when_done",
        "td_target",
        1,
        "when every transition ends its episode, the target is the reward",
        {"kind": "values"},
        _td_all_done,
    ),
    Check(
        "td_target.batch_of_transitions",
        "td_target",
        1,
        "right on a batch of 32 transitions with 2 actions (CartPole's shape)",
        {"kind": "values"},
        _td(True, shapes=((32, 2),)),
    ),
    Check(
        "td_target.no_gradient",
        "td_target",
        1,
        "the target carries no gradient (it is a label)",
        {"kind": "detached", "outputs": [0]},
        _td(True, grads=("rewards", "next_q_values")),
    ),
    Check(
        "td_target.no_inplace",
        "td_target",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _td(True),
        seed="td_target.cases",
    ),
    Check(
        "td_target.hidden_values",
        "td_target",
        2,
        "matches the reference on other batches",
        {"kind": "values"},
        _td(True, shapes=((5, 5), (64, 2), (7, 4)), gammas=(0.95, 0.0, 0.8)),
        visibility=HIDDEN,
    ),
    # double_dqn_target
    Check(
        "double_dqn_target.shapes_dtypes",
        "double_dqn_target",
        1,
        "returns a [B] tensor in the rewards' dtype",
        {"kind": "structure"},
        _double(True),
        seed="double_dqn_target.cases",
    ),
    Check(
        "double_dqn_target.values",
        "double_dqn_target",
        2,
        "r + γ·(1 − done)·Q_target(s', argmax_a' Q_online(s', a'))",
        {"kind": "values"},
        _double(True),
        seed="double_dqn_target.cases",
    ),
    Check(
        "double_dqn_target.online_chooses_target_values",
        "double_dqn_target",
        2,
        "the online network picks a', the target network values it (they disagree here)",
        {"kind": "values"},
        _double(False, disagree=True),
    ),
    Check(
        "double_dqn_target.batch_of_transitions",
        "double_dqn_target",
        1,
        "right on a batch of 32 transitions with 2 actions (CartPole's shape)",
        {"kind": "values"},
        _double(True, shapes=((32, 2),)),
    ),
    Check(
        "double_dqn_target.no_gradient",
        "double_dqn_target",
        1,
        "the target carries no gradient (it is a label)",
        {"kind": "detached", "outputs": [0]},
        _double(True, grads=("next_q_online", "next_q_target")),
    ),
    Check(
        "double_dqn_target.no_inplace",
        "double_dqn_target",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _double(True),
        seed="double_dqn_target.cases",
    ),
    Check(
        "double_dqn_target.hidden_values",
        "double_dqn_target",
        2,
        "matches the reference on other batches",
        {"kind": "values"},
        _double(True, shapes=((5, 5), (64, 2), (7, 4)), gammas=(0.95, 0.0, 0.8)),
        visibility=HIDDEN,
    ),
    # dqn_loss
    Check(
        "dqn_loss.shapes_dtypes",
        "dqn_loss",
        1,
        "returns a 0-dim tensor in the Q-values' dtype",
        {"kind": "structure"},
        _loss(),
        seed="dqn_loss.cases",
    ),
    Check(
        "dqn_loss.values",
        "dqn_loss",
        2,
        "mean Huber loss of Q(s, a) − y, errors on both sides of δ = 1",
        {"kind": "values"},
        _loss(),
        seed="dqn_loss.cases",
    ),
    Check(
        "dqn_loss.small_errors",
        "dqn_loss",
        1,
        "errors smaller than δ = 1: the quadratic part ½·x²",
        {"kind": "values"},
        _loss("small"),
    ),
    Check(
        "dqn_loss.large_errors",
        "dqn_loss",
        1,
        "errors larger than δ = 1: the linear part |x| − ½",
        {"kind": "values"},
        _loss("large"),
    ),
    Check(
        "dqn_loss.gradient",
        "dqn_loss",
        2,
        "passes clip(x, −1, 1)/B to Q(s, a) of the actions taken, 0 to the others",
        {"kind": "grads"},
        _loss(grads=("q_values",)),
        seed="dqn_loss.grad_cases",
    ),
    Check(
        "dqn_loss.no_grad_leak",
        "dqn_loss",
        1,
        "no gradient flows into the targets",
        {"kind": "no_grad_leak", "args": ["targets"]},
        _loss(grads=("q_values", "targets")),
    ),
    Check(
        "dqn_loss.extreme",
        "dqn_loss",
        1,
        "finite and right for errors in the thousands",
        {"kind": "values", "tolerance": "loose", "grads": True},
        _loss("extreme", shapes=((256, 2),), grads=("q_values",)),
    ),
    Check(
        "dqn_loss.no_inplace",
        "dqn_loss",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _loss(),
        seed="dqn_loss.cases",
    ),
    Check(
        "dqn_loss.hidden_values",
        "dqn_loss",
        2,
        "matches the reference on other batches",
        {"kind": "values", "grads": True},
        _loss(shapes=((3, 3), (64, 2), (16, 5)), grads=("q_values",)),
        visibility=HIDDEN,
    ),
]
