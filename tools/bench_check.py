"""Time `archspec check specs/*.arch` from process start, as CI and editors run it.

Each run is a fresh interpreter (`python -m archspec check -q specs/*.arch`), so the figure
includes interpreter start, imports, parsing and checking every network and variant. Prints
every run and the median; exits 1 if the median misses the target.

    python tools/bench_check.py [--runs 11] [--target 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_once(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"check failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--target", type=float, default=0.5, help="seconds, median")
    args = parser.parse_args()
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.arch"))
    command = [sys.executable, "-m", "archspec", "check", "-q", *specs]
    time_once(command)  # warm the OS file cache and Lark's grammar cache
    times = [time_once(command) for _ in range(args.runs)]
    baseline = [time_once([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    median = statistics.median(times)
    print(f"files: {len(specs)}  runs: {args.runs}")
    print("check runs (s): " + " ".join(f"{t:.3f}" for t in times))
    print(f"median {median:.3f} s  min {min(times):.3f} s  "
          f"(bare interpreter start: median {statistics.median(baseline):.3f} s)")
    print(f"target {args.target:.3f} s: {'met' if median <= args.target else 'MISSED'}")
    return 0 if median <= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
