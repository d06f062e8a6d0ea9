"""The bandit trainer's settings. Fields with help become ``rlkit train bandit``'s options; the
others can still be changed with ``--set KEY=VALUE``. No torch here: ``rlkit --help`` and
``rlkit train --help`` import this module and must stay instant."""

from __future__ import annotations

from dataclasses import dataclass

from rlkit.settings import setting


@dataclass
class BanditSettings:
    steps: int = setting(300, "Gradient steps in total.", min=1, budget=True)
    learning_rate: float = setting(0.1, "Adam's step size.", flag=("--lr", "--learning-rate"))
    batch_size: int = 16  # arm pulls per step
    seed: int = 0  # --seed
    impl: str = "solution"  # --impl/--path: the reference solutions or the student's files
    path: str | None = None


#: the name earlier versions of this example used
BanditConfig = BanditSettings
