"""An example rlkit plugin, the template for course authors: one env, one trainer, one command.

Copy this folder, rename it, and `pip install -e .`: rlkit finds it through the ``rlkit``
entry point in pyproject.toml, exactly as it finds its own built-in plugins.
"""

from __future__ import annotations

import click

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
        )
    )


@hookimpl
def register_commands(train):
    @train.command(name="bandit")
    @click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--out", type=click.Path(), default=None, help="Run directory.")
    def train_bandit(steps: int, seed: int, out: str | None) -> None:
        """Train a softmax policy to pick the better slot machine."""
        from rlkit.runs import Run
        from rlkit_bandit.bandit import BanditConfig, BanditTrainer

        config = BanditConfig(steps=steps, seed=seed)
        run = Run.create(
            out,
            "bandit",
            "native",
            config.__dict__,
            plot_metrics=["reward", "entropy"],
            x_metric="step",
        )
        trainer = BanditTrainer(config)
        trainer.train(callbacks=[run])
        trainer.save(run.path)
        run.close()
        run.plot()
        click.echo(f"P(best arm) = {trainer.best_arm_probability():.3f}; run in {run.path}")
