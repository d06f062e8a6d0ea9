"""Time to solve CartPole-v1: rlkit's native DQN against Stable-Baselines3's DQN (zoo settings).

    flock /tmp/rlkit-bench.lock python benchmarks/dqn.py [--seeds 0 1 2 3 4]

"Solved" means: a greedy evaluation of 10 episodes first averages >= 475 (the same evaluator as
``benchmarks/cartpole.py``). Native DQN trains with the defaults of
``rlkit train cartpole --algo dqn --backend native`` (Double DQN on the reference solutions);
SB3 trains ``DQN("MlpPolicy", env, **zoo)`` with rl-baselines3-zoo's tuned CartPole-v1 settings.
Both are checked every ``--eval-every`` environment steps (SB3 at the end of each 256-step
rollout that crosses it). The clock starts before the trainer is built and includes every
evaluation. Imports are warmed up first; seeds are interleaved so machine noise hits both alike.

Prints each time and the ratio of medians native / SB3. Goal: native <= 1/5 of SB3's time.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

# benchmarks/ is on sys.path when this file runs as a script: share the solve check
from cartpole import Result, measure  # type: ignore[import-not-found]


def native_dqn(overrides: dict[str, Any]) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        from rlkit_dqn.native import DQNTrainer
        from rlkit_dqn.settings import DQNSettings

        # stop_reward=0: the benchmark's own evaluator decides when it is solved
        settings = {"stop_reward": 0.0, **overrides}
        return DQNTrainer(DQNSettings(seed=seed, timesteps=1_000_000, **settings))

    return make


def sb3_dqn(threads: int) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        from rlkit_dqn.sb3 import SB3DQNTrainer
        from rlkit_dqn.settings import SB3DQNSettings

        return SB3DQNTrainer(SB3DQNSettings(seed=seed, timesteps=1_000_000, threads=threads))

    return make


def warm_up() -> None:
    import torch
    from rlkit_dqn import native, sb3  # noqa: F401

    torch.optim.Adam(torch.nn.Linear(2, 2).parameters())


def _parse(items: list[str]) -> dict[str, Any]:
    """``["batch_size=128", "double_dqn=false"]`` → typed native settings."""
    from dataclasses import fields

    from rlkit_dqn.settings import DQNSettings

    types = {f.name: type(getattr(DQNSettings(), f.name)) for f in fields(DQNSettings)}
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        kind = types[key]
        out[key] = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--limit-s", type=float, default=300.0, help="give up after this")
    parser.add_argument("--sb3-threads", type=int, default=1, help="torch threads for SB3")
    parser.add_argument(
        "--only", choices=("native", "sb3"), default=None, help="run one contender (tuning)"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="native settings (tuning)"
    )
    args = parser.parse_args()

    warm_up()
    contenders = {
        "native DQN": native_dqn(_parse(args.set)),
        "SB3 DQN (zoo)": sb3_dqn(args.sb3_threads),
    }
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k.lower().startswith(args.only)}
    results: list[Result] = []
    print(f"{'contender':<15} {'seed':>4} {'time to solve':>14} {'steps':>8} {'evals':>6}")
    for seed in args.seeds:
        for name, make in contenders.items():
            r = measure(name, make, seed, args.eval_every, args.limit_s)
            results.append(r)
            shown = f"{r.seconds:.2f} s" if r.seconds is not None else "not solved"
            print(f"{name:<15} {seed:>4} {shown:>14} {r.steps:>8} {r.evals:>6}", flush=True)

    def median(name: str) -> float:
        times = [
            r.seconds if r.seconds is not None else float("inf") for r in results if r.name == name
        ]
        return statistics.median(times)

    print()
    for name in contenders:
        print(f"median {name:<15} {median(name):8.2f} s")
    if len(contenders) == 2:
        native, sb3 = median("native DQN"), median("SB3 DQN (zoo)")
        print(f"ratio of medians native / SB3: {native / sb3:.3f}")
        print(f"goal native DQN <= 1/5 of SB3 DQN: {'met' if native <= sb3 / 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
