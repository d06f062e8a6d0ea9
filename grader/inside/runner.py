"""The trusted runner: the one process inside the sandbox that talks to the parent.

``python -I runner.py [--nested] [--spawn]`` imports torch once, forks the **zygote** (before
any submission is read), says ``hello`` on stdout, then serves students one after the other
(frames of ``protocol.py`` on stdin/stdout). For each job it asks the zygote for a worker: the
zygote forks one and hands it three pipes the runner made (its job, its results, its control
line), so a worker's memory holds what the zygote held (torch, no student data) plus its own
job. The runner writes the job, forwards the records it accepts (right job, a call this worker
was asked to run, first answer only, under the size caps) and enforces each worker's wall-clock
deadline with SIGKILL. When a worker dies (crash, ``os._exit``, timeout, memory) the runner
blames the call it was running and gets a fresh worker for the calls of the other functions.

Only the standard library, numpy, torch and the files beside it are imported here.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if not os.path.exists(os.path.join(sys.path[0], "protocol.py")):  # run from the repository
    sys.path.insert(1, os.path.dirname(sys.path[0]))

import isolation  # noqa: E402
import limits as limits_mod  # noqa: E402
import protocol  # noqa: E402
import worker  # noqa: E402

# --------------------------------------------------------------------------- the zygote


class Zygote:
    """A process forked before any submission is read; it forks every worker. It receives only
    a one-byte request with three descriptors, and answers the new worker's pid."""

    def __init__(self, nested: bool) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ours.close()
                self._serve(theirs, nested)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
                code = 3
            finally:
                os._exit(code)
        theirs.close()
        self.pid, self.sock = pid, ours
        self.sock.settimeout(30)

    @staticmethod
    def _serve(sock: socket.socket, nested: bool) -> None:
        isolation.close_fds({sock.fileno(), 2})
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):  # the parent's pipes stay with the runner
            os.dup2(devnull, fd)
        os.close(devnull)
        if sys.platform.startswith("linux"):
            isolation.libc().prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
        while True:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 3)
            if not msg or len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                return
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    sock.close()
                    code = worker.run(*fds, nested=nested)
                except BaseException:  # noqa: BLE001
                    traceback.print_exc()
                finally:
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            sock.send(f"{pid}".encode())

    def fork(self, job_fd: int, out: int, ctrl: int) -> int:
        """A new worker holding these three descriptors; its pid."""
        socket.send_fds(self.sock, [b"f"], [job_fd, out, ctrl])
        return int(self.sock.recv(32).decode())


# --------------------------------------------------------------------------- one worker


def _array_keys(request: Mapping[str, Any]) -> set[str]:
    specs = [*request.get("args", []), *request.get("kwargs", {}).values()]
    keys = {s["array"] for s in specs if isinstance(s, Mapping) and "array" in s}
    return keys | {k for k in request.get("cotangents", []) or [] if isinstance(k, str)}


class Worker:
    """One attempt at one job: a process (forked by the zygote, or spawned) and its pipes."""

    def __init__(self, runner: Runner, index: int, ids: list[int]) -> None:
        self.index, self.ids = index, ids
        self.job = runner.jobs[index]
        self.pid = -1  # the worker's outer process
        self.inner = -1  # the process running the student's code (nested: pid 1 of its PID ns)
        self.status: int | None = None  # the student's process's wait status, when known
        self.exited = False
        self.proc: Any = None
        wanted = set().union(*(_array_keys(self.job["calls"][i]) for i in ids)) if ids else set()
        arrays = {k: v for k, v in runner.arrays_of(index).items() if k in wanted}
        frame = protocol.encode(
            {"type": "job", "job": {**self.job, "nested": runner.nested}, "ids": ids}, arrays
        )
        r, w = os.pipe()
        if runner.spawn:
            self.ctrl = -1
            self._spawn(w, frame)
        else:
            jr, jw = os.pipe()
            cr, cw = os.pipe()
            self.ctrl = cr
            try:
                self.pid = runner.zygote.fork(jr, w, cw)
            finally:
                for fd in (jr, w, cw):
                    os.close(fd)
            os.set_blocking(jw, False)
            try:
                protocol.write_all(jw, frame, time.monotonic() + 30)
            except (OSError, TimeoutError):
                pass  # it died before reading its job: blamed when it ends
            finally:
                os.close(jw)
            os.set_blocking(cr, False)
        os.set_blocking(r, False)
        self.reader = protocol.Reader(r, protocol.MAX_CALL_BYTES, protocol.MAX_JOB_BYTES)
        self.ctrl_buffer = b""
        lim = limits_mod.merged(self.job.get("limits", {}))
        self.deadline = time.monotonic() + lim["wall_s"] + (60 if runner.spawn else 0)

    def _spawn(self, w: int, frame: bytes) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE,
            stdout=w,
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        self.pid = self.inner = self.proc.pid
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(frame)
            self.proc.stdin.close()

    def fds(self) -> list[int]:
        return [fd for fd in (self.reader.fd if not self.reader.eof else -1, self.ctrl) if fd >= 0]

    def read_ctrl(self) -> None:
        """``pid N`` (the student's process) and ``exit STATUS`` (its end), from our outer
        process; end of file: the outer process is gone."""
        if self.ctrl < 0 or self.exited:
            return
        eof = False
        with contextlib.suppress(BlockingIOError, OSError):
            while len(self.ctrl_buffer) < 256:
                chunk = os.read(self.ctrl, 64)
                if not chunk:
                    eof = True
                    break
                self.ctrl_buffer += chunk
        for line in self.ctrl_buffer.decode(errors="replace").splitlines(keepends=True):
            words = line.split()
            if not line.endswith("\n") or len(words) != 2:
                continue
            with contextlib.suppress(ValueError):
                if words[0] == "pid" and self.inner < 0:
                    self.inner = int(words[1])
                elif words[0] == "exit" and self.status is None:
                    self.status = int(words[1])
        if eof:
            self.exited = True

    def poll(self) -> bool:
        """True once the worker's processes have ended."""
        if self.proc is not None and not self.exited:
            code = self.proc.poll()
            if code is not None:
                self.status = -code if code < 0 else code << 8  # as a raw wait status
                self.exited = True
        return self.exited

    def kill(self) -> None:
        """SIGKILL the worker (and, nested, its whole PID namespace; else its session)."""
        for pid in (self.inner, self.pid):
            if pid > 0:
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(OSError, AttributeError):
                        kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for fd in (self.reader.fd, self.ctrl):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self.proc is not None:
            self.proc.wait()


