"""Training-step throughput of archspec.build() networks against torchvision's own models.

Forward + backward of ResNet-50, DenseNet-121 and GoogLeNet at the same batch size, the two
implementations interleaved run by run (alternating which goes first) so that machine noise
hits both alike; medians per implementation. Both models hold the same weights.

    python tools/bench_torch.py [--batch 8] [--runs 7] [--device cpu|cuda]
                                [--channels-last] [--amp]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archspec

MODELS = {
    "resnet50": ("specs/resnet.arch", torchvision.models.resnet50),
    "densenet121": ("specs/densenet.arch", torchvision.models.densenet121),
    "googlenet": ("specs/googlenet.arch",
                  lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False)),
}


def step_time(model, x, device: str, amp: bool) -> float:
    model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16 if device == "cpu" else torch.float16,
                        enabled=amp):
        loss = model(x).float().sum()
    loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench(name: str, args) -> tuple[float, float]:
    spec, reference = MODELS[name]
    theirs = reference()
    ours = archspec.build(str(ROOT / spec), net=name)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    models = {"archspec": ours.to(args.device, memory_format=fmt).train(),
              "torchvision": theirs.to(args.device, memory_format=fmt).train()}
    x = torch.randn(args.batch, 3, 224, 224, device=args.device).to(memory_format=fmt)
    for model in models.values():
        for _ in range(args.warmup):
            step_time(model, x, args.device, args.amp)
    times: dict[str, list[float]] = {key: [] for key in models}
    for run in range(args.runs):
        order = list(models) if run % 2 == 0 else list(reversed(models))
        for key in order:
            times[key].append(step_time(models[key], x, args.device, args.amp))
    return statistics.median(times["archspec"]), statistics.median(times["torchvision"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--amp", action="store_true", help="autocast (bf16 CPU, fp16 CUDA)")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    label = (f"device {args.device}"
             f"{' (' + torch.cuda.get_device_name() + ')' if args.device == 'cuda' else ''}, "
             f"batch {args.batch}, {args.runs} interleaved runs, torch {torch.__version__}, "
             f"threads {torch.get_num_threads()}"
             f"{', channels_last' if args.channels_last else ''}{', autocast' if args.amp else ''}")
    print(label)
    print("| network | archspec s/step | torchvision s/step | archspec img/s | "
          "torchvision img/s | ratio (ours/theirs throughput) |")
    print("|---|---|---|---|---|---|")
    worst = float("inf")
    for name in args.models:
        ours, theirs = bench(name, args)
        ratio = theirs / ours
        worst = min(worst, ratio)
        print(f"| {name} | {ours:.4f} | {theirs:.4f} | {args.batch / ours:.1f} | "
              f"{args.batch / theirs:.1f} | {ratio:.3f} |", flush=True)
    print(f"lowest ratio {worst:.3f} (target >= 0.97)")
    return 0 if worst >= 0.97 else 1


if __name__ == "__main__":
    raise SystemExit(main())
