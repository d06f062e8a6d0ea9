"""CartPole: the course's SB3 run and rlkit's native REINFORCE/PPO trainers.

Registered through the ``rlkit`` entry-point group like any third-party plugin. Nothing heavy
is imported here: the env, the trainers and their settings are named by import path and load
only when used, so ``rlkit --help`` stays instant. ``rlkit train cartpole`` itself (options,
progress, Ctrl-C, ``--resume``, the run directory) is the core's training session.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import EnvSpec, TrainerSpec

TASK = "cartpole"
SETTINGS = "rlkit_cartpole.settings"
#: the first two share the headline panel: reward rising while entropy falls
SCISSORS = ("episode_reward", "entropy", "episode_length", "policy_loss")
HELP = """Train an agent to balance CartPole-v1, then print `Mean reward: X +/- Y`.

\b
  rlkit train cartpole                          the course's SB3 PPO run
  rlkit train cartpole --backend native         rlkit's PPO on the reference solutions
  rlkit train cartpole --algo reinforce --path my-work      your REINFORCE
  rlkit train cartpole --resume runs/cartpole-native-...    continue a run
"""
#: (backend, algorithm, trainer, settings, exercises, extra curves, description); the first
#: is the default, and the first backend offering an algorithm is that algorithm's default
TRAINERS = (
    ("sb3", "ppo", "rlkit_cartpole.sb3:SB3Trainer", "SB3Config", (), ("value_loss", "approx_kl"),
     "Stable-Baselines3 with the course's settings"),
    ("sb3", "a2c", "rlkit_cartpole.sb3:SB3Trainer", "SB3Config", (), ("value_loss",),
     "Stable-Baselines3 with the course's settings"),
    ("native", "ppo", "rlkit_cartpole.native:NativeCartPoleTrainer", "PPOConfig", ("log_prob", "ppo"),
     ("value_loss", "approx_kl"), "rlkit's own loop on the exercise functions (--path: yours)"),
    ("native", "reinforce", "rlkit_cartpole.native:NativeCartPoleTrainer", "ReinforceConfig",
     ("log_prob", "reinforce"), (), "rlkit's own loop on the exercise functions (--path: yours)"),
)  # fmt: skip


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
    for backend, algo, factory, settings, exercises, curves, description in TRAINERS:
        register(
            TrainerSpec(
                TASK,
                backend,
                factory,
                description,
                algorithms=(algo,),
                settings=f"{SETTINGS}:{settings}",
                exercises=exercises,
                plot_metrics=(*SCISSORS, *curves),
                x_metric="timesteps",
                task_help=HELP,
            )
        )
