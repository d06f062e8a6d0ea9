"""Checks of exercise 4: sequence_log_probs, dpo_loss."""

from __future__ import annotations

import numpy as np

from rlkit_grader.records import HIDDEN
from rlkit_grader.spec import FLOATS, Call, Check, ints, normal, scalar_cot

#: the documented names of the outputs, for feedback
OUTPUTS = {"dpo_loss": ("loss", "chosen_rewards", "rejected_rewards")}

# ------------------------------------------------------------------------- sequence_log_probs


def _mask(rng: np.random.Generator, b: int, length: int) -> np.ndarray:
    """Per row: a prompt (≥ 1 token), a completion (≥ 1 token), then padding."""
    mask = np.zeros((b, length), dtype=np.int64)
    for row in range(b):
        prompt = int(rng.integers(1, length))
        completion = int(rng.integers(1, length - prompt + 1))
        mask[row, prompt : prompt + completion] = 1
    return mask


def _seq_case(
    rng: np.random.Generator,
    b: int,
    length: int,
    v: int,
    dtype: type,
    grads: bool,
    scale: float = 2.0,
) -> Call:
    logits = normal(rng, (b, length, v), dtype, scale)
    return Call(
        "sequence_log_probs",
        {
            "logits": logits,
            "input_ids": ints(rng, v, (b, length)),
            "completion_mask": _mask(rng, b, length),
        },
        grad_wrt=("logits",) if grads else (),
        cotangents=(normal(rng, (b,), dtype),) if grads else (),
    )


SIZES = ((1, 2, 5), (3, 6, 11), (2, 9, 4))


def _seq(grads: bool = False, sizes=SIZES):
    def cases(rng: np.random.Generator) -> list[Call]:
        return [
            _seq_case(rng, b, length, v, dtype, grads) for dtype in FLOATS for b, length, v in sizes
        ]

    return cases


def _seq_extreme(rng: np.random.Generator) -> list[Call]:
    calls = []
    for dtype in FLOATS:
        call = _seq_case(rng, 3, 7, 6, dtype, grads=True)
        logits = call.args["logits"]
        logits[rng.random(logits.shape) < 0.3] = 1e4
        logits[rng.random(logits.shape) < 0.3] = -1e4
        calls.append(call)
    return calls


# ------------------------------------------------------------------------- dpo_loss

NAMES = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")


def _logps(rng: np.random.Generator, b: int, dtype: type, scale: float = 1.0, equal=False):
    policy_c = -np.abs(normal(rng, (b,), np.float64, 20.0)) - 5.0
    policy_r = -np.abs(normal(rng, (b,), np.float64, 20.0)) - 5.0
    ref_c = policy_c if equal else policy_c + normal(rng, (b,), np.float64, 3.0 * scale)
    ref_r = policy_r if equal else policy_r + normal(rng, (b,), np.float64, 3.0 * scale)
    return {n: np.array(a, dtype=dtype) for n, a in zip(NAMES, (policy_c, policy_r, ref_c, ref_r))}


def _dpo(grads: tuple[str, ...] = (), sizes=(1, 4, 8), betas=(None, 0.1, 0.5, 2.0)):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for dtype in FLOATS:
            for i, b in enumerate(sizes):
                for beta in betas[i % 2 :: 2]:
                    kwargs = {} if beta is None else {"beta": beta}
                    calls.append(
                        Call(
                            "dpo_loss",
                            _logps(rng, b, dtype),
                            kwargs,
                            grad_wrt=grads,
                            cotangents=(scalar_cot(dtype), None, None) if grads else (),
                        )
                    )
        return calls

    return cases


def _log2(rng: np.random.Generator) -> list[Call]:
    calls = []
    for dtype in FLOATS:
        for b, beta in ((3, None), (5, 0.7)):
            kwargs = {} if beta is None else {"beta": beta}
            calls.append(
                Call(
                    "dpo_loss",
                    _logps(rng, b, dtype, equal=True),
                    kwargs,
                    closed_form=(
                        np.array(np.log(2.0), dtype=dtype),
                        np.zeros(b, dtype),
                        np.zeros(b, dtype),
                    ),
                )
            )
    return calls


