"""The settings of a DPO run, shared by both backends (so a comparison changes nothing else).

Names follow TRL's ``DPOConfig`` where one exists. The defaults are the course's
``DPOConfig(per_device_train_batch_size=2, learning_rate=1e-5, num_train_epochs=3, beta=0.1)``
adapted to rlkit's 0.66M-parameter model trained on a CPU: a small model trained from scratch
moves slowly at 1e-5, so the learning rate is 50x higher; a batch of 8 pairs gives a steadier
margin curve and fewer, cheaper steps; 3 epochs and β = 0.1 are the course's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: Logged by both backends, in this order; the first two are the headline of curves.png.
METRICS = (
    "loss",
    "rewards/margins",
    "rewards/accuracies",
    "rewards/chosen",
    "rewards/rejected",
    "logps/chosen",
    "logps/rejected",
)


@dataclass
class DPOSettings:
    #: model folder or Hub id; None = rlkit's built-in tiny-polite-lm
    model: str | None = None
    #: training pairs (JSONL); None = the built-in polite-vs-rude task
    data: str | None = None
    #: held-out pairs for evaluation; None = the built-in held-out split, or with ``data``
    #: the ``eval_split`` fraction of its prompts
    eval_data: str | None = None
    #: with ``data`` and no ``eval_data``: the fraction of its prompts held out (0: none)
    eval_split: float = 0.1
    beta: float = 0.1
    #: "sgd" (plain SGD, the default for the built-in model) or "adamw" (TRL's default)
    optim: str = "sgd"
    learning_rate: float = 0.03
    per_device_train_batch_size: int = 8
    num_train_epochs: int = 3
    #: stop after this many optimizer steps (None: run all epochs)
    max_steps: int | None = None
    max_length: int = 256
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    seed: int = 0
    #: "solution" (rlkit's reference DPO functions) or "student" (the files in ``path``)
    impl: str = "solution"
    path: str | None = None
    #: the rule that judges sampled answers: "polite" (the built-in task) or "none"
    judge: str = "polite"
    #: held-out prompts to sample for the preferred rate (None: all of them)
    eval_prompts: int | None = None
    max_new_tokens: int = 40

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DPOSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
