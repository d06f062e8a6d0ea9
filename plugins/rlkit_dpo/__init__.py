"""DPO: the course's TRL run and rlkit's native DPO trainer on a small embedded LM.

Registered through the ``rlkit`` entry-point group like any third-party plugin. Nothing heavy
is imported here (no torch, transformers or TRL): trainers are named by import path and the
commands load their modules only when they run, so ``rlkit --help`` stays instant.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import TrainerSpec

TASK = "dpo"
#: backend → trainer import path
TRAINERS = {
    "trl": "rlkit_dpo.trl_backend:TRLTrainer",
    "native": "rlkit_dpo.native:NativeTrainer",
}


@hookimpl
def register_trainers(register):
    register(
        TrainerSpec(
            TASK,
            "trl",
            TRAINERS["trl"],
            "TRL's DPOTrainer as in the course (--impl student: your loss inside TRL)",
            ("dpo",),
        )
    )
    register(
        TrainerSpec(
            TASK,
            "native",
            TRAINERS["native"],
            "rlkit's own DPO loop on the exercise functions (--impl student)",
            ("dpo",),
        )
    )


@hookimpl
def register_commands(cli, train):
    from rlkit_dpo.cli import dpo_command, models_group

    train.add_command(dpo_command)
    cli.add_command(models_group)
