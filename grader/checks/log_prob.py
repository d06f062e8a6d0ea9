"""Checks of exercise 1: log_prob, entropy, grad_log_prob."""

from __future__ import annotations

import numpy as np

from rlkit_grader.judges import (
    Arrays,
    Failure,
    Got,
    call_failure,
    close,
    describe_call,
    each_call,
    mismatch,
    tolerance,
    values_problem,
)
from rlkit_grader.records import HIDDEN, CheckData
from rlkit_grader.spec import FLOATS, Call, Check, ints, normal

#: exercise-specific judges below are named by import path in the checks
HERE = __name__

#: logits shapes [..., A]: no batch dim, one, two; A from 2 to 7.
SHAPES = [(3,), (5, 2), (2, 3, 4), (1, 7)]
HIDDEN_SHAPES = [(6,), (4, 5), (3, 2, 2), (64, 3)]


def _pairs(rng: np.random.Generator, shapes: list[tuple[int, ...]], scale: float = 2.0):
    for dtype in FLOATS:
        for shape in shapes:
            yield normal(rng, shape, dtype, scale), ints(rng, shape[-1], shape[:-1]), dtype


def _extreme(rng: np.random.Generator, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Rows mixing ±1e4 with ordinary logits; some actions pick a −1e4 entry."""
    logits = normal(rng, (6, 4), dtype)
    logits[0] = [1e4, -1e4, 0.0, 3.0]
    logits[1] = [-1e4, -1e4, -1e4, -1e4]
    logits[2] = [1e4, 1e4, -1e4, 2.0]
    logits[3, 2] = -1e4
    logits[4, 1] = 1e4
    actions = np.array([1, 3, 2, 2, 0, 1], dtype=np.int64)
    return logits, actions


def _calls(function: str, grads: bool = False, shapes: list[tuple[int, ...]] = SHAPES):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for logits, actions, dtype in _pairs(rng, shapes):
            args = (
                {"logits": logits}
                if function == "entropy"
                else {"logits": logits, "actions": actions}
            )
            if grads:
                calls.append(
                    Call(
                        function,
                        args,
                        grad_wrt=("logits",),
                        cotangents=(normal(rng, logits.shape[:-1], dtype),),
                    )
                )
            else:
                calls.append(Call(function, args))
        return calls

    return cases


def _extreme_calls(function: str, grads: bool):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for dtype in FLOATS:
            logits, actions = _extreme(rng, dtype)
            args = (
                {"logits": logits}
                if function == "entropy"
                else {"logits": logits, "actions": actions}
            )
            cot = (normal(rng, (6,), dtype),) if grads else ()
            calls.append(
                Call(function, args, grad_wrt=("logits",) if grads else (), cotangents=cot)
            )
        return calls

    return cases


def _uniform(rng: np.random.Generator) -> list[Call]:
    calls = []
    for dtype in FLOATS:
        for a in (2, 5):
            logits = np.repeat(normal(rng, (3, 1), dtype, 5.0), a, axis=1)
            calls.append(
                Call(
                    "entropy", {"logits": logits}, closed_form=(np.full(3, np.log(a), dtype=dtype),)
                )
            )
    return calls


def _autograd(rng: np.random.Generator) -> list[Call]:
    logits, actions = normal(rng, (4, 3), np.float64, 2.0), ints(rng, 3, (4,))
    return [
        Call("grad_log_prob", {"logits": logits, "actions": actions}),
        Call(
            "log_prob",
            {"logits": logits, "actions": actions},
            grad_wrt=("logits",),
            cotangents=(np.ones(4),),
        ),
    ]


def _graph(rng: np.random.Generator) -> list[Call]:
    """``logits`` that require grad, as a policy's do: the result must still be plain."""
    return [
        Call(
            "grad_log_prob",
            {"logits": logits, "actions": actions},
            grad_wrt=("logits",),
            cotangents=(None,),
        )
        for logits, actions, _ in _pairs(rng, SHAPES[:2])
    ]


def _inference(rng: np.random.Generator) -> list[Call]:
    """Autograd switched off (``torch.inference_mode()``): the closed form still works."""
    return [
        Call("grad_log_prob", {"logits": logits, "actions": actions}, grad_mode="inference")
        for logits, actions, _ in _pairs(rng, SHAPES[:2])
    ]


def equals_autograd(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """Call 0 is the student's closed form; call 1 the reference's autograd of log_prob."""
    call, ref = check.calls
    g = got[0]
    problem = call_failure(call, g, arrays, check=check)
    if problem is None:
        assert g is not None and g.outputs[0].array is not None and ref.expected is not None
        want = ref.expected.grads[params.get("arg", 0)]
        assert want is not None
        ok = close(g.outputs[0].array, want, *tolerance(g.outputs[0].dtype, "normal", call, arrays))
        if not ok.all():
            problem = (
                f"for {describe_call(call, arrays)}, the result differs from autograd's "
                f"gradient of log_prob: {mismatch(g.outputs[0].array, want, ok)}"
            )
    return [(0, problem, False)] if problem else []


def without_autograd(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """Right values when autograd is off: a closed form, not backward/torch.autograd.grad."""

    failures = each_call(
        check, got, arrays, lambda call, g: values_problem(check, call, g, arrays, params)
    )
    out = []
    for i, message, strong in failures:
        g = got[i]
        if g is not None and not g.ok and g.error_kind == "exception":
            message = (
                f"{check.function}() fails when autograd is off (it ran under "
                f"torch.inference_mode()): {g.error}. Compute the closed form "
                f"onehot(a) − softmax(logits) instead of calling backward or torch.autograd.grad"
            )
            strong = True
        out.append((i, message, strong))
    return out


def _per_function(function: str, extreme_grads: bool) -> list[Check]:
    f = function
    checks = [
        Check(
            f"{f}.shapes_dtypes",
            f,
            1,
            "returns one tensor per batch element, in the inputs' "
            "dtype (float32 and float64, with and without batch dims)",
            {"kind": "structure"},
            _calls(f),
            seed=f"{f}.cases",
        ),
        Check(
            f"{f}.values",
            f,
            2,
            "matches the reference on random logits",
            {"kind": "values"},
            _calls(f),
            seed=f"{f}.cases",
        ),
        Check(
            f"{f}.extreme_logits",
            f,
            1,
            "finite and right for logits of ±1e4",
            {"kind": "values", "tolerance": "loose", "grads": extreme_grads},
            _extreme_calls(f, extreme_grads),
        ),
        Check(
            f"{f}.no_inplace",
            f,
            1,
            "leaves its inputs unchanged",
            {"kind": "no_inplace"},
            _calls(f),
            seed=f"{f}.cases",
        ),
        Check(
            f"{f}.hidden_values",
            f,
            2,
            "matches the reference on other inputs",
            {"kind": "values", "grads": f != "grad_log_prob"},
            _calls(f, grads=f != "grad_log_prob", shapes=HIDDEN_SHAPES),
            visibility=HIDDEN,
        ),
    ]
    if f != "grad_log_prob":
        checks.insert(
            2,
            Check(
                f"{f}.gradient",
                f,
                2,
                "passes the right gradient to the logits",
                {"kind": "grads"},
                _calls(f, grads=True),
            ),
        )
    return checks


CHECKS: list[Check] = [
    *_per_function("log_prob", extreme_grads=True),
    *_per_function("entropy", extreme_grads=True),
    Check(
        "entropy.uniform_is_log_A",
        "entropy",
        1,
        "is log A for a uniform policy",
        {"kind": "values"},
        _uniform,
    ),
    *_per_function("grad_log_prob", extreme_grads=False),
    Check(
        "grad_log_prob.equals_autograd",
        "grad_log_prob",
        2,
        "equals autograd's gradient of log π(a|s) with respect to the logits",
        {"kind": f"{HERE}:equals_autograd", "arg": 0},
        _autograd,
    ),
    Check(
        "grad_log_prob.without_autograd",
        "grad_log_prob",
        1,
        "works with autograd switched off (a closed form, no backward/torch.autograd.grad)",
        {"kind": f"{HERE}:without_autograd"},
        _inference,
    ),
    Check(
        "grad_log_prob.no_autograd_graph",
        "grad_log_prob",
        1,
        "returns a plain tensor (no autograd graph) even when the logits require grad",
        {
            "kind": "detached",
            "outputs": [0],
            "explain": "compute it under `torch.no_grad()` (or from `logits.detach()`)",
        },
        _graph,
    ),
]
