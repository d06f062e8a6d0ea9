"""DPO: the course's TRL run and rlkit's native DPO trainer on a small embedded LM.

Registered through the ``rlkit`` entry-point group like any third-party plugin. Nothing heavy
is imported here (no torch, transformers or TRL): trainers and settings are named by import
path, so ``rlkit --help`` stays instant. ``rlkit train dpo`` is the core's training session
built from ``DPOSettings``; this plugin adds ``rlkit models build``.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import TrainerSpec
from rlkit_dpo.config import METRICS  # light: the settings module imports no torch

TASK = "dpo"
#: backend → trainer import path
TRAINERS = {
    "trl": "rlkit_dpo.trl_backend:TRLTrainer",
    "native": "rlkit_dpo.native:NativeDPOTrainer",
}
DESCRIPTIONS = {
    "trl": "TRL's DPOTrainer as in the course (--path: your loss inside TRL)",
    "native": "rlkit's own DPO loop on the exercise functions (--path: yours)",
}
HELP = """Align a small language model with DPO, then print held-out answers before and after
and `Held-out preferred rate: 0.50 -> 1.00`.

\b
  rlkit train dpo                              the course's TRL run (built-in model)
  rlkit train dpo --backend native             rlkit's own loop, same settings
  rlkit train dpo --path my-work               your dpo_loss inside TRL
  rlkit train dpo --model ./my-model --data pairs.jsonl
  rlkit train dpo --resume runs/dpo-trl-...     continue a run stopped with Ctrl-C
"""


@hookimpl
def register_trainers(register):
    for backend, factory in TRAINERS.items():
        register(
            TrainerSpec(
                TASK,
                backend,
                factory,
                DESCRIPTIONS[backend],
                ("dpo",),
                settings="rlkit_dpo.config:DPOSettings",
                exercises=("dpo",),
                plot_metrics=METRICS,
                x_metric="step",
                task_help=HELP,
            )
        )


@hookimpl
def register_commands(cli):
    from rlkit_dpo.cli import models_group

    cli.add_command(models_group)
