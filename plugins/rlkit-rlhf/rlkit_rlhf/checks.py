"""Checks of the RLHF exercise: bradley_terry_loss, group_advantages, kl_penalty, grpo_loss.

Written with the course's check engine (``rlkit_grader.spec``), like ``grader/checks/ppo.py``.
The public checks' expected outcomes are stored beside this file (``checks.vectors.json`` +
``.npz``), the hidden checks' beside the reference solution in rlkit-rlhf-instructor; rebuild
both with ``rlkit vectors --regenerate rlhf`` after changing a check or the reference.

``grpo_loss`` calls the student's own ``ppo_clip_loss`` (ppo.py beside rlhf.py): its checks
expect the PPO exercise to be right. Several of its inputs put garbage on the padding (large
log-prob gaps that no completion token has), so an answer that ignores the mask is far off
rather than slightly off; group checks use as many groups as answers per group, so reading the
groups interleaved instead of consecutive still runs and gives a wrong [N] result.
"""

from __future__ import annotations

import numpy as np
from rlkit_grader.records import HIDDEN
from rlkit_grader.spec import FLOATS, Call, Check, normal, scalar_cot

# ------------------------------------------------------------------------- bradley_terry_loss


def _bt_case(
    rng: np.random.Generator, b: int, dtype: type, scale: float, grads: bool, equal: bool = False
) -> Call:
    chosen = normal(rng, (b,), np.float64, 2.0)
    rejected = chosen if equal else chosen - normal(rng, (b,), np.float64, scale)
    call = Call(
        "bradley_terry_loss",
        {"chosen_rewards": chosen.astype(dtype), "rejected_rewards": rejected.astype(dtype)},
        grad_wrt=("chosen_rewards", "rejected_rewards") if grads else (),
        cotangents=(scalar_cot(dtype),) if grads else (),
    )
    if equal:  # σ(0) = 1/2: the loss is log 2 whatever the rewards
        call.closed_form = (np.array(np.log(2.0), dtype=dtype),)
    return call


def _bt(sizes=(1, 4, 16), scale: float = 2.0, grads: bool = False):
    def cases(rng: np.random.Generator) -> list[Call]:
        return [_bt_case(rng, b, dtype, scale, grads) for dtype in FLOATS for b in sizes]

    return cases


def _bt_equal(rng: np.random.Generator) -> list[Call]:
    return [_bt_case(rng, b, dtype, 0.0, False, equal=True) for dtype in FLOATS for b in (1, 5)]


# ------------------------------------------------------------------------- group_advantages


def _rewards(rng: np.random.Generator, groups: int, g: int, kind: str) -> np.ndarray:
    """Rewards of ``groups`` groups of ``g`` answers each, consecutive."""
    if kind == "binary":  # the politeness rule: 1 or 0, never all equal within a group
        r = (rng.random((groups, g)) < 0.5).astype(np.float64)
        r[:, 0], r[:, 1] = 1.0, 0.0
        for row in r:
            rng.shuffle(row)
    elif kind == "offsets":  # groups far apart: only a per-group mean makes them comparable
        r = normal(rng, (groups, g), np.float64) + 10.0 * np.arange(groups)[:, None]
    else:
        r = normal(rng, (groups, g), np.float64, 2.0)
    return r.reshape(-1)


def _group_case(
    rng: np.random.Generator,
    groups: int,
    g: int,
    dtype: type,
    kind: str = "normal",
    scale: bool | None = None,
    grads: bool = False,
    equal_group: int | None = None,
) -> Call:
    rewards = _rewards(rng, groups, g, kind)
    if equal_group is not None:  # every answer of one group scored the same
        rewards[equal_group * g : (equal_group + 1) * g] = rewards[equal_group * g]
    call = Call(
        "group_advantages",
        {"rewards": rewards.astype(dtype), "group_size": g},
        {} if scale is None else {"scale": scale},
        grad_wrt=("rewards",) if grads else (),
        cotangents=(np.ones(groups * g, dtype=dtype),) if grads else (),
    )
    return call


#: (groups, group size): square ones (3 × 3, 4 × 4) too, so interleaved groups still run
GROUPS = ((1, 4), (3, 3), (4, 4), (2, 8))


def _groups(kind: str = "normal", scale: bool | None = None, shapes=GROUPS, grads: bool = False):
    def cases(rng: np.random.Generator) -> list[Call]:
        return [
            _group_case(rng, n, g, dtype, kind, scale, grads) for dtype in FLOATS for n, g in shapes
        ]

    return cases


