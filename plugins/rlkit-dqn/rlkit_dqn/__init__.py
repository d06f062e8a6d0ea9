"""rlkit-dqn: the DQN exercise and DQN on CartPole, written as an outside course author would.

The plugin registers, through the ``rlkit`` entry-point group:

* the exercise ``dqn`` (``td_target``, ``double_dqn_target``, ``dqn_loss``): the stub students
  fill in, the reference solution, the checks (vectors stored beside them) and the catalogue of
  classic mistakes;
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
    "rlkit_dqn.solutions.dqn",
    "rlkit_dqn.checks",
    "DQN: the Bellman target and the Huber loss",
    order=50,
)

TASK = "cartpole"
ALGO = "dqn"
TRAINERS = (
    TrainerSpec(
        TASK,
        "native",
        "rlkit_dqn.native:DQNTrainer",
        "rlkit's DQN on the exercise functions (--impl student)",
        (ALGO,),
    ),
    TrainerSpec(
        TASK,
        "sb3",
        "rlkit_dqn.sb3:SB3DQNTrainer",
        "Stable-Baselines3 DQN with rl-baselines3-zoo's tuned CartPole settings",
        (ALGO,),
    ),
)


@hookimpl
def register_exercises(register):
    register(EXERCISE)


# The trainers are registered once the core routes `rlkit train cartpole --algo dqn` by
# (task, backend, algorithm): today (cartpole, native) and (cartpole, sb3) belong to the
# CartPole plugin, and registering them twice would mark this plugin broken.
