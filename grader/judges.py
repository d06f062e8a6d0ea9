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


def close(got: np.ndarray, want: np.ndarray, rtol: float, floor: float) -> np.ndarray:
    """Elementwise: |got − want| ≤ floor + rtol·max|want| (nan matches nan, inf matches inf)."""
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
    call: CallData, got: Outcome | None, arrays: Mapping[str, np.ndarray]
) -> str | None:
    """Did the call run, and does its result have the right type, shape and dtype?"""
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
        if g.dtype != w.dtype:
            return (
                f"{which} {g.dtype}, expected {w.dtype} (the dtype of the "
                f"inputs) for {describe_call(call, arrays)}"
            )
    return None


def _grad_name(call: CallData, pos: int) -> str:
    return call.arg_names[pos]


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


# ----------------------------------------------------------------------------- the judges


def _compare_outputs(
    check: CheckData,
    got: list[Outcome | None],
    arrays: Mapping[str, np.ndarray],
    tolerance: str,
    outputs: list[int] | None,
    grads: bool,
) -> list[tuple[int, str]]:
    failures = []
    for i, (call, g) in enumerate(zip(check.calls, got)):
        problem = call_failure(call, g, arrays)
        if problem:
            failures.append((i, problem))
            continue
        assert g is not None and call.expected is not None
        want = call.expected
        idx = outputs if outputs is not None else range(len(want.outputs))
        for k in idx:
            w, o = want.outputs[k], g.outputs[k]
            assert w.array is not None and o.array is not None
            rtol, floor = _tol(w.dtype, tolerance, call, arrays)
            ok = close(o.array, w.array, rtol, floor)
            if not ok.all():
                nonfinite = not np.isfinite(o.array).all() and np.isfinite(w.array).all()
                name = f"output {k + 1}" if len(want.outputs) > 1 else "the result"
                why = f"{name} is not finite (nan/inf): " if nonfinite else f"{name} is wrong: "
                failures.append(
                    (
                        i,
                        f"for {describe_call(call, arrays)}, {why}"
                        f"{_mismatch(o.array, w.array, ok)}",
                    )
                )
                break
        else:
            if grads:
                problem = _grad_problem(call, g, arrays, tolerance)
                if problem:
                    failures.append((i, problem))
    return failures


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
        name = _grad_name(call, pos)
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


