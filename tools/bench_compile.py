"""Time `archspec compile` against `archspec check` of the same network, from process start.

Each run is a fresh interpreter (`python -m archspec check|compile FILE --net NET`, compile
writing to a file in a temporary folder), the two commands interleaved so that load on the
machine falls on both alike; bytecode caching is on, as users have it. Prints the medians and
the ratio per network; exits 1 if a ratio exceeds the target.

    python tools/bench_compile.py [--runs 7] [--target 1.5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = [("resnet.arch", "resnet50"), ("resnet.arch", "resnet152"),
            ("densenet.arch", "densenet121"), ("googlenet.arch", "googlenet"),
            ("vgg.arch", "vgg16_bn"), ("lenet.arch", "lenet")]


def time_once(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False,
                          env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--target", type=float, default=1.5, help="compile / check, medians")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "model.py")
        print(f"{'network':<14} {'check s':>8} {'compile s':>10} {'ratio':>6}")
        for spec, net in NETWORKS:
            base = [sys.executable, "-m", "archspec"]
            check = base + ["check", "-q", f"specs/{spec}", "--net", net]
            compile_ = base + ["compile", f"specs/{spec}", "--net", net, "-o", out]
            time_once(check, env), time_once(compile_, env)  # bytecode and file caches
            checks, compiles = [], []
            for _ in range(args.runs):
                checks.append(time_once(check, env))
                compiles.append(time_once(compile_, env))
            ratio = statistics.median(compiles) / statistics.median(checks)
            worst = max(worst, ratio)
            print(f"{net:<14} {statistics.median(checks):8.3f} "
                  f"{statistics.median(compiles):10.3f} {ratio:6.2f}")
    print(f"worst ratio {worst:.2f}, target {args.target}: "
          f"{'met' if worst <= args.target else 'MISSED'}")
    return 0 if worst <= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
