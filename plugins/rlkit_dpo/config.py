"""The settings of a DPO run, shared by both backends (so a comparison changes nothing else).

Names follow TRL's ``DPOConfig`` where one exists. The defaults are the course's
``DPOConfig(per_device_train_batch_size=2, learning_rate=1e-5, num_train_epochs=3, beta=0.1)``
adapted to rlkit's 0.66M-parameter model trained on a CPU: a small model trained from scratch
moves slowly at 1e-5, so the learning rate is 50x higher; a batch of 8 pairs gives a steadier
margin curve and fewer, cheaper steps; 3 epochs and β = 0.1 are the course's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rlkit.settings import setting

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
    """Every setting of a DPO run; fields with help are ``rlkit train dpo``'s options."""

    model: str | None = setting(
        None,
        "A model folder (save_pretrained format) or a Hub id such as "
        "Qwen/Qwen2.5-0.5B-Instruct. [default: rlkit's built-in tiny-polite-lm]",
        metavar="PATH_OR_HUB_ID",
    )
    data: str | None = setting(
        None,
        "Training pairs: JSONL with prompt, chosen, rejected on every line. "
        "[default: the built-in polite-vs-rude task]",
        is_path=True,
    )
    eval_data: str | None = setting(
        None,
        "Held-out pairs for the before/after evaluation. [default: the built-in held-out "
        "split; with --data, --eval-split of its prompts]",
        is_path=True,
    )
    eval_split: float = setting(
        0.1,
        "With --data and no --eval-data: the fraction of its prompts held out of training "
        "for the evaluation (0: train on all, evaluate nothing).",
        min=0,
    )
    beta: float = setting(0.1, "How far the policy may move from the reference (larger: less).")
    optim: str = setting(
        "sgd",
        "Optimizer. AdamW is TRL's default (use it with --lr 1e-5 for a real model); plain "
        "SGD is what works on the built-in model, see the README.",
        choices=("sgd", "adamw"),
    )
    learning_rate: float = setting(
        0.03, "Learning rate (linear decay to 0).", flag=("--lr", "--learning-rate")
    )
    per_device_train_batch_size: int = setting(
        8, "Preference pairs per step (per device).", flag="--batch-size", min=1
    )
    max_steps: int | None = setting(
        None, "Stop after this many steps (overrides --epochs).", min=1, budget=True
    )
    num_train_epochs: int = setting(
        3, "Passes over the training pairs.", flag="--epochs", min=1, budget=True
    )
    max_length: int = 256
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    seed: int = 0
    #: "solution" (rlkit's reference DPO functions) or "student" (the files in ``path``)
    impl: str = "solution"
    path: str | None = None
    judge: str | None = setting(
        None,
        "Rule that judges sampled answers. [default: polite for the built-in task, none with --data]",
        choices=("polite", "none"),
    )
    eval_prompts: int | None = setting(
        None,
        "Held-out prompts to sample before and after (0: skip). [default: all of them]",
        min=0,
        resume=True,
    )
    max_new_tokens: int = 40
    lora: int | None = setting(
        None,
        "Train a LoRA adapter of rank R (peft) instead of every weight: the reference is the "
        "same model with the adapter off, model/ holds the adapter. [default: full fine-tuning]",
        min=1,
        metavar="R",
    )
    lora_targets: str | None = setting(
        None,
        "With --lora: the modules to adapt, comma-separated (q_proj,v_proj), or all-linear. "
        "[default: the attention projections found in the model]",
        metavar="NAMES",
    )
    #: LoRA's α (the adapter is scaled by α/R); None: 2·R
    lora_alpha: float | None = None
    dtype: str = setting(
        "auto",
        "Precision: auto keeps the checkpoint's (bfloat16 only where the hardware runs it "
        "natively); trained weights stay float32, frozen ones and the computation use it.",
        choices=("auto", "float32", "bfloat16"),
    )
    gradient_checkpointing: bool = setting(
        False,
        "Recompute activations during the backward pass: less memory on long sequences, "
        "about a third more time per step.",
        resume=True,
    )

    def __post_init__(self) -> None:
        if self.judge is None:
            self.judge = "polite" if self.data is None else "none"

    def resume_with(self, **changes: Any) -> DPOSettings:
        """The settings ``--resume`` continues with: more ``--epochs`` drops the old
        ``max_steps`` (which would cut them short) unless ``--max-steps`` is given too."""
        if "num_train_epochs" in changes and "max_steps" not in changes:
            changes["max_steps"] = None
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DPOSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
