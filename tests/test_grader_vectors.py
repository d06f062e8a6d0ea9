"""The stored vectors: up to date with the reference solutions and the checks, safe to load
(plain numeric arrays, never pickles), and the public part excludes hidden checks."""

from __future__ import annotations

import numpy as np
import pytest

from grader import api, store
from rlkit.plugins import get_exercises

COURSE = ("log_prob", "reinforce", "ppo", "dpo")


@pytest.mark.parametrize("name", COURSE)
def test_stored_vectors_are_not_stale(name: str) -> None:
    stale = api.verify([name])[name]
    assert not stale, f"run `rlkit vectors --regenerate`: {stale[:5]}"


def test_differences_notices_a_changed_value_a_changed_check_and_a_removed_array() -> None:
    doc, arrays = store.read_raw(store.package_vectors_stem("grader.checks.reinforce"))
    assert store.differences((doc, arrays), (doc, dict(arrays))) == []
    key = next(k for k, a in arrays.items() if a.dtype == np.float64 and a.size > 1)
    changed = dict(arrays)
    changed[key] = arrays[key] + 1e-3
    assert any(key in d for d in store.differences((doc, arrays), (doc, changed)))
    doc2 = {**doc, "checks": [{**doc["checks"][0], "points": 99}, *doc["checks"][1:]]}
    assert store.differences((doc, arrays), (doc2, arrays))
    fewer = dict(arrays)
    fewer.pop(key)
    assert store.differences((doc, arrays), (doc, fewer))


@pytest.mark.parametrize("name", COURSE)
def test_vector_files_hold_plain_numeric_arrays_only(name: str) -> None:
    stem = store.package_vectors_stem(get_exercises()[name].checks)
    with np.load(stem.with_name(stem.name + store.SUFFIX_NPZ), allow_pickle=False) as npz:
        for key in npz.files:
            assert npz[key].dtype.kind in "fib", (key, npz[key].dtype)


def test_pack_round_trip_keeps_zero_dim_arrays_and_dtypes() -> None:
    arrays = {
        "a": np.array(1.5, np.float32),
        "b": np.arange(6).reshape(2, 3),
        "c": np.array([True, False]),
        "d": np.zeros((0, 2)),
    }
    index, buffers = store.pack(arrays)
    back = store.unpack(index, buffers)
    for k, a in arrays.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape
        np.testing.assert_array_equal(back[k], a)


def test_public_part_drops_hidden_checks_and_their_arrays() -> None:
    doc, arrays = store.read_raw(store.package_vectors_stem("grader.checks.ppo"))
    public, used = store.public_part(doc, arrays)
    assert {c["visibility"] for c in public["checks"]} == {"public"}
    assert len(public["checks"]) < len(doc["checks"])
    assert set(used) < set(arrays)
    store.from_json(public, used)  # every key the public checks use is still there
