"""Run exercise functions on given inputs and record what they did as plain arrays.

Two uses:

* in-process (``execute_calls``): the reference when vectors are generated, or a notebook
  cell checking a function it just defined;
* as the sandbox (``python -I worker.py RUNDIR``): a trusted runner imports torch once, then
  forks one worker per exercise (forks are cheap, torch is not). Each worker sets resource
  limits, imports the student's module and runs that exercise's calls, writing one JSON line
  and one ``.npz`` per call. The runner watches deadlines; when a worker dies (crash,
  ``os._exit``, timeout, memory) it records which call killed it and forks a fresh worker for the
  calls of the exercise's other functions.

This file is executed as a script by an isolated interpreter, so it imports only the standard
library, numpy and torch, never the grader package. Nothing here judges anything: the parent
process reads the plain arrays back and computes every verdict.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Result files, one set per worker attempt: ``results.<attempt>.jsonl`` + ``r<id>.npz``.
RUNNER_LOG = "runner.jsonl"
REQUEST = "request.json"
INPUTS = "inputs.npz"


class CallTimeout(BaseException):
    """Raised inside a call that ran past its time limit (a BaseException, so that a student's
    ``except Exception`` does not swallow it)."""


# --------------------------------------------------------------------------- recording calls


def _one_line(exc: BaseException, file: str | None = None) -> str:
    """``TypeError: ... (ppo.py line 12)``: the exception and where in the student file."""
    text = str(exc).strip().splitlines()
    msg = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    if isinstance(exc, SystemExit):
        msg = f"called sys.exit({exc.code!r})"
    if file:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
        if frames:
            msg += f" ({Path(file).name} line {frames[-1].lineno})"
    return msg[:500]


def _to_tensor(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray], torch: Any) -> Any:
    if "array" in spec:
        return torch.from_numpy(np.array(arrays[spec["array"]], copy=True))
    return spec.get("value")


def _record_output(value: Any, torch: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
            arr = t.to(torch.float32).numpy()
        else:
            arr = t.resolve_conj().resolve_neg().numpy()
        meta = {
            "kind": "tensor",
            "dtype": str(value.dtype).replace("torch.", ""),
            "shape": list(value.shape),
            "requires_grad": bool(value.requires_grad),
        }
        return meta, np.array(arr, copy=True)
    if isinstance(value, (bool, int, float)):
        return {"kind": "number", "type": type(value).__name__, "value": value}, None
    if isinstance(value, np.ndarray):
        return {"kind": "ndarray", "dtype": str(value.dtype), "shape": list(value.shape)}, None
    return {"kind": "other", "type": type(value).__name__}, None


def execute_call(
    fns: Any,
    call: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    timeout: float | None = None,
    file: str | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one call and describe it: outputs, gradients, inputs modified in place, errors.

    ``call`` = ``{"function", "args": [spec], "kwargs": {name: spec}, "grad_wrt": [arg
    positions], "cotangents": [array key or None per output]}`` where a spec is
    ``{"array": key}`` or ``{"value": x}``. The gradient of Σ_k Σ(output_k · cotangent_k) with
    respect to each ``grad_wrt`` input is recorded (None when no gradient reaches it).
    ``timeout`` (seconds, main thread only) bounds the call and its backward pass.
    """
    fn = (
        fns.get(call["function"])
        if isinstance(fns, Mapping)
        else getattr(fns, call["function"], None)
    )
    if not callable(fn):
        return {
            "ok": False,
            "error": f"missing function {call['function']}()",
            "error_kind": "missing",
        }, {}
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return _call_and_describe(fn, call, arrays, file)
    except CallTimeout:
        return {
            "ok": False,
            "error": f"took longer than {timeout:g} s (an infinite loop?)",
            "error_kind": "timeout",
        }, {}
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _call_and_describe(
    fn: Any, call: Mapping[str, Any], arrays: Mapping[str, np.ndarray], file: str | None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    import torch

    args = [_to_tensor(s, arrays, torch) for s in call["args"]]
    kwargs = {k: _to_tensor(s, arrays, torch) for k, s in call.get("kwargs", {}).items()}
    grad_wrt = list(call.get("grad_wrt", []))
    for pos in grad_wrt:
        args[pos].requires_grad_(True)
    originals = {
        i: np.array(arrays[s["array"]], copy=True)
        for i, s in enumerate(call["args"])
        if "array" in s
    }
    start = time.perf_counter()
    try:
        with torch.enable_grad():
            result = fn(*args, **kwargs)
    except CallTimeout:
        raise
    except NotImplementedError:
        return {
            "ok": False,
            "error": "not implemented yet (it raises NotImplementedError)",
            "error_kind": "not_implemented",
        }, {}
    except BaseException as exc:  # noqa: BLE001 - anything the student's code raises
        kind = "exit" if isinstance(exc, SystemExit) else "exception"
        return {"ok": False, "error": _one_line(exc, file), "error_kind": kind}, {}
    meta: dict[str, Any] = {"ok": True, "seconds": round(time.perf_counter() - start, 6)}
    out_arrays: dict[str, np.ndarray] = {}
    try:
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        meta["container"] = type(result).__name__ if isinstance(result, (tuple, list)) else "single"
        meta["outputs"] = []
        for k, value in enumerate(outputs):
            m, arr = _record_output(value, torch)
            if arr is not None:
                m["key"] = f"o{k}"
                out_arrays[f"o{k}"] = arr
            meta["outputs"].append(m)
        meta["modified"] = [
            i
            for i, original in originals.items()
            if tuple(args[i].shape) != original.shape
            or not np.array_equal(
                args[i].detach().numpy(), original, equal_nan=original.dtype.kind == "f"
            )
        ]
        meta["grads"] = {}
        if grad_wrt:
            grads, error = _gradients(outputs, args, grad_wrt, call, arrays, torch, file)
            if error:
                meta["grad_error"] = error
            for pos, g in zip(grad_wrt, grads):
                meta["grads"][str(pos)] = None if g is None else f"g{pos}"
                if g is not None:
                    out_arrays[f"g{pos}"] = np.array(g.detach().cpu().numpy(), copy=True)
    except CallTimeout:
        raise
    except BaseException as exc:  # noqa: BLE001 - e.g. a tensor subclass that explodes
        return {
            "ok": False,
            "error": f"returned something unusable ({_one_line(exc)})",
            "error_kind": "exception",
        }, {}
    return meta, out_arrays


def _gradients(
    outputs: list[Any],
    args: list[Any],
    grad_wrt: list[int],
    call: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    torch: Any,
    file: str | None,
) -> tuple[list[Any], str | None]:
    """d Σ_k Σ(output_k · cotangent_k) / d args[grad_wrt]; None where no gradient reaches."""
    terms = []
    for k, key in enumerate(call.get("cotangents", [])):
        o = outputs[k] if key is not None and k < len(outputs) else None
        if isinstance(o, torch.Tensor) and o.requires_grad:
            c = torch.from_numpy(np.array(arrays[key])).to(o.dtype)
            if tuple(c.shape) == tuple(o.shape):
                terms.append((o * c).sum())
    if not terms:
        return [None] * len(grad_wrt), None
    try:
        inputs = [args[p] for p in grad_wrt]
        return list(torch.autograd.grad(sum(terms), inputs, allow_unused=True)), None
    except CallTimeout:
        raise
    except BaseException as exc:  # noqa: BLE001
        return [None] * len(grad_wrt), _one_line(exc, file)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Tiny tensors run fastest on one thread: with more, each op may wait on busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute_calls(
    fns: Any, calls: list[Mapping[str, Any]], arrays: Mapping[str, np.ndarray]
) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """``execute_call`` for each call, in-process and without limits (trusted code)."""
    with single_thread():
        return [execute_call(fns, c, arrays) for c in calls]


# --------------------------------------------------------------------------- the sandbox


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit(limits: Mapping[str, Any]) -> None:
    try:
        import resource
    except ImportError:  # Windows: time limits still apply, through the runner
        return
    mem = int(limits.get("memory_mb", 2048)) * 2**20
    settings = [
        ("RLIMIT_CORE", 0),
        ("RLIMIT_CPU", int(limits.get("cpu_s", 30))),
        ("RLIMIT_FSIZE", int(limits.get("file_mb", 64)) * 2**20),
    ]
    if sys.platform.startswith("linux"):
        settings.append(("RLIMIT_AS", _vm_bytes() + mem))
    for name, value in settings:
        res = getattr(resource, name, None)
        if res is None:
            continue
        hard = value + 1 if name == "RLIMIT_CPU" else value
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, hard))


