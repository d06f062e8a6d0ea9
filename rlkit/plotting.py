"""Curves a student would rather look at than read.

The first panel puts a run's two headline metrics on twin axes: for RL, episodic reward rising
while policy entropy falls (the course's "scissors"); for DPO, loss falling while the reward
margin rises. Every other metric listed in the run's config gets a small panel of its own.
Several runs overlay in the same panels (``rlkit plot RUN RUN ...``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlkit.runs import Run


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average, so noisy episodic rewards show their trend."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _series(run: Run, x: str, metric: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in run.rows:
        if metric in row and x in row:
            xs.append(row[x])
            ys.append(row[metric])
    return xs, ys


def _metrics_of(run: Run) -> list[str]:
    listed = list(run.config.get("plot", {}).get("metrics", []))
    if listed:
        return listed
    x = run.config.get("plot", {}).get("x", "step")
    seen: list[str] = []
    for row in run.rows:
        seen.extend(k for k in row if k not in seen and k not in {x, "step"})
    return seen


def check_plottable(runs: Sequence[Run], metrics: Sequence[str] | None = None) -> None:
    """Refuse, in one line, a plot that would come out empty or drop a run without a word.

    Runs of different tasks are not overlaid: their metrics and x axes differ (a CartPole
    run's reward per timestep against a DPO run's loss per step), so one figure would show
    one of them and silently leave the other out; plot each on its own instead."""
    from rlkit.errors import UsageError

    empty = [str(r.path) for r in runs if not r.rows]
    if empty:
        raise UsageError(f"{empty[0]} has no metrics yet (metrics.csv is missing or empty)")
    tasks = {r.task for r in runs}
    if len(tasks) > 1:
        listed = "; ".join(f"{r.path} is {r.task}" for r in runs)
        raise UsageError(
            f"cannot overlay runs of different tasks ({listed}): their metrics differ; "
            "plot each one on its own"
        )
    if metrics:
        have = {k for r in runs for row in r.rows for k in row}
        missing = [m for m in metrics if m not in have]
        if missing:
            known = sorted(have - {"step"})
            raise UsageError(
                f"no metric {missing[0]!r} in {', '.join(str(r.path) for r in runs)}; "
                f"it has: {', '.join(known)}"
            )


def plot_runs(runs: Sequence[Run], out: Path, metrics: Sequence[str] | None = None) -> Path:
    """Draw one figure for one or more runs and save it as PNG at ``out``."""
    import matplotlib.pyplot as plt

    fig = figure(runs, metrics)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def figure(runs: Sequence[Run], metrics: Sequence[str] | None = None) -> Any:
    """The matplotlib figure of ``plot_runs``, titled with what trained (task, algorithm,
    backend, whose code)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics) if metrics else _metrics_of(runs[0])
    x = runs[0].config.get("plot", {}).get("x", "step")
    headline, rest = names[:2], names[2:]
    n_panels = 1 + len(rest)
    cols = min(n_panels, 3)
    rows = (n_panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    flat = list(axes.flat)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = [
        f"{r.path.name} ({r.algo}, {r.backend}, {r.code})" if len(runs) > 1 else r.path.name
        for r in runs
    ]

    ax = flat[0]
    twin = ax.twinx() if len(headline) == 2 else None
    for i, run in enumerate(runs):
        for j, (axis, metric) in enumerate(zip([ax, twin], headline)):
            if axis is None:
                continue
            xs, ys = _series(run, x, metric)
            if not xs:
                continue
            color = colors[(2 * i + j) % len(colors)]
            style = "-" if j == 0 else "--"
            window = max(1, len(ys) // 25)
            if window > 1:
                axis.plot(xs, ys, style, color=color, alpha=0.25, linewidth=0.8)
            label = f"{metric} ({labels[i]})" if len(runs) > 1 else metric
            axis.plot(xs, smooth(ys, window), style, color=color, linewidth=2, label=label)
            axis.set_ylabel(metric, color=color)
    title = "  vs  ".join(headline)
    ax.set_title(title)
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()
    if twin is not None:
        h2 = twin.get_legend_handles_labels()
        handles = (handles[0] + h2[0], handles[1] + h2[1])
    if handles[0]:
        ax.legend(*handles, loc="best", fontsize=8)

    for panel, metric in zip(flat[1:], rest):
        for i, run in enumerate(runs):
            xs, ys = _series(run, x, metric)
            if xs:
                window = max(1, len(ys) // 25)
                panel.plot(
                    xs, smooth(ys, window), color=colors[(2 * i) % len(colors)], label=labels[i]
                )
        panel.set_title(metric)
        panel.set_xlabel(x)
        panel.grid(alpha=0.3)
        if len(runs) > 1:
            panel.legend(fontsize=7)
    for panel in flat[n_panels:]:
        panel.set_visible(False)

    if len(runs) == 1:
        suptitle = runs[0].title
    else:
        titles = list(dict.fromkeys(r.title for r in runs))
        suptitle = f"{len(runs)} runs: " + ("; ".join(titles) if len(titles) <= 3 else runs[0].task)
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    return fig
