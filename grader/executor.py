"""Run exercise functions on given inputs and describe what they did as plain arrays.

Used in-process for trusted code (``execute_calls``: the reference solution when vectors are
generated, a notebook cell checking a function it just defined) and, inside the sandbox, by the
runner's workers (``grader/runner.py``). It imports only the standard library, numpy and torch
(never the grader package), because the sandbox sees this file alone. Nothing here judges: the
records go back to the parent, which computes every verdict.
"""

from __future__ import annotations

import contextlib
import signal
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


class CallTimeout(BaseException):
    """Raised inside a call that ran past its time limit (a BaseException, so that a student's
    ``except Exception`` does not swallow it)."""


# --------------------------------------------------------------------------- recording calls


def _one_line(exc: BaseException, file: str | None = None) -> str:
    """``TypeError: ... (ppo.py line 12)``: the exception and where in the student file."""
    text = str(exc).strip().splitlines()
    msg = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    if isinstance(exc, SystemExit):
        msg = f"called sys.exit({exc.code!r})"
    if file:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
        if frames:
            msg += f" ({Path(file).name} line {frames[-1].lineno})"
    return msg[:500]


def _to_tensor(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray], torch: Any) -> Any:
    if "array" in spec:
        from_numpy = _PINNED.get("from_numpy", torch.from_numpy)
        return from_numpy(np.array(arrays[spec["array"]], copy=True))
    return spec.get("value")


