"""The ``rlkit`` command. Built-in commands live here; plugins add theirs (``rlkit train
cartpole``, ``rlkit check``, ...) through the ``register_commands`` hook. Nothing heavy is imported
until a command runs, so ``rlkit --help`` answers at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rlkit import __version__, plugins, scaffold
from rlkit.errors import RlkitError, UsageError
from rlkit.train_command import TrainGroup


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="rlkit")
def cli() -> None:
    """rlkit: write the core formulas of RL yourself, check them, then watch your own code
    train a CartPole agent and align a small language model.

    \b
    Start here:
      rlkit init my-work           a workspace with the exercise stubs
      rlkit check --path my-work   check your answers
      rlkit train cartpole         train an agent (add --path my-work to train with your code)
      rlkit list                   exercises, environments and trainers
    """


@cli.group(cls=TrainGroup)
def train() -> None:
    """Train a policy. Each task comes from a plugin: `rlkit train TASK --help`."""


@cli.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """Installed plugins and what each one registers."""
    infos = plugins.plugin_infos(_commands_by_plugin)
    if as_json:
        data = [info.__dict__ for info in infos]
        data += [{"name": n, "error": e} for n, e in sorted(plugins.broken.items())]
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rlkit plugins")
    for col in ("plugin", "package", "exercises", "envs", "trainers", "commands"):
        table.add_column(col)
    for info in infos:
        package = f"{info.distribution} {info.version}".strip()
        table.add_row(
            info.name,
            package,
            ", ".join(info.exercises),
            ", ".join(info.envs),
            ", ".join(info.trainers),
            ", ".join(info.commands),
        )
    console = Console()
    console.print(table)
    _echo_broken(infos)


def _echo_broken(infos: list[plugins.PluginInfo] | None = None) -> None:
    """One unwrapped line per broken plugin (what failed and why), and per warning (what
    works, but not as its author may think: an undeclared shared task, conflicting flags)."""
    for name, error in sorted(plugins.broken.items()):
        click.echo(click.style(f"plugin {name} is broken: ", fg="red") + error)
    for info in infos or ():
        for line in info.warnings:
            click.echo(click.style(f"plugin {info.name}: ", fg="yellow") + line)


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(as_json: bool) -> None:
    """Exercises, environments and trainers that the installed plugins provide."""
    exercises = plugins.get_exercises()
    envs = plugins.get_envs()
    trainers = plugins.get_trainers()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "exercises": [
                        {
                            "name": e.name,
                            "functions": list(e.functions),
                            "title": e.title,
                            "plugin": e.plugin,
                        }
                        for e in exercises.values()
                    ],
                    "envs": [
                        {"name": e.name, "description": e.description, "plugin": e.plugin}
                        for e in envs.values()
                    ],
                    "trainers": [
                        {
                            "task": t.task,
                            "backend": t.backend,
                            "algorithm": t.algorithm,
                            "algorithms": list(t.algorithms),
                            "exercises": list(t.exercises),
                            "description": t.description,
                            "plugin": t.plugin,
                        }
                        for t in trainers.values()
                    ],
                },
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Exercises")
    for col in ("exercise", "functions", "plugin"):
        table.add_column(col)
    for e in exercises.values():
        table.add_row(e.name, ", ".join(e.functions), e.plugin)
    console.print(table)
    table = Table(title="Environments")
    for col in ("env", "description", "plugin"):
        table.add_column(col)
    for env in envs.values():
        table.add_row(env.name, env.description, env.plugin)
    console.print(table)
    table = Table(title="Trainers")
    for col in ("task", "algorithm", "backend", "exercises", "description", "plugin"):
        table.add_column(col)
    for t in trainers.values():
        table.add_row(
            t.task, t.algorithm, t.backend, ", ".join(t.exercises), t.description, t.plugin
        )
    console.print(table)
    _echo_broken()


@cli.command(name="plot")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="PNG to write (default: RUN/curves.png for one run, overlay.png for several).",
)
@click.option(
    "-m",
    "--metric",
    "metrics",
    multiple=True,
    help="Metrics to draw (repeatable); the first two share the headline panel.",
)
def plot_command(runs: tuple[Path, ...], out: Path | None, metrics: tuple[str, ...]) -> None:
    """Redraw a run's curves, or overlay several runs in one figure."""
    from rlkit.plotting import check_plottable, plot_runs
    from rlkit.runs import PLOT, Run

    opened = [Run.open(p) for p in runs]
    check_plottable(opened, metrics)
    if out is None:
        out = opened[0].path / PLOT if len(opened) == 1 else Path("overlay.png")
    path = plot_runs(opened, out, metrics or None)
    click.echo(f"Wrote {path}")


@cli.command(name="eval")
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--episodes",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help="Episodes (or held-out prompts) to evaluate on. [default: the trainer's own: 10 "
    "episodes; for DPO the run's held-out prompts]",
)
@click.option(
    "--video",
    type=click.Path(path_type=Path),
    default=None,
    help="Record the policy to this GIF (environments that can render).",
)
def eval_command(run: Path, episodes: int | None, video: Path | None) -> None:
    """Evaluate a saved run, whatever trained it (native, SB3, TRL)."""
    from rlkit.runs import Run
    from rlkit.session import spec_of_run, trainer_of_run

    opened = Run.open(run)
    if video is not None and not spec_of_run(opened).load().records_video:
        raise UsageError(
            f"--video records an agent in its environment; a {opened.task} run has none to "
            "record (drop --video)"
        )
    trainer = trainer_of_run(opened)
    result = trainer.evaluate(episodes=episodes, video=video)
    click.echo(str(result))
    if video is not None and not Path(video).is_file():
        raise RlkitError(f"the {opened.task} trainer wrote no video to {video}")


cli.add_command(scaffold.plugin_command)  # `rlkit plugin new`: course authors start a plugin
_commands_by_plugin = plugins.register_commands(cli, train)


def main() -> None:
    """Console-script entry point: one-line errors, and Ctrl-C exits 130 without a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except RlkitError as exc:  # pragma: no cover - RlkitError is a ClickException
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
