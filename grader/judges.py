"""Verdicts. Each judge compares what the student's calls did with what the reference did (or
with a closed-form property) and, when it fails, says why with a small counterexample; when the
answer behaves exactly like a known classic mistake, the message names it.

The judges here are generic (any exercise may use them by name; grader/README.md has the
table of kinds and parameters). A judge that serves one
exercise lives beside that exercise's checks and is named by import path in the check,
``judge={"kind": "rlkit_grader.checks.ppo:zero_grad_when_clipped", ...}``. Every judge has the same
signature, ``(check, got, arrays, params) -> list[Failure]``; the helpers below (``each_call``,
``call_failure``, ``close``, ``tolerance``, ``describe_call``, ``mismatch``, ``fmt``) are
public for such judges.

Tolerances are scaled to the dtype and to the size of the expected values, so a correct answer
written any reasonable way (a loop or a vectorized formula, float32 or float64) passes, while
every real mistake is off by far more.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlkit_grader.records import CallData, CheckData, Outcome

#: (rtol, atol floor) per dtype; "loose" is for extreme inputs and long sequences.
TOLERANCES = {
    "normal": {"float32": (1e-4, 1e-6), "float64": (1e-7, 1e-12)},
    "loose": {"float32": (2e-3, 1e-5), "float64": (1e-6, 1e-10)},
}
#: arrays up to this many elements are shown in full in feedback (a (2, 9) mask, a (3, 4) logits)
SHOW_IN_FULL = 40


@dataclass
class Verdict:
    passed: bool
    message: str = ""


# Each judge takes (check, got, arrays, params) and returns failures: (call index, message,
# strong). ``strong`` failures make better counterexamples (e.g. a clearly visible gradient leak).
Failure = tuple[int, str, bool]
Got = list[Outcome | None]
Arrays = Mapping[str, np.ndarray]
Judge = Callable[[CheckData, Got, Arrays, dict], list[Failure]]


def tolerance(
    dtype: str, kind: str, call: CallData, arrays: Mapping[str, np.ndarray]
) -> tuple[float, float]:
    """(rtol, atol floor) for comparing values of ``dtype`` under tolerance ``kind``."""
    rtol, floor = TOLERANCES[kind].get(dtype, TOLERANCES[kind]["float32"])
    if kind == "loose":  # round-off grows with the size of the inputs (logits of 1e4)
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


def coarser(expected: str, got: str) -> str:
    """Compare at the precision the student actually returned (a dtype slip costs the
    structure check, not every value check)."""
    return expected if got == expected or got == "float64" else "float32"


def close(got: np.ndarray, want: np.ndarray, rtol: float, floor: float) -> np.ndarray:
    """Elementwise: |got − want| ≤ floor + rtol·(max|want| + |want|); nan matches nan and
    inf matches inf. Both must have the same shape (ValueError otherwise: nothing is
    broadcast)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:  # never broadcast: an empty array would "match" anything
        raise ValueError(f"cannot compare values of shape {got.shape} with {want.shape}")
    finite = np.isfinite(want)
    scale = float(np.max(np.abs(want[finite]), initial=0.0))
    atol = floor + rtol * scale
    with np.errstate(invalid="ignore"):
        ok = np.abs(got - want) <= atol + rtol * np.abs(want)
    same_nonfinite = ~finite & ((got == want) | (np.isnan(got) & np.isnan(want)))
    return ok | same_nonfinite


# ----------------------------------------------------------------------------- formatting


def fmt(a: np.ndarray | float | None, limit: int = SHOW_IN_FULL, digits: int = 5) -> str:
    """An array on one line, in full up to ``limit`` elements (``[[0, 1], [1, 1]]``), floats
    with ``digits`` significant digits; a bigger one as its dtype and shape."""
    if a is None:
        return "None"
    a = np.asarray(a)
    if a.size > limit:
        return f"<{a.dtype} array of shape {tuple(a.shape)}>"

    def one(x: object) -> str:
        if a.dtype.kind == "f":
            text = f"{float(x):.{digits}g}"  # type: ignore[arg-type]
            return "-0" if text == "-0" else text
        if a.dtype.kind == "b":
            return str(bool(x))
        return str(x)

    def nested(x: np.ndarray) -> str:
        if x.ndim == 0:
            return one(x[()])
        return "[" + ", ".join(nested(row) for row in x) + "]"

    return nested(a)


