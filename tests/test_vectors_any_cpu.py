"""The stored vectors hold on any x86-64 CPU: `rlkit vectors` finds them up to date under each
of torch's CPU kernels, ATEN_CPU_CAPABILITY=default, avx2 and avx512, whichever kernel generated
them, and the vectors regenerated under any kernel use the same array keys (no key is a hash of
float bytes). `test_grader_vectors.py` verifies them in-process under this machine's own kernel;
this test runs the others in parallel subprocesses. A capability the CPU lacks falls back to the
best it has, so the test runs anywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from rlkit.plugins import get_exercises

CAPABILITIES = ("default", "avx2", "avx512")
EXERCISES = [name for name, ex in get_exercises().items() if ex.solution is not None]
#: under the given kernel: regenerate each exercise's vectors in memory, then say whether they
#: mean the same as the stored ones (`rlkit vectors`) and use the same array keys
SCRIPT = """
import json, sys, torch
from rlkit_grader import api, store
print("kernel:", torch.backends.cpu.get_cpu_capability())
for name in sys.argv[1:]:
    exercise = api.select_exercises([name])[0]
    stale, same_keys = [], True
    for stem, *fresh in api.build_vectors(exercise):  # the public part, the hidden part
        stored = store.read_raw(stem)
        stale += store.differences(stored, fresh)
        same_keys &= json.dumps(fresh[0], sort_keys=True) == json.dumps(stored[0], sort_keys=True)
    print(f"{name}: {'STALE ' + str(stale[:3]) if stale else 'up to date'}"
          f"{'' if same_keys else ', array keys differ: rlkit vectors --regenerate ' + name}")
"""


def test_vectors_are_up_to_date_under_every_other_cpu_kernel() -> None:
    own = torch.backends.cpu.get_cpu_capability().lower()
    others = [c for c in CAPABILITIES if c != own]
    runs = {
        c: subprocess.Popen(
            [sys.executable, "-c", SCRIPT, *EXERCISES],
            env={**os.environ, "ATEN_CPU_CAPABILITY": c, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for c in others
    }
    outputs = {c: proc.communicate(timeout=300)[0] for c, proc in runs.items()}
    failures = [f"ATEN_CPU_CAPABILITY={c}:\n{outputs[c]}" for c, p in runs.items() if p.returncode]
    assert not failures, "\n".join(failures)
    assert "kernel: DEFAULT" in outputs.get("default", "kernel: DEFAULT"), outputs
    for c in others:  # each run judged every exercise: same meaning, same keys
        lines = set(outputs[c].splitlines())
        assert all(f"{name}: up to date" in lines for name in EXERCISES), outputs[c]
