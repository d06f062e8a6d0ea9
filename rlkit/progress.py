"""The progress bar of every training run: steps done of the total (``Trainer.progress()``),
and the latest value of the run's two headline metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlkit.interfaces import Callback, Trainer


class ProgressBar(Callback):
    """A tqdm bar on stderr (``TQDM_DISABLE=1`` hides it), for any Trainer.

    The bar appears with the first metrics, so a run that stops at once (a student's stub)
    prints its one error line and nothing else.
    """

    def __init__(self, desc: str = "training", shown: Sequence[str] = ()) -> None:
        self.desc, self.shown = desc, tuple(shown)
        self.start = 0
        self.bar: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        self.start = trainer.progress().done

    def on_metrics(self, trainer: Trainer, step: int, metrics: Mapping[str, float]) -> None:
        progress = trainer.progress()
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=progress.total,
                initial=min(self.start, progress.total),
                desc=self.desc,
                unit=progress.unit,
                dynamic_ncols=True,
                leave=True,
            )
        self.bar.total = progress.total
        self.bar.update(max(0, min(progress.done, progress.total) - self.bar.n))
        postfix = {_short(k): f"{metrics[k]:.3g}" for k in self.shown if k in metrics}
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)

    def on_train_end(self, trainer: Trainer) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _short(metric: str) -> str:
    """``episode_reward`` → ``reward``, ``rewards/margins`` → ``margins``."""
    return metric.rpartition("/")[2].removeprefix("episode_")