def judge(check: CheckData, got: list[Outcome | None], arrays: Mapping[str, np.ndarray]) -> Verdict:
    """Run the check's judge on the student's outcomes (one per call, same order)."""
    kind = check.judge["kind"]
    params = check.judge
    failures: list[tuple[int, str]] = []
    strong = set()
    if kind == "structure":
        failures = [
            (i, p)
            for i, (c, g) in enumerate(zip(check.calls, got))
            if (p := call_failure(c, g, arrays))
        ]
    elif kind == "values":
        failures = _compare_outputs(
            check,
            got,
            arrays,
            params.get("tolerance", "normal"),
            params.get("outputs"),
            bool(params.get("grads", False)),
        )
    elif kind == "grads":
        for i, (call, g) in enumerate(zip(check.calls, got)):
            p = call_failure(call, g, arrays) or _grad_problem(
                call, g, arrays, params.get("tolerance", "normal")
            )  # type: ignore[arg-type]
            if p:
                failures.append((i, p))
    elif kind == "no_grad_leak":
        for i, (call, g) in enumerate(zip(check.calls, got)):
            p = call_failure(call, g, arrays)
            if p is None:
                assert g is not None
                for name in params["args"]:
                    pos = call.arg_names.index(name)
                    leak = g.grads.get(pos)
                    if leak is not None and np.any(np.abs(leak) > 0):
                        if np.max(np.abs(leak)) > 1e-6:  # a clearly visible leak
                            strong.add(i)
                        p = (
                            f"gradient flows into `{name}` (d/d{name} = {fmt(leak)}) for "
                            f"{describe_call(call, arrays)}; it is data, not something to "
                            f"learn: use `{name}.detach()`"
                        )
                        break
            if p:
                failures.append((i, p))
    elif kind == "detached":
        for i, (call, g) in enumerate(zip(check.calls, got)):
            p = call_failure(call, g, arrays)
            if p is None:
                assert g is not None
                for k in params["outputs"]:
                    if g.outputs[k].requires_grad:
                        p = (
                            f"output {k + 1} of {call.function}() still carries a gradient "
                            f"(requires_grad=True); return it `.detach()`ed"
                        )
                        break
            if p:
                failures.append((i, p))
    elif kind == "no_inplace":
        for i, (call, g) in enumerate(zip(check.calls, got)):
            p = call_failure(call, g, arrays)
            if p is None and g is not None and g.modified:
                names = ", ".join(f"`{call.arg_names[m]}`" for m in g.modified)
                p = (
                    f"{call.function}() modified its input {names} in place for "
                    f"{describe_call(call, arrays)}; work on a copy (`x.clone()`) or build a "
                    f"new tensor"
                )
            if p:
                failures.append((i, p))
    elif kind == "autograd":
        call, ref = check.calls
        g = got[0]
        p = call_failure(call, g, arrays)
        if p is None:
            assert g is not None and g.outputs[0].array is not None and ref.expected is not None
            want = ref.expected.grads[params.get("arg", 0)]
            assert want is not None
            rtol, floor = _tol(g.outputs[0].dtype, "normal", call, arrays)
            ok = close(g.outputs[0].array, want, rtol, floor)
            if not ok.all():
                p = (
                    f"for {describe_call(call, arrays)}, the result differs from autograd's "
                    f"gradient of log_prob: {_mismatch(g.outputs[0].array, want, ok)}"
                )
        if p:
            failures.append((0, p))
    elif kind == "concat":
        problems = [
            (i, p)
            for i, (c, g) in enumerate(zip(check.calls, got))
            if (p := call_failure(c, g, arrays))
        ]
        if problems:
            failures = problems[:1]
        else:
            whole = got[0].outputs[0].array  # type: ignore[union-attr]
            parts = np.concatenate([g.outputs[0].array for g in got[1:]])  # type: ignore[union-attr,misc]
            assert whole is not None
            rtol, floor = _tol(got[0].outputs[0].dtype, "normal", check.calls[0], arrays)  # type: ignore[union-attr]
            ok = close(whole, parts, rtol, floor)
            if not ok.all():
                failures.append(
                    (
                        0,
                        f"for {describe_call(check.calls[0], arrays)}, the result "
                        f"should equal the episodes computed one at a time (the sum "
                        f"restarts after each done step): {_mismatch(whole, parts, ok)}",
                    )
                )
    elif kind == "zero_grad":
        pos, mask_name = params["arg"], params["mask"]
        for i, (call, g) in enumerate(zip(check.calls, got)):
            p = call_failure(call, g, arrays)
            if p is None:
                assert g is not None
                mask = arrays[call.aux[mask_name]]
                grad = g.grads.get(pos)
                name = call.arg_names[pos]
                if grad is None:
                    p = f"no gradient reaches `{name}` for {describe_call(call, arrays)}"
                elif np.any(np.abs(grad[mask]) > ZERO_GRAD_ATOL):
                    p = (
                        f"for {describe_call(call, arrays)}, the gradient with respect to "
                        f"`{name}` must be exactly 0 where the clip is active in the "
                        f"advantage's direction (entries {fmt(np.flatnonzero(mask))}); got "
                        f"{fmt(grad[mask])}. Clip the ratio, multiply by A, then take the min"
                    )
            if p:
                failures.append((i, p))
    elif kind == "sum":
        target, terms = params["target"], params["terms"]
        for i, (call, g) in enumerate(zip(check.calls, got)):
            p = call_failure(call, g, arrays)
            if p is None:
                assert g is not None
                want = np.zeros_like(g.outputs[target].array, dtype=np.float64)
                for source, index in terms:
                    want = want + (
                        g.outputs[index].array
                        if source == "output"
                        else arrays[call.args[index]["array"]]
                    )
                have = g.outputs[target].array
                assert have is not None
                rtol, floor = _tol(g.outputs[target].dtype, "normal", call, arrays)
                ok = close(have, want, rtol, floor)
                if not ok.all():
                    p = (
                        f"for {describe_call(call, arrays)}, {params['explain']}: "
                        f"{_mismatch(have, want, ok)}"
                    )
            if p:
                failures.append((i, p))
    else:  # pragma: no cover - Check validates the kind
        raise ValueError(f"unknown judge {kind!r}")
    if not failures:
        return Verdict(True, "")
    # The smallest failing input makes the clearest counterexample.
    visible = [f for f in failures if f[0] in strong]
    i, message = min(visible or failures, key=lambda f: (_size(check.calls[f[0]], arrays), f[0]))
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


def recognize(
    check: CheckData, got: list[Outcome | None], explanations: Mapping[str, str]
) -> str | None:
    """The name of a known mistake that behaves exactly like the student's code on this check."""
    for name in check.caught:
        if all(name in c.mistakes and _same(g, c.mistakes[name]) for c, g in zip(check.calls, got)):
            return name
    return None