def _quiet_stdio(job: Path) -> None:
    """The student's prints go nowhere; stderr goes to a file capped by RLIMIT_FSIZE."""
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    err = os.open(job / "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(err, 2)


def worker_main(job: Path, attempt: int, call_ids: list[int]) -> None:
    """One worker: import the student's module, run the calls, write results; then exit."""
    request = json.loads((job / REQUEST).read_text())
    limits = request.get("limits", {})
    with contextlib.suppress(OSError):
        os.setsid()
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails, not the process

    def on_alarm(signum: int, frame: Any) -> None:
        raise CallTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    _quiet_stdio(job)
    _limit(limits)
    arrays = dict(np.load(job / INPUTS, allow_pickle=False))
    out = open(job / f"results.{attempt}.jsonl", "a", buffering=1)  # noqa: SIM115

    def emit(record: dict[str, Any]) -> None:
        out.write(json.dumps(record) + "\n")
        out.flush()

    file = request["module_path"]
    folder = str(Path(file).parent)
    if folder not in sys.path:
        sys.path.append(folder)  # so a student's ppo.py may `import log_prob`
    try:
        spec = importlib.util.spec_from_file_location(request["module_name"], file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[request["module_name"]] = module
        signal.setitimer(signal.ITIMER_REAL, float(limits.get("import_s", 10)))
        try:
            spec.loader.exec_module(module)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except SyntaxError as exc:
        emit({"import_error": f"syntax error at {Path(file).name} line {exc.lineno}: {exc.msg}"})
        return
    except CallTimeout:
        emit(
            {
                "import_error": f"importing {Path(file).name} took longer than "
                f"{limits.get('import_s', 10)} s (code running at import time?)"
            }
        )
        return
    except BaseException as exc:  # noqa: BLE001
        emit({"import_error": f"{Path(file).name} failed to import: {_one_line(exc, file)}"})
        return
    emit({"import": "ok"})
    calls = request["calls"]
    slow: set[str] = set()  # functions that already timed out: one timeout each is enough
    for i in call_ids:
        function = calls[i]["function"]
        if function in slow:
            emit(
                {
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
        meta["id"] = i
        if arrs:
            try:
                np.savez(job / f"r{i}.npz", **arrs)
                meta["npz"] = f"r{i}.npz"
            except BaseException as exc:  # noqa: BLE001 - e.g. the file size limit
                meta = {
                    "id": i,
                    "ok": False,
                    "error": f"results too large to record ({exc})",
                    "error_kind": "exception",
                }
        emit(meta)


class _Worker:
    """A worker process (forked from the runner, or spawned where fork is unsafe)."""

    def __init__(self, job: Path, attempt: int, ids: list[int], use_fork: bool) -> None:
        self.job, self.attempt, self.ids = job, attempt, ids
        self.pid = -1
        self.proc: Any = None
        if use_fork:
            pid = os.fork()
            if pid == 0:  # the worker
                code = 0
                try:
                    worker_main(job, attempt, ids)
                except BaseException:  # noqa: BLE001
                    code = 3
                finally:
                    os._exit(code)
            self.pid = pid
        else:
            import subprocess

            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    __file__,
                    "--worker",
                    str(job),
                    str(attempt),
                    ",".join(map(str, ids)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.pid = self.proc.pid

    def poll(self) -> int | None:
        """None while running; else the exit status (negative: killed by that signal)."""
        if self.proc is not None:
            return self.proc.poll()
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def wait(self) -> None:
        if self.proc is not None:
            self.proc.wait()
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)

    def kill(self) -> None:
        for kill in (
            lambda: os.killpg(self.pid, signal.SIGKILL),
            lambda: os.kill(self.pid, signal.SIGKILL),
        ):
            with contextlib.suppress(OSError, AttributeError):
                kill()


def read_results(job: Path) -> dict[str, Any]:
    """Merge what the workers and the runner wrote: ``{"import_error", "calls": {id: meta}}``."""
    merged: dict[str, Any] = {"import_error": None, "imported": False, "calls": {}}
    files = sorted(job.glob("results.*.jsonl")) + [job / RUNNER_LOG]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if not isinstance(record, dict):
                continue
            if "import_error" in record and merged["import_error"] is None:
                merged["import_error"] = str(record["import_error"])
            elif record.get("import") == "ok":
                merged["imported"] = True
            elif isinstance(record.get("id"), int):
                merged["calls"].setdefault(record["id"], record)
    return merged


def _death(status: int | None, timed_out: bool, limits: Mapping[str, Any]) -> str:
    if timed_out:
        return f"ran past the {limits.get('wall_s', 20):g} s time limit (an infinite loop?)"
    if status is not None and status < 0:
        sig = -status
        if sig == getattr(signal, "SIGXCPU", -1):
            return f"used more than {limits.get('cpu_s', 30)} s of CPU time"
        if sig == signal.SIGKILL:
            return "was killed (out of memory?)"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"crashed the process (signal {name})"
    return f"ended the process (exit code {status}; os._exit or a fatal error?)"


def run(rundir: Path, spawn: bool = False) -> None:
    """The runner: one worker per job, all at once; restart after a death for what is left.

    Workers are forked after torch is imported once (Linux), or spawned as fresh interpreters
    where forking a process that loaded torch is unsafe (macOS, Windows) or ``spawn`` asks.
    """
    use_fork = hasattr(os, "fork") and sys.platform.startswith("linux") and not spawn
    if use_fork:
        import torch  # noqa: F401 - imported once here, shared by every forked worker

    # The parent prepares the jobs while torch loads, then sends their folder names on stdin.
    jobs = [rundir / str(d) for d in json.loads(sys.stdin.read() or "[]")]
    state = {}
    for job in jobs:
        request = json.loads((job / REQUEST).read_text())
        ids = list(range(len(request["calls"])))
        state[job] = {
            "request": request,
            "pending": ids,
            "attempt": 0,
            "worker": None,
            "deadline": 0.0,
            "done": not ids,
        }
    log = {job: open(job / RUNNER_LOG, "a", buffering=1) for job in jobs}  # noqa: SIM115
    pids = open(rundir / "pids", "a", buffering=1)  # noqa: SIM115

    def start(job: Path) -> None:
        s = state[job]
        w = _Worker(job, s["attempt"], s["pending"], use_fork)
        pids.write(f"{w.pid}\n")
        s["worker"] = w
        startup = 0.0 if use_fork else 60.0  # a spawned worker imports torch itself first
        s["deadline"] = time.monotonic() + startup + float(s["request"]["limits"].get("wall_s", 20))

    def record(job: Path, entry: dict[str, Any]) -> None:
        log[job].write(json.dumps(entry) + "\n")

    def after_exit(job: Path, status: int | None, timed_out: bool) -> None:
        """A worker ended: done, or blame the call it was running and go on without it."""
        s = state[job]
        merged = read_results(job)
        reason = _death(status, timed_out, s["request"]["limits"])
        if merged["import_error"] or not merged["imported"]:
            if not merged["import_error"]:
                record(job, {"import_error": f"importing the module {reason}"})
            s["done"] = True
            return
        left = [i for i in s["pending"] if i not in merged["calls"]]
        if not left:
            s["done"] = True
            return
        calls = s["request"]["calls"]
        function = calls[left[0]]["function"]
        record(
            job,
            {"id": left[0], "ok": False, "error_kind": "fatal", "error": f"{function}() {reason}"},
        )
        for i in left[1:]:
            if calls[i]["function"] == function:
                record(
                    job,
                    {
                        "id": i,
                        "ok": False,
                        "error_kind": "fatal",
                        "error": f"not run: {function}() {reason} on an earlier input",
                    },
                )
        s["pending"] = [i for i in left[1:] if calls[i]["function"] != function]
        s["attempt"] += 1
        if s["pending"]:
            start(job)
        else:
            s["done"] = True

    for job in jobs:
        if not state[job]["done"]:
            start(job)
    while not all(s["done"] for s in state.values()):
        time.sleep(0.005)
        for job, s in state.items():
            if s["done"]:
                continue
            w = s["worker"]
            status = w.poll()
            timed_out = status is None and time.monotonic() > s["deadline"]
            if status is None and not timed_out:
                continue
            if timed_out:
                w.kill()
                w.wait()
            w.kill()  # anything the worker left behind in its process group
            after_exit(job, status, timed_out)
    for f in [*log.values(), pids]:
        f.close()


if __name__ == "__main__":
    status = 0
    try:
        if len(sys.argv) == 5 and sys.argv[1] == "--worker":
            import torch  # noqa: F401

            ids = [int(i) for i in sys.argv[4].split(",") if i]
            worker_main(Path(sys.argv[2]), int(sys.argv[3]), ids)
        else:
            run(Path(sys.argv[1]), spawn="--spawn" in sys.argv[2:])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        status = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skips torch's slow interpreter teardown (about a second)
