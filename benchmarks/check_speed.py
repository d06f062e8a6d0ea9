"""How fast does `rlkit check` answer over all exercises? Goal: under 3 s on the course's 2-core
machine. Compared, in the same run, with the naive sandbox (a fresh interpreter that imports
torch for each exercise, one after the other: what it costs before running a single check) and
with one bare `import torch`.

    flock /tmp/rlkit-bench.lock python benchmarks/check_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlkit.plugins import get_exercises


def solution_files() -> dict[str, Path]:
    """Every registered exercise (a plugin's included) → its reference solution's file."""
    files = {}
    for name, exercise in get_exercises().items():
        spec = importlib.util.find_spec(exercise.solution) if exercise.solution else None
        if spec is None or spec.origin is None:
            raise SystemExit(f"{name}: no reference solution installed")
        files[name] = Path(spec.origin)
    return files


def median_seconds(cmds: list[list[str]], repeat: int, ok: tuple[int, ...] = (0,)) -> float:
    """Median wall time of running ``cmds`` one after the other."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for cmd in cmds:
            code = subprocess.run(cmd, capture_output=True).returncode
            if code not in ok:
                raise SystemExit(f"{' '.join(cmd)} exited {code}")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rlkit = str(Path(sys.executable).with_name("rlkit"))
    with tempfile.TemporaryDirectory() as tmp:
        solved, stubs = Path(tmp) / "solved", Path(tmp) / "stubs"
        solved.mkdir()
        solutions = solution_files()
        for name, file in solutions.items():
            shutil.copy(file, solved / f"{name}.py")
        subprocess.run([rlkit, "init", str(stubs)], check=True, capture_output=True)
        check_solved = median_seconds([[rlkit, "check", "--path", str(solved)]], args.repeat)
        check_stubs = median_seconds([[rlkit, "check", "--path", str(stubs)]], args.repeat, ok=(1,))
    torch_once = [sys.executable, "-I", "-c", "import torch"]
    one = median_seconds([torch_once], args.repeat)
    naive = median_seconds([torch_once] * len(solutions), args.repeat)
    rows = [
        ("rlkit check (solutions, all pass)", check_solved),
        ("rlkit check (fresh stubs)", check_stubs),
        ("import torch, once", one),
        ("import torch, once per exercise", naive),
    ]
    print(f"{'command':<36}{'median s':>10}")
    for label, seconds in rows:
        print(f"{label:<36}{seconds:>10.3f}")
    print(
        f"rlkit check / naive per-exercise start-up = {check_solved / naive:.2f}  "
        f"(goal: rlkit check under 3 s: {'met' if check_solved < 3 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
