"""What both CartPole trainers share: the CPU thread count."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` CPU threads meanwhile.

    A 2×64 MLP is far too small to split across threads: one thread is fastest, and on a
    busy 2-core machine two OpenMP threads can be more than ten times slower than one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
