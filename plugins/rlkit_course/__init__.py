"""The course's exercises, registered through the same hook a third-party plugin uses.

The student's install holds each exercise's stub (``rlkit_exercises``) and public checks with
their vectors (``rlkit_grader.checks``); the reference solutions, the classic mistakes and the hidden
checks' vectors are in the instructors' distribution ``rlkit-solutions`` (``solutions/``, import
name ``rlkit_solutions``), named here by import path.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import Exercise

#: where the parts students must not have are (see rlkit.registry.Exercise)
INSTRUCTOR = {"instructor": "rlkit-solutions", "instructor_path": "solutions"}

EXERCISES = (
    Exercise(
        "log_prob",
        ("log_prob", "entropy", "grad_log_prob"),
        "rlkit_exercises.log_prob",
        "rlkit_solutions.log_prob",
        "rlkit_grader.checks.log_prob",
        "The log-prob trick",
        order=10,
        mistakes="rlkit_solutions.mistakes.log_prob",
        **INSTRUCTOR,
        hidden="rlkit_solutions.log_prob",
    ),
    Exercise(
        "reinforce",
        ("returns_to_go", "reinforce_loss"),
        "rlkit_exercises.reinforce",
        "rlkit_solutions.reinforce",
        "rlkit_grader.checks.reinforce",
        "REINFORCE",
        order=20,
        mistakes="rlkit_solutions.mistakes.reinforce",
        **INSTRUCTOR,
        hidden="rlkit_solutions.reinforce",
    ),
    Exercise(
        "ppo",
        ("ppo_clip_loss", "gae"),
        "rlkit_exercises.ppo",
        "rlkit_solutions.ppo",
        "rlkit_grader.checks.ppo",
        "PPO: clipping and GAE",
        order=30,
        mistakes="rlkit_solutions.mistakes.ppo",
        **INSTRUCTOR,
        hidden="rlkit_solutions.ppo",
    ),
    Exercise(
        "dpo",
        ("sequence_log_probs", "dpo_loss"),
        "rlkit_exercises.dpo",
        "rlkit_solutions.dpo",
        "rlkit_grader.checks.dpo",
        "DPO: preferences without a reward model",
        order=40,
        mistakes="rlkit_solutions.mistakes.dpo",
        **INSTRUCTOR,
        hidden="rlkit_solutions.dpo",
    ),
)


@hookimpl
def register_exercises(register):
    for exercise in EXERCISES:
        register(exercise)


@hookimpl
def register_commands(cli, train):
    from rlkit_course.commands import register

    register(cli)
