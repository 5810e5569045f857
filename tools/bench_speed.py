"""Speed of `archspec check` from process start, side by side with `python -c "import torch"`.

Every figure is a fresh interpreter with bytecode caching on, as users run it
(PYTHONDONTWRITEBYTECODE is unset), so it includes interpreter start, imports, parsing and
checking. The runs of all commands are interleaved, so a busy machine slows them alike, and
each command's median is divided by the median of `import torch` measured in the same run.
Cases, with the targets of issue 13:

- library:    `archspec check specs/*.arch` (every network and variant), <= 0.1x torch
- flat 10k:   a network of 10,000 statements (conv, batchnorm, relu), <= 0.4x torch
- repeat 90k: `repeat 90000 { relu }`, 90,000 layers, <= 0.8x torch
- floor:      `python -c pass` (the interpreter starting), the imports of Lark and
              pydantic's BaseModel (the stack, before any archspec code) and a one-layer
              spec (start, imports, the parser loaded): what every check costs before its
              networks
- growth:     flat networks of 1k, 10k and the most statements the limits allow (100k is
              past the file-size limit, E403, and the work budget, E408), and repeats of
              1k, 10k and 90k layers: the time per statement must not grow with the size.

The generated specs go to a temporary folder. CPU time (user + system, from os.wait4) is
shown next to the wall time: a loaded machine changes it less. Exits 1 if a target is missed.

    python tools/bench_speed.py [--runs 7] [--only library]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.limits import (
    LAYER_STEPS,
    MAX_FILE_BYTES,
    MAX_STEPS,
    PARSE_STEPS,
)

FLAT_CYCLE = ("conv(16, k=3, p=1)", "batchnorm", "relu")
FLAT_HEAD, FLAT_TAIL = "network flat() {\n  input [16, 8, 8]\n", "}\n"
TARGETS = {"library": 0.1, "flat 10k": 0.4, "repeat 90k": 0.8}
STACK = "import lark; from pydantic import BaseModel, Field, ValidationError"


@dataclass
class Case:
    name: str
    command: list[str]
    size: int = 0  # statements or layers, for the growth table
    walls: list[float] | None = None
    cpus: list[float] | None = None


def flat_spec(statements: int) -> str:
    """A network of `statements` statements, one a line, cycling through FLAT_CYCLE."""
    body = "".join(f"  {FLAT_CYCLE[i % len(FLAT_CYCLE)]}\n" for i in range(statements))
    return FLAT_HEAD + body + FLAT_TAIL


def repeat_spec(layers: int) -> str:
    return f"network deep() {{\n  input [16, 8, 8]\n  repeat {layers} {{ relu }}\n}}\n"


def largest_flat() -> int:
    """The most statements a flat spec may have: within the file-size limit (E403) and the
    work budget (E408: every character parsed, statement and layer is charged)."""
    line = sum(len(f"  {s}\n") for s in FLAT_CYCLE) / len(FLAT_CYCLE)
    by_size = (MAX_FILE_BYTES - 100) / line
    by_steps = MAX_STEPS / (PARSE_STEPS * line + LAYER_STEPS + 4)  # +4: statement, argument
    return int(min(by_size, by_steps) * 0.97) // 1000 * 1000


def run_once(command: list[str], env: dict) -> tuple[float, float]:
    """Wall and CPU seconds of one run, which must succeed without a diagnostic."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    if proc.returncode != 0 or text.strip():
        sys.exit(f"{' '.join(command[-3:])} failed ({proc.returncode}):\n{text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def cases(folder: Path, only: str | None) -> list[Case]:
    check = [sys.executable, "-m", "archspec", "check", "-q"]
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.arch"))
    one_layer = folder / "one_layer.arch"
    one_layer.write_text("network one() {\n  input [3, 8, 8]\n  relu\n}\n")
    found = [Case("import torch", [sys.executable, "-c", "import torch"]),
             Case("python", [sys.executable, "-c", "pass"]),
             Case("lark+pydantic", [sys.executable, "-c", STACK]),
             Case("one layer", check + [str(one_layer)]),
             Case("library", check + specs)]
    most = largest_flat()
    for label, size, text in [("flat 1k", 1_000, flat_spec(1_000)),
                              ("flat 10k", 10_000, flat_spec(10_000)),
                              (f"flat {most // 1000}k", most, flat_spec(most)),
                              ("repeat 1k", 1_000, repeat_spec(1_000)),
                              ("repeat 10k", 10_000, repeat_spec(10_000)),
                              ("repeat 90k", 90_000, repeat_spec(90_000))]:
        path = folder / f"{label.replace(' ', '_')}.arch"
        path.write_text(text)
        found.append(Case(label, check + [str(path)], size))
    if only:
        found = [c for c in found if c.name == "import torch" or only in c.name]
    return found


def measure(found: list[Case], runs: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for case in found:  # write bytecode and Lark's grammar cache, warm the file cache
        run_once(case.command, env)
        case.walls, case.cpus = [], []
    for _ in range(runs):
        for case in found:
            wall, cpu = run_once(case.command, env)
            case.walls.append(wall)
            case.cpus.append(cpu)


def report(found: list[Case]) -> bool:
    torch = found[0]
    base_wall, base_cpu = statistics.median(torch.walls), statistics.median(torch.cpus)
    print(f"{'case':<14}{'wall s':>8}{'x torch':>9}{'cpu s':>8}{'x torch':>9}  target")
    ok = True
    for case in found:
        wall, cpu = statistics.median(case.walls), statistics.median(case.cpus)
        target = TARGETS.get(case.name)
        verdict = ""
        if target is not None:
            met = wall / base_wall <= target
            ok = ok and met
            verdict = f"<= {target}x: {'met' if met else 'MISSED'}"
        print(f"{case.name:<14}{wall:>8.3f}{wall / base_wall:>9.3f}{cpu:>8.3f}"
              f"{cpu / base_cpu:>9.3f}  {verdict}")
    return _growth(found) and ok


def _growth(found: list[Case]) -> bool:
    """Time per statement between sizes: linear when the larger steps cost no more per
    statement (within 1.5x) than the first step."""
    ok = True
    for kind in ("flat", "repeat"):
        sized = [c for c in found if c.name.startswith(kind) and c.size]
        if len(sized) < 3:
            continue
        times = [statistics.median(c.cpus) for c in sized]
        steps = [(times[i + 1] - times[i]) / (sized[i + 1].size - sized[i].size) * 1e6
                 for i in range(len(sized) - 1)]
        linear = all(s <= steps[0] * 1.5 for s in steps[1:])
        ok = ok and linear
        print(f"growth {kind}: " + ", ".join(
            f"{b.name.split()[1]}/{a.name.split()[1]} cpu x{tb / ta:.2f} (size x{b.size / a.size:.1f})"
            for a, b, ta, tb in zip(sized, sized[1:], times, times[1:]))
            + "; us per statement: " + ", ".join(f"{s:.1f}" for s in steps)
            + f" -> {'linear' if linear else 'NOT LINEAR'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", help="only the cases whose name contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found = cases(Path(tmp), args.only)
        measure(found, args.runs)
    print(f"runs: {args.runs} each, interleaved; medians; python {sys.version.split()[0]}")
    return 0 if report(found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
