"""A progress bar while an agent learns: timesteps done, and the latest episodic reward."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlkit.interfaces import Callback, Trainer


class ProgressBar(Callback):
    """A tqdm bar over the timesteps (on stderr), for any Trainer that reports ``step``.

    The bar appears with the first update, so a run that stops at once (a student's stub)
    prints its one error line and nothing else.
    """

    def __init__(self, total: int, start: int = 0, desc: str = "training") -> None:
        self.total, self.start, self.desc = total, start, desc
        self.bar: Any = None

    def on_metrics(self, trainer: Trainer, step: int, metrics: Mapping[str, float]) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.start,
                desc=self.desc,
                unit="step",
                dynamic_ncols=True,
                leave=True,
            )
        self.bar.update(max(0, min(step, self.total) - self.bar.n))
        if "episode_reward" in metrics:
            self.bar.set_postfix(reward=f"{metrics['episode_reward']:.1f}", refresh=False)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