def _equal_groups(rng: np.random.Generator) -> list[Call]:
    """One group's rewards all equal: its advantages are exactly 0 (std 0, divided by ε)."""
    calls = []
    for dtype in FLOATS:
        for n, g, which in ((3, 4, 1), (2, 2, 0), (4, 4, 3)):
            calls.append(_group_case(rng, n, g, dtype, "binary", None, equal_group=which))
        rewards = np.full(6, 0.75, dtype=dtype)  # a single group, all equal (exact in binary)
        call = Call("group_advantages", {"rewards": rewards, "group_size": 6})
        call.closed_form = (np.zeros(6, dtype=dtype),)
        calls.append(call)
    return calls


# ------------------------------------------------------------------------- kl_penalty


def _kl_case(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    dtype: type,
    spread: float = 1.0,
    grads: tuple[str, ...] = (),
    equal: bool = False,
) -> Call:
    log_probs = -np.abs(normal(rng, shape, np.float64, 2.0)) - 0.05
    ref = log_probs if equal else log_probs + normal(rng, shape, np.float64, spread)
    call = Call(
        "kl_penalty",
        {"log_probs": log_probs.astype(dtype), "ref_log_probs": ref.astype(dtype)},
        grad_wrt=grads,
        cotangents=(normal(rng, shape, dtype),) if grads else (),
    )
    if equal:  # π = π_ref: no penalty at all
        call.closed_form = (np.zeros(shape, dtype=dtype),)
    return call


KL_SHAPES = ((5,), (2, 3), (3, 4), (2, 3, 4))


def _kl(shapes=KL_SHAPES, spread: float = 1.0, grads: tuple[str, ...] = ()):
    def cases(rng: np.random.Generator) -> list[Call]:
        return [_kl_case(rng, s, dtype, spread, grads) for dtype in FLOATS for s in shapes]

    return cases


def _kl_equal(rng: np.random.Generator) -> list[Call]:
    return [_kl_case(rng, s, dtype, equal=True) for dtype in FLOATS for s in ((4,), (2, 5))]


# ------------------------------------------------------------------------- grpo_loss