# --------------------------------------------------------------------------- the runner


def _death(status: int | None, timed_out: bool, lim: Mapping[str, float]) -> str:
    if timed_out:
        return f"ran past the {lim['wall_s']:g} s time limit (an infinite loop?)"
    if status is None:
        return "ended the process (killed?)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == getattr(signal, "SIGXCPU", -1):
            return f"used more than {lim['cpu_s']:g} s of CPU time"
        if sig == signal.SIGKILL:
            return "was killed (out of memory or CPU time?)"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"crashed the process (signal {name})"
    return f"ended the process (exit code {os.WEXITSTATUS(status)}; os._exit or a fatal error?)"


class Runner:
    """Serves students one after the other; each student's jobs run at once."""

    def __init__(self, nested: bool, spawn: bool) -> None:
        self.nested, self.spawn = nested, spawn
        self.zygote: Zygote | None = None if spawn else Zygote(nested)
        self.jobs: list[dict[str, Any]] = []
        self.arrays: dict[str, Any] = {}

    def arrays_of(self, index: int) -> dict[str, Any]:
        prefix = f"{index}/"
        return {k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    def send(self, message: dict[str, Any], arrays: Mapping[str, Any] | None = None) -> None:
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
            fds = [fd for w in workers.values() for fd in w.fds()]
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
                    continue  # killed: its end is seen on the next turn
                if not done or (not w.reader.eof and not broken and not timed_out):
                    continue
                w.kill()  # anything it left behind
                w.close()
                del workers[i]
                self._after_exit(i, w, broken, timed_out, pending, imported, start)
        self.jobs, self.arrays = [], {}
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
        lim = limits_mod.merged(self.jobs[i].get("limits", {}))
        reason = broken or _death(w.status, timed_out, lim)
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
        fail = {"type": "call", "job": i, "ok": False, "error_kind": "fatal"}
        self.send({**fail, "id": left[0], "error": f"{function}() {reason}"})
        for c in left[1:]:
            if calls[c]["function"] == function:
                error = f"not run: {function}() {reason} on an earlier input"
                self.send({**fail, "id": c, "error": error})
        pending[i] = [c for c in left[1:] if calls[c]["function"] != function]
        if pending[i]:
            start(i)


def serve(nested: bool, spawn: bool) -> None:
    if not spawn:
        import gc

        import executor  # noqa: F401 - so workers fork with it loaded
        import torch  # noqa: F401 - imported once here, shared by every forked worker

        # Workers never collect the zygote's objects: without this, a worker's first full
        # collection walks (and so copies, page by page) everything torch allocated.
        gc.freeze()
    lib = isolation.libc() if sys.platform.startswith("linux") else None
    if lib is not None:
        lib.prctl(isolation.PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace, no /proc/<pid>/mem of ours
    why = None
    if nested:
        why = isolation.probe_nested(limits_mod.tmpfs_options({}))
        nested = why is None
    isolation_text = (
        "each worker forked from a process that never held a submission, in its own "
        "user/pid/mount/ipc/net namespaces, private size-capped /tmp and /dev/shm as its "
        "working directory, its own /proc, no capabilities"
        if nested
        else "each worker forked from a process that never held a submission, in its own "
        "process group and scratch folder" + (f" (nested namespaces failed: {why})" if why else "")
    )
    runner = Runner(nested, spawn)  # the zygote is forked here: before any submission is read
    uid_map = ""
    with contextlib.suppress(OSError), open("/proc/self/uid_map") as f:
        uid_map = f.read().strip()
    hello = {"isolation": isolation_text, "nested": nested, "uid": os.getuid(), "uid_map": uid_map}
    runner.send({"type": "hello", **hello})
    reader = protocol.Reader(0, protocol.MAX_JOB_BYTES * 4)
    while True:
        frame = reader.read(time.monotonic() + 10**9)
        if frame is None or frame[0].get("type") != "student":
            return
        message, arrays = frame
        runner.serve_student(list(message.get("jobs", [])), arrays)
        del message, arrays, frame


if __name__ == "__main__":
    status = 0
    try:
        if sys.argv[1:2] == ["--worker"]:
            worker.spawned()
        else:
            serve(nested="--nested" in sys.argv[1:], spawn="--spawn" in sys.argv[1:])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        status = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skips torch's slow interpreter teardown (about a second)
