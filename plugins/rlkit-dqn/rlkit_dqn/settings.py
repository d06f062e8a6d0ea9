"""The settings of the DQN trainers: dataclasses whose fields carry their command-line help.

rlkit builds ``rlkit train cartpole --algo dqn``'s options from them (see ``rlkit.settings``):
a field with ``help`` gets a flag of its own, every field can be changed with
``--set key=value``, ``budget`` marks the one ``--resume`` may raise. The settings the CartPole
trainers have too (``timesteps``, ``learning_rate``, ``gamma``, ``num_envs``,
``eval_episodes``) share their help, so each is one option of ``rlkit train cartpole`` that
sets whichever trainer runs. No torch here, so ``rlkit train --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from rlkit.settings import IMPLS, setting, validate
from rlkit_cartpole.settings import EVAL_HELP, GAMMA_HELP, LR_HELP, NUM_ENVS_HELP, TIMESTEPS_HELP


@dataclass
class DQNSettings:
    """Native DQN. The defaults are tuned for wall-clock time to solve CartPole-v1 on one CPU
    thread (``benchmarks/dqn.py``): 4 CartPoles side by side, a 2×64 ReLU Q-network, one Adam
    step of 128 replayed transitions every 2 environment steps after 500 steps of exploration,
    the target network copied every 50 gradient steps, ε from 1 to 0.05 over 4,000 steps,
    Double DQN. Over seeds 0–4 a greedy 10-episode evaluation first averages ≥ 475 after
    12,000–17,000 steps (median 14,000; about 6,750 gradient steps).

    DQN on CartPole is famously unstable: trained on, a policy that balances the pole for 500
    steps often forgets it again (seeds 1, 2 and 3 end 50,000 steps at a mean of 18). So by
    default training stops at the first greedy evaluation that reaches ``stop_reward``, and
    the run keeps that policy (``--set stop_reward=0`` trains the whole budget)."""

    algo: ClassVar[str] = "dqn"
    impl: str = setting("solution", choices=IMPLS)
    path: str | None = setting(None, is_path=True)
    seed: int = 0
    timesteps: int = setting(50_000, TIMESTEPS_HELP, min=1, budget=True)
    num_envs: int = setting(4, NUM_ENVS_HELP, min=1)
    learning_rate: float = setting(2.5e-3, LR_HELP, flag="--lr", min=0)
    gamma: float = setting(0.99, GAMMA_HELP, min=0, max=1)
    buffer_size: int = setting(50_000, "Transitions kept in the replay buffer.", min=1)
    batch_size: int = setting(128, "Transitions per gradient step.", min=1)
    learning_starts: int = setting(500, min=0)  # steps of pure exploration first
    train_every: int = setting(2, min=1)  # environment steps per gradient step
    target_every: int = setting(50, "Gradient steps between target-network copies.", min=1)
    epsilon_start: float = setting(1.0, min=0, max=1)
    epsilon_end: float = setting(0.05, "ε after its linear decay.", min=0, max=1)
    epsilon_steps: int = setting(4_000, "Environment steps over which ε decays.", min=1)
    double_dqn: bool = setting(True, "Double DQN targets (double_dqn_target); false: td_target.")
    hidden: int = setting(64, min=1)  # units in each of the two hidden layers
    max_grad_norm: float = setting(0.0, min=0)  # gradient clipping (0: off)
    log_every: int = setting(500, min=1)  # environment steps between metrics rows
    threads: int = setting(1, min=1)  # torch CPU threads: one is fastest for this MLP
    eval_episodes: int = setting(10, EVAL_HELP, min=0, resume=True)
    stop_reward: float = setting(
        475.0,
        "Stop once a greedy evaluation (eval_episodes episodes, every eval_every steps) "
        "averages this much (0: train the whole budget).",
        min=0,
    )
    eval_every: int = setting(1_000, min=1)  # environment steps between those evaluations

    def __post_init__(self) -> None:
        validate(self)  # min, max and choices, as the command line checks them

    def epsilon(self, step: int) -> float:
        """The linear ε-greedy schedule: epsilon_start → epsilon_end over epsilon_steps."""
        fraction = min(1.0, step / self.epsilon_steps)
        return self.epsilon_start + fraction * (self.epsilon_end - self.epsilon_start)

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, **asdict(self)}


@dataclass
class SB3DQNSettings:
    """Stable-Baselines3 DQN with rl-baselines3-zoo's tuned CartPole-v1 settings; those are
    fixed (they are the point of the comparison): only the budget, the seed and the CPU
    threads change."""

    algo: ClassVar[str] = "dqn"
    seed: int = 0
    timesteps: int = setting(50_000, TIMESTEPS_HELP, min=1, budget=True)
    threads: int = setting(1, min=1)  # torch CPU threads
    eval_episodes: int = setting(10, EVAL_HELP, min=0, resume=True)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, **asdict(self)}
