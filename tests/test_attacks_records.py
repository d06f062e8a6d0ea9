"""Strict records (issue 14, items 2 and 3): results with no values, results that lie about
their shape or dtype, and records a submission writes straight into its result pipe never earn
a point, and no result, however malformed, stops the grading of the class.

The attacks are real submissions graded as a class in the bubblewrap sandbox. Each attacking
``ppo.py`` is the same wrong code (zeros of the right shape) as the baseline student's; its
attack, *if it worked*, turns that into points: a tensor subclass whose data is empty while its
``.shape`` claims the right one, or frames written by hand into the worker's result pipe that
carry the right answers (computed by the attacker) in a form the parent must refuse (no
values, one element too many, the wrong dtype, a broadcastable shape). Then: no attacker scores
more than the baseline, the honest students keep full marks, and ``rlkit grade`` exits 0 with
a row for every student, those graded after an attacker included. Fast tests without a
sandbox cover the same records one by one, a judge that raises, and a batch whose grading of
one student raises."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attack_kit import attacker
from conftest import rlkit_cmd

from rlkit_grader import api, batch
from rlkit_grader.api import check_workspaces, grade, load_vectors, select_exercises
from rlkit_grader.records import HIDDEN, Outcome
from rlkit_grader.report import Report

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = (ROOT / "solutions" / "ppo.py").read_text()
LOG_PROB = (ROOT / "solutions" / "log_prob.py").read_text()
FAST = {"call_s": 2, "wall_s": 20, "import_s": 10}
#: what the parent says when a result's data does not match what it reports
REFUSED = "does not match"

# A tensor subclass that reports the right shape while it holds no data: the wrong answer
# (no values at all) that a broadcasting comparison would take for the right one.
SUBCLASS = """
class _Liar(torch.Tensor):
    claim = ()

    @property
    def shape(self):
        return torch.Size(type(self).claim)

    def size(self, dim=None):
        return torch.Size(type(self).claim) if dim is None else type(self).claim[dim]

    def dim(self):
        return len(type(self).claim)

    def detach(self):
        return self

    def cpu(self):
        return self

    def resolve_conj(self):
        return self

    def resolve_neg(self):
        return self

    def numpy(self, *args, **kwargs):  # no values, in a shape that broadcasts to the claim
        real = tuple(torch.Tensor.size(self))  # (a gradient is a _Liar too, of the real shape)
        shape = (0, *real) if torch.Tensor.numel(self) else (0, *type(self).claim)
        return np.zeros(shape, dtype=np.float32 if self.dtype == torch.float32 else np.float64)


def _liar(empty, claim):
    cls = type("_Liar", (_Liar,), {"claim": tuple(claim)})
    return empty.as_subclass(cls)


def ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.2):
    return _liar(log_probs[:0] * 0, ())

def gae(rewards, values, dones, last_value, gamma=0.99, lam=0.95):
    return _liar(rewards[:0] * 0, rewards.shape), _liar(rewards[:0] * 0, rewards.shape)
"""

# Frames written by hand into the worker's result pipe, in grader/protocol.py's format
# (reimplemented: protocol.py cannot be imported in the sandbox). The attacker finds the calls it
# was given (the worker's own variables) and computes the right answers with the reference it
# carries; MALFORM then makes them into something the parent must refuse. The worker then exits:
# the forged answers are the only ones.
PIPE = """
MALFORM = {malform!r}

def _find_job():
    import gc
    frame = sys._getframe()
    while frame is not None:
        found = frame.f_locals
        if isinstance(found.get("job"), dict) and "calls" in found["job"] and "ids" in found:
            return found["job"]["calls"], list(found["ids"]), found["arrays"]
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, dict) and isinstance(obj.get("job"), dict) and "ids" in obj:
            return obj["job"]["calls"], list(obj["ids"]), obj["arrays"]
    raise ImportError("the attack did not find its calls")

def _value(spec, arrays):
    if "array" in spec:
        return torch.from_numpy(np.array(arrays[spec["array"]], copy=True))
    return spec.get("value")

