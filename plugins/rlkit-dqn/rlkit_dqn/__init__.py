"""rlkit-dqn: the DQN exercise and DQN on CartPole, written as an outside course author would.

The plugin registers, through the ``rlkit`` entry-point group:

* the exercise ``dqn`` (``td_target``, ``double_dqn_target``, ``dqn_loss``): the stub students
  fill in and the public checks (their vectors stored beside them), here; the reference
  solution, the catalogue of classic mistakes and the hidden checks' vectors in the instructors'
  package ``rlkit-dqn-instructor`` (``rlkit_dqn_instructor``), named by import path;
* DQN trainers for the ``cartpole`` task: ``native`` (rlkit's own loop on the exercise
  functions, ``rlkit_dqn.native``) and ``sb3`` (Stable-Baselines3's ``DQN`` with
  rl-baselines3-zoo's tuned settings, ``rlkit_dqn.sb3``).

Everything is named by import path, so registering imports nothing heavy.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import Exercise, TrainerSpec

EXERCISE = Exercise(
    "dqn",
    ("td_target", "double_dqn_target", "dqn_loss"),
    "rlkit_dqn.exercises.dqn",
    "rlkit_dqn_instructor.dqn",
    "rlkit_dqn.checks",
    "DQN: the Bellman target and the Huber loss",
    order=50,
    mistakes="rlkit_dqn_instructor.mistakes",
    hidden="rlkit_dqn_instructor.dqn",
    instructor="rlkit-dqn-instructor",
    instructor_path="plugins/rlkit-dqn-instructor",
)

TASK = "cartpole"
ALGO = "dqn"
#: the first two share the headline panel of curves.png: reward rising while ε falls
CURVES = ("episode_reward", "epsilon", "loss", "q_mean")
#: SB3 first, as in the CartPole plugin: `--algo dqn` alone is the zoo's SB3 run;
#: `--backend native` (or `--path`) trains with the exercise functions
TRAINERS = (
    TrainerSpec(
        TASK,
        "sb3",
        "rlkit_dqn.sb3:SB3DQNTrainer",
        "Stable-Baselines3 DQN with rl-baselines3-zoo's tuned CartPole settings",
        (ALGO,),
        settings="rlkit_dqn.settings:SB3DQNSettings",
        plot_metrics=CURVES,
        x_metric="timesteps",
    ),
    TrainerSpec(
        TASK,
        "native",
        "rlkit_dqn.native:DQNTrainer",
        "rlkit's DQN on the exercise functions (--path: yours)",
        (ALGO,),
        settings="rlkit_dqn.settings:DQNSettings",
        exercises=("dqn",),
        plot_metrics=(*CURVES, "eval_reward"),
        x_metric="timesteps",
    ),
)


@hookimpl
def register_exercises(register):
    register(EXERCISE)


@hookimpl
def register_trainers(register):
    for spec in TRAINERS:
        register(spec)
