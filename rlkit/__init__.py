"""rlkit: a hands-on reinforcement-learning course as software.

The core (this package) holds only interfaces, the plugin manager, the CLI, run logging and
plotting. It never imports a backend (stable-baselines3, trl, transformers, nbgrader); plugins do.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rlkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]

from rlkit.hookspecs import hookimpl  # noqa: E402 - plugins write `@rlkit.hookimpl`

__all__ += ["hookimpl"]