def _answer(call, arrays):
    args = [_value(s, arrays) for s in call["args"]]
    kwargs = {{k: _value(s, arrays) for k, s in call.get("kwargs", {{}}).items()}}
    grad_wrt = list(call.get("grad_wrt", []))
    for pos in grad_wrt:
        args[pos].requires_grad_(True)
    fn = {{"ppo_clip_loss": _good_ppo_clip_loss, "gae": _good_gae}}[call["function"]]
    mode = torch.inference_mode() if call.get("grad_mode") == "inference" else torch.enable_grad()
    with mode:
        result = fn(*args, **kwargs)
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    grads = {{}}
    if grad_wrt:
        terms = [
            (o * torch.from_numpy(np.array(arrays[k])).to(o.dtype)).sum()
            for o, k in zip(outs, call.get("cotangents", []))
            if k is not None and o.requires_grad
        ]
        found = [None] * len(grad_wrt)
        if terms:
            found = torch.autograd.grad(sum(terms), [args[p] for p in grad_wrt], allow_unused=True)
        grads = {{str(p): g for p, g in zip(grad_wrt, found)}}
    container = type(result).__name__ if isinstance(result, (tuple, list)) else "single"
    return container, outs, grads

def _malformed(a):
    a = np.asarray(a)
    if MALFORM == "empty":  # no values; broadcasts against any shape
        return np.zeros((0, *a.shape), a.dtype)
    if MALFORM == "extra":  # one element more than the shape it claims
        return np.append(a.ravel(), a.dtype.type(0))
    if MALFORM == "dtype":  # the right values in another dtype than the one claimed
        return a.astype(np.float64 if a.dtype == np.float32 else np.float32)
    if MALFORM == "int64":  # integers where floats are claimed
        return np.round(a * 1000).astype(np.int64)
    if MALFORM == "broadcast":  # the right values, with a leading axis of 1
        return a.reshape((1, *a.shape))
    raise ValueError(MALFORM)

def _frame(message, arrays):
    meta, blobs = [], []
    for key, a in arrays.items():
        meta.append([key, a.dtype.str, list(a.shape)])
        blobs.append(a.tobytes())
    header = json.dumps({{**message, "arrays": meta}}).encode()
    body = b"".join(blobs)
    return b"RLK1" + struct.pack(">QQ", len(header), len(body)) + header + body

def _forge():
    calls, ids, arrays = _find_job()
    frames = [_frame({{"type": "import", "ok": True}}, {{}})]
    for i in ids:
        container, outs, grads = _answer(calls[i], arrays)
        record = {{"type": "call", "id": i, "ok": True, "container": container, "outputs": [],
                  "grads": {{}}, "modified": [], "seconds": 0.001}}
        blobs = {{}}
        for k, o in enumerate(outs):
            record["outputs"].append({{"kind": "tensor", "dtype": str(o.dtype).replace("torch.", ""),
                                      "shape": list(o.shape), "requires_grad": bool(o.requires_grad),
                                      "key": f"o{{k}}"}})
            blobs[f"o{{k}}"] = _malformed(o.detach().numpy())
        for pos, g in grads.items():
            record["grads"][pos] = None if g is None else f"g{{pos}}"
            if g is not None:
                blobs[f"g{{pos}}"] = _malformed(g.detach().numpy())
        frames.append(_frame(record, blobs))
    blob = b"".join(frames)
    written = 0
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        if fd < 3 or fd > 30:
            continue
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            written += 1
        except OSError:
            pass
    if not written:
        raise ImportError("the attack found no pipe to write to")
    os._exit(0)

