"""The settings of CartPole's trainers: the course's SB3 run, and rlkit's native PPO and
REINFORCE. Fields with help are ``rlkit train cartpole``'s options (see ``rlkit.settings``);
every field is ``--set KEY=VALUE``. No torch here, so ``rlkit train --help`` stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from rlkit.errors import UsageError
from rlkit.settings import setting

TIMESTEPS_HELP = "Environment steps in total (with --resume: a larger total trains further)."
EVAL_HELP = "Episodes of the evaluation after training (0: skip it)."


@dataclass
class SB3Config:
    """The course's settings: SB3's defaults for ``"MlpPolicy"`` (2×64 tanh MLP, separate
    actor and critic), 80,000 steps."""

    algo: str = "ppo"
    timesteps: int = setting(80_000, TIMESTEPS_HELP, min=1, budget=True)
    seed: int = 0
    threads: int = 1  # torch CPU threads (not an SB3 setting: one is fastest for this MLP)
    eval_episodes: int = setting(10, EVAL_HELP, min=0, resume=True)

    def settings(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NativeConfig:
    """Settings shared by the native algorithms (see the subclasses for each one's defaults)."""

    algo: ClassVar[str] = ""
    impl: str = "solution"  # "solution" (reference) or "student" (the files in ``path``)
    path: str | None = None  # the student's workspace (log_prob.py, reinforce.py, ppo.py)
    timesteps: int = setting(100_000, TIMESTEPS_HELP, min=1, budget=True)
    seed: int = 0
    num_envs: int = 8  # CartPoles stepped side by side
    learning_rate: float = 1e-3
    gamma: float = 0.99
    hidden: int = 64  # units in each of the two hidden layers
    activation: str = "tanh"  # "tanh" (as SB3's MlpPolicy) or "relu"
    threads: int = 1  # torch CPU threads; one is fastest for a 2×64 MLP
    eval_episodes: int = setting(10, EVAL_HELP, min=0, resume=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise UsageError(f"{f.name} must not be negative, not {value}")
        for name in ("timesteps", "num_envs", "hidden", "threads", "n_steps", "minibatches"):
            if getattr(self, name, 1) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.activation not in ("tanh", "relu"):
            raise UsageError(f"activation must be tanh or relu, not {self.activation!r}")
        if self.impl not in ("solution", "student"):
            raise UsageError(f"impl must be solution or student, not {self.impl!r}")

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
    num_envs: int = 16
    n_steps: int = 32  # steps per env per update: a batch of num_envs × n_steps
    epochs: int = 10
    minibatches: int = 1
    learning_rate: float = 7e-3
    gamma: float = 0.98
    gae_lambda: float = 0.8
    clip_eps: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    anneal_lr: bool = False  # decay the learning rate linearly to 0 at ``timesteps``


@dataclass
class ReinforceConfig(NativeConfig):
    """REINFORCE with standardized returns (the mean is a baseline); one whole episode per env
    per update."""

    algo: ClassVar[str] = "reinforce"
    timesteps: int = setting(100_000, TIMESTEPS_HELP, min=1, budget=True)
    num_envs: int = 8  # episodes per update
    learning_rate: float = 3e-3
    gamma: float = 0.99
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
