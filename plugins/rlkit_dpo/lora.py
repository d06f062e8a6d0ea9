"""``--lora R``: train a low-rank adapter (peft's LoRA) instead of every weight.

The base model stays frozen; each targeted linear layer W gets W + (α/R)·B·A with A (R × in)
random and B (out × R) zero, so the adapted model starts out *exactly* as the base model: the
base model with the adapter switched off is the DPO reference, no second copy needed. Only A
and B train (float32), so gradients and optimizer states are those of a few million numbers.

Targets: ``--lora-targets q_proj,v_proj`` (module names, as peft takes them) or
``all-linear``; by default the attention projections found in the model (for Qwen2:
``q_proj, k_proj, v_proj, o_proj``, the course's and TRL's usual choice).

A run's ``model/`` then holds the adapter (``adapter_config.json``, whose
``base_model_name_or_path`` names the base, and ``adapter_model.safetensors``), the
tokenizer and the training state; ``rlkit models merge RUN OUT`` writes base + adapter as one
ordinary model.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rlkit.errors import RlkitError, UsageError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def adapter_base(folder: Path) -> str | None:
    """The base model an adapter folder names."""
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())
    return config.get("base_model_name_or_path")


def require_peft() -> None:
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise RlkitError("--lora needs peft: `pip install 'rlkit[trl]'` (or `pip install peft`)")


def find_targets(model: Any) -> list[str]:
    """The names of the linear layers inside the model's attention blocks (peft matches a
    module by the end of its name), e.g. ``['k_proj', 'o_proj', 'q_proj', 'v_proj']``."""
    linear = (torch.nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D  # GPT-2's projections

        linear = (torch.nn.Linear, Conv1D)
    except ImportError:  # pragma: no cover - every transformers we support has it
        pass
    names = set()
    for _, module in model.named_modules():
        if "attention" not in type(module).__name__.lower():
            continue
        for child_name, child in module.named_children():
            if isinstance(child, linear):
                names.add(child_name)
    return sorted(names)


def targets_of(model: Any, spec: str | None) -> list[str] | str:
    if spec:
        if spec.strip() == "all-linear":
            return "all-linear"
        names = [n.strip() for n in spec.split(",") if n.strip()]
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [n for n in names if n.rsplit(".", 1)[-1] not in present]
        if missing:
            found = ", ".join(find_targets(model)) or "none"
            raise UsageError(
                f"--lora-targets: the model has no module named {', '.join(missing)} "
                f"(its attention projections: {found}; or pass all-linear)"
            )
        return names
    found = find_targets(model)
    return found or "all-linear"


def config(model: Any, rank: int, targets: str | None, alpha: float | None) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        lora_dropout=0.0,  # the policy at step 0 is then exactly the reference
        target_modules=targets_of(model, targets),
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach(model: Any, lora_config: Any, seed: int) -> Any:
    """``model`` with a fresh adapter (A drawn from ``seed``, B = 0), only the adapter
    trainable; the adapter is float32 whatever the base's dtype."""
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]), quiet():
        torch.manual_seed(seed)
        return get_peft_model(model, lora_config)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hide peft's use of a name transformers deprecated (a FutureWarning on every wrap)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def load(model: Any, folder: Path, trainable: bool = True) -> Any:
    """``model`` (the base) with the adapter saved in ``folder``."""
    from peft import PeftModel

    try:
        with quiet():
            return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    except Exception as exc:  # noqa: BLE001 - one line
        raise RlkitError(f"cannot load the LoRA adapter in {folder}: {exc}") from None


def save(model: Any, folder: Path, base: str) -> None:
    """The adapter alone, naming ``base`` (a folder or Hub id) as its base model."""
    folder = Path(folder)
    model.save_pretrained(str(folder))
    path = folder / ADAPTER_CONFIG
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, all) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
