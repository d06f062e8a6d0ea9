"""Verdicts. Each judge compares what the student's calls did with what the reference did (or
with a closed-form property) and, when it fails, says why with a small counterexample; when the
answer behaves exactly like a known classic mistake, the message names it.

Tolerances are scaled to the dtype and to the size of the expected values, so a correct answer
written any reasonable way (a loop or a vectorized formula, float32 or float64) passes, while
every real mistake is off by far more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from grader.model import CallData, CheckData, Outcome

#: (rtol, atol floor) per dtype; "loose" is for extreme inputs and long sequences.
TOLERANCES = {
    "normal": {"float32": (1e-4, 1e-6), "float64": (1e-7, 1e-12)},
    "loose": {"float32": (2e-3, 1e-5), "float64": (1e-6, 1e-10)},
}
ZERO_GRAD_ATOL = 1e-6


@dataclass
class Verdict:
    passed: bool
    message: str = ""


def _tol(
    dtype: str, tolerance: str, call: CallData, arrays: Mapping[str, np.ndarray]
) -> tuple[float, float]:
    rtol, floor = TOLERANCES[tolerance].get(dtype, TOLERANCES[tolerance]["float32"])
    if tolerance == "loose":  # round-off grows with the size of the inputs (logits of 1e4)
        eps = float(np.finfo(np.float32 if dtype == "float32" else np.float64).eps)
        big = max(
            [
                float(np.max(np.abs(arrays[s["array"]]), initial=0.0))
                for s in call.args
                if "array" in s and arrays[s["array"]].dtype.kind == "f"
            ]
            + [0.0]
        )
        floor = max(floor, 16 * eps * big)
    return rtol, floor


def _coarser(expected: str, got: str) -> str:
    """Compare at the precision the student actually returned (a dtype slip costs the
    structure check, not every value check)."""
    return expected if got == expected or got == "float64" else "float32"


def close(got: np.ndarray, want: np.ndarray, rtol: float, floor: float) -> np.ndarray:
    """Elementwise: |got − want| ≤ floor + rtol·(max|want| + |want|); nan matches nan and
    inf matches inf."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    finite = np.isfinite(want)
    scale = float(np.max(np.abs(want[finite]), initial=0.0))
    atol = floor + rtol * scale
    with np.errstate(invalid="ignore"):
        ok = np.abs(got - want) <= atol + rtol * np.abs(want)
    same_nonfinite = ~finite & ((got == want) | (np.isnan(got) & np.isnan(want)))
    return ok | same_nonfinite


# ----------------------------------------------------------------------------- formatting


def fmt(a: np.ndarray | float | None, limit: int = 12) -> str:
    if a is None:
        return "None"
    a = np.asarray(a)
    if a.size > limit:
        return f"<{a.dtype} array of shape {tuple(a.shape)}>"
    if a.dtype.kind == "f":
        return np.array2string(
            a, precision=4, separator=", ", max_line_width=10**6, floatmode="maxprec"
        ).replace("\n", "")
    return np.array2string(a, separator=", ", max_line_width=10**6).replace("\n", "")


def _value(spec: Mapping[str, object], arrays: Mapping[str, np.ndarray]) -> str:
    if "array" in spec:
        a = arrays[str(spec["array"])]
        kind = {"f": str(a.dtype), "b": "bool", "i": "int64"}.get(a.dtype.kind, str(a.dtype))
        return f"{fmt(a)} ({kind})" if a.size <= 12 else fmt(a)
    value = spec.get("value")
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def describe_call(call: CallData, arrays: Mapping[str, np.ndarray]) -> str:
    parts = [f"{n}={_value(s, arrays)}" for n, s in zip(call.arg_names, call.args)]
    parts += [f"{n}={_value(s, arrays)}" for n, s in call.kwargs.items()]
    return f"{call.function}({', '.join(parts)})"


def _size(call: CallData, arrays: Mapping[str, np.ndarray]) -> int:
    return sum(arrays[s["array"]].size for s in call.args if "array" in s)


def _mismatch(got: np.ndarray, want: np.ndarray, ok: np.ndarray) -> str:
    if want.size <= 12:
        return f"expected {fmt(want)}, got {fmt(got)}"
    idx = tuple(int(i) for i in np.argwhere(~ok)[0])
    where = f" at index {idx}" if idx else ""
    g, w = np.asarray(got)[idx], np.asarray(want)[idx]
    return f"{int((~ok).sum())} of {want.size} values differ; first{where}: expected {w:.6g}, got {g:.6g}"


