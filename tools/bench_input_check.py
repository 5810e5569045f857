"""What a built network's input check costs: forward() of small networks with and without
the check (torch_backend.InputCheck, a forward pre-hook), side by side.

Rounds of `--calls` forward passes at the declared shape, the two variants alternating
round by round (swapping which goes first) so machine noise hits both alike; medians per
call. Also the hook alone (called directly, at the declared shape), and the one-off cost of
the first input of another shape, when the network's valid sizes are found.

    python tools/bench_input_check.py [--rounds 41] [--calls 500] [--device cpu|cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archspec

NETWORKS = [("specs/lenet.arch", "lenet"), ("specs/resnet.arch", "resnet18")]


def per_call(run, calls: int, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def bench(spec: str, net: str, args) -> dict[str, float]:
    checked = archspec.build(str(ROOT / spec), net=net).to(args.device).eval()
    unchecked = archspec.build(str(ROOT / spec), net=net).to(args.device).eval()
    unchecked._forward_pre_hooks.clear()
    (hook,) = checked._forward_pre_hooks.values()
    x = torch.randn(1, *checked.input_shape, device=args.device)
    calls = args.calls if net == "lenet" else max(args.calls // 25, 4)
    runs = {"with": lambda: checked(x), "without": lambda: unchecked(x),
            "hook": lambda: hook(checked, (x,))}
    times: dict[str, list[float]] = {key: [] for key in runs}
    with torch.no_grad():
        for run in runs.values():
            per_call(run, calls, args.device)  # warm up
        for round_ in range(args.rounds):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for key in order:
                times[key].append(per_call(runs[key], calls, args.device))
        other = torch.randn(1, checked.input_shape[0],
                            *(d + 1 for d in checked.input_shape[1:]), device=args.device)
        start = time.perf_counter()
        try:
            checked(other)
        except ValueError:
            pass  # a size it does not take: refused, which is what is timed
        first = time.perf_counter() - start
    return {**{key: statistics.median(value) for key, value in times.items()}, "first": first}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (one: "
                        "steady timings on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.device}, {args.threads} thread(s), batch 1, "
          f"median of {args.rounds} rounds")
    print(f"{'network':<16} {'with check':>12} {'without':>12} {'difference':>11} "
          f"{'hook alone':>11} {'first other shape':>18}")
    for spec, net in NETWORKS:
        t = bench(spec, net, args)
        print(f"{net:<16} {t['with'] * 1e6:>9.1f} us {t['without'] * 1e6:>9.1f} us "
              f"{(t['with'] / t['without'] - 1) * 100:>+10.2f}% {t['hook'] * 1e6:>8.2f} us "
              f"{t['first'] * 1e3:>15.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
