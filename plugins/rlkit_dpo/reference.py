"""The frozen reference π_ref, without a second model in memory.

DPO needs log π_ref(y|x) of every pair it trains on, from the model *before* training. Where
it comes from:

- **LoRA** (``AdapterOff``): the trained model *is* the reference with its adapter switched
  off (peft's ``disable_adapter``): the base weights never change.
- **Full fine-tuning** (``CheckpointWeights``): the weights the run started from are still on
  disk, in the checkpoint ``--model`` names. For the reference forward of a batch, they are
  read into the model's own parameters (``param.data`` swapped) and swapped back after, so the
  same modules compute π_ref. The copy exists only during that no-grad forward, when the
  policy's gradients have been freed, so it does not raise the peak memory of a training step
  (weights + gradients + optimizer state); it is read from the page cache, not kept.
- Anything else (a checkpoint whose tensors do not map one to one onto the model's
  parameters, a pickled ``.bin`` checkpoint, a model built in memory): ``FrozenCopy``, the
  model as it was when training started, kept in memory like TRL's ``ref_model``.

Which batches need π_ref, and when, is the trainer's business (``native.py``: each pair once,
when first drawn, then cached).
"""

from __future__ import annotations

import contextlib
import copy
import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

#: safetensors dtype names → torch dtypes (floating point: the only ones a reference swaps)
DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}


class Reference:
    """``with reference.active() as model:`` ``model`` computes π_ref inside the block."""

    kind = ""

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        raise NotImplementedError
        yield


class AdapterOff(Reference):
    """LoRA: the policy with its adapter disabled is the base model, i.e. the reference."""

    kind = "the base model (adapter off)"

    def __init__(self, model: Any) -> None:
        self.model = model

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        with self.model.disable_adapter():
            yield self.model


class FrozenCopy(Reference):
    """A frozen copy of the model as training started (what TRL's ``ref_model`` is)."""

    kind = "a frozen copy in memory"

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._model = make, None

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        if self._model is None:
            self._model = self._make()
            self._model.eval().requires_grad_(False)
        yield self._model


class CheckpointWeights(Reference):
    """Full fine-tuning: the checkpoint's tensors swapped into the model for each reference
    forward (see the module docstring). Build it with ``checkpoint_weights``."""

    kind = "the checkpoint's weights, read for each reference forward"

    def __init__(self, model: Any, tensors: dict[str, tuple[Path, int, int, str, list[int]]]):
        #: parameter name → (file, byte offset, byte length, dtype name, shape)
        self.model, self.tensors = model, tensors

    def read(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """The checkpoint's tensor for parameter ``name``, in the parameter's dtype/device."""
        file, offset, length, dtype, shape = self.tensors[name]
        raw = torch.empty(length, dtype=torch.uint8)
        with open(file, "rb") as fh:  # plain reads: nothing stays mapped in this process
            fh.seek(offset)
            fh.readinto(memoryview(raw.numpy()))
        tensor = raw.view(DTYPES[dtype]).reshape(shape)
        return tensor.to(device=param.device, dtype=param.dtype)

    def matches(self, sample: int | None = None) -> bool:
        """True if the model's parameters are exactly the checkpoint's (checked one tensor at a
        time, before training): then swapping them in gives back this model. ``sample``:
        check only that many, spread from the first parameter to the last (names and shapes
        are all checked already)."""
        params = list(self.model.named_parameters())
        if sample is not None and len(params) > sample:
            step = (len(params) - 1) / (sample - 1) if sample > 1 else 0
            params = [params[round(i * step)] for i in range(sample)]
        with torch.no_grad():
            return all(torch.equal(self.read(name, p), p) for name, p in params)

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        saved = {}
        params = dict(self.model.named_parameters())
        try:
            with torch.no_grad():
                for name, p in params.items():
                    reference = self.read(name, p)
                    saved[name] = p.data
                    p.data = reference
            yield self.model
        finally:
            for name, data in saved.items():
                params[name].data = data
            saved.clear()
            release_freed_memory()


def release_freed_memory() -> None:
    """Hand the memory just freed back to the system (glibc keeps freed blocks of up to
    32 MB, such as a layer's weights, for reuse: after a reference forward that is ~1.5 GB
    of a 0.5B model's that the process would hold on to for nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        pass


def checkpoint_weights(model: Any, folder: Path | None) -> CheckpointWeights | None:
    """A ``CheckpointWeights`` for ``model`` from the safetensors files in ``folder``, or
    None when they do not map one to one onto the model's parameters (same names up to the
    base model's prefix, same shapes, floating point)."""
    if folder is None:
        return None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    else:
        return None
    found: dict[str, tuple[Path, int, int, str, list[int]]] = {}
    for file in files:
        with open(file, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for key, info in header.items():
            if key == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            found[key] = (file, 8 + size + begin, end - begin, info["dtype"], info["shape"])
    prefix = getattr(model, "base_model_prefix", "") + "."
    aliases: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(name)
    tensors = {}
    for name, p in model.named_parameters():
        for alias in aliases[id(p)]:  # tied weights: any of their names
            for key in (alias, alias.removeprefix(prefix), prefix + alias):
                entry = found.get(key)
                if entry and entry[3] in DTYPES and list(entry[4]) == list(p.shape):
                    tensors[name] = entry
                    break
            if name in tensors:
                break
        if name not in tensors:
            return None
    return CheckpointWeights(model, tensors)


def frozen_copy_of(model: Any) -> FrozenCopy:
    """The model as it is now (call it before the first update), kept aside."""
    snapshot = copy.deepcopy(model)
    return FrozenCopy(lambda: snapshot)