def digits_to_differ(got: Any, want: Any, ok: np.ndarray | None = None) -> int:
    """The fewest significant digits (5 to 17) at which every differing entry prints
    differently: "expected 0.3536, got 0.3536" never happens."""
    g = np.atleast_1d(np.asarray(got, dtype=np.float64))
    w = np.atleast_1d(np.asarray(want, dtype=np.float64))
    if g.shape != w.shape:
        return 5
    bad = ~np.atleast_1d(ok) if ok is not None else g != w
    bad = bad & (g != w) & ~(np.isnan(g) & np.isnan(w))
    for digits in range(5, 18):
        if all(f"{x:.{digits}g}" != f"{y:.{digits}g}" for x, y in zip(g[bad], w[bad])):
            return digits
    return 17


def _value(spec: Mapping[str, object], arrays: Mapping[str, np.ndarray]) -> str:
    if "array" in spec:
        a = arrays[str(spec["array"])]
        kind = {"f": str(a.dtype), "b": "bool", "i": "int64"}.get(a.dtype.kind, str(a.dtype))
        return f"{fmt(a)} ({kind})" if a.size <= SHOW_IN_FULL else fmt(a)
    value = spec.get("value")
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def describe_call(call: CallData, arrays: Mapping[str, np.ndarray]) -> str:
    """``gae(rewards=[...] (float32), ..., gamma=0.9)``: the call with its inputs."""
    parts = [f"{n}={_value(s, arrays)}" for n, s in zip(call.arg_names, call.args)]
    parts += [f"{n}={_value(s, arrays)}" for n, s in call.kwargs.items()]
    return f"{call.function}({', '.join(parts)})"


def _size(call: CallData, arrays: Mapping[str, np.ndarray]) -> int:
    return sum(arrays[s["array"]].size for s in call.args if "array" in s)


def mismatch(got: np.ndarray, want: np.ndarray, ok: np.ndarray) -> str:
    """ "expected [..], got [..]" (small arrays), else the count and the first differing entry;
    with as many digits as it takes to see the difference."""
    digits = digits_to_differ(got, want, ok)
    if want.size <= SHOW_IN_FULL:
        return f"expected {fmt(want, digits=digits)}, got {fmt(got, digits=digits)}"
    idx = tuple(int(i) for i in np.argwhere(~ok)[0])
    where = f" at index {idx}" if idx else ""
    g, w = np.asarray(got)[idx], np.asarray(want)[idx]
    digits = digits_to_differ(g, w)
    return (
        f"{int((~ok).sum())} of {want.size} values differ; first{where}: "
        f"expected {w:.{digits}g}, got {g:.{digits}g}"
    )


# ----------------------------------------------------------------------------- per-call checks


#: how a result whose data does not match its own description is refused (public: tests and
#: exercise judges may look for it)
REFUSED = "does not match what it reports"


def record_problem(
    call: CallData,
    got: Outcome | None,
    arrays: Mapping[str, np.ndarray],
    check: CheckData | None = None,
) -> str | None:
    """Why a call's result cannot be used at all (None: it can). The values that came back must
    be what the result reports about itself, and fit what the check expects: each output's
    data has the shape and dtype it reports, and the shape of the reference's output where it
    reports that shape; each gradient has its input's shape and dtype; one output for a
    single result; inputs reported as modified exist. A correct submission always passes
    this; a tensor that lies about its shape, or a record forged in the worker, does not.
    Checked before any comparison, so no judge ever broadcasts one array against another."""
    if got is None or not got.ok:
        return None
    f = call.function
    want = call.expected.outputs if call.expected is not None and call.expected.ok else []
    n = len(want)
    whole = f"the result of {f}() {REFUSED}"
    if got.container not in ("single", "tuple", "list"):
        return f"{whole}: a {str(got.container)[:20]!r} is not something a function returns"
    if got.container == "single" and len(got.outputs) != 1:
        return f"{whole}: it reports one value but holds {len(got.outputs)}"
    for k, o in enumerate(got.outputs):
        if n > 1 or len(got.outputs) > 1:
            label = check.output_name(k, n) if check is not None and k < n else f"output {k + 1}"
            what = f"{label} of {f}() {REFUSED}"
        else:
            what = whole
        problem = o.data_mismatch()
        if problem is None:
            continue
        if k < n and want[k].array is not None and o.array is not None:
            expected = np.asarray(want[k].array)
            if "shape" in problem:
                problem += f", and shape {tuple(expected.shape)} is expected"
            else:
                problem += f", and {want[k].dtype} is expected"
        return f"{what}: {problem}; it cannot be graded"
    for pos, grad in got.grads.items():
        if pos not in call.grad_wrt:
            return f"{whole}: it holds a gradient for input {pos}, which was not asked for"
        if grad is None:
            continue
        name = call.arg_names[pos] if pos < len(call.arg_names) else f"input {pos}"
        spec = call.args[pos] if pos < len(call.args) else {}
        if "array" not in spec:
            return f"{whole}: it holds a gradient for `{name}`, which is not a tensor"
        have, arg = np.asarray(grad), arrays[spec["array"]]
        if have.shape != arg.shape or have.dtype != arg.dtype:
            return (
                f"the gradient with respect to `{name}` from {f}() {REFUSED}: its data is "
                f"{have.dtype} of shape {tuple(have.shape)}, but `{name}` is {arg.dtype} of "
                f"shape {tuple(arg.shape)}; it cannot be graded"
            )
    for m in got.modified:
        if not 0 <= m < len(call.args) or "array" not in call.args[m]:
            return f"{whole}: it reports input {m} as modified, which is not one of its tensors"
    return None


