"""The course's exercises, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import Exercise

EXERCISES = (
    Exercise(
        "log_prob",
        ("log_prob", "entropy", "grad_log_prob"),
        "exercises.log_prob",
        "solutions.log_prob",
        "grader.checks.log_prob",
        "The log-prob trick",
        order=10,
        mistakes="rlkit_course.mistakes.log_prob",
    ),
    Exercise(
        "reinforce",
        ("returns_to_go", "reinforce_loss"),
        "exercises.reinforce",
        "solutions.reinforce",
        "grader.checks.reinforce",
        "REINFORCE",
        order=20,
        mistakes="rlkit_course.mistakes.reinforce",
    ),
    Exercise(
        "ppo",
        ("ppo_clip_loss", "gae"),
        "exercises.ppo",
        "solutions.ppo",
        "grader.checks.ppo",
        "PPO: clipping and GAE",
        order=30,
        mistakes="rlkit_course.mistakes.ppo",
    ),
    Exercise(
        "dpo",
        ("sequence_log_probs", "dpo_loss"),
        "exercises.dpo",
        "solutions.dpo",
        "grader.checks.dpo",
        "DPO: preferences without a reward model",
        order=40,
        mistakes="rlkit_course.mistakes.dpo",
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
