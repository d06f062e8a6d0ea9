"""``rlkit models build`` and ``rlkit models merge``: the DPO plugin's own commands (``rlkit
train dpo`` is the core's training session, built from ``DPOSettings``)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from rlkit.errors import UsageError


@click.group(name="models")
def models_group() -> None:
    """The language models rlkit ships and how they are made."""


@models_group.command(name="build")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write the model into. [default: the rlkit cache, "
    "~/.cache/rlkit/models/tiny-polite-lm]",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Supervised pre-training steps. [default: 500, as shipped]",
)
@click.option("--force", is_flag=True, help="Overwrite a model already in --out.")
def build_command(out: Path | None, steps: int | None, force: bool) -> None:
    """Rebuild the built-in model from scratch (~1 minute): tokenizer, Qwen2 config,
    pre-training on the task's texts. The same seed gives the same model as the one shipped
    with rlkit; use the folder with `rlkit train dpo --model FOLDER`."""
    from tqdm.auto import tqdm

    from rlkit_dpo.model import DEFAULT_MODEL_NAME, build_model, cache_dir

    out = out or cache_dir() / DEFAULT_MODEL_NAME
    if (out / "config.json").exists() and not force:
        raise UsageError(f"{out} already holds a model; pass --force to rebuild it")
    start = time.perf_counter()
    bar = tqdm(desc="pre-training", unit="step", dynamic_ncols=True)

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    try:
        build_model(out, {"steps": steps} if steps else None, progress=progress)
    finally:
        bar.close()
    click.echo(f"Built the model in {time.perf_counter() - start:.0f} s: {out}")
    click.echo(f"Train on it with: rlkit train dpo --model {out}")


@models_group.command(name="merge")
@click.argument("run", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16"]),
    default="float32",
    show_default=True,
    help="The merged weights' dtype. bfloat16 halves the file but rounds away the adapter's "
    "smallest changes (a 1e-5-sized DPO update is below bfloat16's precision).",
)
@click.option("--force", is_flag=True, help="Overwrite a model already in OUT.")
def merge_command(run: Path, out: Path, dtype: str, force: bool) -> None:
    """Write RUN's LoRA adapter merged into its base model as one ordinary model folder in
    OUT (save_pretrained format, with the tokenizer): load it with from_pretrained anywhere,
    or train on with `rlkit train dpo --model OUT`. RUN: a run directory or its model/."""
    from rlkit_dpo.lora import adapter_base, is_adapter, load
    from rlkit_dpo.model import load_model

    folder = run / "model" if (run / "model").is_dir() else run
    if not is_adapter(folder):
        if (folder / "config.json").is_file():
            raise UsageError(
                f"{folder} holds a whole model (trained without --lora), nothing to merge: "
                f"use it as it is (--model {folder}, or from_pretrained)"
            )
        raise UsageError(f"{folder} holds no LoRA adapter (adapter_config.json) to merge")
    if (out / "config.json").exists() and not force:
        raise UsageError(f"{out} already holds a model; pass --force to overwrite it")
    start = time.perf_counter()
    base = adapter_base(folder)
    model, _ = load_model(base, "float32")
    import torch
    from transformers import AutoTokenizer

    merged = load(model, folder, trainable=False).merge_and_unload()
    merged.to(getattr(torch, dtype))
    merged.config.dtype = dtype
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    click.echo(
        f"Merged {folder} into {base} ({dtype}) in {time.perf_counter() - start:.0f} s: {out}"
    )
    click.echo(f"Load it with from_pretrained({str(out)!r}), or: rlkit train dpo --model {out}")
