"""CartPole: the course's SB3 run and rlkit's native REINFORCE/PPO trainers.

Registered through the ``rlkit`` entry-point group like any third-party plugin. Nothing heavy
is imported here: the env, the trainers and the command are named by import path and load
only when used, so ``rlkit --help`` stays instant.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import EnvSpec, TrainerSpec

TASK = "cartpole"
#: backend → (trainer import path, algorithms it offers, the first one being the default)
TRAINERS = {
    "sb3": ("rlkit_cartpole.sb3:SB3Trainer", ("ppo", "a2c")),
    "native": ("rlkit_cartpole.native:NativeTrainer", ("ppo", "reinforce")),
}
DESCRIPTIONS = {
    "sb3": "Stable-Baselines3 with the course's settings",
    "native": "rlkit's own loop on the exercise functions (--impl student)",
}


@hookimpl
def register_envs(register):
    register(
        EnvSpec(
            "CartPole-v1",
            "rlkit_cartpole.env:make_env",
            "gymnasium CartPole-v1: balance a pole on a cart (500 steps max)",
        )
    )


@hookimpl
def register_trainers(register):
    for backend, (factory, algorithms) in TRAINERS.items():
        register(TrainerSpec(TASK, backend, factory, DESCRIPTIONS[backend], algorithms))


@hookimpl
def register_commands(cli, train):
    from rlkit_cartpole.cli import cartpole_command

    train.add_command(cartpole_command)
