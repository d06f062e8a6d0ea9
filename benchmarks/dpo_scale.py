"""DPO at the course's scale: rlkit native, rlkit TRL and a bare TRL script, measured in one run.

    flock /tmp/rlkit-bench.lock python benchmarks/dpo_scale.py [--steps 5] [--only native-lora ...]

The model has Qwen2.5-0.5B's exact architecture (494M parameters: hidden 896, 24 layers, 14
heads / 2 KV heads, intermediate 4864, vocabulary 151,936, tied embeddings) with seeded random
weights: no weights can be downloaded here, and speed and memory do not depend on what the
weights are. It is built from the config alone, saved in bfloat16 (as the Hub checkpoint is)
with ``save_pretrained`` into the rlkit cache (``~/.cache/rlkit/models``, ``RLKIT_CACHE``), once.
The tokenizer is the built-in model's (512 tokens): the built-in pairs are ~26 tokens per
sequence, the issue's "batch 2 pairs of ~25 tokens".

Each run is its own process, one after the other (never side by side), started by a parent
that imports nothing heavy (a child's peak RSS starts from its parent's at ``fork``), training ``--steps``
steps on the built-in pairs with the course's settings (batch 2 pairs, AdamW lr 1e-5, beta 0.1;
no gradient checkpointing anywhere unless ``--gradient-checkpointing``), in two precisions:

- ``fp32``: full fine-tuning, float32 weights and compute;
- ``lora``: LoRA r=16 on q/k/v/o (alpha 32), bfloat16 base weights and compute, float32
  adapter (``--lora 16 --dtype bfloat16``; the bare script loads the model in bfloat16 and
  sets ``bf16=True`` and ``peft_config``).

Runs: ``native`` (``rlkit train dpo --backend native``), ``trl`` (``rlkit train dpo --backend
trl``), ``bare`` (the course's script: ``DPOTrainer(model, ref_model=None, args=DPOConfig(...),
...)``). Reported per run: peak RSS of the process (``wait4``'s ``ru_maxrss``, which counts
everything the process ever held at once, loading included; on a GPU also
``torch.cuda.max_memory_allocated``), seconds per step (steps 2..N: the first step pays for
warm-up), when the first step ended (from process start: loading, setup, step 1) and
tokens/s counted as TRL counts them (prompt + answer, both answers, per pair), and the CPU
time per step (all threads): on a machine others share, wall time swings with their load and
CPU time much less (with ``--threads 1`` it is the idle wall time). Then the ratios of each
rlkit run to the bare script at the same precision.

``--before-src DIR`` runs the rlkit fp32 rows with an older plugin (``DIR`` holds the
``rlkit_dpo`` package, e.g. ``git archive`` of an earlier commit's ``plugins/``), for a
before/after table. On a machine with a GPU every run uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.time()  # the child's clock starts here, before any import

ROOT = Path(__file__).resolve().parents[1]
#: Qwen/Qwen2.5-0.5B's config.json, the values that set the shapes
QWEN25_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
RUNS = ("native", "trl", "bare")
PRECISIONS = ("fp32", "lora")
LABELS = {"fp32": "fp32 full fine-tuning", "lora": "LoRA r=16 + bf16"}


# -- the model -------------------------------------------------------------------------------
def model_dir(layers: int) -> Path:
    from rlkit_dpo.model import cache_dir

    name = "qwen2.5-0.5b-arch-random" + (f"-{layers}layers" if layers != 24 else "")
    return cache_dir() / name


def build_model(layers: int, seed: int = 0) -> Path:
    """Qwen2.5-0.5B's architecture with seeded random weights, saved in bfloat16 (once)."""
    out = model_dir(layers)
    if (out / "config.json").is_file() and (out / "rlkit_build.json").is_file():
        return out
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    from rlkit_dpo.model import SHIPPED_MODEL_DIR
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_MODEL_DIR)
    config = Qwen2Config(
        **{**QWEN25_05B, "num_hidden_layers": layers},
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {
        "built_by": "benchmarks/dpo_scale.py",
        "architecture": "Qwen2.5-0.5B's config, random weights",
        "layers": layers,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "rlkit_build.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


# -- the children: one run each --------------------------------------------------------------
def child_rlkit(argv: list[str], result: Path) -> None:
    """``rlkit ARGV`` in this process, the end of every step recorded."""
    from rlkit.runs import Run

    marks: list[tuple[float, float]] = []
    original = Run.log

    def log(self, step, metrics):  # noqa: ANN001 - the method's own signature
        marks.append((time.time(), time.process_time()))
        original(self, step, metrics)

    Run.log = log
    from rlkit.cli import main

    sys.argv = ["rlkit", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        _write_result(result, marks)


def child_bare(model: Path, steps: int, lora: bool, gc: bool, result: Path) -> None:
    """The course's script, as a student would write it (``ref_model=None``)."""
    marks: list[tuple[float, float]] = []
    import torch
    from datasets import Dataset
    from rlkit_dpo.data import DEFAULT_TRAIN
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class Marks(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append((time.time(), time.process_time()))

    tokenizer = AutoTokenizer.from_pretrained(model)
    policy = AutoModelForCausalLM.from_pretrained(
        model, dtype=torch.bfloat16 if lora else torch.float32
    )
    rows = [json.loads(line) for line in DEFAULT_TRAIN.read_text().splitlines() if line.strip()]
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules=LORA_TARGETS,
            task_type="CAUSAL_LM",
        )
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            output_dir=out,
            per_device_train_batch_size=2,
            learning_rate=1e-5,
            num_train_epochs=3,
            beta=0.1,
            max_steps=steps,
            bf16=lora,
            gradient_checkpointing=gc,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = DPOTrainer(
            model=policy,
            ref_model=None,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[Marks()],
        )
        try:
            trainer.train()
        finally:
            _write_result(result, marks)


def _write_result(path: Path, marks: list[tuple[float, float]]) -> None:
    data: dict[str, object] = {"start": START, "marks": marks}
    try:
        import torch

        if torch.cuda.is_available():
            data["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
            data["device"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    path.write_text(json.dumps(data))


# -- the parent ------------------------------------------------------------------------------
def run_child(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run one child to its end; its marks, peak RSS (GiB) and timings."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--child-result", str(result), *args]
        out = open(Path(tmp) / "output.txt", "w+")  # noqa: SIM115 - read back below
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=tmp
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
        out.close()
        if proc.returncode != 0 or not result.is_file():
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{output[-3000:]}")
        data = json.loads(result.read_text())
    marks = data["marks"]
    if len(marks) < 2:
        raise SystemExit(f"fewer than 2 steps recorded: {' '.join(command)}\n{output[-2000:]}")
    return {
        "rss_gib": usage.ru_maxrss * 1024 / 2**30,  # Linux: KiB
        "s_per_step": (marks[-1][0] - marks[0][0]) / (len(marks) - 1),
        "cpu_s_per_step": (marks[-1][1] - marks[0][1]) / (len(marks) - 1),
        "first_step_at": marks[0][0] - data["start"],
        "steps": len(marks),
        "cuda_gib": data.get("cuda_peak_bytes", 0) / 2**30,
    }


def child_setup(layers: int, result: Path) -> None:
    """The model (built if missing), the tokens per step and the device, for the parent."""
    import torch

    where = (
        f"GPU {torch.cuda.get_device_name()}"
        if torch.cuda.is_available()
        else f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    )
    info = {
        "model": str(build_model(layers)),
        "tokens_per_step": tokens_per_step(),
        "where": where,
        "cuda": torch.cuda.is_available(),
    }
    result.write_text(json.dumps(info))


def tokens_per_step() -> float:
    """TRL's count: prompt + answer for both answers of the 2 pairs of a step (mean)."""
    from rlkit_dpo.data import DEFAULT_TRAIN, encode_pairs, load_jsonl
    from rlkit_dpo.model import load_model

    _, tokenizer = load_model(None)
    pairs = encode_pairs(tokenizer, load_jsonl(DEFAULT_TRAIN))
    per_pair = statistics.mean(
        2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs
    )
    return 2 * per_pair


def rlkit_args(backend: str, precision: str, model: Path, steps: int, gc: bool, old: bool) -> list:
    args = ["train", "dpo", "--backend", backend, "--model", str(model)]
    args += ["--optim", "adamw", "--lr", "1e-5", "--batch-size", "2", "--beta", "0.1"]
    args += ["--max-steps", str(steps), "--eval-prompts", "0", "--out", "run"]
    if old:  # an older rlkit: float32 only, no such flags
        return args
    args += (
        ["--dtype", "float32"] if precision == "fp32" else ["--lora", "16", "--dtype", "bfloat16"]
    )
    if precision == "lora":
        args += ["--lora-targets", ",".join(LORA_TARGETS)]
    if gc:
        args.append("--gradient-checkpointing")
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="steps per run (the first is warm-up)")
    parser.add_argument(
        "--only", nargs="*", default=None, help="runs to do, e.g. native-lora bare-fp32"
    )
    parser.add_argument("--layers", type=int, default=24, help="fewer layers: a quick try-out")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="in every run")
    parser.add_argument("--before-src", type=Path, help="an older rlkit_dpo's parent folder")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each (interleaved); the best time and the lowest memory are reported",
    )
    parser.add_argument(
        "--threads", type=int, help="torch/OpenMP threads per run [default: torch's, one per core]"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    env = {"TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:  # in a child: this process stays small
        info_file = Path(tmp) / "setup.json"
        command = [sys.executable, __file__, "--child-result", str(info_file)]
        subprocess.run([*command, "--child", "setup", "--layers", str(args.layers)], check=True)
        info = json.loads(info_file.read_text())
    model, tokens, cuda = Path(info["model"]), info["tokens_per_step"], info["cuda"]
    print(
        f"model: {model} (Qwen2.5-0.5B's architecture, {args.layers} layers, random weights, "
        f"bfloat16 checkpoint); {info['where']}; {args.steps} steps per run, batch 2 pairs, "
        f"AdamW lr 1e-5; threads: {args.threads or 'default'}; best of {args.repeats}"
    )
    plan = [(r, p) for p in PRECISIONS for r in RUNS]
    if args.before_src is not None:
        plan = [("before-" + r, "fp32") for r in ("native", "trl")]
    if args.only:
        plan = [(r, p) for r, p in plan if f"{r}-{p}" in args.only]
    results: dict[tuple[str, str], dict[str, float]] = {}
    for run, precision in [item for _ in range(args.repeats) for item in plan]:
        if run == "bare":
            child = ["--child", "bare", "--model", str(model), "--steps", str(args.steps)]
            child += ["--lora"] if precision == "lora" else []
            child += ["--gc"] if args.gradient_checkpointing else []
            extra_env = env
        else:
            old = run.startswith("before-")
            backend = run.removeprefix("before-")
            cli = rlkit_args(
                backend, precision, model, args.steps, args.gradient_checkpointing, old
            )
            child = ["--child", "rlkit", "--", *cli]
            extra_env = dict(env)
            if old:
                extra_env["PYTHONPATH"] = str(args.before_src.resolve())
        started = time.perf_counter()
        r = run_child(child, extra_env)
        best = results.setdefault((run, precision), r)
        for key in ("rss_gib", "s_per_step", "cpu_s_per_step", "first_step_at", "cuda_gib"):
            best[key] = min(best[key], r[key])
        print(
            f"  {run:>14} {precision:4}: peak RSS {r['rss_gib']:5.2f} GiB, "
            f"{r['s_per_step']:6.2f} s/step ({r['cpu_s_per_step']:6.2f} s of CPU), first step "
            f"at {r['first_step_at']:6.1f} s "
            f"({time.perf_counter() - started:.0f} s in all)",
            flush=True,
        )
    print_table(results, tokens, cuda)
    if args.json:
        args.json.write_text(
            json.dumps({f"{k[0]}-{k[1]}": v for k, v in results.items()}, indent=2)
        )


def print_table(results: dict, tokens: float, cuda: bool) -> None:
    memory = "GPU peak" if cuda else "peak RSS"
    print(f"\n| run | precision | {memory} | s/step | CPU s/step | tokens/s | first step at |")
    print("|---|---|---|---|---|---|---|")
    for (run, precision), r in results.items():
        gib = r["cuda_gib"] if cuda else r["rss_gib"]
        print(
            f"| {run} | {LABELS[precision]} | {gib:.2f} GiB | {r['s_per_step']:.2f} | "
            f"{r['cpu_s_per_step']:.2f} | {tokens / r['s_per_step']:.1f} | "
            f"{r['first_step_at']:.1f} s |"
        )
    lines = []
    for precision in PRECISIONS:
        bare = results.get(("bare", precision))
        if bare is None:
            continue
        for run in ("native", "trl"):
            r = results.get((run, precision))
            if r is None:
                continue
            key = "cuda_gib" if cuda else "rss_gib"
            lines.append(
                f"{run} / bare TRL, {LABELS[precision]}: time per step "
                f"{r['s_per_step'] / bare['s_per_step']:.2f}x (CPU time "
                f"{r['cpu_s_per_step'] / bare['cpu_s_per_step']:.2f}x), memory "
                f"{r[key] / bare[key]:.2f}x, first step {r['first_step_at']:.1f} s vs "
                f"{bare['first_step_at']:.1f} s"
            )
    if lines:
        print("\nratios (below 1: rlkit uses less):")
        print("\n".join(lines))


if __name__ == "__main__":
    if "--child-result" in sys.argv:
        i = sys.argv.index("--child-result")
        result_path = Path(sys.argv[i + 1])
        rest = sys.argv[1:i] + sys.argv[i + 2 :]
        kind = rest[rest.index("--child") + 1]
        if kind == "rlkit":
            child_rlkit(rest[rest.index("--") + 1 :], result_path)
        elif kind == "setup":
            child_setup(int(rest[rest.index("--layers") + 1]), result_path)
        else:
            opts = argparse.ArgumentParser()
            opts.add_argument("--child")
            opts.add_argument("--model", type=Path)
            opts.add_argument("--steps", type=int)
            opts.add_argument("--lora", action="store_true")
            opts.add_argument("--gc", action="store_true")
            o = opts.parse_args(rest)
            child_bare(o.model, o.steps, o.lora, o.gc, result_path)
    else:
        main()
