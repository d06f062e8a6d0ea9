"""An example rlkit plugin, the template for course authors: one env and one trainer.

Copy this folder, rename it, and `pip install -e .`: rlkit finds it through the ``rlkit``
entry point in pyproject.toml, exactly as it finds its own built-in plugins. Registering the
trainer with its settings dataclass is all it takes for ``rlkit train bandit`` to exist, with
``--resume``, Ctrl-C, a progress bar, plots and ``rlkit eval`` (see ``rlkit/session.py``).
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import EnvSpec, TrainerSpec


@hookimpl
def register_envs(register):
    register(
        EnvSpec(
            "Bandit-v0",
            "rlkit_bandit.bandit:TwoArmedBandit",
            "two slot machines; arm 1 pays more often",
        )
    )


@hookimpl
def register_trainers(register):
    register(
        TrainerSpec(
            "bandit",
            "native",
            "rlkit_bandit.bandit:BanditTrainer",
            "REINFORCE on a two-armed bandit",
            algorithms=("reinforce",),
            settings="rlkit_bandit.settings:BanditSettings",
            exercises=("log_prob", "reinforce"),
            plot_metrics=("reward", "entropy"),
            task_help="Train a softmax policy to pick the better slot machine.",
        )
    )