def _dpo_extreme(rng: np.random.Generator) -> list[Call]:
    calls = []
    for dtype in FLOATS:
        args = _logps(rng, 4, dtype)
        args["policy_chosen_logps"][:] = [-2e4, -10.0, -3e4, -5.0]
        args["ref_chosen_logps"][:] = [-10.0, -2e4, -5.0, -3e4]
        calls.append(
            Call(
                "dpo_loss",
                args,
                {"beta": 0.5},
                grad_wrt=NAMES[:2],
                cotangents=(scalar_cot(dtype), None, None),
            )
        )
    return calls


CHECKS: list[Check] = [
    Check(
        "sequence_log_probs.shapes_dtypes",
        "sequence_log_probs",
        1,
        "returns a [B] tensor in the logits' dtype",
        {"kind": "structure"},
        _seq(),
        seed="sequence_log_probs.cases",
    ),
    Check(
        "sequence_log_probs.values",
        "sequence_log_probs",
        2,
        "sums the completion tokens' log-probs, position t−1 predicting token t",
        {"kind": "values"},
        _seq(),
        seed="sequence_log_probs.cases",
    ),
    Check(
        "sequence_log_probs.gradient",
        "sequence_log_probs",
        2,
        "passes the right gradient to the logits",
        {"kind": "grads"},
        _seq(grads=True),
    ),
    Check(
        "sequence_log_probs.extreme_logits",
        "sequence_log_probs",
        1,
        "finite and right for logits of ±1e4",
        {"kind": "values", "tolerance": "loose", "grads": True},
        _seq_extreme,
    ),
    Check(
        "sequence_log_probs.no_inplace",
        "sequence_log_probs",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _seq(),
        seed="sequence_log_probs.cases",
    ),
    Check(
        "sequence_log_probs.hidden_values",
        "sequence_log_probs",
        2,
        "matches the reference on other inputs",
        {"kind": "values", "grads": True},
        _seq(grads=True, sizes=((4, 5, 7), (2, 12, 3), (1, 3, 9))),
        visibility=HIDDEN,
    ),
    Check(
        "dpo_loss.shapes_dtypes",
        "dpo_loss",
        1,
        "returns (loss [], chosen_rewards [B], rejected_rewards [B]) in the inputs' dtype",
        {"kind": "structure"},
        _dpo(),
        seed="dpo_loss.cases",
    ),
    Check(
        "dpo_loss.values",
        "dpo_loss",
        2,
        "the mean sigmoid loss and the implicit rewards β·(policy − ref), several β",
        {"kind": "values"},
        _dpo(),
        seed="dpo_loss.cases",
    ),
    Check(
        "dpo_loss.log2_when_policy_equals_reference",
        "dpo_loss",
        1,
        "the loss is log 2 and the rewards 0 when the policy equals the reference",
        {"kind": "values"},
        _log2,
    ),
    Check(
        "dpo_loss.gradient",
        "dpo_loss",
        2,
        "passes the right gradient to the policy log-probs",
        {"kind": "grads"},
        _dpo(NAMES[:2]),
        seed="dpo_loss.grad_cases",
    ),
    Check(
        "dpo_loss.no_grad_into_reference",
        "dpo_loss",
        1,
        "no gradient flows into the reference log-probs",
        {"kind": "no_grad_leak", "args": list(NAMES[2:])},
        _dpo(NAMES),
    ),
    Check(
        "dpo_loss.rewards_detached",
        "dpo_loss",
        1,
        "the returned rewards carry no gradient (they are for logging)",
        {"kind": "detached", "outputs": [1, 2]},
        _dpo(NAMES[:2]),
        seed="dpo_loss.grad_cases",
    ),
    Check(
        "dpo_loss.extreme",
        "dpo_loss",
        1,
        "finite and right for margins in the thousands",
        {"kind": "values", "tolerance": "loose", "grads": True},
        _dpo_extreme,
    ),
    Check(
        "dpo_loss.no_inplace",
        "dpo_loss",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _dpo(),
        seed="dpo_loss.cases",
    ),
    Check(
        "dpo_loss.hidden_values",
        "dpo_loss",
        2,
        "matches the reference on other inputs",
        {"kind": "values", "grads": True},
        _dpo(NAMES[:2], sizes=(2, 6, 16), betas=(0.05, 0.3, 1.0)),
        visibility=HIDDEN,
    ),
]
