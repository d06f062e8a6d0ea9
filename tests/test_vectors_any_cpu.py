"""The stored vectors hold on any x86-64 CPU: `rlkit vectors` finds them up to date under each
of torch's CPU kernels, ATEN_CPU_CAPABILITY=default, avx2 and avx512, whichever kernel generated
them. `test_grader_vectors.py` verifies them in-process under this machine's own kernel; this
test runs `rlkit vectors` under the others, in parallel subprocesses. A capability the CPU lacks
falls back to the best it has, so the test runs anywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from rlkit.plugins import get_exercises

CAPABILITIES = ("default", "avx2", "avx512")
EXERCISES = [name for name, ex in get_exercises().items() if ex.solution is not None]
#: print the kernel torch picked, then run `rlkit vectors EXERCISES`
SCRIPT = (
    "import sys, torch; print('kernel:', torch.backends.cpu.get_cpu_capability()); "
    "sys.argv = ['rlkit', 'vectors', *sys.argv[1:]]; from rlkit.cli import main; main()"
)


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
    for c in others:  # each run judged every exercise
        assert all(f"{name}: up to date" in outputs[c] for name in EXERCISES), outputs[c]
