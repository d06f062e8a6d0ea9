"""The stored vectors: up to date with the reference solutions and the checks, safe to load
(plain numeric arrays, never pickles), and the public part excludes hidden checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlkit.plugins import get_exercises
from rlkit_grader import api, store

#: every registered exercise with a reference solution (a plugin's too)
EXERCISES = [name for name, ex in get_exercises().items() if ex.solution is not None]


@pytest.mark.parametrize("name", EXERCISES)
def test_stored_vectors_are_not_stale(name: str) -> None:
    stale = api.verify([name])[name]
    assert not stale, f"run `rlkit vectors --regenerate`: {stale[:5]}"


def _first_float_array(doc: dict, where: str) -> tuple[str, str]:
    """(check name, key) of the first float array of the reference's ("e") or a mistake's
    ("m") outcomes."""
    for check in doc["checks"]:
        for call in check["calls"]:
            outcomes = [call["expected"]] if where == "e" else list(call["mistakes"].values())
            for outcome in outcomes:
                for out in outcome.get("outputs", []):
                    key = out.get("key", "")
                    own = where == "e" or ".m" in key  # not shared with the reference
                    if own and out.get("dtype") in ("float32", "float64"):
                        return check["name"], key
    raise AssertionError("no float output found")


def test_differences_sees_meaning_not_bytes_or_keys() -> None:
    doc, arrays = store.read_raw(store.package_vectors_stem("rlkit_grader.checks.reinforce"))
    assert store.differences((doc, arrays), (doc, dict(arrays))) == []
    name, key = _first_float_array(doc, "e")
    # last-bit noise in the reference's values is no difference
    noisy = {**arrays, key: np.nextafter(arrays[key], np.inf).astype(arrays[key].dtype)}
    assert store.differences((doc, arrays), (doc, noisy)) == []
    # a value beyond round-off is, and the message names the check
    changed = {**arrays, key: arrays[key] + 1e-3}
    assert any(d.startswith(name) for d in store.differences((doc, arrays), (doc, changed)))
    # renaming every array (another CPU, another order) is no difference
    renamed_doc = json.loads(json.dumps(doc).replace('"@', '"@x'))
    renamed = {f"@x{k[1:]}": v for k, v in arrays.items()}
    assert store.differences((doc, arrays), (renamed_doc, renamed)) == []
    # a changed definition is
    doc2 = {**doc, "checks": [{**doc["checks"][0], "points": 99}, *doc["checks"][1:]]}
    assert store.differences((doc, arrays), (doc2, arrays))


def test_a_mistakes_overflow_may_change_kind_but_not_the_references() -> None:
    doc, arrays = store.read_raw(store.package_vectors_stem("rlkit_grader.checks.log_prob"))
    _, key = _first_float_array(doc, "m")
    nan = arrays[key].copy()
    nan.flat[0] = np.nan
    inf = nan.copy()
    inf.flat[0] = -np.inf
    a, b = {**arrays, key: nan}, {**arrays, key: inf}
    assert store.differences((doc, a), (doc, b)) == []  # nan vs -inf: the same overflow
    assert store.differences((doc, arrays), (doc, a))  # finite vs overflow: a difference
    _, ref_key = _first_float_array(doc, "e")
    r_nan, r_inf = arrays[ref_key].copy(), arrays[ref_key].copy()
    r_nan.flat[0], r_inf.flat[0] = np.nan, np.inf
    assert store.differences((doc, {**arrays, ref_key: r_nan}), (doc, {**arrays, ref_key: r_inf}))


def test_array_keys_name_where_arrays_are_used_not_their_bytes() -> None:
    doc, arrays = store.read_raw(store.package_vectors_stem("rlkit_grader.checks.ppo"))
    assert all(k.startswith("@") for k in arrays)
    assert all(
        k[1:].replace(".", "").replace("i", "").replace("e", "").replace("m", "").isdigit()
        for k in arrays
    )


@pytest.mark.parametrize("name", EXERCISES)
def test_vector_files_hold_plain_numeric_arrays_only(name: str) -> None:
    for stem in api.vector_parts(get_exercises()[name], hidden=True):  # public, hidden
        with np.load(stem.with_name(stem.name + store.SUFFIX_NPZ), allow_pickle=False) as npz:
            for key in npz.files:
                assert npz[key].dtype.kind in "fib", (key, npz[key].dtype)


@pytest.mark.parametrize("name", EXERCISES)
def test_public_vectors_beside_the_checks_hold_no_hidden_check(name: str) -> None:
    """The student's install has the public part only; the hidden part is the instructor's
    and merges back in the checks' order."""
    exercise = get_exercises()[name]
    public, hidden = api.vector_parts(exercise, hidden=True)
    assert public == store.package_vectors_stem(exercise.checks)
    doc, arrays = store.read_raw(public)
    assert {c["visibility"] for c in doc["checks"]} == {"public"}
    assert not any(k.startswith("h") for k in arrays)
    hidden_doc, hidden_arrays = store.read_raw(hidden)
    assert {c["visibility"] for c in hidden_doc["checks"]} == {"hidden"}
    assert all(k.startswith("h@") for k in hidden_arrays)
    merged = [
        c["name"] for c in store.merge((doc, arrays), (hidden_doc, hidden_arrays))[0]["checks"]
    ]
    assert merged == [c.name for c in store.load_checks(exercise.checks)]


def test_pack_round_trip_keeps_zero_dim_arrays_and_dtypes() -> None:
    arrays = {
        "a": np.array(1.5, np.float32),
        "b": np.arange(6).reshape(2, 3),
        "c": np.array([True, False]),
        "d": np.zeros((0, 2)),
    }
    index, buffers = store.pack_arrays(arrays)
    back = store.unpack(index, buffers)
    for k, a in arrays.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape
        np.testing.assert_array_equal(back[k], a)


def test_public_part_drops_hidden_checks_and_their_arrays() -> None:
    public_stem, hidden_stem = api.vector_parts(get_exercises()["ppo"], hidden=True)
    doc, arrays = store.merge(store.read_raw(public_stem), store.read_raw(hidden_stem))
    public, used = store.public_part(doc, arrays)
    assert {c["visibility"] for c in public["checks"]} == {"public"}
    assert len(public["checks"]) < len(doc["checks"])
    assert set(used) < set(arrays)
    store.from_json(public, used)  # every key the public checks use is still there
