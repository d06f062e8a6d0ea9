"""Time to solve CartPole-v1: rlkit's native PPO and REINFORCE against the course's SB3 PPO.

    flock /tmp/rlkit-bench.lock python benchmarks/cartpole.py [--seeds 0 1 2]

"Solved" means: a deterministic evaluation of 10 episodes first averages >= 475. Every
contender trains with its default settings (native: the tuned defaults of
``rlkit train cartpole --backend native``; SB3: ``PPO("MlpPolicy", env)`` as in the course) and
is checked with the same evaluator every ``--eval-every`` environment steps (SB3 once per
update, which is every 2,048 steps). The clock starts before the trainer is built and includes
every evaluation. Imports (torch, SB3, the lazy import in torch's Adam) are warmed up first so
that no contender pays them. Seeds are interleaved so machine noise hits all contenders alike.

Prints each time and the ratio of medians native / SB3. Goals: native PPO <= 1/5 of SB3 PPO;
native REINFORCE < 60 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rlkit_cartpole.env import SOLVED, make_vec_env

from rlkit.interfaces import Callback

MAX_RETURN = 500.0


def reaches(act: Callable[[np.ndarray], np.ndarray], episodes: int = 10, seed: int = 0) -> bool:
    """Does a deterministic ``episodes``-episode evaluation average >= 475?

    All episodes run side by side (one batched ``act`` per step); the evaluation stops as soon
    as the episodes that already ended have lost more than the average allows.
    """
    envs = make_vec_env(episodes)
    obs, _ = envs.reset(seed=seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    allowed_loss = (MAX_RETURN - SOLVED) * episodes
    while running.any():
        obs, reward, terminated, truncated, _ = envs.step(np.asarray(act(obs)))
        returns += reward * running
        running &= ~(terminated | truncated)
        if ((MAX_RETURN - returns) * ~running).sum() > allowed_loss:
            return False
    envs.close()
    return returns.mean() >= SOLVED


@dataclass
class Result:
    name: str
    seed: int
    seconds: float | None  # None: not solved within the budget
    steps: int
    evals: int


class SolveCheck(Callback):
    """Evaluates every ``every`` steps; stops training at the first solve."""

    def __init__(self, every: int, seed: int, start: float, limit_s: float) -> None:
        self.every, self.seed, self.start, self.limit_s = every, seed, start, limit_s
        self.next_eval = every
        self.solved_at: float | None = None
        self.steps = 0
        self.evals = 0

    def on_metrics(self, trainer: Any, step: int, metrics: Any) -> bool | None:
        self.steps = step
        if step >= self.next_eval:
            self.next_eval = step + self.every
            self.evals += 1
            if reaches(trainer.act, seed=self.seed):
                self.solved_at = time.perf_counter() - self.start
                return False
        return time.perf_counter() - self.start < self.limit_s


def native(algo: str) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        from rlkit_cartpole.native import NativeCartPoleTrainer, make_config

        config = make_config(algo, seed=seed)
        config.timesteps = max(config.timesteps, 1_000_000)  # run until solved (or limit_s)
        return NativeCartPoleTrainer(config)

    return make


def sb3_ppo(threads: int) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        from rlkit_cartpole.sb3 import SB3Config, SB3Trainer

        return SB3Trainer(SB3Config(algo="ppo", seed=seed, timesteps=1_000_000, threads=threads))

    return make


def measure(name: str, make: Callable[[int], Any], seed: int, every: int, limit_s: float) -> Result:
    start = time.perf_counter()
    trainer = make(seed)
    check = SolveCheck(every, seed=10_000 + seed, start=start, limit_s=limit_s)
    trainer.train([check])
    return Result(name, seed, check.solved_at, check.steps, check.evals)


def warm_up() -> None:
    import torch
    from stable_baselines3 import PPO  # noqa: F401

    torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), fused=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=2048)
    parser.add_argument("--limit-s", type=float, default=300.0, help="give up after this")
    parser.add_argument(
        "--sb3-threads",
        type=int,
        default=1,
        help="torch threads for SB3 (1 is its fastest on this machine)",
    )
    args = parser.parse_args()

    warm_up()
    contenders = {
        "native PPO": native("ppo"),
        "native REINFORCE": native("reinforce"),
        "SB3 PPO": sb3_ppo(args.sb3_threads),
    }
    results: list[Result] = []
    print(f"{'contender':<18} {'seed':>4} {'time to solve':>14} {'steps':>8} {'evals':>6}")
    for seed in args.seeds:
        for name, make in contenders.items():
            r = measure(name, make, seed, args.eval_every, args.limit_s)
            results.append(r)
            shown = f"{r.seconds:.2f} s" if r.seconds is not None else "not solved"
            print(f"{name:<18} {seed:>4} {shown:>14} {r.steps:>8} {r.evals:>6}", flush=True)

    def median(name: str) -> float:
        times = [
            r.seconds if r.seconds is not None else float("inf") for r in results if r.name == name
        ]
        return statistics.median(times)

    print()
    sb3 = median("SB3 PPO")
    for name in contenders:
        m = median(name)
        ratio = f"  ratio to SB3 PPO: {m / sb3:.3f}" if name != "SB3 PPO" else ""
        print(f"median {name:<18} {m:8.2f} s{ratio}")
    ppo_ok = median("native PPO") <= sb3 / 5
    reinforce_ok = median("native REINFORCE") < 60
    print(f"goal native PPO <= 1/5 of SB3 PPO: {'met' if ppo_ok else 'NOT met'}")
    print(f"goal native REINFORCE < 60 s:      {'met' if reinforce_ok else 'NOT met'}")


if __name__ == "__main__":
    main()
