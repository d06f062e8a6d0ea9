"""The default language model, and how any model is loaded.

The course aligns ``Qwen/Qwen2.5-0.5B-Instruct``, but the Hub is not always reachable (it is not
here), so rlkit ships its own small model of the *same architecture* (``Qwen2ForCausalLM``) in
``assets/tiny-polite-lm``, and this module is the script that made it (``rlkit models build``):

1. train a byte-level BPE tokenizer (``tokenizers``) on the task's training texts;
2. build a Qwen2 model with a small config (4 layers, width 128: ~0.66M parameters, 2.6 MB);
3. pre-train it for a few hundred steps on every training prompt followed by *both* of its
   answers, polite and rude, so that before DPO it answers in each style about half the time.

That third stage plays the part of pre-training + SFT in the three-stage recipe; DPO then has
a real choice to shift. Everything is seeded: the same seed rebuilds the same model.

``load_model`` is the one door every backend uses: a local folder (``save_pretrained`` format)
or a Hub id, through the real ``from_pretrained``; a Hub id that cannot be fetched fails at once
with one line instead of hanging on the network.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rlkit.errors import RlkitError, UsageError

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL_NAME = "tiny-polite-lm"
SHIPPED_MODEL_DIR = ASSETS / DEFAULT_MODEL_NAME
BUILD_INFO = "rlkit_build.json"

EOS = "<|endoftext|>"
PAD = "<|pad|>"

#: The recipe of the shipped model; ``rlkit models build`` uses it unless told otherwise.
RECIPE: dict[str, Any] = {
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
    "steps": 500,
    "batch_size": 32,
    "learning_rate": 3e-3,
    "seed": 0,
}


def cache_dir() -> Path:
    """Where ``rlkit models build`` writes by default (``RLKIT_CACHE`` overrides)."""
    root = os.environ.get("RLKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rlkit"
    )
    return Path(root) / "models"


def default_model_dir() -> Path:
    """The shipped model; if a packaging stripped it, the one built into the cache (built now)."""
    if (SHIPPED_MODEL_DIR / "config.json").is_file():
        return SHIPPED_MODEL_DIR
    cached = cache_dir() / DEFAULT_MODEL_NAME
    if not (cached / "config.json").is_file():
        build_model(cached)
    return cached


# -- building the default model ------------------------------------------------------------
def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (GPT-2/Qwen style) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    # Left padding: batched generation continues every prompt right where it ends.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, padding_side="left"
    )


def build_model(
    out: Path,
    recipe: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Build the default model from scratch into ``out`` (tokenizer, config, weights)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlkit_dpo import task

    r = {**RECIPE, **(recipe or {})}
    start = time.perf_counter()
    train_rows, _ = task.make_splits()
    texts = task.sft_corpus(train_rows)
    tokenizer = train_tokenizer(texts, r["vocab_size"])

    torch.manual_seed(r["seed"])
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=r["hidden_size"],
        intermediate_size=r["intermediate_size"],
        num_hidden_layers=r["num_hidden_layers"],
        num_attention_heads=r["num_attention_heads"],
        num_key_value_heads=r["num_key_value_heads"],
        max_position_embeddings=r["max_position_embeddings"],
        tie_word_embeddings=r["tie_word_embeddings"],
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=r["learning_rate"], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=r["learning_rate"], total_steps=r["steps"], pct_start=0.1
    )
    examples = [t + EOS for t in texts]
    rng = random.Random(r["seed"])
    tokenizer.padding_side = "right"
    model.train()
    loss_value = float("nan")
    for step in range(r["steps"]):
        enc = tokenizer(rng.sample(examples, r["batch_size"]), return_tensors="pt", padding=True)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if progress is not None:
            progress(step + 1, r["steps"], loss_value)
    tokenizer.padding_side = "left"
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {
        "built_by": "rlkit models build (rlkit_dpo.model.build_model)",
        "recipe": r,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_sft_loss": round(loss_value, 4),
        "seconds": round(time.perf_counter() - start, 1),
        "corpus": f"{len(texts)} texts: every training prompt with its polite and its rude answer",
    }
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return out


# -- loading any model ---------------------------------------------------------------------
def _looks_like_path(spec: str) -> bool:
    return (
        spec.startswith((".", "/", "~", "\\"))
        or spec.endswith(("/", "\\"))
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_model(spec: str | None) -> str:
    """The folder or Hub id to load; the default model when ``spec`` is None.

    Raises one clear line for a folder that does not exist or holds no model.
    """
    if spec is None or spec == "":
        return str(default_model_dir())
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            run = path.parent if path.name == "model" else path
            raise UsageError(
                f"--model {spec} holds a LoRA adapter, not a whole model: "
                f"`rlkit models merge {run} OUT` makes one, then --model OUT"
            )
        if not (path / "config.json").is_file():
            raise UsageError(
                f"--model {spec}: the folder has no config.json, so it is not a saved model; "
                "pass a folder written by save_pretrained (or `rlkit models build`)"
            )
        return str(path)
    if path.exists() or _looks_like_path(spec):
        raise UsageError(
            f"--model {spec}: no such model folder; pass a folder written by save_pretrained, "
            "or leave --model out to use rlkit's built-in model"
        )
    return spec  # a Hub id such as Qwen/Qwen2.5-0.5B-Instruct


def local_folder(source: str) -> Path | None:
    """The folder holding ``source``'s files: itself, or a Hub id's snapshot in the local
    Hugging Face cache (None when it is not there)."""
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a Hub id
        return None


def load_model(spec: str | None, dtype: str = "float32") -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local folder or a Hub id, through ``from_pretrained``;
    ``dtype``: float32, bfloat16, or auto (the checkpoint's)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # rlkit shows its own progress; no "Loading weights" bars
    source = resolve_model(spec)
    kwargs = {"dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
    if not Path(source).is_dir():
        return _load_from_hub(source, kwargs)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a broken folder must stay one line
        raise RlkitError(f"cannot load the model in {source}: {_first_line(exc)}") from None
    return _ready(model, tokenizer)


def _load_from_hub(model_id: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # already in the local Hugging Face cache? Then no network is needed.
        tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_id, local_files_only=True, **kwargs)
        return _ready(model, tokenizer)
    except Exception:  # noqa: BLE001 - not cached (or not a model): try the Hub below
        pass
    if _offline():
        raise RlkitError(
            f"--model {model_id}: no such local folder, not in the Hugging Face cache, and "
            "HF_HUB_OFFLINE is set; pass a local model folder (or leave --model out for rlkit's "
            "built-in model)"
        )
    if not _hub_reachable():
        raise RlkitError(
            f"--model {model_id}: no such local folder, and the Hugging Face Hub cannot be reached "
            "from here; pass a local model folder (or leave --model out for rlkit's built-in model)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = AutoModelForCausalLM.from_pretrained(model_id, **kwargs)
    except Exception as exc:  # noqa: BLE001 - unknown id, gated repo, network drop...
        raise RlkitError(f"--model {model_id}: cannot download it ({_first_line(exc)})") from None
    return _ready(model, tokenizer)


def _ready(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """Pad on the left (generation), and make sure a pad token exists (TRL needs one)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