_forge()
"""

ATTACKS = {
    "baseline": "",
    "subclass": SUBCLASS,  # placed after the template's functions (it replaces them)
    **{f"pipe_{m}": PIPE.format(malform=m) for m in ("empty", "extra", "dtype", "broadcast")},
}
LATE = {"subclass"}


def _source(attack: str) -> str:
    return attacker(ATTACKS[attack], late=attack in LATE)


def _write_class(root: Path, attacks: dict[str, str]) -> list[str]:
    """``a_honest``, one folder per attack (folder name → attack), then ``z_honest`` (graded
    after every attacker)."""
    folders = {"a_honest": None, **attacks, "z_honest": None}
    for student, attack in folders.items():
        (root / student).mkdir(parents=True)
        (root / student / "ppo.py").write_text(SOLUTION if attack is None else _source(attack))
        # a correct neighbouring exercise: forged records must not reach it
        (root / student / "log_prob.py").write_text(LOG_PROB)
    return list(folders)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    klass = tmp_path_factory.mktemp("records") / "class"
    students = _write_class(klass, {a: a for a in ATTACKS})
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
    return {students[i]: r for i, r in reports.items()}


def _ppo(report: Report) -> Any:
    return next(e for e in report.exercises if e.name == "ppo")


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a != "baseline"])
def test_an_attack_on_the_records_scores_no_more_than_the_same_wrong_code(
    graded: dict[str, Report], attack: str
) -> None:
    report, baseline = graded[attack], graded["baseline"]
    assert _ppo(report).score <= _ppo(baseline).score, [
        (c.name, c.message) for c in _ppo(report).checks if c.passed
    ]
    log_prob = next(e for e in report.exercises if e.name == "log_prob")
    assert log_prob.score == log_prob.max_score, "a forged ppo record hurt log_prob"
    assert report.protection.startswith("bubblewrap")


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a != "baseline"])
def test_the_attack_was_delivered_and_refused_in_one_line(
    graded: dict[str, Report], attack: str
) -> None:
    """The forged data reached the parent (else the test above proves nothing), and the
    parent said, per call, that the result does not match what it reports."""
    ppo = _ppo(graded[attack])
    assert ppo.problem is None, ppo.problem  # imported (or forged an import) fine
    refused = [c.message for c in ppo.checks if REFUSED in c.message]
    values = [c for c in ppo.checks if c.name.endswith(("values", "hidden_values"))]
    assert values and all(REFUSED in c.message for c in values), [
        (c.name, c.message) for c in ppo.checks
    ]
    for message in refused:
        assert "\n" not in message and len(message) < 400, message
        assert "could not judge" not in message  # refused before any comparison


def test_the_baseline_is_wrong_and_honest_students_keep_full_marks(
    graded: dict[str, Report],
) -> None:
    baseline = _ppo(graded["baseline"])
    assert 0 < baseline.score < baseline.max_score
    for student in ("a_honest", "z_honest"):
        assert graded[student].score == graded[student].max_score > 0, [
            (c.name, c.message) for e in graded[student].exercises for c in e.checks if not c.passed
        ]


def test_the_class_is_graded_through_rlkit_grade_with_a_row_per_student(tmp_path: Path) -> None:
    """The record whose data has one element more than its shape made a judge raise outside any
    ``try``: ``rlkit grade`` exited 1 and graded nobody after that student."""
    attacks = {"b_baseline": "baseline", "m_pipe_extra": "pipe_extra", "m_subclass": "subclass"}
    students = _write_class(tmp_path / "class", attacks)
    out = tmp_path / "grades.json"
    run = rlkit_cmd(
        "grade", str(tmp_path / "class"), "log_prob", "ppo", "--out", str(out), "--jobs", "1",
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    assert "Traceback" not in run.stderr
    rows = {r["student"]: r for r in json.loads(out.read_text())}
    assert sorted(rows) == sorted(students)
    ppo = {s: next(e for e in r["exercises"] if e["name"] == "ppo") for s, r in rows.items()}
    for student in ("m_pipe_extra", "m_subclass"):
        assert ppo[student]["score"] <= ppo["b_baseline"]["score"], ppo[student]
    for student in ("a_honest", "z_honest"):
        assert rows[student]["score"] == rows[student]["max_score"] > 0
    assert (tmp_path / "grades-feedback" / "z_honest.md").is_file()


# ----------------------------------------------------------------------------- without a sandbox


@pytest.fixture(scope="module")
def ppo_vectors():
    return load_vectors(select_exercises(["ppo"])[0], hidden=True)


def _expected(checks) -> list[list[Outcome | None]]:
    return [[c.expected for c in check.calls] for check in checks]


def _copy(outcome: Outcome) -> Outcome:
    return dataclasses.replace(
        outcome,
        outputs=[dataclasses.replace(o) for o in outcome.outputs],
        grads=dict(outcome.grads),
        modified=list(outcome.modified),
    )


def _forged(got: Outcome, how: str) -> Outcome:
    """The reference's own (right) outcome, made into a record the parent must refuse."""
    g = _copy(got)
    out = g.outputs[0]
    a = out.array
    assert a is not None
    if how == "empty":
        out.array = np.zeros((0, *a.shape), a.dtype)
    elif how == "empty_flat":
        out.array = np.zeros((0,), a.dtype)
    elif how == "extra":
        out.array = np.append(a.ravel(), 0).astype(a.dtype)
    elif how == "int64":
        out.array = np.round(a).astype(np.int64)
    elif how == "float64_claimed_float32":
        out.array = a.astype(np.float64) if a.dtype == np.float32 else a.astype(np.float32)
    elif how == "broadcast":
        out.array = a.reshape((1, *a.shape))
    elif how == "no_array":
        out.array = None
    elif how == "same_size_other_shape":  # as many values as claimed, in another shape
        out.array = a.reshape((*a.shape, 1))
    elif how == "second_output_in_single":
        g.outputs.append(dataclasses.replace(out))
    elif how == "empty_grads":
        for pos, grad in g.grads.items():
            if grad is not None:
                g.grads[pos] = np.zeros((0, *grad.shape), grad.dtype)
    elif how == "extra_grads":
        for pos, grad in g.grads.items():
            if grad is not None:
                g.grads[pos] = np.append(grad.ravel(), 0).astype(grad.dtype)
    elif how == "float64_grads":
        for pos, grad in g.grads.items():
            if grad is not None and grad.dtype == np.float32:
                g.grads[pos] = grad.astype(np.float64)
    elif how == "modified_out_of_range":
        g.modified = [99]
    else:
        raise ValueError(how)
    return g


