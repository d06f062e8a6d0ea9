"""Checks of exercise 3: ppo_clip_loss, gae."""

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
#: the documented names of the outputs, for feedback
OUTPUTS = {"gae": ("advantages", "returns")}

# ------------------------------------------------------------------------- ppo_clip_loss


def _ratios(rng: np.random.Generator, n: int, eps: float, spread: float = 0.35) -> np.ndarray:
    """log-ratio steps that land on both sides of the clip range, never on its edge."""
    steps = rng.standard_normal(n) * spread
    edges = np.log([1 - eps, 1 + eps])
    for edge in edges:
        near = np.abs(steps - edge) < 1e-2
        steps[near] += 0.05
    return steps


def _clip_case(
    rng: np.random.Generator,
    n: int,
    dtype: type,
    eps: float | None,
    grads: tuple[str, ...] = (),
    spread: float = 0.35,
    adv_scale: float = 1.0,
) -> Call:
    old = -np.abs(rng.standard_normal(n)) - 0.1
    log_probs = (old + _ratios(rng, n, 0.2 if eps is None else eps, spread)).astype(dtype)
    advantages = normal(rng, (n,), dtype, adv_scale)
    kwargs = {} if eps is None else {"clip_eps": eps}
    ratio = np.exp(log_probs.astype(np.float64) - old.astype(dtype).astype(np.float64))
    e = 0.2 if eps is None else eps
    clipped = ((ratio > 1 + e) & (advantages > 0)) | ((ratio < 1 - e) & (advantages < 0))
    return Call(
        "ppo_clip_loss",
        {"log_probs": log_probs, "old_log_probs": old.astype(dtype), "advantages": advantages},
        kwargs,
        grad_wrt=grads,
        cotangents=(scalar_cot(dtype),) if grads else (),
        aux={"clipped": clipped},
    )


def _clip(grads: tuple[str, ...] = (), sizes=(1, 6, 32), epss=(None, 0.1, 0.3)):
    def cases(rng: np.random.Generator) -> list[Call]:
        return [
            _clip_case(rng, n, dtype, eps, grads) for dtype in FLOATS for n in sizes for eps in epss
        ]

    return cases


def _clip_extreme(rng: np.random.Generator) -> list[Call]:
    return [
        _clip_case(rng, 10_000, dtype, None, ("log_probs",), spread=6.0, adv_scale=300.0)
        for dtype in FLOATS
    ]


def _unlikely(rng: np.random.Generator) -> list[Call]:
    """Log-probs around −120, as a policy that has become nearly deterministic gives its rare
    actions: exp(log π) underflows to 0 in float32 (below about −104), so only a ratio
    computed as exp(log π − log π_old) stays finite."""
    calls = []
    for dtype in FLOATS:
        old = -120.0 + rng.standard_normal(8) * 3.0
        log_probs = (old + _ratios(rng, 8, 0.2)).astype(dtype)
        advantages = normal(rng, (8,), dtype)
        calls.append(
            Call(
                "ppo_clip_loss",
                {
                    "log_probs": log_probs,
                    "old_log_probs": old.astype(dtype),
                    "advantages": advantages,
                },
                grad_wrt=("log_probs",),
                cotangents=(scalar_cot(dtype),),
            )
        )
    return calls


def zero_grad_when_clipped(
    check: CheckData, got: Got, arrays: Arrays, params: dict
) -> list[Failure]:
    """∂L/∂log_probs is exactly 0 where the clip is active in the advantage's direction."""
    pos = params["arg"]

    def nonzero(call: CallData, g: Outcome) -> str | None:
        mask = arrays[call.aux[params["mask"]]]
        grad = g.grads.get(pos)
        name = call.arg_names[pos]
        if grad is None:
            return f"no gradient reaches `{name}` for {describe_call(call, arrays)}"
        if np.any(np.abs(grad[mask]) > 1e-6):
            return (
                f"for {describe_call(call, arrays)}, the gradient with respect to `{name}` "
                f"must be exactly 0 where the clip is active in the advantage's direction "
                f"(entries {fmt(np.flatnonzero(mask))}); got {fmt(grad[mask])}. Clip the "
                f"ratio, multiply by A, then take the min"
            )
        return None

    return each_call(check, got, arrays, nonzero)


