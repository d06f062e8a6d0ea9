"""The in-process API a notebook cell (or an instructor's script) calls, and the judges'
tolerances: right answers pass whatever their round-off, wrong ones fail."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import rlkit_solutions.ppo
import rlkit_solutions.reinforce
import torch

from rlkit_grader import check_function, check_module
from rlkit_grader.judges import close, digits_to_differ, fmt
from rlkit_grader.records import HIDDEN, Outcome, Output


def test_check_function_grades_one_function_in_process() -> None:
    report = check_function("ppo", rlkit_solutions.ppo.gae)
    assert report.checks and {c.function for c in report.checks} == {"gae"}
    assert report.passed and report.score == report.max_score


def test_check_function_names_a_classic_mistake() -> None:
    def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
        ratio = torch.exp(log_probs - old_log_probs.detach())
        a = advantages.detach()
        return -torch.max(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a).mean()

    report = check_function("ppo", ppo_clip_loss)
    values = next(c for c in report.checks if c.name == "ppo_clip_loss.values")
    assert not values.passed
    assert "expected" in values.message and "got" in values.message
    assert "takes the max of the two surrogates" in values.message


def test_a_dtype_slip_costs_the_dtype_check_only() -> None:
    def returns_to_go(rewards, gamma, dones=None):
        out = torch.zeros(len(rewards))  # float32 even for float64 rewards
        running = 0.0
        for t in reversed(range(len(rewards))):
            if dones is not None and dones[t]:
                running = 0.0
            running = float(rewards[t]) + gamma * running
            out[t] = running
        return out

    report = check_function("reinforce", returns_to_go)
    failed = {c.name: c.message for c in report.checks if not c.passed}
    assert list(failed) == ["returns_to_go.shapes_dtypes"]
    assert "returned float32, expected float64" in failed["returns_to_go.shapes_dtypes"]


def test_check_module_accepts_a_mapping_and_reports_missing_functions() -> None:
    report = check_module("ppo", {"gae": rlkit_solutions.ppo.gae}, HIDDEN)
    by_function = {c.function: c for c in report.checks if not c.passed}
    assert set(by_function) == {"ppo_clip_loss"}
    assert by_function["ppo_clip_loss"].message == "ppo_clip_loss() is missing from your file"


def test_outcome_round_trips_through_plain_data() -> None:
    outcome = Outcome(
        ok=True,
        container="tuple",
        outputs=[
            Output("tensor", "float32", (2,), True, np.array([1.0, 2.0], np.float32)),
            Output("number", type="float", value=0.5),
        ],
        grads={0: np.ones(2), 1: None},
        modified=[1],
    )
    store: dict[str, np.ndarray] = {}

    def put(a: np.ndarray) -> str:
        store[f"k{len(store)}"] = a
        return f"k{len(store) - 1}"

    back = Outcome.from_meta(outcome.to_meta(put), store)
    assert back.container == "tuple" and back.modified == [1]
    assert back.outputs[0].requires_grad and back.outputs[1].value == 0.5
    np.testing.assert_array_equal(back.grads[0], np.ones(2))
    assert back.grads[1] is None
    assert not Outcome.from_meta({"ok": False, "error": "boom"}, {}).ok


def test_tolerance_accepts_float32_round_off_and_rejects_real_errors() -> None:
    rng = np.random.default_rng(0)
    r = rng.standard_normal(1000).astype(np.float32)
    gamma = np.float32(0.99)
    loop = np.zeros_like(r)
    g = np.float32(0)
    for t in range(999, -1, -1):
        g = r[t] + gamma * g
        loop[t] = g
    powers = gamma ** np.arange(1000, dtype=np.float32)
    matrix = np.array([np.dot(powers[: 1000 - t], r[t:]) for t in range(1000)], np.float32)
    assert close(matrix, loop, 2e-3, 1e-5).all()
    assert not close(loop * 1.01, loop, 1e-4, 1e-6).all()
    assert close(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 1e-4, 0).all()
    assert not close(np.array([np.inf]), np.array([1.0]), 1e-4, 0).all()


# ----------------------------------------------------------------------------- feedback


def _message(exercise: str, function: Any, check: str) -> str:
    report = check_function(exercise, function)
    return next(c.message for c in report.checks if c.name == check)


def test_expected_and_got_differ_visibly_where_they_differ() -> None:
    assert fmt(np.array([0.35355339, -0.35355339])) == "[0.35355, -0.35355]"
    got, want = np.array([0.3535534, -0.35355]), np.array([0.3535538, -0.35355])
    digits = digits_to_differ(got, want)
    assert fmt(got, digits=digits) != fmt(want, digits=digits)

    def grad_log_prob(logits, actions):  # a tiny slip: the logits scaled by 1.00001
        with torch.no_grad():
            p = torch.softmax(logits * (1 + 1e-5), -1)
            return torch.nn.functional.one_hot(actions, logits.shape[-1]).to(logits.dtype) - p

    message = _message("log_prob", grad_log_prob, "grad_log_prob.values")
    expected, got_text = re.search(r"expected (\[.*?\]), got (\[.*?\])", message).groups()
    assert expected != got_text, message


def test_small_inputs_are_shown_in_full_and_outputs_by_their_names() -> None:
    mask = np.zeros((2, 9), dtype=np.int64)
    assert fmt(mask) == "[" + ", ".join(["[" + ", ".join(["0"] * 9) + "]"] * 2) + "]"

    def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
        adv, returns = rlkit_solutions.ppo.gae(rewards, values, dones, last_value, gamma, lam)
        return adv, adv  # returns without the values

    assert "`returns` is wrong" in _message("ppo", gae, "gae.values_no_dones")

    def dpo_loss(pc, pr, rc, rr, beta=0.1):
        chosen, rejected = beta * (pc - rc.detach()), beta * (pr - rr.detach())
        loss = torch.nn.functional.softplus(chosen - rejected).mean()  # softplus(Δ): sign error
        return loss, chosen.detach(), rejected.detach()

    message = _message("dpo", dpo_loss, "dpo_loss.values")
    assert "`loss` is wrong" in message and "softplus(Δ)" in message
    assert "prefers the rejected answer: the margin is chosen minus rejected" not in message


def test_expected_is_always_the_references() -> None:
    def returns_to_go(rewards, gamma, dones=None):  # never restarts, and zeroes a lone G_0
        out, g = torch.zeros_like(rewards), 0.0
        for t in reversed(range(len(rewards))):
            g = rewards[t] + gamma * g
            out[t] = g
        if dones is None:
            out[0] = 0.0
        return out

    message = _message("reinforce", returns_to_go, "returns_to_go.restarts_after_dones")
    expected = re.search(r"expected (\[.*?\])", message).group(1)
    rewards, dones = (re.search(rf"{n}=(\[.*?\])", message).group(1) for n in ("rewards", "dones"))
    reference = rlkit_solutions.reinforce.returns_to_go(
        torch.tensor(eval(rewards), dtype=torch.float64), 0.9, torch.tensor(eval(dones))
    )
    assert np.allclose(eval(expected), reference.numpy(), atol=1e-3), message  # shown rounded
    assert "dones at steps [2, 3, 7]" in message
