"""Plain-data records the grader passes around: what a call returned (``Outcome``), a stored call
with its expected outcome (``CallData``) and a check ready to judge (``CheckData``). numpy only:
the parent process never needs torch to judge."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PUBLIC, HIDDEN = "public", "hidden"
VISIBILITIES = (PUBLIC, HIDDEN)

#: tensor dtypes whose values travel as another numpy dtype (numpy has no bfloat16)
_TRAVELS_AS = {"float16": "float32", "bfloat16": "float32"}


def values_dtype(dtype: str) -> np.dtype | None:
    """The numpy dtype in which a tensor of ``dtype`` ("float32", "bfloat16", ...) sends its
    values (None: no numeric tensor sends values of that name)."""
    name = _TRAVELS_AS.get(dtype, dtype)
    try:
        found = np.dtype(name)
    except TypeError:
        return None
    return found if found.kind in "biufc" and str(found) == name else None


@dataclass
class Output:
    """One returned value: a tensor (with its data) or something else (described by type)."""

    kind: str  # "tensor" | "number" | "ndarray" | "other"
    dtype: str = ""
    shape: tuple[int, ...] = ()
    requires_grad: bool = False
    array: np.ndarray | None = None
    type: str = ""
    value: Any = None

    def data_mismatch(self) -> str | None:
        """How the values that came with this output differ from what it reports about them
        (None: they agree). A result is described by the process that made it; the grader
        compares that description with the data itself before using either."""
        if self.kind != "tensor":
            return None if self.array is None else "values came with something that is not a tensor"
        if self.array is None:
            return "its values are missing"
        have = np.asarray(self.array)
        if tuple(have.shape) != tuple(self.shape):
            return (
                f"its data has shape {tuple(have.shape)} but it reports shape {tuple(self.shape)}"
            )
        if values_dtype(self.dtype) != have.dtype:
            return f"its data is {have.dtype} but it reports {self.dtype}"
        return None

    def describe(self) -> str:
        if self.kind == "tensor":
            return f"a {self.dtype} tensor of shape {tuple(self.shape)}"
        if self.kind == "ndarray":
            return f"a numpy array ({self.dtype}, shape {tuple(self.shape)}), not a torch.Tensor"
        if self.kind == "number":
            return f"a Python {self.type} ({self.value!r}), not a torch.Tensor"
        return f"a {self.type}, not a torch.Tensor"


@dataclass
class Outcome:
    """What one call did: its outputs, gradients w.r.t. the inputs, inputs it modified."""

    ok: bool
    error: str | None = None
    error_kind: str = ""
    container: str = "single"
    outputs: list[Output] = field(default_factory=list)
    grads: dict[int, np.ndarray | None] = field(default_factory=dict)
    grad_error: str | None = None
    modified: list[int] = field(default_factory=list)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Outcome:
        """Rebuild from the JSON-able ``meta`` and its arrays (keys as written in ``meta``)."""
        if not meta.get("ok"):
            return cls(
                ok=False,
                error=str(meta.get("error") or "failed"),
                error_kind=str(meta.get("error_kind") or "exception"),
            )
        outputs = []
        for m in meta.get("outputs", []):
            key = m.get("key")
            outputs.append(
                Output(
                    kind=str(m.get("kind", "other")),
                    dtype=str(m.get("dtype", "")),
                    shape=tuple(int(s) for s in m.get("shape", ())),
                    requires_grad=bool(m.get("requires_grad", False)),
                    array=np.asarray(arrays[key]) if key is not None else None,
                    type=str(m.get("type", "")),
                    value=m.get("value"),
                )
            )
        grads = {
            int(pos): (None if key is None else np.asarray(arrays[key]))
            for pos, key in (meta.get("grads") or {}).items()
        }
        return cls(
            ok=True,
            container=str(meta.get("container", "single")),
            outputs=outputs,
            grads=grads,
            grad_error=meta.get("grad_error"),
            modified=[int(i) for i in meta.get("modified", [])],
        )

    def to_meta(self, put: Callable[[np.ndarray], str]) -> dict[str, Any]:
        """JSON-able description; ``put`` stores an array and returns its key."""
        if not self.ok:
            return {"ok": False, "error": self.error, "error_kind": self.error_kind}
        outs = []
        for o in self.outputs:
            m: dict[str, Any] = {"kind": o.kind}
            if o.kind in ("tensor", "ndarray"):
                m.update(dtype=o.dtype, shape=list(o.shape))
            if o.kind == "tensor":
                m["requires_grad"] = o.requires_grad
            if o.kind in ("number", "other"):
                m["type"] = o.type
            if o.kind == "number":
                m["value"] = o.value
            if o.array is not None:
                m["key"] = put(o.array)
            outs.append(m)
        grads = {str(pos): None if g is None else put(g) for pos, g in self.grads.items()}
        meta = {
            "ok": True,
            "container": self.container,
            "outputs": outs,
            "grads": grads,
            "modified": list(self.modified),
        }
        if self.grad_error:
            meta["grad_error"] = self.grad_error
        return meta


@dataclass
class CallData:
    """A stored call: inputs (arrays or plain values), what to differentiate, what to expect."""

    function: str
    args: list[dict[str, Any]]
    kwargs: dict[str, dict[str, Any]]
    grad_wrt: list[int]
    cotangents: list[str | None]
    arg_names: list[str]
    aux: dict[str, str] = field(default_factory=dict)
    expected: Outcome | None = None
    mistakes: dict[str, Outcome] = field(default_factory=dict)
    #: "" or "inference": run the call under torch.inference_mode() (the executor's
    #: per-call request key ``grad_mode``)
    grad_mode: str = ""

    def request(self) -> dict[str, Any]:
        """The part a worker needs (no expected values)."""
        request = {
            "function": self.function,
            "args": self.args,
            "kwargs": self.kwargs,
            "grad_wrt": self.grad_wrt,
            "cotangents": self.cotangents,
        }
        if self.grad_mode:
            request["grad_mode"] = self.grad_mode
        return request

    def input_keys(self) -> list[str]:
        keys = [s["array"] for s in [*self.args, *self.kwargs.values()] if "array" in s]
        return keys + [k for k in self.cotangents if k is not None]


@dataclass
class CheckData:
    """A check ready to run: its calls with expected outcomes, and how to judge them."""

    name: str
    function: str
    points: int
    visibility: str
    description: str
    judge: dict[str, Any]
    calls: list[CallData]
    caught: list[str] = field(default_factory=list)  # mistakes this check catches
    #: the documented names of the function's outputs ("advantages", "returns"), for feedback
    output_names: list[str] = field(default_factory=list)

    def output_name(self, k: int, n: int) -> str:
        """How feedback names output ``k`` of ``n``: its documented name, else "output k+1"."""
        if k < len(self.output_names):
            return f"`{self.output_names[k]}`"
        return f"output {k + 1}" if n > 1 else "the result"


@dataclass
class ExerciseVectors:
    """Everything needed to check one exercise without the reference solution."""

    exercise: str
    functions: list[str]
    checks: list[CheckData]
    arrays: Mapping[str, np.ndarray]
    mistakes: dict[str, str]  # name → one-sentence explanation

    def select(
        self, visibility: str = PUBLIC, functions: list[str] | None = None
    ) -> list[CheckData]:
        """Checks to run: public only, or all (``hidden`` includes public)."""
        return [
            c
            for c in self.checks
            if (visibility == HIDDEN or c.visibility == PUBLIC)
            and (functions is None or c.function in functions)
        ]
