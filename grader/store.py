"""Stored test vectors: the checks' inputs, the reference's outcomes and the classic mistakes'
outcomes, as safe data (JSON + an ``.npz`` read with ``allow_pickle=False``). They let students
self-check where the reference solutions are absent, and let the parent judge without torch.

A check module ``pkg/checks/ppo.py`` keeps its vectors beside it: ``ppo.vectors.json`` +
``ppo.vectors.npz``. A released student bundle keeps the public part in ``checks/``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from grader.model import PUBLIC, CallData, CheckData, ExerciseVectors, Outcome
from grader.spec import Check, Mistake

FORMAT = 1
SUFFIX_JSON, SUFFIX_NPZ = ".vectors.json", ".vectors.npz"


# ----------------------------------------------------------------------------- locations


def package_vectors_stem(checks_module: str) -> Path:
    """``grader.checks.ppo`` → ``…/grader/checks/ppo`` (without importing the module)."""
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


def key_of(array: np.ndarray) -> str:
    """A content address: equal arrays share one key (stored once, and a call whose inputs
    are all equal to another's runs once)."""
    a = np.asarray(array)
    h = hashlib.sha1(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def pack(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, list[Any]], dict[str, np.ndarray]]:
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
    index, buffers = pack(arrays)
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


# ----------------------------------------------------------------------------- generation


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if isinstance(value, np.ndarray):
        key = key_of(value)
        arrays[key] = value
        return {"array": key}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"a check input must be a numpy array or a plain value, not {type(value)}")


def generate(
    exercise: str,
    functions: Sequence[str],
    checks: Sequence[Check],
    reference: Any,
    mistakes: Sequence[Mistake] = (),
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Build the vectors: run every check's calls on the reference (in-process, needs torch),
    then on each classic mistake to learn which checks catch it and how it behaves."""
    from grader.executor import single_thread

    with single_thread():
        return _generate(exercise, functions, checks, reference, mistakes)


def _generate(
    exercise: str,
    functions: Sequence[str],
    checks: Sequence[Check],
    reference: Any,
    mistakes: Sequence[Mistake],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from grader.executor import execute_call
    from grader.judges import close, judge

    arrays: dict[str, np.ndarray] = {}

    def put(a: np.ndarray) -> str:
        return _encode(np.asarray(a), arrays)["array"]

    ref = {f: getattr(reference, f) for f in functions}
    docs = []
    for check in checks:
        datas: list[CallData] = []
        jsons: list[dict[str, Any]] = []
        for call in check.build():
            names = list(call.args)
            data = CallData(
                function=call.function,
                args=[_encode(v, arrays) for v in call.args.values()],
                kwargs={n: _encode(v, arrays) for n, v in call.kwargs.items()},
                grad_wrt=[names.index(n) for n in call.grad_wrt],
                cotangents=[None if c is None else put(c) for c in call.cotangents],
                arg_names=names,
                aux={n: put(a) for n, a in call.aux.items()},
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
            jsons.append(
                {
                    "function": data.function,
                    "args": data.args,
                    "kwargs": data.kwargs,
                    "arg_names": data.arg_names,
                    "grad_wrt": data.grad_wrt,
                    "cotangents": data.cotangents,
                    "aux": data.aux,
                    "expected": expected.to_meta(put),
                    "mistakes": {},
                }
            )
        cd = CheckData(
            check.name,
            check.function,
            check.points,
            check.visibility,
            check.description,
            check.judge,
            datas,
        )
        verdict = judge(cd, [d.expected for d in datas], arrays)
        if not verdict.passed:
            raise RuntimeError(
                f"{check.name}: the reference fails its own check: {verdict.message}"
            )
        caught = []
        for mistake in mistakes:
            if mistake.function not in {d.function for d in datas}:
                continue
            fns = SimpleNamespace(**{**ref, mistake.function: mistake.impl})
            outcomes = []
            for d in datas:
                meta, outs = execute_call(fns, d.request(), arrays)
                outcomes.append(Outcome.from_meta(meta, outs))
            if judge(cd, outcomes, arrays).passed:  # type: ignore[arg-type]
                continue
            caught.append(mistake.name)
            for j, o in enumerate(outcomes):
                jsons[j]["mistakes"][mistake.name] = o.to_meta(put)
        docs.append(
            {
                "name": check.name,
                "function": check.function,
                "points": check.points,
                "visibility": check.visibility,
                "description": check.description,
                "judge": check.judge,
                "caught": caught,
                "calls": jsons,
            }
        )
    doc = {
        "format": FORMAT,
        "exercise": exercise,
        "functions": list(functions),
        "mistakes": {m.name: m.explanation for m in mistakes},
        "checks": docs,
    }
    return doc, arrays


def differences(
    a: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
    b: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
) -> list[str]:
    """What differs between two sets of vectors (empty: the same up to round-off)."""
    from grader.judges import close

    (doc_a, arr_a), (doc_b, arr_b) = a, b
    found = []
    if json.dumps(doc_a, sort_keys=True) != json.dumps(doc_b, sort_keys=True):
        names_a = [c["name"] for c in doc_a["checks"]]
        names_b = [c["name"] for c in doc_b["checks"]]
        if names_a != names_b:
            found.append(f"checks differ: {names_a} vs {names_b}")
        else:
            for ca, cb in zip(doc_a["checks"], doc_b["checks"]):
                if json.dumps(ca, sort_keys=True) != json.dumps(cb, sort_keys=True):
                    found.append(
                        f"{ca['name']}: its definition, outcomes or caught mistakes changed"
                    )
        if not found:
            found.append("the exercise's metadata changed")
    if set(arr_a) != set(arr_b):
        found.append(f"{len(set(arr_a) ^ set(arr_b))} arrays added or removed")
    for k in sorted(set(arr_a) & set(arr_b)):
        x, y = arr_a[k], arr_b[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            found.append(f"array {k}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
        elif x.dtype.kind == "f":
            rtol = 1e-5 if x.dtype == np.float32 else 1e-10
            if not close(x, y, rtol, rtol * 1e-2).all():
                found.append(f"array {k} changed values")
        elif not np.array_equal(x, y):
            found.append(f"array {k} changed values")
    return found


def load_checks(checks_module: str) -> list[Check]:
    module = importlib.import_module(checks_module)
    return list(module.CHECKS)