def _grpo_case(
    rng: np.random.Generator,
    b: int,
    t: int,
    dtype: type,
    kwargs: dict,
    grads: tuple[str, ...] = (),
    on_policy: bool = False,
    spread: float = 0.3,
) -> Call:
    """B answers padded to T tokens: per-token log-probs of the policy, of the policy that
    sampled them (ratios on both sides of the clip range), of the reference; one advantage per
    answer; garbage on the padding."""
    lengths = rng.integers(1, t + 1, size=b)
    lengths[0] = t  # one full row, and (for b > 1) one short one
    if b > 1:
        lengths[-1] = max(1, t // 2)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    log_probs = -np.abs(normal(rng, (b, t), np.float64, 1.5)) - 0.05
    old = log_probs if on_policy else log_probs - normal(rng, (b, t), np.float64, spread)
    ref = log_probs if on_policy else log_probs + normal(rng, (b, t), np.float64, 0.5)
    pad = mask == 0
    log_probs[pad], old[pad], ref[pad] = -8.0, -2.0, -1.0  # never looked at by a right answer
    advantages = normal(rng, (b,), np.float64)
    call = Call(
        "grpo_loss",
        {
            "log_probs": log_probs.astype(dtype),
            "old_log_probs": old.astype(dtype),
            "ref_log_probs": ref.astype(dtype),
            "advantages": advantages.astype(dtype),
            "completion_mask": mask,
        },
        dict(kwargs),
        grad_wrt=grads,
        cotangents=(scalar_cot(dtype),) if grads else (),
    )
    if on_policy:  # ratio 1 and no KL: the loss is −(mean advantage over the tokens)
        tokens = np.repeat(advantages, lengths)
        call.closed_form = (np.array(-tokens.mean(), dtype=dtype),)
    return call


GRPO_SIZES = ((1, 5), (4, 6), (6, 3))
GRPO_KWARGS = ({}, {"clip_eps": 0.1, "beta": 0.1}, {"clip_eps": 0.3, "beta": 0.0})


def _grpo(sizes=GRPO_SIZES, kwargs=GRPO_KWARGS, grads: tuple[str, ...] = (), spread: float = 0.3):
    def cases(rng: np.random.Generator) -> list[Call]:
        return [
            _grpo_case(rng, b, t, dtype, kwargs[i % len(kwargs)], grads, spread=spread)
            for dtype in FLOATS
            for i, (b, t) in enumerate(sizes)
        ]

    return cases


def _grpo_on_policy(rng: np.random.Generator) -> list[Call]:
    return [
        _grpo_case(rng, b, t, dtype, {"beta": 0.5}, on_policy=True)
        for dtype in FLOATS
        for b, t in ((3, 4), (5, 2))
    ]


def _grpo_kl_only(rng: np.random.Generator) -> list[Call]:
    """Zero advantages: only the KL term is left (β·mean k3 over the answer tokens)."""
    calls = []
    for dtype in FLOATS:
        for b, t, beta in ((3, 5, 0.04), (2, 4, 1.0)):
            call = _grpo_case(rng, b, t, dtype, {"beta": beta})
            call.args["advantages"] = np.zeros(b, dtype=dtype)
            calls.append(call)
    return calls


DETACHED_INPUTS = ("old_log_probs", "ref_log_probs", "advantages")

CHECKS: list[Check] = [
    # bradley_terry_loss
    Check(
        "bradley_terry_loss.shapes_dtypes",
        "bradley_terry_loss",
        1,
        "returns a 0-dim tensor in the rewards' dtype",
        {"kind": "structure"},
        _bt(),
        seed="bradley_terry_loss.cases",
    ),
    Check(
        "bradley_terry_loss.values",
        "bradley_terry_loss",
        2,
        "mean of −log σ(r_chosen − r_rejected)",
        {"kind": "values"},
        _bt(),
        seed="bradley_terry_loss.cases",
    ),
    Check(
        "bradley_terry_loss.equal_rewards",
        "bradley_terry_loss",
        1,
        "log 2 when both answers score the same (σ(0) = 1/2)",
        {"kind": "values"},
        _bt_equal,
    ),
    Check(
        "bradley_terry_loss.gradient",
        "bradley_terry_loss",
        2,
        "passes −σ(r_rejected − r_chosen)/B to the chosen and +σ(...)/B to the rejected rewards",
        {"kind": "grads"},
        _bt(grads=True),
        seed="bradley_terry_loss.grad_cases",
    ),
    Check(
        "bradley_terry_loss.extreme_margins",
        "bradley_terry_loss",
        1,
        "finite and right for reward margins of ±1000 (use logsigmoid)",
        {"kind": "values", "tolerance": "loose", "grads": True},
        _bt(sizes=(8,), scale=1000.0, grads=True),
    ),
    Check(
        "bradley_terry_loss.no_inplace",
        "bradley_terry_loss",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _bt(),
        seed="bradley_terry_loss.cases",
    ),
    Check(
        "bradley_terry_loss.hidden_values",
        "bradley_terry_loss",
        2,
        "matches the reference on other batches",
        {"kind": "values", "grads": True},
        _bt(sizes=(3, 32), scale=5.0, grads=True),
        visibility=HIDDEN,
    ),
    # group_advantages
    Check(
        "group_advantages.shapes_dtypes",
        "group_advantages",
        1,
        "returns an [N] tensor in the rewards' dtype",
        {"kind": "structure"},
        _groups(),
        seed="group_advantages.cases",
    ),
    Check(
        "group_advantages.values",
        "group_advantages",
        2,
        "(r − mean of its group) / (std of its group + 1e-4), groups of consecutive answers",
        {"kind": "values"},
        _groups(),
        seed="group_advantages.cases",
    ),
    Check(
        "group_advantages.binary_rewards",
        "group_advantages",
        1,
        "right for 0/1 rewards (a rule's verdicts)",
        {"kind": "values"},
        _groups("binary"),
    ),
    Check(
        "group_advantages.each_group_on_its_own",
        "group_advantages",
        2,
        "each group is centred and scaled by its own statistics (groups far apart here)",
        {"kind": "values"},
        _groups("offsets"),
    ),
    Check(
        "group_advantages.unscaled",
        "group_advantages",
        1,
        "scale=False: r − mean of its group, not divided",
        {"kind": "values"},
        _groups(scale=False),
    ),
    Check(
        "group_advantages.equal_rewards",
        "group_advantages",
        2,
        "a group whose rewards are all equal gets advantages 0, not nan (the 1e-4)",
        {"kind": "values"},
        _equal_groups,
    ),
    Check(
        "group_advantages.no_gradient",
        "group_advantages",
        1,
        "the advantages carry no gradient (they are data)",
        {"kind": "detached", "outputs": [0]},
        _groups(grads=True),
        seed="group_advantages.grad_cases",
    ),
    Check(
        "group_advantages.no_inplace",
        "group_advantages",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _groups(),
        seed="group_advantages.cases",
    ),
    Check(
        "group_advantages.hidden_values",
        "group_advantages",
        2,
        "matches the reference on other groups",
        {"kind": "values"},
        _groups(shapes=((5, 5), (2, 6), (8, 2))),
        visibility=HIDDEN,
    ),
    # kl_penalty
    Check(
        "kl_penalty.shapes_dtypes",
        "kl_penalty",
        1,
        "returns a tensor of the inputs' shape and dtype",
        {"kind": "structure"},
        _kl(),
        seed="kl_penalty.cases",
    ),
    Check(
        "kl_penalty.values",
        "kl_penalty",
        2,
        "exp(ref − lp) − (ref − lp) − 1 per token",
        {"kind": "values"},
        _kl(),
        seed="kl_penalty.cases",
    ),
    Check(
        "kl_penalty.zero_at_the_reference",
        "kl_penalty",
        1,
        "0 where the policy's log-probs equal the reference's",
        {"kind": "values"},
        _kl_equal,
    ),
    Check(
        "kl_penalty.gradient",
        "kl_penalty",
        2,
        "passes 1 − exp(ref − lp) to log_probs",
        {"kind": "grads"},
        _kl(grads=("log_probs",)),
        seed="kl_penalty.grad_cases",
    ),
    Check(
        "kl_penalty.no_grad_leak",
        "kl_penalty",
        1,
        "no gradient flows into the frozen reference's log-probs",
        {"kind": "no_grad_leak", "args": ["ref_log_probs"]},
        _kl(grads=("log_probs", "ref_log_probs")),
    ),
    Check(
        "kl_penalty.far_from_the_reference",
        "kl_penalty",
        1,
        "right when the policy is far from the reference (gaps of ±10 nats)",
        {"kind": "values", "tolerance": "loose", "grads": True},
        _kl(shapes=((4, 8),), spread=5.0, grads=("log_probs",)),
    ),
    Check(
        "kl_penalty.no_inplace",
        "kl_penalty",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _kl(),
        seed="kl_penalty.cases",
    ),
    Check(
        "kl_penalty.hidden_values",
        "kl_penalty",
        2,
        "matches the reference on other tokens",
        {"kind": "values", "grads": True},
        _kl(shapes=((7,), (3, 5)), spread=2.0, grads=("log_probs",)),
        visibility=HIDDEN,
    ),
    # grpo_loss
    Check(
        "grpo_loss.shapes_dtypes",
        "grpo_loss",
        1,
        "returns a 0-dim tensor in the log-probs' dtype",
        {"kind": "structure"},
        _grpo(),
        seed="grpo_loss.cases",
    ),
    Check(
        "grpo_loss.values",
        "grpo_loss",
        3,
        "ppo_clip_loss over the completion tokens (per-token ratios, A_i on every token of "
        "answer i) + β·mean k3",
        {"kind": "values"},
        _grpo(),
        seed="grpo_loss.cases",
    ),
    Check(
        "grpo_loss.on_policy",
        "grpo_loss",
        1,
        "−(mean advantage over the answer tokens) when π = π_old = π_ref",
        {"kind": "values"},
        _grpo_on_policy,
    ),
    Check(
        "grpo_loss.kl_term",
        "grpo_loss",
        1,
        "with zero advantages, β times the mean k3 over the answer tokens",
        {"kind": "values"},
        _grpo_kl_only,
    ),
    Check(
        "grpo_loss.gradient",
        "grpo_loss",
        2,
        "the gradient of the clipped surrogate + β·KL, 0 on the padding and where clipped",
        {"kind": "grads"},
        _grpo(grads=("log_probs",)),
        seed="grpo_loss.grad_cases",
    ),
    Check(
        "grpo_loss.no_grad_leak",
        "grpo_loss",
        1,
        "no gradient flows into the old or the reference log-probs or the advantages",
        {"kind": "no_grad_leak", "args": list(DETACHED_INPUTS)},
        _grpo(grads=("log_probs", *DETACHED_INPUTS)),
    ),
    Check(
        "grpo_loss.no_inplace",
        "grpo_loss",
        1,
        "leaves its inputs unchanged",
        {"kind": "no_inplace"},
        _grpo(),
        seed="grpo_loss.cases",
    ),
    Check(
        "grpo_loss.hidden_values",
        "grpo_loss",
        2,
        "matches the reference on other batches",
        {"kind": "values", "grads": True},
        _grpo(
            sizes=((2, 7), (8, 4)),
            kwargs=({"clip_eps": 0.25, "beta": 0.02}, {}),
            grads=("log_probs",),
            spread=0.5,
        ),
        visibility=HIDDEN,
    ),
]