# ----------------------------------------------------------------------------- per-call checks


def call_failure(
    call: CallData, got: Outcome | None, arrays: Mapping[str, np.ndarray], dtypes: bool = False
) -> str | None:
    """Did the call run, and does its result have the right type and shape (and dtype, when
    ``dtypes``: only the structure check charges for a dtype slip)?"""
    want = call.expected
    assert want is not None and want.ok, "the stored expected outcome is broken"
    if got is None:
        return f"{call.function}() produced no result"
    if not got.ok:
        if got.error_kind == "not_implemented":
            return f"{call.function}() is not implemented yet (it raises NotImplementedError)"
        if got.error_kind == "missing":
            return f"{call.function}() is missing from your file"
        if got.error_kind == "fatal":
            return str(got.error)
        if got.error_kind in ("timeout", "exit"):
            return f"{call.function}() {got.error}"
        return f"{call.function}() raised {got.error}"
    n = len(want.outputs)
    if n > 1 and (got.container not in ("tuple", "list") or len(got.outputs) != n):
        found = (
            f"a {got.container} of {len(got.outputs)}"
            if got.container != "single"
            else got.outputs[0].describe()
        )
        return f"{call.function}() must return a tuple of {n} tensors; it returned {found}"
    if n == 1 and got.container != "single":
        return (
            f"{call.function}() must return one tensor; it returned a {got.container} "
            f"of {len(got.outputs)}"
        )
    for k, (g, w) in enumerate(zip(got.outputs, want.outputs)):
        which = (
            f"output {k + 1} of {call.function}() is" if n > 1 else f"{call.function}() returned"
        )
        has = f"output {k + 1} of {call.function}() has" if n > 1 else which
        if g.kind != "tensor":
            return f"{which} {g.describe()}"
        if tuple(g.shape) != tuple(w.shape):
            return (
                f"{has} shape {tuple(g.shape)}, expected {tuple(w.shape)} "
                f"for {describe_call(call, arrays)}"
            )
        if dtypes and g.dtype != w.dtype:
            return (
                f"{which} {g.dtype}, expected {w.dtype} (the dtype of the "
                f"inputs) for {describe_call(call, arrays)}"
            )
    return None


def _cot_note(call: CallData, arrays: Mapping[str, np.ndarray]) -> str:
    keys = [k for k in call.cotangents if k is not None]
    if len(keys) == 1 and arrays[keys[0]].ndim == 0:
        return ""
    parts = [
        f"output {i + 1} weighted by {fmt(arrays[k])}"
        for i, k in enumerate(call.cotangents)
        if k is not None
    ]
    return f" (backpropagating {'; '.join(parts)})"


def _grad_problem(
    call: CallData, got: Outcome, arrays: Mapping[str, np.ndarray], tolerance: str
) -> str | None:
    want = call.expected
    assert want is not None
    for pos in call.grad_wrt:
        w = want.grads.get(pos)
        if w is None:
            continue  # no gradient expected here: see no_grad_leak
        g = got.grads.get(pos)
        name = call.arg_names[pos]
        if g is None:
            extra = f" ({got.grad_error})" if got.grad_error else ""
            return (
                f"no gradient reaches `{name}` for {describe_call(call, arrays)}{extra}: "
                f"the result is cut off from autograd (numpy, .item(), .detach(), "
                f"torch.tensor(...) or an in-place write on the way?)"
            )
        rtol, floor = _tol(str(w.dtype), tolerance, call, arrays)
        ok = close(g, w, rtol, floor)
        if not ok.all():
            what = "not finite (nan/inf)" if not np.isfinite(g).all() else "wrong"
            return (
                f"the gradient with respect to `{name}` is {what} for "
                f"{describe_call(call, arrays)}{_cot_note(call, arrays)}: "
                f"{_mismatch(g, w, ok)}"
            )
    return None


# ----------------------------------------------------------------------------- the judges
# Each takes (check, got, arrays, params) and returns failures: (call index, message, strong).
# ``strong`` failures make better counterexamples (e.g. a clearly visible gradient leak).

Failure = tuple[int, str, bool]
Got = list[Outcome | None]
Arrays = Mapping[str, np.ndarray]


