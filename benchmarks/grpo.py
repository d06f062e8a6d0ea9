"""Native vs TRL on the RLHF chapter: the built-in model and data, identical settings, one run.

    flock /tmp/rlkit-bench.lock python benchmarks/grpo.py [--seeds 0 1 2] [--only grpo]

GRPO (``rlkit train grpo``'s defaults, the politeness rule as reward): rlkit's loop vs TRL's
``GRPOTrainer``. Each run evaluates the held-out judged rate (one sampled answer per held-out
prompt, the rule's verdict) every ``--every`` steps, with the clock stopped, and ends at the
first evaluation that reaches ``--target`` (0.90): the *time to target* is the training time
up to then (``train()`` from its call: TRL's GRPOTrainer construction and its reference model,
native's reference model, included; TRL's import done beforehand). *Generated tokens per
second* is the answers' tokens (up to and including their end-of-sequence token) per second of
that training time: sampling, scoring and the updates together.

The reward model (``rlkit train reward-model``'s defaults): rlkit's loop vs TRL's
``RewardTrainer``, the time to a held-out pairwise accuracy of ``--rm-target`` (0.95), checked
every ``--every`` steps the same way, and the preference pairs trained per second.

Every run is its own process (so one backend's imports and caches never help the other),
the backends interleaved seed by seed; the medians over the seeds and their ratios (time to
target native/TRL: below 1 is native faster; throughput native/TRL: above 1 is native faster)
are printed at the end. Other work on the machine slows both sides alike only when it is
steady: run it under ``flock`` with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

BACKENDS = ("native", "trl")


def child(task: str, backend: str, seed: int, every: int, target: float, steps: int | None) -> dict:
    """One measured run (in this process)."""
    import torch  # noqa: F401 - imported before the clock starts

    from rlkit.interfaces import Callback

    if backend == "trl":
        import trl  # noqa: F401 - TRL's import (seconds) is not training time

    if task == "grpo":
        from rlkit_rlhf.grpo import NativeGRPOTrainer as Native
        from rlkit_rlhf.grpo_trl import TRLGRPOTrainer as TRL

        cls = {"native": Native, "trl": TRL}[backend]
        settings = cls.settings_class(seed=seed, **({"max_steps": steps} if steps else {}))
        trainer = cls(settings)
        measure = trainer.judged_rate
    else:
        from rlkit_rlhf.reward_model import NativeRewardTrainer as Native
        from rlkit_rlhf.reward_model import TRLRewardTrainer as TRL

        cls = {"native": Native, "trl": TRL}[backend]
        settings = cls.settings_class(seed=seed, max_steps=steps)
        trainer = cls(settings)

        def measure() -> float:
            return trainer.accuracy()[0]

    before = measure()

    class Clock(Callback):
        """Evaluates every ``every`` steps with the clock stopped; stops at the target."""

        def __init__(self) -> None:
            self.paused = 0.0
            self.reached: tuple[int, float] | None = None
            self.score = before
            self.trace: list[tuple[int, float]] = []

        def on_metrics(self, owner, step, metrics):
            if step % every:
                return None
            began = time.perf_counter()
            self.score = measure()
            self.paused += time.perf_counter() - began
            self.trace.append((step, round(self.score, 3)))
            if self.score >= target:
                self.reached = (step, time.perf_counter() - start - self.paused)
                return False
            return None

    clock = Clock()
    start = time.perf_counter()
    summary = trainer.train([clock])
    seconds = time.perf_counter() - start - clock.paused
    out = {
        "task": task,
        "backend": backend,
        "seed": seed,
        "before": before,
        "score": clock.score,
        "trace": clock.trace,
        "steps": summary.get("steps", 0.0),
        "train_s": seconds,
        "reached_step": clock.reached[0] if clock.reached else None,
        "time_to_target_s": clock.reached[1] if clock.reached else None,
    }
    if task == "grpo":
        out["tokens"] = summary["completion_tokens"]
        out["tokens_per_s"] = summary["completion_tokens"] / seconds
    else:
        out["pairs"] = summary["train_pairs"]
        out["pairs_per_s"] = summary["train_pairs"] / seconds
    return out


def run_child(args: argparse.Namespace, task: str, backend: str, seed: int) -> dict:
    steps = args.steps if task == "grpo" else args.rm_steps
    target = args.target if task == "grpo" else args.rm_target
    command = [sys.executable, __file__, "--child", task, backend, str(seed)]
    command += ["--every", str(args.every), "--target", str(target)]
    command += ["--steps", str(steps)] if steps is not None else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"{task}/{backend}/seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) and known else None


def fmt(value: float | None, unit: str = "s") -> str:
    return "not reached" if value is None else f"{value:.1f} {unit}"


def report(task: str, results: list[dict], rate_key: str, rate_unit: str, target: float) -> None:
    print(f"\n{task}: time to {target:.2f} on the held-out set, and {rate_unit}")
    print(f"{'backend':8} {'seed':>4} {'before':>7} {'reached':>8} {'at step':>8} "
          f"{'time to target':>15} {rate_unit:>14}")  # fmt: skip
    for r in results:
        print(
            f"{r['backend']:8} {r['seed']:>4} {r['before']:>7.2f} {r['score']:>8.2f} "
            f"{str(r['reached_step']):>8} {fmt(r['time_to_target_s']):>15} "
            f"{r[rate_key]:>14.0f}"
        )
    by = {b: [r for r in results if r["backend"] == b] for b in BACKENDS}
    time_n = median([r["time_to_target_s"] for r in by["native"]])
    time_t = median([r["time_to_target_s"] for r in by["trl"]])
    rate_n = statistics.median(r[rate_key] for r in by["native"])
    rate_t = statistics.median(r[rate_key] for r in by["trl"])
    print(f"median time to target: native {fmt(time_n)}, TRL {fmt(time_t)}", end="")
    if time_n and time_t:
        print(f"; native/TRL = {time_n / time_t:.2f} (native {time_t / time_n:.2f}x faster)")
    else:
        print()
    print(
        f"median {rate_unit}: native {rate_n:.0f}, TRL {rate_t:.0f}; "
        f"native/TRL = {rate_n / rate_t:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", choices=("grpo", "reward-model"), default=None)
    parser.add_argument("--every", type=int, default=2, help="steps between evaluations")
    parser.add_argument("--target", type=float, default=0.90, help="GRPO's held-out judged rate")
    parser.add_argument("--steps", type=int, default=None, help="GRPO's budget [default: 30]")
    parser.add_argument("--rm-target", type=float, default=0.95, help="held-out pairwise accuracy")
    parser.add_argument(
        "--rm-steps", type=int, default=None, help="the reward model's [default: one epoch]"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("TASK", "BACKEND", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        task, backend, seed = args.child
        out = child(task, backend, int(seed), args.every, args.target, args.steps)
        print(json.dumps(out))
        return
    tasks = [args.only] if args.only else ["grpo", "reward-model"]
    print(
        f"load average at start: {os.getloadavg()[0]:.1f} (2 cores: anything above ~0.5 is other work)"
    )
    for task in tasks:
        results = []
        for seed in args.seeds:
            for backend in BACKENDS:
                result = run_child(args, task, backend, seed)
                results.append(result)
                print(f"  {task} {backend} seed {seed}: {fmt(result['time_to_target_s'])} "
                      f"(trace {result['trace']})", flush=True)  # fmt: skip
        if task == "grpo":
            report(task, results, "tokens_per_s", "tokens/s", args.target)
        else:
            report(task, results, "pairs_per_s", "pairs/s", args.rm_target)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
