"""The settings of CartPole's trainers: the course's SB3 run, and rlkit's native PPO and
REINFORCE. Fields with help are ``rlkit train cartpole``'s options (see ``rlkit.settings``);
every field is ``--set KEY=VALUE``. No torch here, so ``rlkit train --help`` stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from rlkit.errors import UsageError
from rlkit.settings import IMPLS, setting, validate

#: the help of the settings every CartPole trainer has (rlkit-dqn's too: one option each)
TIMESTEPS_HELP = "Environment steps in total (with --resume: a larger total trains further)."
EVAL_HELP = "Episodes of the evaluation after training (0: skip it)."
LR_HELP = "Adam's step size."
GAMMA_HELP = "Discount factor γ."
NUM_ENVS_HELP = "CartPoles stepped side by side."


@dataclass
class SB3Config:
    """The course's settings: SB3's defaults for ``"MlpPolicy"`` (2×64 tanh MLP, separate
    actor and critic), 80,000 steps."""

    algo: str = "ppo"
    timesteps: int = setting(80_000, TIMESTEPS_HELP, min=1, budget=True)
    seed: int = 0
    threads: int = setting(1, min=1)  # torch CPU threads (one is fastest for this MLP)
    eval_episodes: int = setting(10, EVAL_HELP, min=0, resume=True)

    def __post_init__(self) -> None:
        validate(self)

    def settings(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NativeConfig:
    """Settings shared by the native algorithms (see the subclasses for each one's defaults).
    Every limit is field metadata (``min``, ``max``, ``choices``), so an error names the flag
    the command has for it, or ``--set NAME``."""

    algo: ClassVar[str] = ""
    impl: str = setting("solution", choices=IMPLS)  # the reference, or the files in ``path``
    path: str | None = None  # the student's workspace (log_prob.py, reinforce.py, ppo.py)
    timesteps: int = setting(100_000, TIMESTEPS_HELP, min=1, budget=True)
    seed: int = 0
    num_envs: int = setting(8, NUM_ENVS_HELP, min=1)
    learning_rate: float = setting(1e-3, LR_HELP, flag="--lr", min=0)
    gamma: float = setting(0.99, GAMMA_HELP, min=0, max=1)
    hidden: int = setting(64, min=1)  # units in each of the two hidden layers
    activation: str = setting("tanh", choices=("tanh", "relu"))  # tanh as SB3's MlpPolicy
    threads: int = setting(1, min=1)  # torch CPU threads; one is fastest for a 2×64 MLP
    eval_episodes: int = setting(10, EVAL_HELP, min=0, resume=True)

    def __post_init__(self) -> None:
        validate(self)

    def settings(self) -> dict[str, Any]:
        """Every setting, for config.json."""
        return {"algo": self.algo, **asdict(self)}


@dataclass
class PPOConfig(NativeConfig):
    """PPO-clip with a critic. The defaults are tuned for wall-clock time to solve CartPole on
    2 CPU cores (``benchmarks/cartpole.py``; a sweep over 20 seeds): a batch of 16 envs × 32
    steps, 10 epochs of one full-batch gradient step each (on a net this small a gradient step
    costs the same for 64 or 512 samples, so few large steps are cheap), a large learning rate,
    γ = 0.98 and λ = 0.8 (CartPole rewards every step; a short horizon is enough), no entropy
    bonus. Over seeds 0–19 the median run first passes the 10-episode evaluation after ~10k
    environment steps (SB3 with the course's settings: ~16–20k), at ~10k steps per second."""

    algo: ClassVar[str] = "ppo"
    timesteps: int = setting(60_000, TIMESTEPS_HELP, min=1, budget=True)
    num_envs: int = setting(16, NUM_ENVS_HELP, min=1)
    n_steps: int = setting(32, min=1)  # steps per env per update: a batch of num_envs × n_steps
    epochs: int = setting(10, min=1)
    minibatches: int = setting(1, min=1)
    learning_rate: float = setting(7e-3, LR_HELP, flag="--lr", min=0)
    gamma: float = setting(0.98, GAMMA_HELP, min=0, max=1)
    gae_lambda: float = setting(0.8, min=0, max=1)
    clip_eps: float = setting(0.2, min=0)
    vf_coef: float = setting(0.5, min=0)
    ent_coef: float = setting(0.0, min=0)
    max_grad_norm: float = setting(0.5, min=0)  # gradient clipping (0: off)
    anneal_lr: bool = False  # decay the learning rate linearly to 0 at ``timesteps``


@dataclass
class ReinforceConfig(NativeConfig):
    """REINFORCE with standardized returns (the mean is a baseline); one whole episode per env
    per update."""

    algo: ClassVar[str] = "reinforce"
    timesteps: int = setting(100_000, TIMESTEPS_HELP, min=1, budget=True)
    num_envs: int = setting(8, NUM_ENVS_HELP, min=1)  # episodes per update
    learning_rate: float = setting(3e-3, LR_HELP, flag="--lr", min=0)
    gamma: float = setting(0.99, GAMMA_HELP, min=0, max=1)
    normalize: bool = True


CONFIGS: dict[str, type[NativeConfig]] = {"ppo": PPOConfig, "reinforce": ReinforceConfig}


def make_config(algo: str, **settings: Any) -> NativeConfig:
    """The config of ``algo`` with ``settings`` (``None`` values keep the defaults)."""
    if algo not in CONFIGS:
        raise UsageError(
            f"unknown algorithm {algo!r} for the native backend; use one of: {', '.join(CONFIGS)}"
        )
    cls = CONFIGS[algo]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(settings) - known - {"algo"})
    if unknown:
        raise UsageError(f"unknown setting(s) for native {algo}: {', '.join(unknown)}")
    return cls(**{k: v for k, v in settings.items() if k in known and v is not None})