FORGERIES = [
    "empty",
    "empty_flat",
    "extra",
    "int64",
    "float64_claimed_float32",
    "broadcast",
    "no_array",
    "same_size_other_shape",
    "second_output_in_single",
    "empty_grads",
    "extra_grads",
    "float64_grads",
    "modified_out_of_range",
]


def test_the_references_own_records_pass(ppo_vectors) -> None:
    checks = ppo_vectors.select(HIDDEN)
    report = grade(ppo_vectors, checks, _expected(checks))
    assert report.score == report.max_score > 0, [
        (c.name, c.message) for c in report.checks if not c.passed
    ]


@pytest.mark.parametrize("how", FORGERIES)
def test_a_malformed_record_fails_its_checks_in_one_line(ppo_vectors, how: str) -> None:
    """The reference's right answers in a record whose data does not match what it reports
    (or what the check expects) earn nothing, and no judge raises on them."""
    checks = [c for c in ppo_vectors.select(HIDDEN) if c.function == "ppo_clip_loss"]
    touched = "grads" in how
    outcomes = []
    for check in checks:
        row = []
        for call in check.calls:
            grads = [g for g in call.expected.grads.values() if g is not None]
            if how == "float64_grads":
                grads = [g for g in grads if g.dtype == np.float32]
            untouched = touched and not grads  # nothing of this call to forge
            row.append(call.expected if untouched else _forged(call.expected, how))
        outcomes.append(row)
    report = grade(ppo_vectors, checks, outcomes)
    forged = [
        check
        for check, row in zip(checks, outcomes)
        if any(g is not c.expected for g, c in zip(row, check.calls))
    ]
    assert forged
    for result in report.checks:
        if result.name not in {c.name for c in forged}:
            continue
        assert not result.passed, (how, result.name)
        assert REFUSED in result.message, (how, result.name, result.message)
        assert "\n" not in result.message and "could not judge" not in result.message
        assert result.misconception is None and result.kind == "wrong"


def test_the_refusal_names_the_output_and_both_shapes(ppo_vectors) -> None:
    check = next(c for c in ppo_vectors.select(HIDDEN) if c.name == "ppo_clip_loss.values")
    got = [_forged(c.expected, "empty_flat") for c in check.calls]
    report = grade(ppo_vectors, [check], [got])
    message = report.checks[0].message
    assert "shape (0,)" in message and "shape ()" in message, message
    assert "ppo_clip_loss()" in message
    gae = next(c for c in ppo_vectors.select(HIDDEN) if c.name == "gae.values_with_dones")
    got = [_forged(c.expected, "extra") for c in gae.calls]
    message = grade(ppo_vectors, [gae], [got]).checks[0].message
    assert "`advantages`" in message, message


