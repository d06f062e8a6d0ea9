"""A run directory: everything one training run leaves behind.

    RUN/
      config.json     every setting, the task/backend, versions of rlkit and its libraries
      metrics.csv     one row per logged step (wide: one column per metric)
      tb/             TensorBoard event files (``tensorboard --logdir RUN``)
      curves.png      the plot a student looks at first
      model/          what the trainer needs to evaluate or resume

``Run`` is also a Callback, so any Trainer can log into one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Trainer

CONFIG = "config.json"
METRICS = "metrics.csv"
PLOT = "curves.png"
MODEL = "model"
TENSORBOARD = "tb"


@contextlib.contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """Write to a temporary sibling, then rename it over ``path``: a save interrupted by
    Ctrl-C never leaves half a checkpoint behind (the previous one stays)."""
    partial = path.with_name(path.name + ".partial")
    yield partial
    os.replace(partial, path)


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written whole: a trainer's ``trainer.json``, a run's
    ``config.json``."""
    with written_whole(Path(path)) as partial:
        partial.write_text(json.dumps(data, indent=2) + "\n")


_VERSIONED = ("rlkit", "torch", "gymnasium", "numpy", "stable-baselines3", "trl", "transformers")


def library_versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Installed versions of the libraries that shape a run's result."""
    found = {"python": platform.python_version()}
    for dist in (*_VERSIONED, *extra):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def default_run_dir(task: str, backend: str, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{task}-{backend}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{task}-{backend}-{stamp}-{n}"
    return path


class Run(Callback):
    """One run directory; log metrics into it step by step."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = Path(path)
        self.config = config
        self._columns: list[str] = []
        self._rows: list[dict[str, float]] = []
        self._writer: Any = None
        self._tensorboard = True

    # -- creating and opening -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: Path | None,
        task: str,
        backend: str,
        settings: Mapping[str, Any],
        plot_metrics: Sequence[str] = (),
        x_metric: str = "step",
        algo: str | None = None,
    ) -> Run:
        """Start a new run directory (``path`` must not hold a run already)."""
        path = Path(path) if path is not None else default_run_dir(task, backend)
        if (path / CONFIG).exists():
            raise UsageError(f"{path} already holds a run; pick a new --out or use --resume {path}")
        path.mkdir(parents=True, exist_ok=True)
        config = {
            "task": task,
            "backend": backend,
            "algo": algo if algo is not None else settings.get("algo", task),
            "settings": _jsonable(dict(settings)),
            "plot": {"x": x_metric, "metrics": list(plot_metrics)},
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        run = cls(path, config)
        run.save_config()
        return run

    @classmethod
    def open(cls, path: Path | str) -> Run:
        """Open an existing run directory (to evaluate, plot or resume it)."""
        path = Path(path)
        config_file = path / CONFIG
        if not path.is_dir():
            raise UsageError(f"{path} is not a run directory (no such folder)")
        try:
            config = json.loads(config_file.read_text())
        except FileNotFoundError:
            raise UsageError(f"{path} is not a run directory: it has no {CONFIG}") from None
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{config_file} is unreadable ({exc}); the run cannot be used"
            ) from None
        if not isinstance(config, dict) or "task" not in config or "backend" not in config:
            raise UsageError(f"{config_file} does not name a task and backend; not an rlkit run")
        run = cls(path, config)
        run._rows = read_metrics(path / METRICS)
        for row in run._rows:
            for key in row:
                if key not in run._columns:
                    run._columns.append(key)
        return run

    def save_config(self) -> None:
        write_json(self.path / CONFIG, self.config)

    # -- paths -----------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return str(self.config["task"])

    @property
    def backend(self) -> str:
        return str(self.config["backend"])

    @property
    def algo(self) -> str:
        """The algorithm (older runs recorded it in their settings only)."""
        return str(self.config.get("algo") or self.settings.get("algo") or self.task)

    @property
    def code(self) -> str:
        """Whose code trained: "your code" (``--path``/``--impl student``), "reference
        solution", or the backend library's own."""
        impl = self.settings.get("impl")
        if impl == "student":
            return "your code"
        if impl == "solution":
            return "reference solution"
        return f"{self.backend}'s own code"

    @property
    def title(self) -> str:
        """``cartpole · reinforce · native · your code``: what a plot is of."""
        return f"{self.task} · {self.algo} · {self.backend} · {self.code}"

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config.get("settings", {}))

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL

    @property
    def rows(self) -> list[dict[str, float]]:
        return list(self._rows)

    # -- logging ---------------------------------------------------------------------------
    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one row to metrics.csv and one point per metric to TensorBoard."""
        x_name = self.config.get("plot", {}).get("x", "step")
        row = {"step": float(step), **{k: float(v) for k, v in metrics.items()}}
        row.setdefault(x_name, float(step))
        new_columns = [k for k in row if k not in self._columns]
        self._columns.extend(new_columns)
        self._rows.append(row)
        metrics_file = self.path / METRICS
        if new_columns or not metrics_file.exists():
            self._write_all(metrics_file)
        else:
            with metrics_file.open("a", newline="") as fh:
                csv.DictWriter(fh, self._columns).writerow(_csv_row(row))
        writer = self._tb()
        if writer is not None:
            for key, value in metrics.items():
                if math.isfinite(float(value)):
                    writer.add_scalar(key, float(value), int(row.get(x_name, step)))

    def _write_all(self, metrics_file: Path) -> None:
        with metrics_file.open("w", newline="") as fh:
            out = csv.DictWriter(fh, self._columns)
            out.writeheader()
            out.writerows(_csv_row(r) for r in self._rows)

    def _tb(self) -> Any:
        if self._writer is None and self._tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard missing: CSV and plots still work
                self._tensorboard = False
                return None
            self._writer = SummaryWriter(log_dir=str(self.path / TENSORBOARD))
        return self._writer

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def plot(self) -> Path:
        """Draw ``curves.png`` from metrics.csv."""
        from rlkit.plotting import plot_runs

        return plot_runs([self], self.path / PLOT)

    # -- Callback --------------------------------------------------------------------------
    def on_metrics(self, trainer: Trainer, step: int, metrics: Mapping[str, float]) -> None:
        self.log(step, metrics)

    def on_train_end(self, trainer: Trainer) -> None:
        self.flush()


def _csv_row(row: Mapping[str, float]) -> dict[str, str]:
    return {k: repr(v) if isinstance(v, float) else str(v) for k, v in row.items()}


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as dicts of floats (missing cells left out)."""
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for key, value in raw.items():
                if key is None or value in (None, ""):
                    continue
                try:
                    row[key] = float(value)
                except ValueError:
                    continue
            rows.append(row)
    return rows


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
