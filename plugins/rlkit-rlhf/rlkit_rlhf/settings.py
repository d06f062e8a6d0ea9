"""The settings of the two tasks, shared by both backends of each (so a comparison changes
nothing else). Names follow TRL's ``RewardConfig`` and ``GRPOConfig`` where one exists; the
defaults are what works on rlkit's built-in 0.66M-parameter model on a CPU (see the README).
No torch here, so ``rlkit train --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from rlkit.errors import UsageError
from rlkit.settings import setting

IMPLS = ("solution", "student")

#: what the reward-model runs log (TRL's names); the first two head curves.png
REWARD_METRICS = ("loss", "accuracy", "margin", "mean_reward")
#: what the GRPO runs log (TRL's names): mean reward rising while the KL stays small
GRPO_METRICS = (
    "reward",
    "kl",
    "loss",
    "reward_std",
    "clip_ratio/region_mean",
    "completions/mean_length",
)


def _check(settings: Any) -> None:
    for f in fields(settings):
        low = f.metadata.get("min")
        value = getattr(settings, f.name)
        if low is not None and value is not None and not isinstance(value, bool) and value < low:
            raise UsageError(f"{f.name} must be at least {low}, not {value}")
    if getattr(settings, "impl", "solution") not in IMPLS:
        raise UsageError(f"impl must be solution or student, not {settings.impl!r}")


@dataclass
class _Shared:
    model: str | None = setting(
        None,
        "A model folder (save_pretrained format) or a Hub id. [default: rlkit's built-in "
        "tiny-polite-lm, the DPO chapter's model]",
        metavar="PATH_OR_HUB_ID",
    )
    optim: str = setting(
        "sgd",
        "Optimizer: plain SGD is what works on the built-in model (as for DPO); adamw is TRL's "
        "default (use it with a small --lr on a real model).",
        choices=("sgd", "adamw"),
    )
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    seed: int = 0
    #: torch CPU threads: one is fastest for the tiny model (and far faster on a busy machine)
    threads: int = setting(1, min=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class RewardModelSettings(_Shared):
    """A scalar head on the language model, fitted to the preference pairs with the
    Bradley–Terry loss (``bradley_terry_loss``): TRL's RewardTrainer or rlkit's loop."""

    learning_rate: float = setting(
        0.1, "Learning rate (linear decay to 0).", flag=("--lr", "--learning-rate"), min=0
    )
    per_device_train_batch_size: int = setting(
        8, "Preference pairs per step.", flag="--batch-size", min=1
    )
    num_train_epochs: int = setting(
        1, "Passes over the training pairs.", flag="--epochs", min=1, budget=True
    )
    max_steps: int | None = setting(
        None, "Stop after this many steps (overrides --epochs).", min=1, budget=True
    )
    max_length: int = 256

    def __post_init__(self) -> None:
        _check(self)

    def resume_with(self, **changes: Any) -> RewardModelSettings:
        """More ``--epochs`` drops an old ``max_steps`` (which would cut them short)."""
        if "num_train_epochs" in changes and "max_steps" not in changes:
            changes["max_steps"] = None
        return replace(self, **changes)


@dataclass
class GRPOSettings(_Shared):
    """GRPO on the built-in prompts: G sampled answers per prompt, group-relative advantages,
    PPO's clipped loss per answer token plus β·KL to the reference (``grpo_loss``)."""

    reward: str = setting(
        "judge",
        "What scores the answers: judge (the built-in politeness rule: 1 polite, else 0) or "
        "RUN, a `rlkit train reward-model` run directory (its trained reward model).",
        metavar="judge|RUN",
    )
    learning_rate: float = setting(
        0.03, "Learning rate (linear decay to 0).", flag=("--lr", "--learning-rate"), min=0
    )
    per_device_train_batch_size: int = setting(
        64,
        "Answers per step (prompts × --num-generations), as in TRL's GRPOConfig.",
        flag="--batch-size",
        min=1,
    )
    num_generations: int = setting(8, "Answers sampled per prompt: the group G of GRPO.", min=2)
    beta: float = setting(0.04, "Weight β of the KL penalty to the reference model.", min=0)
    epsilon: float = setting(0.2, "PPO's clip range ε (clip_eps).", min=0)
    num_iterations: int = setting(
        1, "Updates per batch of sampled answers (μ; above 1 the ratio leaves 1 and clips).", min=1
    )
    max_steps: int = setting(30, "Optimizer steps in total.", min=1, budget=True)
    max_completion_length: int = setting(24, "Longest sampled answer, in tokens.", min=1)
    temperature: float = 1.0
    eval_prompts: int | None = setting(
        None,
        "Held-out prompts to sample before and after (0: skip). [default: all 84]",
        min=0,
        resume=True,
    )
    max_new_tokens: int = 40  # the evaluation's answers, as DPO's

    def __post_init__(self) -> None:
        _check(self)
        if self.reward != "judge":  # a run directory: absolute, so the run reopens anywhere
            self.reward = str(Path(self.reward).expanduser().resolve())
        if self.per_device_train_batch_size % self.num_generations:
            raise UsageError(
                f"--batch-size ({self.per_device_train_batch_size}) must be a multiple of "
                f"--num-generations ({self.num_generations}): whole groups of answers"
            )
        if self.temperature <= 0:
            raise UsageError(f"temperature must be positive, not {self.temperature}")

    @property
    def prompts_per_step(self) -> int:
        return self.per_device_train_batch_size // self.num_generations


@dataclass
class NativeRewardModelSettings(RewardModelSettings):
    """The native backend's: the same, plus which functions train (``--impl``/``--path``)."""

    #: "solution" (the reference functions) or "student" (the files in ``path``)
    impl: str = "solution"
    path: str | None = None


@dataclass
class NativeGRPOSettings(GRPOSettings):
    """The native backend's: the same, plus which functions train (``--impl``/``--path``)."""

    impl: str = "solution"
    path: str | None = None
