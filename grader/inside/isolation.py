"""A worker's isolation: its own user, PID, mount, IPC and network namespaces, a fresh /proc,
private size-capped /tmp and /dev/shm, no capabilities, and no inherited descriptors.

Every mount a worker gets is made here (the sandbox-wide ones are bubblewrap's, in
``grader/sandbox.py``). Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Any

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
CLONE_NEWIPC, CLONE_NEWNET = 0x08000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE, MS_BIND = 2, 4, 8, 16384, 1 << 18, 4096
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
NESTED = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET
PRIVATE_DIRS = ("/tmp", "/dev/shm")


def libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def drop_capabilities(lib: Any) -> None:
    """No capabilities left, not even in the worker's own namespaces (so it cannot undo the
    mounts that hide the runner's /tmp and /proc)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    header = Header(0x20080522, 0)
    data = (Data * 2)()
    check(lib.capset(ctypes.byref(header), data), "capset")
    lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def enter_namespaces(lib: Any) -> None:
    """New user, PID (for our children), mount, IPC and network namespaces, mapping only our
    own uid/gid."""
    uid, gid = os.getuid(), os.getgid()
    lib.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the runner is not; our own /proc/self must be ours
    check(lib.unshare(NESTED), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def private_mounts(lib: Any, tmpfs_options: bytes) -> None:
    """As pid 1 of the worker's PID namespace: a fresh /proc that shows only the worker's
    processes, and fresh empty /tmp and /dev/shm, size-capped, shared with nobody, gone when
    the worker is."""
    check(lib.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate")
    for where in PRIVATE_DIRS:
        if os.path.isdir(where):
            flags = MS_NOSUID | MS_NODEV
            check(lib.mount(b"tmpfs", where.encode(), b"tmpfs", flags, tmpfs_options), "tmpfs")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if lib.mount(b"proc", b"/proc", b"proc", flags, None) != 0:
        check(lib.mount(b"tmpfs", b"/proc", b"tmpfs", flags, b"size=4k"), "hide /proc")


def close_fds(keep: set[int]) -> None:
    """Close every inherited descriptor but ``keep`` and 0-2 (so no other pipe is reachable)."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def quiet_stdio() -> None:
    """Descriptors 0-2 lead nowhere (the student's prints, and errors, go nowhere)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def probe_nested(tmpfs_options: bytes) -> str | None:
    """Can a worker isolate itself here? None if so, else why not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            lib = libc()
            enter_namespaces(lib)
            child = os.fork()
            if child == 0:
                try:
                    private_mounts(lib, tmpfs_options)
                    drop_capabilities(lib)
                except BaseException as exc:  # noqa: BLE001
                    os.write(w, str(exc).encode()[:200])
                    os._exit(1)
                os._exit(0)
            _, status = os.waitpid(child, 0)
            os._exit(0 if status == 0 else 1)
        except BaseException as exc:  # noqa: BLE001
            os.write(w, str(exc).encode()[:200])
            os._exit(1)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as f:
        why = f.read().decode(errors="replace")
    return None if status == 0 else (why or f"status {status}")
