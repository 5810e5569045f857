"""`archspec summary` on ResNet-152 against torchinfo's and fvcore's summaries of
torchvision's model, each counted from process start (what a user waits for), interleaved
runs, medians; also prints the totals each tool reports.

    python tools/bench_summary.py [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "archspec summary": [sys.executable, "-m", "archspec", "summary", "specs/resnet.arch",
                         "--net", "resnet152"],
    "torchinfo": [sys.executable, "-c", (
        "import torch, torchvision, torchinfo\n"
        "m = torchvision.models.resnet152()\n"
        "print(torchinfo.summary(m, input_size=(1, 3, 224, 224), verbose=0))")],
    "fvcore": [sys.executable, "-c", (
        "import torch, torchvision\n"
        "from fvcore.nn import FlopCountAnalysis, parameter_count\n"
        "m = torchvision.models.resnet152().eval()\n"
        "flops = FlopCountAnalysis(m, torch.randn(1, 3, 224, 224))\n"
        "flops.unsupported_ops_warnings(False)\n"
        "print('params', parameter_count(m)[''])\n"
        "print('flops', flops.total())\n"
        "print('by_operator', dict(flops.by_operator()))")],
}


def run(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{command[:4]} failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def totals(name: str, output: str) -> str:
    if name == "archspec summary":
        params = re.search(r"Total params:\s+([\d,]+)", output).group(1)
        macs = re.search(r"MACs:\s+([\d,]+)", output).group(1)
        return f"params {params}, MACs {macs}"
    if name == "torchinfo":
        params = re.search(r"Total params: ([\d,]+)", output).group(1)
        adds = re.search(r"Total mult-adds \(([\w.]+)\): ([\d.]+)", output)
        unit = adds.group(1).rpartition(".")[2].lower()
        return f"params {params}, mult-adds {adds.group(2)} ({unit}: 10^9)"
    params = re.search(r"params (\d+)", output).group(1)
    flops = re.search(r"flops (\d+)", output).group(1)
    ops = re.search(r"by_operator (.*)", output).group(1)
    return f"params {int(params):,}, 'flops' {int(flops):,} ({ops})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    outputs: dict[str, str] = {}
    for name, command in COMMANDS.items():
        run(command)  # warm the file cache
    for index in range(args.runs):
        order = list(COMMANDS) if index % 2 == 0 else list(reversed(COMMANDS))
        for name in order:
            elapsed, outputs[name] = run(COMMANDS[name])
            times[name].append(elapsed)
    ours = statistics.median(times["archspec summary"])
    print(f"ResNet-152, {args.runs} interleaved runs each, seconds from process start")
    print("| tool | median s | runs | x slower than archspec | totals |")
    print("|---|---|---|---|---|")
    for name in COMMANDS:
        median = statistics.median(times[name])
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(f"| {name} | {median:.3f} | {runs} | {median / ours:.1f} | "
              f"{totals(name, outputs[name])} |")
    slowest_ratio = min(statistics.median(times[n]) for n in COMMANDS if n != "archspec summary")
    return 0 if slowest_ratio / ours >= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
