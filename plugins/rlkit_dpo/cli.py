"""``rlkit models build``: the DPO plugin's own command (``rlkit train dpo`` is the core's
training session, built from ``DPOSettings``)."""

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
