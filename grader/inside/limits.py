"""The limits every sandboxed worker gets, defined once.

Imported by the parent (``rlkit_grader.inside.limits``) to fill in defaults and describe them, and by
the code inside the sandbox (as ``limits``) to enforce them. Standard library only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from typing import Any

DEFAULT_LIMITS: dict[str, float] = {
    "call_s": 5,  # one call (an infinite loop costs this much, once per function)
    "import_s": 10,  # importing the student's module
    "wall_s": 30,  # one worker, all its calls (enforced from outside the worker)
    "cpu_s": 30,
    "memory_mb": 2048,  # on top of what torch already maps
    "file_mb": 64,  # one file, and each of the worker's private /tmp and /dev/shm in all
    "processes": 64,  # processes and threads one worker may have
    "spawn": 0,  # 1: a fresh interpreter per worker instead of a fork (automatic off Linux)
}

#: inodes in each private tmpfs (so a flood of empty files cannot eat kernel memory either)
TMPFS_INODES = 4096


def merged(limits: Mapping[str, Any] | None) -> dict[str, float]:
    """The defaults, overridden by ``limits``."""
    return {**DEFAULT_LIMITS, **{k: float(v) for k, v in (limits or {}).items()}}


def tmpfs_options(limits: Mapping[str, Any]) -> bytes:
    """Mount options of a worker's private /tmp and /dev/shm: their size counts against the
    worker's file limit, and they vanish with the worker's mount namespace."""
    size = int(merged(limits)["file_mb"]) * 2**20
    return f"mode=1777,size={size},nr_inodes={TMPFS_INODES}".encode()


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def apply(limits: Mapping[str, Any]) -> None:
    """Hard limits (the code cannot raise them again): CPU, memory, file size, processes."""
    try:
        import resource
    except ImportError:  # Windows: time limits still apply, through the runner
        return
    lim = merged(limits)
    cpu = int(lim["cpu_s"])
    settings = [
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_CPU", cpu, cpu + 1),
        ("RLIMIT_FSIZE", int(lim["file_mb"]) * 2**20, None),
        ("RLIMIT_NPROC", int(lim["processes"]), None),
    ]
    if sys.platform.startswith("linux"):
        settings.append(("RLIMIT_AS", _vm_bytes() + int(lim["memory_mb"]) * 2**20, None))
    for name, soft, hard in settings:
        res = getattr(resource, name, None)
        if res is not None:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(res, (soft, soft if hard is None else hard))