def call_failure(
    call: CallData,
    got: Outcome | None,
    arrays: Mapping[str, np.ndarray],
    dtypes: bool = False,
    check: CheckData | None = None,
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
        return f"{call.function}() raised {got.error} for {describe_call(call, arrays)}"
    refused = record_problem(call, got, arrays, check)
    if refused is not None:
        return refused
    n = len(want.outputs)
    names = check.output_names if check is not None else []
    if n > 1 and (got.container not in ("tuple", "list") or len(got.outputs) != n):
        found = (
            f"a {got.container} of {len(got.outputs)}"
            if got.container != "single"
            else got.outputs[0].describe()
        )
        what = f" ({', '.join(names)})" if len(names) == n else ""
        return f"{call.function}() must return a tuple of {n} tensors{what}; it returned {found}"
    if n == 1 and got.container != "single":
        return (
            f"{call.function}() must return one tensor; it returned a {got.container} "
            f"of {len(got.outputs)}"
        )
    for k, (g, w) in enumerate(zip(got.outputs, want.outputs)):
        label = check.output_name(k, n) if check is not None else f"output {k + 1}"
        which = f"{label} of {call.function}() is" if n > 1 else f"{call.function}() returned"
        has = f"{label} of {call.function}() has" if n > 1 else which
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


def gradient_of(call: CallData, check: CheckData) -> str:
    """Whose gradient a call asks for, where the function has several outputs: ``" of
    `returns`"``, or ``" of `advantages` and `returns`"`` when several are weighted ("" for
    a function with one output: its gradient is unambiguous)."""
    n = len(call.cotangents)
    weighted = [check.output_name(i, n) for i, k in enumerate(call.cotangents) if k is not None]
    if n <= 1 or not weighted:
        return ""
    return " of " + " and ".join(weighted)


def _cot_note(call: CallData, arrays: Mapping[str, np.ndarray], check: CheckData) -> str:
    keys = [k for k in call.cotangents if k is not None]
    if len(keys) == 1 and arrays[keys[0]].ndim == 0:
        return ""
    n = len(call.cotangents)
    parts = [
        f"{check.output_name(i, n)} weighted by {fmt(arrays[k])}"
        for i, k in enumerate(call.cotangents)
        if k is not None
    ]
    return f" (backpropagating {'; '.join(parts)})"


def grad_problem(
    call: CallData, got: Outcome, arrays: Mapping[str, np.ndarray], kind: str, check: CheckData
) -> str | None:
    """Why the gradients differ from the reference's (None: they agree)."""
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
                f"no gradient{gradient_of(call, check)} reaches `{name}` for "
                f"{describe_call(call, arrays)}{extra}: "
                f"the result is cut off from autograd (numpy, .item(), .detach(), "
                f"torch.tensor(...) or an in-place write on the way?)"
            )
        rtol, floor = tolerance(str(w.dtype), kind, call, arrays)
        ok = close(g, w, rtol, floor)
        if not ok.all():
            what = "not finite (nan/inf)" if not np.isfinite(g).all() else "wrong"
            return (
                f"the gradient{gradient_of(call, check)} with respect to `{name}` is {what} for "
                f"{describe_call(call, arrays)}{_cot_note(call, arrays, check)}: "
                f"{mismatch(g, w, ok)}"
            )
    return None


# ----------------------------------------------------------------------------- the judges