def returns_are_advantages_plus_values(
    check: CheckData, got: Got, arrays: Arrays, params: dict
) -> list[Failure]:
    """gae's second output is its first plus ``values`` (whatever the advantages are)."""

    def mismatched(call: CallData, g: Outcome) -> str | None:
        adv, returns = g.outputs[0].array, g.outputs[1].array
        assert adv is not None and returns is not None
        want = adv + arrays[call.args[call.arg_names.index("values")]["array"]]
        ok = close(returns, want, *tolerance(g.outputs[1].dtype, "normal", call, arrays))
        if ok.all():
            return None
        return (
            f"for {describe_call(call, arrays)}, `returns` must equal your `advantages` + "
            f"`values`: {mismatch(returns, want, ok)}"
        )

    return each_call(check, got, arrays, mismatched)


# ------------------------------------------------------------------------- gae


def _gae_case(
    rng: np.random.Generator, t: int, dtype: type, dones: np.ndarray, params: dict[str, float]
) -> Call:
    return Call(
        "gae",
        {
            "rewards": normal(rng, (t,), dtype),
            "values": normal(rng, (t,), dtype),
            "dones": dones,
            "last_value": float(rng.standard_normal()),
        },
        params,
    )


PARAMS = ({}, {"gamma": 0.9, "lam": 0.8}, {"gamma": 1.0, "lam": 1.0}, {"gamma": 0.99, "lam": 0.0})


def _gae(with_dones: bool, sizes=(1, 5, 12), params=PARAMS):
    def cases(rng: np.random.Generator) -> list[Call]:
        calls = []
        for dtype in FLOATS:
            for i, t in enumerate(sizes):
                for p in params:
                    dones = rng.random(t) < 0.25 if with_dones else np.zeros(t, dtype=bool)
                    if with_dones and i == 1:
                        dones[-1] = True  # the last step ends an episode: ignore last_value
                    if with_dones and i == 2:
                        dones[[3, 4]] = True
                    calls.append(_gae_case(rng, t, dtype, dones, p))
        return calls

    return cases


def _td_errors(rng: np.random.Generator) -> list[Call]:
    """With λ = 0, A_t is the one-step TD error δ_t (closed form)."""
    calls = []
    for dtype in FLOATS:
        dones = np.array([False, False, True, False, False, True, False])
        call = _gae_case(rng, 7, dtype, dones, {"gamma": 0.9, "lam": 0.0})
        r, v = (call.args[k].astype(np.float64) for k in ("rewards", "values"))
        next_v = np.append(v[1:], call.args["last_value"])
        delta = r + 0.9 * next_v * (1.0 - dones) - v
        call.closed_form = (delta.astype(dtype), (delta + v).astype(dtype))
        calls.append(call)
    return calls


def _gae_long(rng: np.random.Generator) -> list[Call]:
    return [
        _gae_case(rng, t, dtype, rng.random(t) < 0.01, {}) for t in (1000, 2048) for dtype in FLOATS
    ]


