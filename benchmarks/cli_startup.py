"""How fast does `rlkit --help` answer? Compared, in the same run, with a bare Python start-up
and with `import torch` (what a careless CLI would pay on every call).

    python benchmarks/cli_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def median_seconds(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rlkit = str(Path(sys.executable).with_name("rlkit"))
    python = median_seconds([sys.executable, "-c", "pass"], args.repeat)
    help_ = median_seconds([rlkit, "--help"], args.repeat)
    torch = median_seconds([sys.executable, "-c", "import torch"], args.repeat)
    print(f"{'command':<28}{'median s':>10}")
    print(f"{'python -c pass':<28}{python:>10.3f}")
    print(f"{'rlkit --help':<28}{help_:>10.3f}")
    label = 'python -c "import torch"'
    print(f"{label:<28}{torch:>10.3f}")
    print(f"rlkit --help / import torch = {help_ / torch:.2f}  (goal: well under 1 s)")


if __name__ == "__main__":
    main()
