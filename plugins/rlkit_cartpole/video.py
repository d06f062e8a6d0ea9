"""A GIF of the agent balancing the pole, from gymnasium's ``rgb_array`` rendering."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlkit.errors import RlkitError, UsageError
from rlkit_cartpole.env import make_env


def record_gif(
    act: Callable[[np.ndarray], np.ndarray],
    path: Path,
    seed: int = 0,
    every: int = 2,
    scale: float = 0.5,
) -> int:
    """Play one episode with ``act`` (batch in, batch out) and write it to ``path`` as a GIF.

    Every ``every``-th frame is kept and shrunk by ``scale``, so a full 500-step episode stays
    a GIF of a few hundred kilobytes that plays in real time (CartPole runs at 50 steps/s).
    Returns the episode's length in steps.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        raise RlkitError("writing a GIF needs pillow: pip install 'rlkit[video]'") from None
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise UsageError(f"--video must name a .gif file, not {path.name}")
    # gymnasium's renderer calls pygame.init(); without a sound card or display SDL would
    # complain on stderr, and we only draw into an off-screen surface anyway
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = make_env(render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
        done, steps = False, 0
        while not done:
            action = int(np.asarray(act(obs[None]))[0])
            obs, _, terminated, truncated, _ = env.step(action)
            done, steps = terminated or truncated, steps + 1
            frames.append(env.render())
    finally:
        env.close()
    images = []
    for frame in frames[::every]:
        image = Image.fromarray(frame)
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        images.append(image.resize(size, Image.Resampling.BILINEAR))
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = env.metadata.get("render_fps", 50)
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=int(1000 * every / fps),
        optimize=False,
    )
    return steps
