"""``--dtype auto|float32|bfloat16``: what the weights are stored in and what computes.

One rule for both backends: **weights that train are float32; frozen weights and the
computation use the chosen dtype.**

- float32: everything in float32 (the built-in model, whose checkpoint is float32).
- bfloat16 with ``--lora``: the base model is loaded in bfloat16 (frozen, half the memory)
  and computes in bfloat16; the adapter is float32 (peft's default), so its small updates are
  not rounded away.
- bfloat16 without ``--lora``: the weights stay float32 and the forward and backward run in
  bfloat16 under autocast (TRL's ``bf16=True``): pure bfloat16 weights would lose AdamW's
  1e-5-sized updates (bfloat16 keeps ~3 significant digits). It is faster where bfloat16 is
  native; it saves little memory (use ``--lora`` for that).

``auto`` keeps the checkpoint's dtype (a bfloat16 or float16 checkpoint trains in bfloat16,
a float32 one in float32) where the hardware runs bfloat16 natively, and says so in one line
and uses float32 where it does not. Asking for ``bfloat16`` on such hardware runs it anyway,
after one line saying it will be slow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch

DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class Precision:
    #: what the computation runs in
    compute: str
    #: what the model's weights are loaded in
    weights: str
    #: bfloat16 compute over float32 weights (full fine-tuning in bfloat16)
    autocast: bool

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.autocast else None


def bf16_native(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs bfloat16 matrix products natively, and what to call it."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return torch.cuda.is_bf16_supported(including_emulation=False), f"this GPU ({name})"
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return bool(native), "this CPU"


def checkpoint_dtype(source: str) -> str:
    """The dtype a checkpoint's ``config.json`` records ("float32" when it says nothing)."""
    config: dict[str, Any] = {}
    folder = Path(source)
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
    else:  # a Hub id: its config from the local cache, else from the Hub when reachable
        from transformers import AutoConfig

        from rlkit_dpo.model import _hub_reachable, _offline

        loaded = None
        for local in (True, False):
            if not local and (_offline() or not _hub_reachable()):
                break
            try:
                loaded = AutoConfig.from_pretrained(source, local_files_only=local)
                break
            except Exception:  # noqa: BLE001 - not there: loading the model will say why
                continue
        if loaded is None:
            return "float32"
        config = {"dtype": str(getattr(loaded, "dtype", None) or "float32")}
    text = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return text.removeprefix("torch.")


def plan(requested: str, source: str, device: torch.device, lora: bool) -> Precision:
    """The precision of a run (see the module docstring); prints the one-line notes."""
    compute = requested
    native, what = bf16_native(device)
    if requested == "auto":
        compute = "bfloat16" if checkpoint_dtype(source) in ("bfloat16", "float16") else "float32"
        if compute == "bfloat16" and not native:
            click.echo(
                f"--dtype auto: the checkpoint is 16-bit but {what} has no native bfloat16, so "
                "training runs in float32 (--dtype bfloat16 forces it: half the memory, slower)",
                err=True,
            )
            compute = "float32"
    elif requested == "bfloat16" and not native:
        click.echo(
            f"--dtype bfloat16: {what} has no native bfloat16 (emulated, often several times "
            "slower than float32; it still halves the memory of frozen weights)",
            err=True,
        )
    if compute == "bfloat16" and lora:
        return Precision("bfloat16", "bfloat16", autocast=False)
    return Precision(compute, "float32", autocast=compute == "bfloat16")
