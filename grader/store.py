"""Stored test vectors: the checks' inputs, the reference's outcomes and the classic mistakes'
outcomes, as safe data (JSON + an ``.npz`` read with ``allow_pickle=False``). They let students
self-check where the reference solutions are absent, and let the parent judge without torch.

An exercise's vectors come in two parts. The public checks' are beside the check module
(``grader/checks/ppo.py`` → ``ppo.vectors.json`` + ``ppo.vectors.npz``), in the student's
install; a released student bundle keeps a copy in ``checks/``. The hidden checks' are in the
instructor's distribution, beside the module the exercise names as ``hidden``
(``rlkit_solutions/ppo.vectors.*``), their array keys prefixed ``h`` and each check with its
``index`` among the exercise's checks, so ``merge`` puts them back in order. A course key
(``rlkit_grader.hidden``) draws other hidden inputs: ``generate(..., key=...)`` seeds each hidden
check from the key and the check, never from its name alone.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.util
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from rlkit_grader.records import PUBLIC, CallData, CheckData, ExerciseVectors, Outcome
from rlkit_grader.spec import Check, Mistake

FORMAT = 1
SUFFIX_JSON, SUFFIX_NPZ = ".vectors.json", ".vectors.npz"


# ----------------------------------------------------------------------------- locations


def package_vectors_stem(checks_module: str) -> Path:
    """``rlkit_grader.checks.ppo`` → ``…/grader/checks/ppo`` (without importing the module)."""
    spec = importlib.util.find_spec(checks_module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"checks module {checks_module} is not installed")
    return Path(spec.origin).with_suffix("")


def exists(stem: Path) -> bool:
    return stem.with_name(stem.name + SUFFIX_JSON).is_file()


# ----------------------------------------------------------------------------- load / save


def _call_from_json(d: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> CallData:
    return CallData(
        function=str(d["function"]),
        args=list(d["args"]),
        kwargs=dict(d.get("kwargs", {})),
        grad_wrt=[int(i) for i in d.get("grad_wrt", [])],
        cotangents=list(d.get("cotangents", [])),
        arg_names=list(d["arg_names"]),
        aux=dict(d.get("aux", {})),
        expected=Outcome.from_meta(d["expected"], arrays),
        mistakes={k: Outcome.from_meta(m, arrays) for k, m in d.get("mistakes", {}).items()},
        grad_mode=str(d.get("grad_mode", "")),
    )


def from_json(doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ExerciseVectors:
    if doc.get("format") != FORMAT:
        raise ValueError(f"unsupported vectors format {doc.get('format')!r}")
    checks = [
        CheckData(
            name=str(c["name"]),
            function=str(c["function"]),
            points=int(c["points"]),
            visibility=str(c["visibility"]),
            description=str(c["description"]),
            judge=dict(c["judge"]),
            calls=[_call_from_json(d, arrays) for d in c["calls"]],
            caught=list(c.get("caught", [])),
            output_names=list(c.get("outputs", [])),
        )
        for c in doc["checks"]
    ]
    return ExerciseVectors(
        exercise=str(doc["exercise"]),
        functions=list(doc["functions"]),
        checks=checks,
        arrays=arrays,
        mistakes=dict(doc.get("mistakes", {})),
    )


class ArrayTable:
    """The arrays of one vectors file, keyed by *where they are used*, never by a hash of their
    bytes: a key names the first place an array appears (``@i7``: the 8th distinct input;
    ``@3.2.e.0``: check 3, call 2, the expected outcome's first array; ``@3.2.m5.1``: the same
    for mistake 5). Regenerating on a CPU whose kernels round differently changes values in
    their last bits, never keys. Equal inputs are stored once."""

    def __init__(self, prefix: str = "") -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._by_content: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self._inputs = 0
        #: before every key: ``h`` for the hidden part, whose keys must not meet the public's
        self.prefix = prefix

    def put(self, array: np.ndarray, name: str) -> str:
        """An outcome's array, under its own name: never shared with another outcome's, since
        whether two results are bit-equal can depend on the CPU."""
        if name in self.arrays:
            raise RuntimeError(f"array key {name} used twice")
        self.arrays[name] = np.asarray(array)
        return name

    def put_input(self, array: np.ndarray) -> str:
        """An input (or cotangent, or judge's mask), made by numpy from a seeded generator:
        equal inputs share one key (so equal calls run once), numbered in order of first use."""
        a = np.asarray(array)
        content = (a.dtype.str, tuple(a.shape), a.tobytes())
        if content not in self._by_content:
            self._by_content[content] = self.put(a, f"{self.prefix}@i{self._inputs}")
            self._inputs += 1
        return self._by_content[content]

    def namer(self, prefix: str) -> Callable[[np.ndarray], str]:
        """``put`` for one outcome: its arrays become ``prefix.0``, ``prefix.1``, ..."""
        count = iter(range(10**9))
        return lambda a: self.put(a, f"{self.prefix}{prefix}.{next(count)}")


def pack_arrays(
    arrays: Mapping[str, np.ndarray],
) -> tuple[dict[str, list[Any]], dict[str, np.ndarray]]:
    """Many small arrays → one flat buffer per dtype + an index (fast to load)."""
    index: dict[str, list[Any]] = {}
    parts: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, int] = {}
    for key in sorted(arrays):
        a = np.asarray(arrays[key])
        dt = a.dtype.str
        index[key] = [dt, sizes.get(dt, 0), list(a.shape)]
        parts.setdefault(dt, []).append(a.reshape(-1))
        sizes[dt] = sizes.get(dt, 0) + a.size
    buffers = {f"pack{i}": np.concatenate(parts[dt]) for i, dt in enumerate(sorted(parts))}
    names = {dt: f"pack{i}" for i, dt in enumerate(sorted(parts))}
    return {k: [names[v[0]], v[1], v[2]] for k, v in index.items()}, buffers


def unpack(
    index: Mapping[str, list[Any]], buffers: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    arrays = {}
    for key, (name, offset, shape) in index.items():
        size = int(np.prod(shape, dtype=np.int64))
        arrays[key] = buffers[name][offset : offset + size].reshape(shape)
    return arrays


def read_raw(stem: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document (without its index) and the arrays, as stored."""
    doc = json.loads(stem.with_name(stem.name + SUFFIX_JSON).read_text())
    with np.load(stem.with_name(stem.name + SUFFIX_NPZ), allow_pickle=False) as npz:
        buffers = {k: npz[k] for k in npz.files}
    return doc, unpack(doc.pop("arrays"), buffers)


def load(stem: Path) -> ExerciseVectors:
    """Read ``<stem>.vectors.json`` + ``.npz`` (plain arrays only: never unpickles)."""
    return from_json(*read_raw(stem))


def write(doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray], stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    index, buffers = pack_arrays(arrays)
    text = json.dumps({**doc, "arrays": index}, indent=None, separators=(",", ":"))
    stem.with_name(stem.name + SUFFIX_JSON).write_text(text + "\n")
    np.savez_compressed(stem.with_name(stem.name + SUFFIX_NPZ), **buffers)


def public_part(
    doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The public checks only, and only the arrays they use (what a student bundle holds)."""
    checks = [c for c in doc["checks"] if c["visibility"] == PUBLIC]
    out = {**doc, "checks": checks}
    text = json.dumps(checks)
    used = {k: v for k, v in arrays.items() if f'"{k}"' in text}
    return out, used


def merge(
    public: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
    hidden: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The public part (its public checks) and a hidden part (built-in, or drawn from a course
    key) as one exercise's vectors, each hidden check back at its ``index``."""
    doc, arrays = public_part(*public)
    hidden_doc, hidden_arrays = hidden
    clash = set(arrays) & set(hidden_arrays)
    if clash:
        raise ValueError(f"the hidden vectors reuse the public array keys {sorted(clash)[:3]}")
    checks = list(doc["checks"])
    for check in sorted(hidden_doc["checks"], key=lambda c: int(c.get("index", len(checks)))):
        checks.insert(min(int(check.get("index", len(checks))), len(checks)), check)
    mistakes = {**doc.get("mistakes", {}), **hidden_doc.get("mistakes", {})}
    return {**doc, "checks": checks, "mistakes": mistakes}, {**arrays, **hidden_arrays}


# ----------------------------------------------------------------------------- generation


def check_seed(check: Check, key: bytes | None = None) -> int:
    """The seed of a check's generator: from its ``seed`` (else its name), as rlkit ships them;
    with a course ``key``, from the key and that name (HMAC-SHA256), so nobody without the key
    can draw the same inputs. Checks sharing a seed share inputs either way."""
    name = (check.seed or check.name).encode()
    if key is None:
        return zlib.crc32(name)
    return int.from_bytes(hmac.new(key, b"rlkit-check\0" + name, hashlib.sha256).digest(), "big")


def build_calls(check: Check, key: bytes | None = None) -> list[Any]:
    """The check's calls (``Check.build`` without a key)."""
    if key is None:
        return check.build()
    return check.cases(np.random.default_rng(check_seed(check, key)))


def _encode(value: Any, table: ArrayTable) -> dict[str, Any]:
    if isinstance(value, np.ndarray):
        return {"array": table.put_input(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"a check input must be a numpy array or a plain value, not {type(value)}")


def generate(
    exercise: str,
    functions: Sequence[str],
    checks: Sequence[Check],
    reference: Any,
    mistakes: Sequence[Mistake] = (),
    outputs: Mapping[str, Sequence[str]] | None = None,
    *,
    key: bytes | None = None,
    prefix: str = "",
    index: Sequence[int] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Build the vectors: run every check's calls on the reference (in-process, needs torch),
    then on each classic mistake to learn which checks catch it and how it behaves.
    ``outputs`` names each function's outputs as documented (for feedback). For a hidden part:
    ``key`` draws the inputs from a course key (``check_seed``), ``prefix`` starts every array
    key, ``index`` is each check's place among all the exercise's checks (for ``merge``)."""
    from rlkit_grader.executor import single_thread

    with single_thread():
        return _generate(
            exercise,
            functions,
            checks,
            reference,
            mistakes,
            outputs or {},
            key,
            ArrayTable(prefix),
            index,
        )


def _generate(
    exercise: str,
    functions: Sequence[str],
    checks: Sequence[Check],
    reference: Any,
    mistakes: Sequence[Mistake],
    outputs: Mapping[str, Sequence[str]],
    key: bytes | None,
    table: ArrayTable,
    index: Sequence[int] | None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from rlkit_grader.executor import execute_call
    from rlkit_grader.judges import close, judge

    arrays = table.arrays
    ref = {f: getattr(reference, f) for f in functions}
    docs = []
    for ci, check in enumerate(checks):
        datas: list[CallData] = []
        jsons: list[dict[str, Any]] = []
        for j, call in enumerate(build_calls(check, key)):
            names = list(call.args)
            data = CallData(
                function=call.function,
                args=[_encode(v, table) for v in call.args.values()],
                kwargs={n: _encode(v, table) for n, v in call.kwargs.items()},
                grad_wrt=[names.index(n) for n in call.grad_wrt],
                cotangents=[None if c is None else table.put_input(c) for c in call.cotangents],
                arg_names=names,
                aux={n: table.put_input(a) for n, a in call.aux.items()},
                grad_mode=call.grad_mode,
            )
            meta, outs = execute_call(ref, data.request(), arrays)
            if not meta.get("ok"):
                raise RuntimeError(f"{check.name}: the reference failed: {meta.get('error')}")
            expected = Outcome.from_meta(meta, outs)
            for k, value in enumerate(call.closed_form or ()):
                if value is None:
                    continue
                have = expected.outputs[k].array
                assert have is not None
                if not close(have, value, 1e-4, 1e-6).all():
                    raise RuntimeError(
                        f"{check.name}: the reference disagrees with the closed "
                        f"form: {have} vs {value}"
                    )
                expected.outputs[k].array = np.asarray(value, dtype=have.dtype).reshape(have.shape)
            data.expected = expected
            datas.append(data)
            record = {
                "function": data.function,
                "args": data.args,
                "kwargs": data.kwargs,
                "arg_names": data.arg_names,
                "grad_wrt": data.grad_wrt,
                "cotangents": data.cotangents,
                "aux": data.aux,
                "expected": expected.to_meta(table.namer(f"@{ci}.{j}.e")),
                "mistakes": {},
            }
            if call.grad_mode:
                record["grad_mode"] = call.grad_mode
            jsons.append(record)
        names_out = list(outputs.get(check.function, ()))
        cd = CheckData(
            check.name,
            check.function,
            check.points,
            check.visibility,
            check.description,
            check.judge,
            datas,
            output_names=names_out,
        )
        verdict = judge(cd, [d.expected for d in datas], arrays)
        if not verdict.passed:
            raise RuntimeError(
                f"{check.name}: the reference fails its own check: {verdict.message}"
            )
        caught = []
        for mi, mistake in enumerate(mistakes):
            if mistake.function not in {d.function for d in datas}:
                continue
            # the mistake, then each of its variants (stored as name~1, name~2, ...)
            for vi, (name, impl) in enumerate(mistake.implementations()):
                fns = SimpleNamespace(**{**ref, mistake.function: impl})
                outcomes = []
                for d in datas:
                    meta, outs = execute_call(fns, d.request(), arrays)
                    outcomes.append(Outcome.from_meta(meta, outs))
                if judge(cd, outcomes, arrays).passed:  # type: ignore[arg-type]
                    continue
                caught.append(name)
                where = f"m{mi}" + (f"v{vi}" if vi else "")
                for j, o in enumerate(outcomes):
                    jsons[j]["mistakes"][name] = o.to_meta(table.namer(f"@{ci}.{j}.{where}"))
        doc = {
            **({"index": index[ci]} if index is not None else {}),
            "name": check.name,
            "function": check.function,
            "points": check.points,
            "visibility": check.visibility,
            "description": check.description,
            "judge": check.judge,
            "caught": caught,
            "calls": jsons,
        }
        if names_out:
            doc["outputs"] = names_out
        docs.append(doc)
    doc = {
        "format": FORMAT,
        "exercise": exercise,
        "functions": list(functions),
        "mistakes": {m.name: m.explanation for m in mistakes},
        "checks": docs,
    }
    return doc, arrays


# ----------------------------------------------------------------------------- staleness
# Two sets of vectors are compared by what they mean, not by their bytes: the same checks,
# calls, caught mistakes and error kinds, and arrays that agree within a tolerance far below the
# judges' (so a change that could alter a verdict is caught) and far above the last-bit noise
# of one CPU's kernels against another's. A mistake's outcome is compared as recognition
# compares it: where a mistake overflows, nan and ±inf are the same overflow.

#: rtol per dtype for the reference's values (the judges' tightest is 1e-4 / 1e-7)
REFERENCE_RTOL = {"float32": 1e-5, "float64": 1e-10}
#: rtol for a mistake's values (recognition's tolerance is 2e-3 / 1e-6)
MISTAKE_RTOL = {"float32": 2e-4, "float64": 1e-7}


def _array_difference(x: np.ndarray, y: np.ndarray, mistake: bool) -> str | None:
    from rlkit_grader.judges import close

    if x.dtype != y.dtype or x.shape != y.shape:
        return f"{x.dtype}{x.shape} became {y.dtype}{y.shape}"
    if x.dtype.kind != "f":
        return None if np.array_equal(x, y) else "its values changed"
    rtol = (MISTAKE_RTOL if mistake else REFERENCE_RTOL).get(str(x.dtype), 1e-5)
    fx, fy = np.isfinite(x), np.isfinite(y)
    if not np.array_equal(fx, fy):
        return "which of its values are finite changed"
    if not mistake and not np.array_equal(np.isnan(x), np.isnan(y)):
        return "its nan/inf pattern changed"
    if not close(x[fx], y[fy], rtol, rtol * 1e-2).all():
        return "its values changed beyond round-off"
    if not mistake and not np.array_equal(x[~fx], y[~fy], equal_nan=True):
        return "its infinities changed sign"
    return None


def _outcome_difference(
    a: Mapping[str, Any],
    arr_a: Mapping[str, np.ndarray],
    b: Mapping[str, Any],
    arr_b: Mapping[str, np.ndarray],
    mistake: bool,
) -> str | None:
    if bool(a.get("ok")) != bool(b.get("ok")):
        return "it ran in one and failed in the other"
    if not a.get("ok"):
        same = a.get("error_kind") == b.get("error_kind")
        return None if same else "it failed differently"
    for field_name in ("container", "modified"):
        if a.get(field_name) != b.get(field_name):
            return f"its {field_name} changed"
    outs_a, outs_b = a.get("outputs", []), b.get("outputs", [])
    if len(outs_a) != len(outs_b):
        return "its number of outputs changed"
    for k, (x, y) in enumerate(zip(outs_a, outs_b)):
        plain_x = {n: v for n, v in x.items() if n not in ("key", "value")}
        plain_y = {n: v for n, v in y.items() if n not in ("key", "value")}
        if plain_x != plain_y:
            return f"output {k + 1} changed type, shape, dtype or requires_grad"
        if ("value" in x) != ("value" in y) or ("key" in x) != ("key" in y):
            return f"output {k + 1} changed kind"
        if "value" in x and x["value"] != y["value"]:
            vx, vy = np.asarray(x["value"], float), np.asarray(y["value"], float)
            problem = _array_difference(vx, vy, mistake)
            if problem:
                return f"output {k + 1}: {problem}"
        if "key" in x:
            problem = _array_difference(arr_a[x["key"]], arr_b[y["key"]], mistake)
            if problem:
                return f"output {k + 1}: {problem}"
    grads_a, grads_b = a.get("grads", {}), b.get("grads", {})
    if {p: g is None for p, g in grads_a.items()} != {p: g is None for p, g in grads_b.items()}:
        return "which inputs get a gradient changed"
    for pos, ka in grads_a.items():
        if ka is not None:
            problem = _array_difference(arr_a[ka], arr_b[grads_b[pos]], mistake)
            if problem:
                return f"the gradient of input {pos}: {problem}"
    return None


def _spec_difference(
    a: Any, arr_a: Mapping[str, np.ndarray], b: Any, arr_b: Mapping[str, np.ndarray]
) -> bool:
    """Do two input specs (``{"array": key}``/``{"value": x}``, or a key) differ?"""
    if isinstance(a, dict) and "array" in a and isinstance(b, dict) and "array" in b:
        a, b = a["array"], b["array"]
    elif isinstance(a, dict) or isinstance(b, dict) or a is None or b is None:
        return a != b
    return _array_difference(arr_a[a], arr_b[b], mistake=False) is not None


def _call_difference(
    a: Mapping[str, Any],
    arr_a: Mapping[str, np.ndarray],
    b: Mapping[str, Any],
    arr_b: Mapping[str, np.ndarray],
) -> str | None:
    for field_name in ("function", "arg_names", "grad_wrt", "grad_mode"):
        if a.get(field_name) != b.get(field_name):
            return f"its {field_name} changed"
    pairs = [
        *zip(a["args"], b["args"]),
        *((a["kwargs"].get(n), b["kwargs"].get(n)) for n in {*a["kwargs"], *b["kwargs"]}),
        *zip(a.get("cotangents", []), b.get("cotangents", [])),
        *((a["aux"].get(n), b["aux"].get(n)) for n in {*a.get("aux", {}), *b.get("aux", {})}),
    ]
    if len(a["args"]) != len(b["args"]) or len(a.get("cotangents", [])) != len(
        b.get("cotangents", [])
    ):
        return "its inputs changed"
    if any(_spec_difference(x, arr_a, y, arr_b) for x, y in pairs):
        return "its inputs changed"
    problem = _outcome_difference(a["expected"], arr_a, b["expected"], arr_b, mistake=False)
    if problem:
        return f"the reference's outcome: {problem}"
    if set(a.get("mistakes", {})) != set(b.get("mistakes", {})):
        return "the recorded mistakes changed"
    for name, ma in a.get("mistakes", {}).items():
        problem = _outcome_difference(ma, arr_a, b["mistakes"][name], arr_b, mistake=True)
        if problem:
            return f"mistake {name}'s outcome: {problem}"
    return None


def differences(
    a: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
    b: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
) -> list[str]:
    """What differs between two sets of vectors in meaning (empty: the same up to round-off,
    whatever the arrays are called)."""
    (doc_a, arr_a), (doc_b, arr_b) = a, b
    found = []
    meta_a = {k: v for k, v in doc_a.items() if k != "checks"}
    meta_b = {k: v for k, v in doc_b.items() if k != "checks"}
    if json.dumps(meta_a, sort_keys=True) != json.dumps(meta_b, sort_keys=True):
        found.append("the exercise's functions or mistakes changed")
    names_a = [c["name"] for c in doc_a["checks"]]
    names_b = [c["name"] for c in doc_b["checks"]]
    if names_a != names_b:
        return [*found, f"checks differ: {names_a} vs {names_b}"]
    for ca, cb in zip(doc_a["checks"], doc_b["checks"]):
        definition_a = {k: v for k, v in ca.items() if k not in ("calls", "caught")}
        definition_b = {k: v for k, v in cb.items() if k not in ("calls", "caught")}
        if json.dumps(definition_a, sort_keys=True) != json.dumps(definition_b, sort_keys=True):
            found.append(f"{ca['name']}: its definition changed")
        elif ca.get("caught") != cb.get("caught"):
            lost = sorted(set(ca.get("caught", [])) - set(cb.get("caught", [])))
            new = sorted(set(cb.get("caught", [])) - set(ca.get("caught", [])))
            found.append(f"{ca['name']}: the mistakes it catches changed (-{lost} +{new})")
        elif len(ca["calls"]) != len(cb["calls"]):
            found.append(f"{ca['name']}: its number of calls changed")
        else:
            for j, (x, y) in enumerate(zip(ca["calls"], cb["calls"])):
                problem = _call_difference(x, arr_a, y, arr_b)
                if problem:
                    found.append(f"{ca['name']}: call {j}: {problem}")
                    break
    return found


def load_checks(checks_module: str) -> list[Check]:
    module = importlib.import_module(checks_module)
    return list(module.CHECKS)