def each_call(
    check: CheckData,
    got: Got,
    arrays: Arrays,
    extra: Callable[[CallData, Outcome], Any],
    dtypes: bool = False,
) -> list[Failure]:
    """Run ``extra(call, outcome)`` on every call that ran and has the right structure; it
    returns a message, None, or (message, strong)."""
    failures = []
    for i, (call, g) in enumerate(zip(check.calls, got)):
        problem = call_failure(call, g, arrays, dtypes, check)
        strong = False
        if problem is None:
            assert g is not None
            result = extra(call, g)
            problem, strong = result if isinstance(result, tuple) else (result, False)
        if problem:
            failures.append((i, problem, strong))
    return failures


def _structure(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    return each_call(check, got, arrays, lambda call, g: None, dtypes=True)


def values_problem(
    check: CheckData, call: CallData, g: Outcome, arrays: Arrays, params: Mapping[str, Any]
) -> str | None:
    """Why the outputs (and, with ``grads``, the gradients) differ from the expected ones."""
    kind = params.get("tolerance", "normal")
    want = call.expected
    assert want is not None
    n = len(want.outputs)
    for k in params.get("outputs") or range(n):
        w, o = want.outputs[k].array, g.outputs[k].array
        assert w is not None and o is not None
        dtype = coarser(want.outputs[k].dtype, g.outputs[k].dtype)
        ok = close(o, w, *tolerance(dtype, kind, call, arrays))
        if not ok.all():
            name = check.output_name(k, n)
            bad = not np.isfinite(o).all() and np.isfinite(w).all()
            why = f"{name} is not finite (nan/inf)" if bad else f"{name} is wrong"
            return f"for {describe_call(call, arrays)}, {why}: {mismatch(o, w, ok)}"
    if params.get("grads"):
        return grad_problem(call, g, arrays, kind, check)
    return None


def _values(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    return each_call(check, got, arrays, lambda c, g: values_problem(check, c, g, arrays, params))


def _grads(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    kind = params.get("tolerance", "normal")
    return each_call(check, got, arrays, lambda c, g: grad_problem(c, g, arrays, kind, check))


def _no_grad_leak(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """No gradient of the weighted outputs reaches the inputs named in ``params["args"]``
    (``explain``: why, and the fix; by default, detach the input where it is used)."""

    def leak(call: CallData, g: Outcome) -> tuple[str | None, bool]:
        for name in params["args"]:
            grad = g.grads.get(call.arg_names.index(name))
            if grad is not None and np.any(np.abs(grad) > 0):
                fix = params.get("explain") or (
                    f"{call.function}() must pass none to `{name}` here: use "
                    f"`{name}.detach()` where it is used"
                )
                return (
                    f"the gradient{gradient_of(call, check)} flows into `{name}` "
                    f"(d/d{name} = {fmt(grad)}) for {describe_call(call, arrays)}"
                    f"{_cot_note(call, arrays, check)}; {fix}",
                    bool(np.max(np.abs(grad)) > 1e-6),
                )
        return None, False

    return each_call(check, got, arrays, leak)


def _detached(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    """The outputs named in ``params["outputs"]`` carry no gradient (``explain``: the fix)."""

    def attached(call: CallData, g: Outcome) -> str | None:
        n = len(g.outputs)
        for k in params["outputs"]:
            if g.outputs[k].requires_grad:
                label = check.output_name(k, n) if n > 1 else "the result"
                inputs = [call.arg_names[p] for p in call.grad_wrt]
                when = f" when {', '.join(f'`{i}`' for i in inputs)} require grad" if inputs else ""
                fix = params.get("explain") or "return it `.detach()`ed"
                return (
                    f"{label} of {call.function}() still carries a gradient "
                    f"(requires_grad=True){when}; {fix}"
                )
        return None

    return each_call(check, got, arrays, attached)


def _no_inplace(check: CheckData, got: Got, arrays: Arrays, params: dict) -> list[Failure]:
    def modified(call: CallData, g: Outcome) -> str | None:
        if not g.modified:
            return None
        names = ", ".join(f"`{call.arg_names[m]}`" for m in g.modified)
        return (
            f"{call.function}() modified its input {names} in place for "
            f"{describe_call(call, arrays)}; work on a copy (`x.clone()`) or build a new tensor"
        )

    return each_call(check, got, arrays, modified)


JUDGE_FUNCTIONS: dict[str, Judge] = {
    "structure": _structure,
    "values": _values,
    "grads": _grads,
    "no_grad_leak": _no_grad_leak,
    "detached": _detached,
    "no_inplace": _no_inplace,
}


@functools.lru_cache(maxsize=64)
def load_judge(kind: str) -> Judge:
    """A generic judge by name, or an exercise's own by import path ``pkg.module:function``."""
    if kind in JUDGE_FUNCTIONS:
        return JUDGE_FUNCTIONS[kind]
    module, _, attr = kind.partition(":")
    if not attr:
        raise ValueError(f"unknown judge {kind!r}")
    return getattr(importlib.import_module(module), attr)


def judge(check: CheckData, got: Got, arrays: Arrays) -> Verdict:
    """Run the check's judge on the student's outcomes (one per call, same order). A result
    whose data does not match what it reports (``record_problem``) fails the check before
    the judge sees anything."""
    failures = [
        (i, problem, True)
        for i, (call, g) in enumerate(zip(check.calls, got))
        if (problem := record_problem(call, g, arrays, check)) is not None
    ]
    if not failures:
        failures = load_judge(check.judge["kind"])(check, got, arrays, check.judge)
    if not failures:
        return Verdict(True, "")
    # A strong failure on the smallest input makes the clearest counterexample.
    i, message, _ = min(failures, key=lambda f: (not f[2], _size(check.calls[f[0]], arrays), f[0]))
    return Verdict(False, message)


# ----------------------------------------------------------------------------- mistakes


def _same_values(x: np.ndarray, y: np.ndarray, rtol: float, floor: float) -> bool:
    """Recognition's comparison: close where both are finite; an overflow (nan or ±inf) matches
    any overflow, because which one a mistake produces depends on the CPU's kernels."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    fx, fy = np.isfinite(x), np.isfinite(y)
    if not np.array_equal(fx, fy):
        return False
    return bool(close(x[fx], y[fy], rtol, floor).all())


def _error(outcome: Outcome) -> str:
    """The exception without the " (ppo.py line 12)" the sandbox adds."""
    return re.sub(r" \([^()]*\.py line \d+\)$", "", outcome.error or "")


def same_outcome(a: Outcome | None, b: Outcome) -> bool:
    """Does ``a`` behave like ``b`` (a stored mistake's outcome), up to round-off? A mistake
    that raises is recognized by its exception (type and message, not where it was raised)."""
    if a is not None and not a.ok and not b.ok:
        return a.error_kind == b.error_kind == "exception" and _error(a) == _error(b)
    if a is None or not a.ok or not b.ok:
        return False
    if a.container != b.container or len(a.outputs) != len(b.outputs):
        return False
    if any(x.data_mismatch() is not None for x in a.outputs):
        return False
    for x, y in zip(a.outputs, b.outputs):
        if x.kind != y.kind or tuple(x.shape) != tuple(y.shape) or x.dtype != y.dtype:
            return False
        if x.kind == "tensor" and x.requires_grad != y.requires_grad:
            return False
        if x.array is not None and y.array is not None:
            rtol, floor = TOLERANCES["loose"].get(y.dtype, TOLERANCES["loose"]["float32"])
            if not _same_values(x.array, y.array, rtol, floor):
                return False
    for pos, gy in b.grads.items():
        gx = a.grads.get(pos)
        if gx is not None and gy is not None and (gx.shape, gx.dtype) != (gy.shape, gy.dtype):
            return False
        zero_x = gx is None or not np.any(gx)
        zero_y = gy is None or not np.any(gy)
        if zero_x != zero_y:
            return False
        if gx is not None and gy is not None and not zero_y:
            rtol, floor = TOLERANCES["loose"]["float32"]
            if not _same_values(gx, gy, rtol, floor):
                return False
    return sorted(a.modified) == sorted(b.modified)


def recognize(check: CheckData, got: Got) -> str | None:
    """The name of a known mistake the student's code makes on this check: it behaves exactly
    like the mistake (or one of its declared variants, stored as ``name~1``...) on every call;
    else, a partial variant, like the mistake on some calls and like the reference on the
    others (the mistake made in some cases only)."""
    from rlkit_grader.spec import mistake_name

    for key in check.caught:
        if all(
            key in c.mistakes and same_outcome(g, c.mistakes[key]) for c, g in zip(check.calls, got)
        ):
            return mistake_name(key)
    for key in check.caught:
        like_mistake = like_reference = 0
        for c, g in zip(check.calls, got):
            if key not in c.mistakes:
                break
            if c.expected is not None and c.expected.ok and same_outcome(g, c.expected):
                like_reference += 1
            elif same_outcome(g, c.mistakes[key]):
                like_mistake += 1
            else:
                break
        else:
            if like_mistake and like_reference:
                return mistake_name(key)
    return None
