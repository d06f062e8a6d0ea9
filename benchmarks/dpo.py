"""Native vs TRL DPO: the built-in model and data, identical settings, measured in one run.

    flock /tmp/rlkit-bench.lock python benchmarks/dpo.py [--repeats 3] [--no-cli]

For each backend: preference pairs per second of training (``train()`` from start to end:
for TRL that includes building its DPOTrainer, for native the reference log-probs of each pair;
TRL's import is done beforehand), the wall time of the whole run (load, sample before, train,
sample after), and the held-out preferred rate it reaches. Then the wall time of the real
command, ``rlkit train dpo --backend X``, from a fresh process. The goal: native >= 3x TRL's
pairs/s at equal held-out quality; a default ``rlkit train dpo`` under 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[1]


def one_run(backend: str) -> dict[str, float]:
    from rlkit_dpo.config import DPOSettings
    from rlkit_dpo.native import NativeDPOTrainer
    from rlkit_dpo.trl_backend import TRLTrainer

    start = time.perf_counter()
    trainer = {"native": NativeDPOTrainer, "trl": TRLTrainer}[backend](DPOSettings())
    trainer.snapshot_reference()
    summary = trainer.train()
    result = trainer.evaluate()
    return {
        "pairs_per_s": summary["train_pairs_per_second"],
        "train_s": summary["train_seconds"],
        "wall_s": time.perf_counter() - start,
        "before": result.metrics["preferred_rate_before"],
        "after": result.metrics["preferred_rate_after"],
        "final_loss": summary["loss"],
    }


def token_work() -> dict[str, float]:
    """Token passes per training pair (a forward pass over a token = 1, its backward = 2),
    padding left out: what each backend must compute, however fast it computes it.

    TRL: forward + backward over ``prompt+chosen`` and ``prompt+rejected``, plus a reference
    forward over both, every step. Native: forward + backward over one packed row
    ``prompt chosen rejected`` (prompt once, each answer's last token not fed), plus one
    reference forward per pair for the whole run."""
    from rlkit_dpo.config import DPOSettings
    from rlkit_dpo.data import DEFAULT_TRAIN, encode_pairs, load_jsonl
    from rlkit_dpo.model import load_model

    _, tokenizer = load_model(None)
    pairs = encode_pairs(tokenizer, load_jsonl(DEFAULT_TRAIN))
    epochs = DPOSettings().num_train_epochs
    trl = statistics.mean(
        4 * (2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids)) for p in pairs
    )
    packed = statistics.mean(
        len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) - 2 for p in pairs
    )
    return {"trl": trl, "native": 3 * packed + packed / epochs}


def cli_seconds(backend: str) -> float:
    exe = Path(sys.executable).with_name("rlkit")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(
            [str(exe), "train", "dpo", "--backend", backend, "--out", f"{tmp}/run"],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rlkit train dpo --backend {backend} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per backend (median)")
    parser.add_argument("--no-cli", action="store_true", help="skip timing the real command")
    args = parser.parse_args()

    import torch
    import trl  # noqa: F401 - imported before any clock starts

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs; default settings: 336 pairs x 3 epochs, batch 8, "
        "SGD lr 0.03, beta 0.1"
    )
    runs: dict[str, list[dict[str, float]]] = {"trl": [], "native": []}
    for i in range(args.repeats):
        for backend in ("trl", "native") if i % 2 == 0 else ("native", "trl"):
            runs[backend].append(one_run(backend))

    def med(backend: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[backend])

    print(
        f"\n{'backend':8} {'pairs/s':>8} {'train s':>8} {'run s':>7} {'preferred rate':>16}"
        f" {'final loss':>10}"
    )
    for backend in ("trl", "native"):
        print(
            f"{backend:8} {med(backend, 'pairs_per_s'):8.0f} {med(backend, 'train_s'):8.2f} "
            f"{med(backend, 'wall_s'):7.1f} "
            f"{med(backend, 'before'):7.2f} -> {med(backend, 'after'):.2f} "
            f"{med(backend, 'final_loss'):10.4f}"
        )
    ratio = med("native", "pairs_per_s") / med("trl", "pairs_per_s")
    print(
        f"\nnative / TRL pairs/s: {ratio:.2f}x (goal >= 3x), median of {args.repeats} runs each;"
        f" all pairs/s: trl {[round(r['pairs_per_s']) for r in runs['trl']]}, "
        f"native {[round(r['pairs_per_s']) for r in runs['native']]}"
    )
    print(
        f"held-out preferred rate after: trl {med('trl', 'after'):.2f}, "
        f"native {med('native', 'after'):.2f}"
    )
    work = token_work()
    bound = work["trl"] / work["native"]
    print(
        f"token passes per pair (forward 1, backward 2, no padding): trl {work['trl']:.0f}, "
        f"native {work['native']:.0f}: {bound:.2f}x less work; per token of work, native runs "
        f"{ratio / bound:.2f}x as fast as TRL"
    )
    if not args.no_cli:
        for backend in ("trl", "native"):
            print(
                f"`rlkit train dpo --backend {backend}` (fresh process, default settings): "
                f"{cli_seconds(backend):.1f} s (goal < 120 s)"
            )


if __name__ == "__main__":
    main()
