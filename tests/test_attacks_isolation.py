"""Nothing of one student reaches another, and hidden inputs never reach text a student sees.

A class graded in one bubblewrap sandbox, one student after the other (``jobs=1``: the setting
where a runner serves many students). The honest student is graded first; the attackers after
it try to find the honest source in their own memory, to read what an earlier student left in
/tmp, /dev/shm or the working directory, to fill the sandbox's memory with files, and to copy
the inputs they were given into error text. Each attacker is the same wrong code as the
baseline plus an attack that switches to the right answer only if it works.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from attack_kit import attacker

from rlkit_grader.api import check_workspaces, load_vectors, select_exercises
from rlkit_grader.records import HIDDEN, PUBLIC

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = (ROOT / "solutions" / "ppo.py").read_text()
LIMITS = {"call_s": 2, "wall_s": 15, "import_s": 10}

ATTACKS = {
    "baseline": "",
    # 1. The previous student's source, freed but not cleared, in memory forked from the runner.
    "scan_memory": """
def _found(data):
    # never build the whole marker: that copy would be found in our own memory
    at = data.find(b"-SECRET-")
    while at >= 0:
        if data[at - 6 : at] == b"HONEST" and data[at + 8 : at + 12] == b"MARK":
            return True
        at = data.find(b"-SECRET-", at + 1)
    return False

def _scan():
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if not parts[1].startswith("rw"):
                continue
            if len(parts) > 5 and not parts[5].startswith("["):
                continue  # anonymous memory and the heap
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            for start in range(lo, hi, 16 << 20):
                try:
                    mem.seek(start)
                    if _found(mem.read(min(16 << 20, hi - start))):
                        return True
                except (OSError, OverflowError, ValueError):
                    break
    return False

try:
    CHEAT = _scan()
except Exception:
    pass
""",
    # 4a. Leave notes wherever a later student might look.
    "leave_notes": """
# relative paths too: they go through the working directory itself, not its name
for where in ("/tmp", "/dev/shm", os.getcwd(), os.path.dirname(os.getcwd()), ".", ".."):
    try:
        with open(os.path.join(where, "rlkit-note"), "w") as f:
            f.write("the answers")
    except OSError:
        pass
""",
    # 4b. ... and read them (graded after leave_notes).
    "read_notes": """
for where in ("/tmp", "/dev/shm", os.getcwd(), os.path.dirname(os.getcwd()), "/", ".", ".."):
    if os.path.exists(os.path.join(where, "rlkit-note")):
        CHEAT = True
if not os.getcwd().startswith("/tmp"):
    CHEAT = True  # the working directory must be the worker's own /tmp
""",
    # 4c. Fill the sandbox's memory-backed folders (a cheat if more than 3 x 64 MB got in).
    "fill_tmpfs": """
written = 0
chunk = b"x" * (8 << 20)
for where in (os.getcwd(), "/tmp", "/dev/shm"):
    for i in range(40):
        try:
            with open(os.path.join(where, f"fill{i}"), "wb") as f:
                f.write(chunk)
                f.flush()
            written += len(chunk)
        except OSError:
            break
CHEAT = written > 3 * (64 << 20)
""",
}

# 6. Every public call's error text carries digests of every input this worker has seen.
COPY_INPUTS = """
import hashlib
import torch

SEEN = []

def _note(*tensors):
    for t in tensors:
        if isinstance(t, torch.Tensor):
            d = hashlib.sha1(t.detach().numpy().tobytes()).hexdigest()[:10]
            if d not in SEEN:
                SEEN.append(d)
    raise ValueError("seen " + " ".join(reversed(SEEN[-45:])))

def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
    _note(log_probs, old_log_probs, advantages)

def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    _note(rewards, values, dones)
"""


def _ppo(report) -> int:
    return next(e.score for e in report.exercises if e.name == "ppo")


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    klass = tmp_path_factory.mktemp("class")
    students = {"honest": SOLUTION + "\n# HONEST" + "-SECRET-" + "MARK\n"}
    for name, attack in ATTACKS.items():
        students[name] = attacker(attack)
    students["copy_inputs"] = COPY_INPUTS
    for name, source in students.items():
        (klass / name).mkdir()
        (klass / name / "ppo.py").write_text(source)
    names = list(students)
    reports = dict(
        check_workspaces(
            [klass / s for s in names], ["ppo"], HIDDEN, limits=LIMITS, sandbox="bwrap", jobs=1
        )
    )
    return {names[i]: r for i, r in reports.items()}


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a != "baseline"])
def test_an_attack_on_isolation_scores_no_more_than_the_same_wrong_code(graded, attack) -> None:
    assert _ppo(graded[attack]) <= _ppo(graded["baseline"]), [
        (c.name, c.message) for e in graded[attack].exercises for c in e.checks if c.passed
    ]
    assert graded[attack].protection.startswith("bubblewrap")


def test_the_honest_student_keeps_full_marks_and_the_baseline_is_wrong(graded) -> None:
    assert graded["honest"].score == graded["honest"].max_score > 0
    assert 0 < graded["baseline"].score < graded["baseline"].max_score


def _digests(arrays, keys) -> set[str]:
    return {hashlib.sha1(arrays[k].tobytes()).hexdigest()[:10] for k in keys}


def test_hidden_inputs_never_appear_in_text_a_student_sees(graded) -> None:
    vectors = load_vectors(select_exercises(["ppo"])[0], hidden=True)
    checks = vectors.select(HIDDEN)
    public_keys = {
        k for c in checks if c.visibility == PUBLIC for call in c.calls for k in call.input_keys()
    }
    hidden_keys = {
        k for c in checks if c.visibility != PUBLIC for call in c.calls for k in call.input_keys()
    } - public_keys
    assert hidden_keys, "ppo has hidden checks with inputs of their own"
    report = next(e for e in graded["copy_inputs"].exercises if e.name == "ppo")
    public_text = " ".join(c.message for c in report.checks if c.visibility == PUBLIC)
    shown = set(re.findall(r"\b[0-9a-f]{10}\b", public_text))
    assert shown & _digests(vectors.arrays, public_keys), "the copying channel works"
    assert not shown & _digests(vectors.arrays, hidden_keys)