def test_a_judge_that_raises_costs_that_check_only(
    ppo_vectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlkit_grader import judges

    def boom(check, got, arrays, params):
        raise ValueError("operands could not be broadcast together with shapes (6,) (5,)")

    monkeypatch.setitem(judges.JUDGE_FUNCTIONS, "boom_for_test", boom)
    checks = ppo_vectors.select(HIDDEN)
    broken = dataclasses.replace(checks[1], judge={"kind": "boom_for_test"})
    mixed = [checks[0], broken, *checks[2:]]
    report = grade(ppo_vectors, mixed, _expected(mixed))
    results = {r.name: r for r in report.checks}
    failed = results[broken.name]
    assert not failed.passed and failed.points == 0
    assert "could not judge" in failed.message and "ValueError" in failed.message
    assert "\n" not in failed.message and failed.kind == "wrong"
    assert all(r.passed for r in report.checks if r.name != broken.name)

    # recognition that raises keeps the verdict, names no mistake
    def bad_recognize(check, got):
        raise IndexError("list index out of range")

    monkeypatch.setattr(api, "recognize", bad_recognize)
    wrong = _expected(checks)
    wrong[0] = [_forged(c.expected, "extra") if c.expected else c for c in checks[0].calls]
    report = grade(ppo_vectors, checks, wrong)
    assert not report.checks[0].passed and report.checks[0].misconception is None
    assert all(r.passed for r in report.checks[1:])


def _class(root: Path, n: int) -> list[str]:
    students = [f"s{i}" for i in range(n)]
    for s in students:
        (root / s).mkdir(parents=True)
        (root / s / "ppo.py").write_text(SOLUTION)
    return students


def _full_report(names) -> Report:
    report = Report()
    for ex in select_exercises(names):
        vectors = load_vectors(ex, hidden=True)
        checks = vectors.select(HIDDEN)
        report.exercises.append(grade(vectors, checks, _expected(checks)))
    report.protection = "test double"
    return report


@pytest.mark.parametrize(("jobs", "order"), [(1, "in order"), (3, "in order"), (1, "reversed")])
def test_a_student_whose_grading_raises_gets_a_row_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int, order: str
) -> None:
    """The engine raising on one student (a bug, a judge outside ``grade``) costs that student
    only: a row with 0 and the reason; everyone else is graded (also when the engine answers
    out of order and does not say whose grading raised)."""
    students = _class(tmp_path / "class", 5)
    real = api.check_workspaces

    def flaky(paths, exercises=(), visibility="public", limits=None, sandbox="auto", jobs=None):
        indices = list(range(len(paths)))
        for i in reversed(indices) if order == "reversed" else indices:
            if (Path(paths[i]) / "ppo.py").read_text().startswith("# boom"):
                raise ValueError("a judge fell over")
            yield i, _full_report(exercises)

    monkeypatch.setattr(api, "check_workspaces", flaky)
    (tmp_path / "class" / "s2" / "ppo.py").write_text("# boom\n" + SOLUTION)
    layout = batch.Layout.beside(tmp_path / "grades.json", "json")
    seen = []
    outcome = batch.grade_class(
        tmp_path / "class",
        layout,
        batch.Options(["ppo"], jobs=jobs, sandbox="none"),
        on_record=lambda record, course: seen.append(record["student"]),
    )
    monkeypatch.setattr(api, "check_workspaces", real)
    rows = {r["student"]: r for r in outcome.records}
    assert sorted(rows) == students and sorted(seen) == students
    assert rows["s2"]["score"] == 0 and rows["s2"]["max_score"] == rows["s0"]["max_score"]
    problem = rows["s2"]["exercises"][0]["problem"]
    assert "could not grade" in problem and "ValueError" in problem and "\n" not in problem
    for s in students:
        if s != "s2":
            assert rows[s]["score"] == rows[s]["max_score"] > 0, s
    assert len(list(layout.records.glob("*.json"))) == 5


def test_a_record_that_cannot_be_written_still_gives_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    students = _class(tmp_path / "class", 3)

    def engine(paths, exercises=(), visibility="public", limits=None, sandbox="auto", jobs=None):
        for i in range(len(paths)):
            yield i, _full_report(exercises)

    real_make = batch.make_record

    def make(submission, fingerprint, report, problems):
        if submission.student == "s1":
            raise KeyError("misconception")
        return real_make(submission, fingerprint, report, problems)

    def on_record(record, course):
        if record["student"] == "s0":
            raise OSError("disk full")

    monkeypatch.setattr(api, "check_workspaces", engine)
    monkeypatch.setattr(batch, "make_record", make)
    layout = batch.Layout.beside(tmp_path / "grades.json", "json")
    outcome = batch.grade_class(
        tmp_path / "class", layout, batch.Options(["ppo"], sandbox="none"), on_record=on_record
    )
    rows = {r["student"]: r for r in outcome.records}
    assert sorted(rows) == students
    assert rows["s1"]["score"] == 0 and "could not" in rows["s1"]["exercises"][0]["problem"]
    assert rows["s0"]["score"] == rows["s0"]["max_score"]
    assert rows["s2"]["score"] == rows["s2"]["max_score"]