def _record_output(value: Any, torch: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
            arr = t.to(torch.float32).numpy()
        else:
            arr = t.resolve_conj().resolve_neg().numpy()
        meta = {
            "kind": "tensor",
            "dtype": str(value.dtype).replace("torch.", ""),
            "shape": list(value.shape),
            "requires_grad": bool(value.requires_grad),
        }
        return meta, np.array(arr, copy=True)
    if isinstance(value, (bool, int, float)):
        return {"kind": "number", "type": type(value).__name__, "value": value}, None
    if isinstance(value, np.ndarray):
        return {"kind": "ndarray", "dtype": str(value.dtype), "shape": list(value.shape)}, None
    return {"kind": "other", "type": type(value).__name__}, None


def execute_call(
    fns: Any,
    call: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    timeout: float | None = None,
    file: str | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one call and describe it: outputs, gradients, inputs modified in place, errors.

    ``call`` = ``{"function", "args": [spec], "kwargs": {name: spec}, "grad_wrt": [arg
    positions], "cotangents": [array key or None per output]}`` where a spec is
    ``{"array": key}`` or ``{"value": x}``; ``"grad_mode": "inference"`` runs it under
    ``torch.inference_mode()``. The gradient of Σ_k Σ(output_k · cotangent_k) with
    respect to each ``grad_wrt`` input is recorded (None when no gradient reaches it).
    ``timeout`` (seconds, main thread only) bounds the call and its backward pass.
    """
    fn = (
        fns.get(call["function"])
        if isinstance(fns, Mapping)
        else getattr(fns, call["function"], None)
    )
    if not callable(fn):
        return {
            "ok": False,
            "error": f"missing function {call['function']}()",
            "error_kind": "missing",
        }, {}
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return _call_and_describe(fn, call, arrays, file)
    except CallTimeout:
        return {
            "ok": False,
            "error": f"took longer than {timeout:g} s (an infinite loop?)",
            "error_kind": "timeout",
        }, {}
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)


#: torch functions the executor relies on, pinned before a submission is imported (``pin``)
_PINNED: dict[str, Any] = {}


def pin() -> None:
    """Keep our own references to the torch functions the records depend on, so a submission
    that replaces ``torch.autograd.grad`` (or ``torch.from_numpy``) does not change them."""
    import torch

    _PINNED.update(
        grad=torch.autograd.grad,
        from_numpy=torch.from_numpy,
        enable_grad=torch.enable_grad,
        inference_mode=torch.inference_mode,
    )


def _grad_mode(call: Mapping[str, Any], torch: Any) -> Any:
    """``"grad_mode": "inference"`` runs the call under ``torch.inference_mode()`` (a function
    that needs autograd fails there); by default gradients are on."""
    if call.get("grad_mode") == "inference":
        return _PINNED.get("inference_mode", torch.inference_mode)()
    return _PINNED.get("enable_grad", torch.enable_grad)()


def _call_and_describe(
    fn: Any, call: Mapping[str, Any], arrays: Mapping[str, np.ndarray], file: str | None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    import torch

    args = [_to_tensor(s, arrays, torch) for s in call["args"]]
    kwargs = {k: _to_tensor(s, arrays, torch) for k, s in call.get("kwargs", {}).items()}
    grad_wrt = list(call.get("grad_wrt", []))
    for pos in grad_wrt:
        args[pos].requires_grad_(True)
    originals = {
        i: np.array(arrays[s["array"]], copy=True)
        for i, s in enumerate(call["args"])
        if "array" in s
    }
    start = time.perf_counter()
    try:
        with _grad_mode(call, torch):
            result = fn(*args, **kwargs)
    except CallTimeout:
        raise
    except NotImplementedError:
        return {
            "ok": False,
            "error": "not implemented yet (it raises NotImplementedError)",
            "error_kind": "not_implemented",
        }, {}
    except BaseException as exc:  # noqa: BLE001 - anything the student's code raises
        kind = "exit" if isinstance(exc, SystemExit) else "exception"
        return {"ok": False, "error": _one_line(exc, file), "error_kind": kind}, {}
    meta: dict[str, Any] = {"ok": True, "seconds": round(time.perf_counter() - start, 6)}
    out_arrays: dict[str, np.ndarray] = {}
    try:
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        meta["container"] = type(result).__name__ if isinstance(result, (tuple, list)) else "single"
        meta["outputs"] = []
        for k, value in enumerate(outputs):
            m, arr = _record_output(value, torch)
            if arr is not None:
                m["key"] = f"o{k}"
                out_arrays[f"o{k}"] = arr
            meta["outputs"].append(m)
        meta["modified"] = [
            i
            for i, original in originals.items()
            if tuple(args[i].shape) != original.shape
            or not np.array_equal(
                args[i].detach().numpy(), original, equal_nan=original.dtype.kind == "f"
            )
        ]
        meta["grads"] = {}
        if grad_wrt:
            grads, error = _gradients(outputs, args, grad_wrt, call, arrays, torch, file)
            if error:
                meta["grad_error"] = error
            for pos, g in zip(grad_wrt, grads):
                meta["grads"][str(pos)] = None if g is None else f"g{pos}"
                if g is not None:
                    out_arrays[f"g{pos}"] = np.array(g.detach().cpu().numpy(), copy=True)
    except CallTimeout:
        raise
    except BaseException as exc:  # noqa: BLE001 - e.g. a tensor subclass that explodes
        return {
            "ok": False,
            "error": f"returned something unusable ({_one_line(exc)})",
            "error_kind": "exception",
        }, {}
    return meta, out_arrays


def _gradients(
    outputs: list[Any],
    args: list[Any],
    grad_wrt: list[int],
    call: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    torch: Any,
    file: str | None,
) -> tuple[list[Any], str | None]:
    """d Σ_k Σ(output_k · cotangent_k) / d args[grad_wrt]; None where no gradient reaches."""
    terms = []
    for k, key in enumerate(call.get("cotangents", [])):
        o = outputs[k] if key is not None and k < len(outputs) else None
        if isinstance(o, torch.Tensor) and o.requires_grad:
            c = torch.from_numpy(np.array(arrays[key])).to(o.dtype)
            if tuple(c.shape) == tuple(o.shape):
                terms.append((o * c).sum())
    if not terms:
        return [None] * len(grad_wrt), None
    try:
        inputs = [args[p] for p in grad_wrt]
        grad = _PINNED.get("grad", torch.autograd.grad)
        return list(grad(sum(terms), inputs, allow_unused=True)), None
    except CallTimeout:
        raise
    except BaseException as exc:  # noqa: BLE001
        return [None] * len(grad_wrt), _one_line(exc, file)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Tiny tensors run fastest on one thread: with more, each op may wait on busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute_calls(
    fns: Any, calls: list[Mapping[str, Any]], arrays: Mapping[str, np.ndarray]
) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """``execute_call`` for each call, in-process and without limits (trusted code)."""
    with single_thread():
        return [execute_call(fns, c, arrays) for c in calls]