CHECKS: list[Check] = [
    Check(
        "ppo_clip_loss.shapes_dtypes",
        "ppo_clip_loss",
        1,
        "returns a 0-dim tensor in the inputs' dtype",
        {"kind": "structure"},
        _clip(),
        seed="ppo_clip_loss.cases",
    ),
    Check(
        "ppo_clip_loss.values",
        "ppo_clip_loss",
        2,
        "−mean(min(r·A, clip(r, 1−ε, 1+ε)·A)) for several ε (and the default 0.2)",
        {"kind": "values"},
        _clip(),
        seed="ppo_clip_loss.cases",
    ),
    Check(
        "ppo_clip_loss.gradient",
        "ppo_clip_loss",
        2,
        "passes the right gradient to the log-probs",
        {"kind": "grads"},
        _clip(("log_probs",)),
        seed="ppo_clip_loss.grad_cases",
    ),
    Check(
        "ppo_clip_loss.zero_grad_when_clipped",
        "ppo_clip_loss",
        1,
        "zero gradient where the clip is active in the advantage's direction",
        {"kind": f"{HERE}:zero_grad_when_clipped", "arg": 0, "mask": "clipped"},
        _clip(("log_probs",)),
        seed="ppo_clip_loss.grad_cases",
    ),
    Check(
        "ppo_clip_loss.no_grad_leak",
        "ppo_clip_loss",
        1,
        "no gradient flows into old_log_probs or advantages",
        {"kind": "no_grad_leak", "args": ["old_log_probs", "advantages"]},
        _clip(("log_probs", "old_log_probs", "advantages")),
    ),
    Check(
        "ppo_clip_loss.extreme",
        "ppo_clip_loss",
        1,
        "finite and right for 10,000 samples with ratios up to e^±20 and large advantages",
        {"kind": "values", "tolerance": "loose", "grads": True},
        _clip_extreme,
    ),
    Check(
        "ppo_clip_loss.unlikely_actions",
        "ppo_clip_loss",
        1,
        "finite and right for log-probs around −120 (exp(log π) underflows in float32)",
        {"kind": "values", "tolerance": "loose", "grads": True},
        _unlikely,
    ),
    Check(
        "ppo_clip_loss.no_inplace",
        "ppo_clip_loss",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _clip(),
        seed="ppo_clip_loss.cases",
    ),
    Check(
        "ppo_clip_loss.hidden_values",
        "ppo_clip_loss",
        2,
        "matches the reference on other inputs",
        {"kind": "values", "grads": True},
        _clip(("log_probs",), sizes=(3, 17, 100), epss=(None, 0.05, 0.5)),
        visibility=HIDDEN,
    ),
    Check(
        "gae.shapes_dtypes",
        "gae",
        1,
        "returns a tuple (advantages, returns) of [T] tensors in the rewards' dtype",
        {"kind": "structure"},
        _gae(True),
        seed="gae.rollouts",
    ),
    Check(
        "gae.values_no_dones",
        "gae",
        2,
        "matches the reference within one episode (bootstrapping from last_value)",
        {"kind": "values"},
        _gae(False),
    ),
    Check(
        "gae.values_with_dones",
        "gae",
        2,
        "nothing is bootstrapped across a done step",
        {"kind": "values"},
        _gae(True),
        seed="gae.rollouts",
    ),
    Check(
        "gae.td_error_when_lambda_0",
        "gae",
        1,
        "with λ = 0, A_t is the TD error δ_t",
        {"kind": "values"},
        _td_errors,
    ),
    Check(
        "gae.returns_are_advantages_plus_values",
        "gae",
        1,
        "returns = advantages + values",
        {"kind": f"{HERE}:returns_are_advantages_plus_values"},
        _gae(True),
        seed="gae.rollouts",
    ),
    Check(
        "gae.long_rollout",
        "gae",
        1,
        "finite and right on 1000 and 2048 steps",
        {"kind": "values", "tolerance": "loose"},
        _gae_long,
    ),
    Check(
        "gae.no_inplace",
        "gae",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _gae(True),
        seed="gae.rollouts",
    ),
    Check(
        "gae.hidden_values",
        "gae",
        2,
        "matches the reference on other rollouts",
        {"kind": "values"},
        _gae(True, sizes=(2, 8, 30), params=({"gamma": 0.95, "lam": 0.9}, {"lam": 0.5})),
        visibility=HIDDEN,
    ),
]
