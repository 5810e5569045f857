"""In-process CPU of checking the library (specs/*.arch) with block reuse on and off
(archspec/reuse.py), interleaved rounds, medians: python tools/bench_reuse.py --rounds 8"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's archspec, not an installed one

from archspec import expand
from archspec.check import check_file

SPECS = sorted(str(p) for p in (ROOT / "specs").glob("*.arch"))


def check_library() -> float:
    """CPU seconds of one check of every file of the library."""
    start = time.process_time()
    for spec in SPECS:
        check_file(spec)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    rounds = parser.parse_args().rounds
    check_library()  # warm: imports, op tables
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for reuse in (True, False):
            expand.REUSE_BLOCKS = reuse
            times[reuse].append(check_library())
    for reuse, spent in times.items():
        print(f"reuse {'on ' if reuse else 'off'}: median {statistics.median(spent):.3f} s CPU, "
              f"min {min(spent):.3f} s ({len(SPECS)} files, {rounds} rounds)")


if __name__ == "__main__":
    main()
