"""CPU time and peak memory of `archspec check` on the worst specs within the limits.

Each case is written to a temporary folder and checked in a fresh interpreter
(`python -m archspec check -q`); the figures are that process's CPU time (user + system,
from os.wait4, so a loaded machine does not change them much) and its peak resident memory.
The cases mix the costs the work budget bounds: a main file at the size limit of the
densest tokens (parsing is the slow part), imports at their limit, a full budget of
expansion after them, 50 syntax errors at the end of a large file, an error repeated by a
loop. Exits 1 if a case passes --max-cpu or --max-mb.

    python tools/bench_bounds.py [--max-cpu 10] [--max-mb 1024] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.limits import MAX_FILE_BYTES, MAX_IMPORT_BYTES

NET = "network n() {{\n  input [3, 8, 8]\n{body}\n  relu\n}}\n"
EXPAND = "  for i in range(100000) { for j in range(1000) { let q = (i * 2 + j - 3) // 5 % 7 } }"


def dense_block(name: str, size: int) -> str:
    """A block of about `size` characters of the tokens that parse slowest (one-character
    list items), never called."""
    head, tail = f"block {name}() {{\n  let a = [", "1]\n  relu\n}\n"
    return head + "1," * ((size - len(head) - len(tail)) // 2) + tail


def cases() -> dict[str, dict[str, str]]:
    """name -> the files of the case ("main.arch" is checked)."""
    net = NET.format(body=EXPAND)
    imports = {f"lib{k}.arch": dense_block(f"lib{k}", MAX_IMPORT_BYTES // 4 - 100)
               for k in range(4)}
    importing = "".join(f'import "{name}"\n' for name in imports)
    full = MAX_FILE_BYTES - 200
    errors = "".join(f"block x{i}() {{ relu ) }}\n" for i in range(60))
    return {
        "parse: main file at the limit": {
            "main.arch": dense_block("big", full) + NET.format(body="")},
        "expand: a full budget": {"main.arch": net},
        "parse + expand: main file at the limit": {
            "main.arch": dense_block("big", full - len(net)) + net},
        "parse + expand: main file and imports at their limits": {
            "main.arch": importing + dense_block("big", full - len(net) - len(importing))
            + net, **imports},
        f"parse: 50 syntax errors after {(full - len(errors)) // 1000} kB": {
            "main.arch": dense_block("big", full - len(errors)) + errors},
        "expand: an error in every round": {
            "main.arch": NET.format(body="  repeat 100000 { repeat 100 { conv(-1) } }")},
        "expand: 2**30 empty block calls": {
            "main.arch": "block b1() { }\n" + "".join(
                f"block b{i}() {{ b{i - 1} b{i - 1} }}\n" for i in range(2, 31))
            + NET.format(body="  b30")},
    }


def run(files: dict[str, str]) -> tuple[int, float, float, str]:
    """(exit status, CPU seconds, peak MB, last line of stderr) of one check."""
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(os.devnull, "wb") as null, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([sys.executable, "-m", "archspec", "check", "-q",
                                     "main.arch"], cwd=folder, env=env, stdout=null,
                                    stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            last = (err.read().decode("utf-8", "replace").strip().splitlines() or [""])[-1]
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-cpu", type=float, default=10.0, help="CPU seconds a case")
    parser.add_argument("--max-mb", type=float, default=1024.0, help="peak MB a case")
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    worst = 0.0
    failed = 0
    for name, files in cases().items():
        if args.only and args.only not in name:
            continue
        status, cpu, mb, last = run(files)
        size = sum(len(text) for text in files.values())
        over = cpu > args.max_cpu or mb > args.max_mb
        failed += over
        worst = max(worst, cpu)
        print(f"{cpu:6.2f} s CPU {mb:7.1f} MB  exit {status}  {size / 1000:6.1f} kB  {name}"
              f"{'  OVER' if over else ''}\n{'':40}{last[:100]}")
    print(f"slowest: {worst:.2f} s CPU (limit {args.max_cpu:g} s, {args.max_mb:g} MB)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