def _each_call(
    check: CheckData, got: Got, arrays: Arrays, extra, dtypes: bool = False
) -> list[Failure]:
    """Run ``extra(call, outcome)`` on every call that ran and has the right structure."""
    failures = []
    for i, (call, g) in enumerate(zip(check.calls, got)):
        problem = call_failure(call, g, arrays, dtypes)
        strong = False
        if problem is None:
            assert g is not None
            result = extra(call, g)
            problem, strong = result if isinstance(result, tuple) else (result, False)
        if problem:
            failures.append((i, problem, strong))
    return failures


def _structure(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    return _each_call(check, got, arrays, lambda call, g: None, dtypes=True)


def _values(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    tolerance = params.get("tolerance", "normal")

    def compare(call: CallData, g: Outcome) -> str | None:
        want = call.expected
        assert want is not None
        for k in params.get("outputs") or range(len(want.outputs)):
            w, o = want.outputs[k].array, g.outputs[k].array
            assert w is not None and o is not None
            dtype = _coarser(want.outputs[k].dtype, g.outputs[k].dtype)
            ok = close(o, w, *_tol(dtype, tolerance, call, arrays))
            if not ok.all():
                name = f"output {k + 1}" if len(want.outputs) > 1 else "the result"
                bad = not np.isfinite(o).all() and np.isfinite(w).all()
                why = f"{name} is not finite (nan/inf)" if bad else f"{name} is wrong"
                return f"for {describe_call(call, arrays)}, {why}: {_mismatch(o, w, ok)}"
        if params.get("grads"):
            return _grad_problem(call, g, arrays, tolerance)
        return None

    return _each_call(check, got, arrays, compare)


def _grads(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    tolerance = params.get("tolerance", "normal")
    return _each_call(check, got, arrays, lambda c, g: _grad_problem(c, g, arrays, tolerance))


def _no_grad_leak(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    def leak(call: CallData, g: Outcome) -> tuple[str | None, bool]:
        for name in params["args"]:
            grad = g.grads.get(call.arg_names.index(name))
            if grad is not None and np.any(np.abs(grad) > 0):
                return (
                    f"gradient flows into `{name}` (d/d{name} = {fmt(grad)}) for "
                    f"{describe_call(call, arrays)}; it is data, not something to learn: "
                    f"use `{name}.detach()`",
                    bool(np.max(np.abs(grad)) > 1e-6),
                )
        return None, False

    return _each_call(check, got, arrays, leak)


def _detached(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    def attached(call: CallData, g: Outcome) -> str | None:
        for k in params["outputs"]:
            if g.outputs[k].requires_grad:
                return (
                    f"output {k + 1} of {call.function}() still carries a gradient "
                    f"(requires_grad=True); return it `.detach()`ed"
                )
        return None

    return _each_call(check, got, arrays, attached)


def _no_inplace(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    def modified(call: CallData, g: Outcome) -> str | None:
        if not g.modified:
            return None
        names = ", ".join(f"`{call.arg_names[m]}`" for m in g.modified)
        return (
            f"{call.function}() modified its input {names} in place for "
            f"{describe_call(call, arrays)}; work on a copy (`x.clone()`) or build a new tensor"
        )

    return _each_call(check, got, arrays, modified)


def _autograd(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """Call 0 is the student's closed form; call 1 the reference's autograd of log_prob."""
    call, ref = check.calls
    g = got[0]
    problem = call_failure(call, g, arrays)
    if problem is None:
        assert g is not None and g.outputs[0].array is not None and ref.expected is not None
        want = ref.expected.grads[params.get("arg", 0)]
        assert want is not None
        ok = close(g.outputs[0].array, want, *_tol(g.outputs[0].dtype, "normal", call, arrays))
        if not ok.all():
            problem = (
                f"for {describe_call(call, arrays)}, the result differs from autograd's "
                f"gradient of log_prob: {_mismatch(g.outputs[0].array, want, ok)}"
            )
    return [(0, problem, False)] if problem else []


def _concat(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """Call 0's output equals the concatenated outputs of calls 1..n (the episodes alone)."""
    problems = _each_call(check, got, arrays, lambda call, g: None)
    if problems:
        return problems[:1]
    outs = [g.outputs[0] for g in got if g is not None]
    whole, parts = outs[0].array, np.concatenate([o.array for o in outs[1:]])  # type: ignore[misc]
    assert whole is not None
    ok = close(whole, parts, *_tol(outs[0].dtype, "normal", check.calls[0], arrays))
    if ok.all():
        return []
    return [
        (
            0,
            f"for {describe_call(check.calls[0], arrays)}, the result should equal the "
            f"episodes computed one at a time (the sum restarts after each done step): "
            f"{_mismatch(whole, parts, ok)}",
            False,
        )
    ]


def _zero_grad(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    pos = params["arg"]

    def nonzero(call: CallData, g: Outcome) -> str | None:
        mask = arrays[call.aux[params["mask"]]]
        grad = g.grads.get(pos)
        name = call.arg_names[pos]
        if grad is None:
            return f"no gradient reaches `{name}` for {describe_call(call, arrays)}"
        if np.any(np.abs(grad[mask]) > ZERO_GRAD_ATOL):
            return (
                f"for {describe_call(call, arrays)}, the gradient with respect to `{name}` "
                f"must be exactly 0 where the clip is active in the advantage's direction "
                f"(entries {fmt(np.flatnonzero(mask))}); got {fmt(grad[mask])}. Clip the "
                f"ratio, multiply by A, then take the min"
            )
        return None

    return _each_call(check, got, arrays, nonzero)


def _sum(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """An output equals a sum of other outputs and inputs (returns = advantages + values)."""
    target = params["target"]

    def mismatch(call: CallData, g: Outcome) -> str | None:
        want = sum(
            (g.outputs[i].array if source == "output" else arrays[call.args[i]["array"]])
            for source, i in params["terms"]
        )
        have = g.outputs[target].array
        assert have is not None
        ok = close(have, want, *_tol(g.outputs[target].dtype, "normal", call, arrays))
        if ok.all():
            return None
        return (
            f"for {describe_call(call, arrays)}, {params['explain']}: {_mismatch(have, want, ok)}"
        )

    return _each_call(check, got, arrays, mismatch)


JUDGE_FUNCTIONS = {
    "structure": _structure,
    "values": _values,
    "grads": _grads,
    "no_grad_leak": _no_grad_leak,
    "detached": _detached,
    "no_inplace": _no_inplace,
    "autograd": _autograd,
    "concat": _concat,
    "zero_grad": _zero_grad,
    "sum": _sum,
}


def judge(check: CheckData, got: Got, arrays: Arrays) -> Verdict:
    """Run the check's judge on the student's outcomes (one per call, same order)."""
    failures = JUDGE_FUNCTIONS[check.judge["kind"]](check, got, arrays, check.judge)
    if not failures:
        return Verdict(True, "")
    # A strong failure on the smallest input makes the clearest counterexample.
    i, message, _ = min(failures, key=lambda f: (not f[2], _size(check.calls[f[0]], arrays), f[0]))
    return Verdict(False, message)


# ----------------------------------------------------------------------------- mistakes


def _same(a: Outcome | None, b: Outcome) -> bool:
    if a is None or not a.ok or not b.ok:
        return False
    if a.container != b.container or len(a.outputs) != len(b.outputs):
        return False
    for x, y in zip(a.outputs, b.outputs):
        if x.kind != y.kind or tuple(x.shape) != tuple(y.shape) or x.dtype != y.dtype:
            return False
        if x.kind == "tensor" and x.requires_grad != y.requires_grad:
            return False
        if x.array is not None and y.array is not None:
            rtol, floor = TOLERANCES["loose"].get(y.dtype, TOLERANCES["loose"]["float32"])
            if not close(x.array, y.array, rtol, floor).all():
                return False
    for pos, gy in b.grads.items():
        gx = a.grads.get(pos)
        zero_x = gx is None or not np.any(gx)
        zero_y = gy is None or not np.any(gy)
        if zero_x != zero_y:
            return False
        if gx is not None and gy is not None and not zero_y:
            rtol, floor = TOLERANCES["loose"]["float32"]
            if not close(gx, gy, rtol, floor).all():
                return False
    return sorted(a.modified) == sorted(b.modified)


def recognize(check: CheckData, got: Got) -> str | None:
    """The name of a known mistake that behaves exactly like the student's code on this check."""
    for name in check.caught:
        if all(name in c.mistakes and _same(g, c.mistakes[name]) for c, g in zip(check.calls, got)):
            return name
    return None
