"""One worker: the process that imports a student's module and runs its calls.

A worker is forked from the runner's zygote (a process forked before any submission was read),
so its memory holds nothing of any other student: it reads its own job (the sources, the calls
and only their input arrays) from a pipe of its own. ``run`` is the worker's outer process: it
isolates itself, forks the process that runs the student's code (pid 1 of a new PID namespace
when nested, so everything the code starts dies with it), and reports that process's pid and
its end on the control pipe, since the runner is not its parent.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import isolation
import limits as limits_mod
import protocol

SUBMISSION_DIR = "submission"
#: modules of ours a submission must not find by name (we keep our own references)
OWN_MODULES = ("protocol", "executor", "worker", "isolation", "limits", "runner", "__main__")


def read_job(fd: int, seconds: float = 60) -> tuple[dict[str, Any], dict[str, Any], list[int]]:
    """The job frame (sent by the runner, read before any student code runs)."""
    frame = protocol.Reader(fd, protocol.MAX_JOB_BYTES).read(time.monotonic() + seconds)
    if frame is None or frame[0].get("type") != "job":
        raise RuntimeError("no job")
    message, arrays = frame
    return dict(message["job"]), arrays, [int(i) for i in message["ids"]]


def run(job_fd: int, out: int, ctrl: int, nested: bool) -> int:
    """The worker's outer process (forked from the zygote): isolate, fork the student's
    process, report ``pid N`` and then ``exit STATUS`` on ``ctrl``; returns our exit code."""
    isolation.close_fds({job_fd, out, ctrl})
    lib = isolation.libc() if sys.platform.startswith("linux") else None
    if nested:
        isolation.enter_namespaces(lib)
    scratch = None if nested else tempfile.mkdtemp(prefix="rlkit-worker-")
    inner = os.fork()
    if inner == 0:
        code = 3
        try:
            os.close(ctrl)
            if lib is not None:
                lib.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            job, arrays, ids = read_job(job_fd)
            os.close(job_fd)
            if nested:
                isolation.private_mounts(lib, limits_mod.tmpfs_options(job.get("limits", {})))
                isolation.drop_capabilities(lib)
            worker_main(job, arrays, ids, out, Path("/tmp" if nested else scratch))
            code = 0
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()  # into the runner's stderr (unless the worker quieted it)
        finally:
            os._exit(code)
    os.close(out)
    os.close(job_fd)
    os.write(ctrl, f"pid {inner}\n".encode())
    _, status = os.waitpid(inner, 0)
    if scratch is not None:
        with contextlib.suppress(OSError):
            os.killpg(inner, signal.SIGKILL)  # whatever it left running, before its files go
        shutil.rmtree(scratch, ignore_errors=True)
    os.write(ctrl, f"exit {status}\n".encode())
    return 0


def worker_main(
    job: Mapping[str, Any], arrays: Mapping[str, Any], ids: list[int], out: int, base: Path
) -> None:
    """Import the student's module from its source and run the calls, one record each. The
    student's files go into ``base/submission``, the working directory (``base`` is the
    worker's private /tmp when nested)."""
    from executor import CallTimeout, _one_line, execute_call, pin

    encode, write_all, max_call = protocol.encode, protocol.write_all, protocol.MAX_CALL_BYTES
    lim = limits_mod.merged(job.get("limits", {}))

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
    folder = base / SUBMISSION_DIR
    folder.mkdir(exist_ok=True)
    for name, source in job.get("files", {}).items():
        if "/" not in name and name.endswith(".py"):
            (folder / name).write_text(source)
    os.chdir(folder)
    sys.stdout.flush()
    sys.stderr.flush()
    isolation.quiet_stdio()
    limits_mod.apply(lim)
    for own in OWN_MODULES:
        sys.modules.pop(own, None)
    name = job["module"]
    file = str(folder / f"{name}.py")
    sys.path.insert(0, str(folder))  # so a student's ppo.py may `import log_prob`
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        signal.setitimer(signal.ITIMER_REAL, float(lim["import_s"]))
        try:
            spec.loader.exec_module(module)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except SyntaxError as exc:
        emit({"type": "import", "error": f"syntax error at {name}.py line {exc.lineno}: {exc.msg}"})
        return
    except CallTimeout:
        emit(
            {
                "type": "import",
                "error": f"importing {name}.py took longer than {lim['import_s']:g} s "
                "(code running at import time?)",
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
        meta, arrs = execute_call(module, calls[i], arrays, timeout=float(lim["call_s"]), file=file)
        if meta.get("error_kind") == "timeout":
            slow.add(function)
        size = sum(int(a.nbytes) for a in arrs.values())
        if size > max_call:
            meta, arrs = (
                {
                    "ok": False,
                    "error": f"returned {size / 2**20:.0f} MB of results, more than the "
                    f"{max_call >> 20} MB the grader reads",
                    "error_kind": "exception",
                },
                {},
            )
        emit({**meta, "type": "call", "id": i}, arrs)


def spawned() -> None:
    """``runner.py --worker`` (no fork available): a fresh interpreter reads its job on stdin
    and answers on stdout, in a scratch folder removed afterwards."""
    import torch  # noqa: F401

    out = os.dup(1)
    job, arrays, ids = read_job(0, 600)
    scratch = tempfile.mkdtemp(prefix="rlkit-worker-")
    try:
        worker_main(job, arrays, ids, out, Path(scratch))
    finally:
        with contextlib.suppress(OSError):
            os.chdir(tempfile.gettempdir())
        shutil.rmtree(scratch, ignore_errors=True)
