"""Fuzz archspec's command line with broken and hostile specs, files and paths.

    python tools/fuzz.py --cases 20000 --attacks 500 --seed 0 [--jobs N] [--timeout S]
                         [--wall-timeout S] [--max-cpu S] [--max-mb MB] [--out DIR]
                         [--from INDEX]  # regular cases INDEX.. only: a run in parts

Every regular case is a .arch file made one of three ways, chosen per case from the seed:

* grammar (35%): a program drawn from Hypothesis strategies that follow grammar.lark
  (blocks, networks, variants, imports, every statement form, expressions of every
  operator), with names, numbers and strings biased towards the edges: keywords, PyTorch
  attribute names, huge and negative numbers, odd Unicode;
* mutation (50%): a spec of specs/ or tests/broken/ with 1 to 4 mutations: tokens deleted,
  duplicated or swapped, numbers replaced by huge ones, deep nesting inserted, odd Unicode or
  binary bytes inserted, names replaced by hostile ones, the file cut short, or spliced with
  another spec;
* hostile (15%): a small spec aimed at one limit or one injection (deep nesting, huge loops,
  import chains and escapes, big tensors, hostile labels and names, long labels).

After them come --attacks cases (numbered from --cases on), the shapes of issue 16, each a
folder of files made in the worker from a recipe of a few bytes (shape and seed):
exponential block calls (`b1() { b0 b0 }` 8 to 40 deep, empty and non-empty), labels whose
templates double, block libraries of up to 260 kB with a name that is in them or almost,
many imports of one file or of many, thousands of variants of a 90,000-layer network, one
60 kB line with thousands of errors (or only warnings) in every output format, spec names
with newlines, `::error title=x::`, spaces, Unicode or leading dashes (also given relative,
as written), specs that are a FIFO, a directory, binary, or links out of their folder or to
/proc/self/environ, files at the size limits with a full budget of expansion after them,
and -o targets that must be refused and left untouched: the spec itself, a file it
imports, links (to a file, the spec, nothing, a folder), a FIFO and a directory made in the
case's folder.

Every case runs `archspec check` (its output format cycling through text, json and github).
Then, deterministically by case number:
* a case that checks clean runs `summary` (format cycling through table, markdown, csv and
  json, with `--count all` and `--rf` on every third) and `diagram -o case.dot`, and every
  4th such case `compile -o case.py`, every 20th `diagram -o case.svg` (Graphviz's dot),
  every 10th `diff case.arch case.arch`;
* every 8th case that compiles (and has under 2M parameters) imports the compiled file, builds
  its module and archspec.build()'s, and compares their state_dict keys and shapes and, after
  loading one into the other, their outputs on a random input (torch is imported for this);
* every 10th case with spec errors runs `summary`, `compile -o` and `diagram -o` as well (they
  must fail the same way, leaving the output file untouched).

The cases are made in the main process, batch by batch, reproducibly from --seed (`--dump
FILE` writes them without running anything; `--log FILE` records each case's digest and
results, to compare two runs). Commands run in-process (archspec.cli.main, stdout and stderr
captured) in worker processes, each case in a folder holding a copy of tests/broken/lib (so
imports resolve). A command is stopped after --timeout seconds of CPU time (SIGPROF, so a
loaded machine does not make hangs), or after --wall-timeout seconds of wall-clock time
(SIGALRM: a backstop for a command blocked without using CPU, counted apart as "stuck");
each worker has an address-space limit (--memory-gb). The CPU time of every command is
measured (getrusage), and the peak memory of every case (the worker's peak resident size,
restarted before each case through /proc/self/clear_refs, less what the worker holds beyond
a fresh process); the summary gives the largest of each.

A case fails when a command: crashes (exit status not 0, 1 or 2; a traceback; `internal
error`; the RecursionError fallback), hangs or is stuck, uses more than --max-cpu seconds
of CPU (10), fails without a coded diagnostic (exit 1 without `error[E...]`), prints JSON
that does not parse, GitHub lines that are not annotations (or properties with a raw `:`),
text with a line GitHub would read as a workflow command, more than 1 MB of text, or the
secret of a file or of the environment it must not read, writes Python that `ast.parse`
rejects or that holds anything but the expected imports, classes and functions, whose
module differs from archspec.build()'s, or changes the output file when it fails; or when
an -o target is not refused with exit status 2 or changes; or when the case uses more than
--max-mb of memory (1024). Failing inputs are saved under --out (attacks as their recipe).
Exit status 0 when no case failed.
"""

from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import functools
import hashlib
import io
import json
import multiprocessing
import multiprocessing.pool
import os
import random
import re
import resource
import shutil
import signal
import stat
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS_DIRS = [ROOT / "specs", ROOT / "tests" / "broken"]
LIB = ROOT / "tests" / "broken" / "lib"
BATCH = 50
ATTACK_BATCH = 10  # attack cases are larger: fewer a batch

# ---------------------------------------------------------------- edge values

HUGE_NUMBERS = ["0", "-1", "1", "2", "7", "64", "65", "99999", "100000", "100001", "2147483648",
                "9223372036854775807", "9223372036854775808", "18446744073709551616",
                "1" + "0" * 30, "9" * 5000, "0" * 5000 + "1", "1_000_000_000", "2**62",
                "2**63", "-2**63", "10**18", "1e308", "1e999", "1e-400", "0.0", "-0.0", "0.5",
                "1.7976931348623157e308", "3.0", "-9223372036854775807"]
HOSTILE_NAMES = ["forward", "training", "_modules", "__class__", "__init__", "add_module",
                 "state_dict", "plan", "block", "class", "lambda", "def", "None", "True",
                 "self", "super", "in_channels", "arg0", "arg1", "torch", "nn", "F",
                 "OrderedDict", "PaddedConv2d", "DenseConcat", "init_weights", "print",
                 "exec", "eval", "__import__", "x", "overrides", "spec_x", "build_n", "values",
                 "keys", "append", "_", "__", "a" * 300, "ﬁ", "İ", "ä", "名前", "x\u200by"]
HOSTILE_STRINGS = ['"\\"\\"\\"; import os"', "'\"\"\"; import os; os.system(\"id\") #'",
                   '"../../../../etc/passwd"', '"/etc/passwd"', '"/dev/zero"', '"same"',
                   '"valid"', "'\x1b[31mred'", '"\u202etxt.arch"', '""', "'" + "a" * 3000 + "'",
                   '"\\n"', "'%0A::error::x'"]
ODD_UNICODE = ["\u202e", "\u200b", "\ufeff", "\u0301", "\u2028", "\u2029", "\x00", "\r", "\x0c",
               "\x1b[2J", "\t", "\u00a0", "😀", "ｃｏｎｖ", "ﬁ", "ı", "Ω", "\x7f", "\u0085",
               "\ud800"]
def registry_ops() -> list[str]:
    """The op names of archspec/ops.py's registry, read from its text: this process never
    imports archspec (see run_all), and a new op must reach the fuzzer by itself. Each entry
    of `_OPS` is a call whose first argument is the op's name (`OpSpec("conv", ...)`, or a
    helper such as `_activation("relu", ...)`)."""
    tree = ast.parse((ROOT / "archspec" / "ops.py").read_text(encoding="utf-8"))
    entries = next(node.value.elts for node in tree.body if isinstance(node, ast.Assign)
                   and [getattr(t, "id", "") for t in node.targets] == ["_OPS"])
    return [node.args[0].value for node in entries
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)]


OPS = [*registry_ops(), "init", "unknown_op"]
TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\'[^\'\n]*\'|[A-Za-z_][A-Za-z_0-9]*:?|'
                   r"[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\*\*|//|[=!<>]=|.",
                   re.DOTALL)


def corpus() -> list[tuple[str, bytes]]:
    files = []
    for folder in CORPUS_DIRS:
        files += [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.arch"))]
    files += [(f"lib/{p.name}", p.read_bytes()) for p in sorted(LIB.glob("*.arch"))]
    return files


# ---------------------------------------------------------------- mutation


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def _nest(rng: random.Random) -> str:
    depth = rng.choice([20, 31, 32, 33, 40, 100, 1000, 20000])
    kind = rng.randrange(7)
    if kind == 0:
        return "{" * depth + " relu " + "}" * depth
    if kind == 1:
        return "linear(" + "(" * depth + "1" + ")" * depth + ")"
    if kind == 2:
        return "linear(" + "1+" * depth + "1)"
    if kind == 3:
        return "linear(" + "-" * depth + "1)"
    if kind == 4:
        return "let q = " + "[" * depth + "1" + "]" * depth
    if kind == 5:
        return "x{" + "1+" * depth + "1}: relu"
    return "".join(f"l{i}: {{" for i in range(min(depth, 2000))) + "relu" + "}" * min(depth, 2000)


def mutate(rng: random.Random, files: list[tuple[str, bytes]]) -> bytes:
    _, data = rng.choice(files)
    text = data.decode("utf-8", "replace")
    for _ in range(rng.randint(1, 4)):
        tokens = _tokens(text) or [" "]
        i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
        op = rng.randrange(13)
        if op == 0:  # delete tokens
            del tokens[i:i + rng.choice([1, 1, 2, 5])]
        elif op == 1:  # duplicate a token or a run
            tokens[i:i] = tokens[i:i + rng.choice([1, 3, 20])] * rng.choice([1, 2, 50])
        elif op == 2:  # swap
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == 3:  # a number becomes an edge value
            numbers = [k for k, t in enumerate(tokens) if t[:1].isdigit()]
            k = rng.choice(numbers) if numbers else i
            tokens[k] = rng.choice(HUGE_NUMBERS)
        elif op == 4:  # deep nesting
            tokens.insert(i, " " + _nest(rng) + " ")
        elif op == 5:  # odd Unicode
            tokens.insert(i, rng.choice(ODD_UNICODE))
        elif op == 6:  # a name becomes a hostile one
            names = [k for k, t in enumerate(tokens) if t[:1].isalpha() or t[:1] == "_"]
            k = rng.choice(names) if names else i
            tokens[k] = rng.choice(HOSTILE_NAMES) + (":" if tokens[k].endswith(":") else "")
        elif op == 7:  # a string becomes a hostile one
            strings = [k for k, t in enumerate(tokens) if t[:1] in "\"'"]
            k = rng.choice(strings) if strings else i
            tokens[k] = rng.choice(HOSTILE_STRINGS)
        elif op == 8:  # cut short
            tokens = tokens[:i]
        elif op == 9:  # splice another spec in
            other = _tokens(rng.choice(files)[1].decode("utf-8", "replace"))
            a = rng.randrange(len(other) or 1)
            tokens[i:i] = other[a:a + rng.randint(1, 200)]
        elif op == 10:  # a repeat or dense count blows up
            counts = [k for k, t in enumerate(tokens) if t in ("repeat", "dense")]
            if counts:
                k = rng.choice(counts) + 1
                while k < len(tokens) and not tokens[k].strip():
                    k += 1
                if k < len(tokens):
                    tokens[k] = rng.choice(["100000", "99999", "100001", "2**40", "50000"])
        elif op == 11:  # a label becomes hostile
            labels = [k for k, t in enumerate(tokens) if t.endswith(":") and t[:1].isalpha()]
            if labels:
                tokens[rng.choice(labels)] = rng.choice(HOSTILE_NAMES) + ":"
        else:  # an op swapped for another
            calls = [k for k, t in enumerate(tokens) if t in OPS]
            if calls:
                tokens[rng.choice(calls)] = rng.choice(OPS)
        text = "".join(tokens)
    out = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.08:  # binary bytes
        pos = rng.randrange(len(out) + 1)
        out = out[:pos] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + out[pos:]
    return out


# ---------------------------------------------------------------- hostile templates


def hostile(rng: random.Random) -> bytes:
    net = "network n(classes: int = 10) {{\n  input [3, 16, 16]\n{body}\n  global_avgpool\n" \
          "  flatten\n  fc: linear(classes)\n}}\n"
    k = rng.randrange(20)
    big = rng.choice(["100000", "99999", "2**20", "100001", "5000", "1000", "300"])
    if k == 0:
        body = f"  repeat {big} {{ repeat {big} {{ }} }}"
    elif k == 1:
        body = f"  repeat {big} {{ relu }}"
    elif k == 2:
        body = f"  for i in range({big}) {{ let q = range({big}) }}"
    elif k == 3:
        body = f"  let a = range(100000)\n  let b = [{'a, ' * rng.choice([1, 2, 3000])}]\n  relu"
    elif k == 4:
        depth = rng.choice([30, 33, 100, 300])
        blocks = "".join(f"block b{i}() {{ l: b{i + 1} }}\n" for i in range(depth))
        return (blocks + f"block b{depth}() {{ relu }}\n" + net.format(body="  b0")).encode()
    elif k == 5:
        depth = rng.choice([30, 33, 200, 3000])
        chain = "".join(f"variant v{i} = v{i + 1}\n" for i in range(depth))
        return (net.format(body="  relu") + chain + f"variant v{depth} = n\n").encode()
    elif k == 6:
        path = rng.choice(["/etc/passwd", "../../../../etc/passwd", "/dev/zero", "/proc/self/mem",
                           "case.arch", "lib/../../x.arch", "lib/blocks.arch", "\x00",
                           "lib/deep/d01.arch", "lib/cycle_a.arch", "a" * 5000, "lib", "."])
        return (f'import "{path}"\n' + net.format(body="  relu")).encode("utf-8",
                                                                          "surrogatepass")
    elif k == 7:
        label = rng.choice(HOSTILE_NAMES)
        body = f"  {label}: conv(8, k=3, p=1)\n  {label}x: relu"
    elif k == 8:
        name = rng.choice(HOSTILE_NAMES)
        block = (f"block {name}({name}: int, c: int = 4) {{ a: conv({name}, k=1) "
                 f"b: conv(c, k=3, p=1) relu }}\n")
        return (block + net.format(body=f"  s1: {name}(4)\n  s2: {name}(8, c=2)")).encode()
    elif k == 9:
        name = rng.choice(HOSTILE_NAMES)
        return (f"network {name}({name}: int = 3) {{\n  input [3, 8, 8]\n  conv({name}, k=1)\n"
                f"  flatten\n  linear(10)\n}}\n").encode()
    elif k == 10:
        body = f"  conv({rng.choice(['2**40', '2**62', '2**31'])}, k=1)\n  conv(2**40, k=3)"
    elif k == 11:
        body = ("  let s = \"" + "abcdefghij" * rng.choice([5, 50, 200]) + "\"\n"
                "  a{s}: { b{s}: { c{s}: relu } }")
    elif k == 12:
        body = f"  leaky_relu({rng.choice(['1e999', '10.0 ** 400', '(-8) ** 0.5', '0.0 ** -1'])})"
    elif k == 13:
        start = rng.choice(['"a"', "2**63 - 1", "1.5", "true"])
        body = f"  let q = enumerate([1, 2], {start})"
    elif k == 14:
        bounds = rng.choice(["-(2**63 - 1), 2**63 - 1", "0, 2**62, 1", "5, 0, -1"])
        body = f"  let q = range({bounds})"
    elif k == 15:
        body = "  " + _nest(rng)
    elif k == 16:
        body = f"  dense {big} {{ conv(4, k=3, p=1) }}"
    elif k == 17:
        body = "  let a = [" + ", ".join(["[1, 2, 3]"] * rng.choice([10, 40000])) + "]\n  relu"
    elif k == 18:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
    else:
        body = "  add { relu }\n  concat { relu relu }\n  dense 2 { relu }"
    return net.format(body=body).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------- attacks (issue 16)

GOOD = "network n(c: int = 4) {\n  input [3, 8, 8]\n  conv(c, k=3, p=1)\n  relu\n}\n"
BROKEN = "network n() {\n  input [3, 8, 8]\n  conv(0, k=1)\n  rleu\n}\n"
WARNS = "block unused(x: int) {\n  relu\n}\n" + GOOD
HOSTILE_FILE_NAMES = ["a\nb.arch", "::error title=x::.arch", "x\n::error title=forged::y.arch",
                      "with space.arch", "名前.arch", "-x.arch", "--help.arch", "-o.arch",
                      "\u202eevil.arch", "tab\tname.arch", "quote\"'.arch", "back\\slash.arch",
                      "\x1b[31mred.arch", "%0A::error::x.arch", "cr\rname.arch",
                      "dir\n::warning::x/main.arch", "-dir/main.arch"]
SECRET = "s3cr3t-archspec-fuzz-token"  # in the workers' environment and in a file outside


@dataclass
class Attack:
    """An attack case, made in the worker from its recipe: the files of its folder (bytes, or
    ("fifo",), ("dir",), ("link", target) for special nodes), the spec the commands read,
    and -o targets that must be refused and left as they are."""

    files: dict[str, bytes | tuple]
    spec: str = "main.arch"
    formats: tuple[str, ...] = ()  # check formats besides the one the index picks
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, target)
    relative: bool = False  # run in the case folder, with the spec's name as written


def _net(body: str, name: str = "n") -> str:
    return f"network {name}() {{\n  input [3, 8, 8]\n{body}\n  relu\n}}\n"


def attack_exponential_calls(rng: random.Random) -> Attack:
    """`b1() { b0 b0 }` ... 30 deep: 2**30 calls of an empty (or tiny) block."""
    depth, fan = rng.choice([8, 16, 24, 30, 31, 32, 33, 40]), rng.choice([2, 2, 3, 4])
    leaf = rng.choice(["", "", "relu", "conv(4, k=1)", "l: relu", "repeat 0 { }"])
    labelled = rng.random() < 0.3
    lines = [f"block b0() {{ {leaf} }}"]
    for i in range(1, depth + 1):
        calls = " ".join(f"x{j}: b{i - 1}" if labelled else f"b{i - 1}" for j in range(fan))
        lines.append(f"block b{i}() {{ {calls} }}")
    return Attack({"main.arch": ("\n".join(lines) + "\n" + _net(f"  b{depth}")).encode()})


def attack_label_blowup(rng: random.Random) -> Attack:
    """Labels whose templates double in length at every step."""
    k, kind = rng.choice([5, 10, 14, 17, 20, 30]), rng.randrange(3)
    if kind == 0:  # a string doubled k times, then a label
        body = '  let s0 = "ab"\n' + "".join(f"  let s{i} = s{i - 1} + s{i - 1}\n"
                                             for i in range(1, k + 1)) + f"  x{{s{k}}}: relu"
        return Attack({"main.arch": _net(body).encode()})
    if kind == 1:  # labelled scopes, each label twice its caller's
        blocks = "block b0(s: str) { x{s}: relu }\n" + "".join(
            f"block b{i}(s: str) {{ l{{s}}: b{i - 1}(s + s) }}\n" for i in range(1, k + 1))
        return Attack({"main.arch": (blocks + _net(f'  b{k}("ab")')).encode()})
    pieces = "".join(f"  let {b} = " + " + ".join([a] * 10) + "\n"
                     for a, b in zip("abcd", "bcde"))
    body = ('  let a = "aaaaaaaaaa"\n' + pieces
            + f"  repeat {rng.choice([1, 3, 1000])} {{ x{{e}}{{e}}{{e}}{{e}}{{e}}: relu }}")
    return Attack({"main.arch": _net(body).encode()})


def _library(size: int, prefix: str = "blk") -> bytes:
    one = "block {}{:05d}(c: int = 4) {{ conv(c, k=1) relu }}\n"
    count = max(1, size // len(one.format(prefix, 0)))
    return "".join(one.format(prefix, i) for i in range(count)).encode()


def attack_huge_library(rng: random.Random) -> Attack:
    """A block library of up to 260 kB, imported, and a name that is in it or almost."""
    size = rng.choice([5_000, 20_000, 39_900, 45_000, 60_000, 200_000, 240_000, 260_000])
    name = rng.choice(["blk00001", "blk0001x", "nonexistent", "Blk00001", "blk00001(8)"])
    head = (f'from "lib/big.arch" import {name.split("(")[0]}\n' if rng.random() < 0.3
            else 'import "lib/big.arch"\n')
    body = f"  repeat {rng.choice([1, 1000])} {{ {name} }}"
    return Attack({"lib/big.arch": _library(size), "main.arch": (head + _net(body)).encode()})


def attack_many_imports(rng: random.Random) -> Attack:
    """Many imports of one big file, or of many files."""
    kind = rng.randrange(3)
    if kind == 0:  # one file, imported over and over (a diamond: read once)
        count = rng.choice([2, 32, 40, 100])
        files = {"lib/big.arch": _library(rng.choice([10_000, 39_000]))}
        head = 'import "lib/big.arch"\n' * count
    else:  # many files: too many (E410), or too many bytes together
        count, size = ((rng.choice([31, 32, 33, 50]), 200) if kind == 1
                       else (rng.choice([4, 5, 8]), rng.choice([7_000, 9_900, 12_000])))
        files = {f"lib/f{i}.arch": _library(size, f"b{i}_") for i in range(count)}
        head = "".join(f'import "lib/f{i}.arch"\n' for i in range(count))
    files["main.arch"] = (head + _net("  relu")).encode()
    return Attack(files)


def attack_many_variants(rng: random.Random) -> Attack:
    """Many variants of a big network (sharing one budget), or a chain of them."""
    layers, count = rng.choice([10, 1000, 90_000]), rng.choice([10, 500, 2000])
    lines = ["network big(w: int = 1) {", "  input [3, 8, 8]", f"  repeat {layers} {{ relu }}",
             "}"]
    if rng.random() < 0.3:
        lines += ["variant v0 = big(w=2)"] + [f"variant v{i} = v{i - 1}" for i in range(1, count)]
    else:
        lines += [f"variant v{i} = big(w={i})" for i in range(count)]
    return Attack({"main.arch": ("\n".join(lines) + "\n").encode()})


def attack_long_line(rng: random.Random) -> Attack:
    """Thousands of diagnostics on one 60 kB line: errors, or only warnings (exit 0)."""
    count = rng.choice([600, 4600])
    if rng.random() < 0.5:
        line = "network net() { input [3, 8, 8] " + " ".join(
            f"zzzzzzzzzz{i}" for i in range(count)) + " }\n"
    elif rng.random() < 0.5:
        line = "network net() { input [3, 8, 8] relu } " + " ".join(
            f"block u{i}(x: int) {{ relu }}" for i in range(count // 2)) + "\n"
    else:  # one error at the end of a long line: the line is cut around the marker
        line = "network net() { input [3, 8, 8] " + "relu " * 12_000 + "zz }\n"
    return Attack({"main.arch": line.encode()}, formats=("text", "json", "github"))


def attack_hostile_name(rng: random.Random) -> Attack:
    """A spec whose name has newlines, workflow commands, spaces, Unicode, leading dashes."""
    name = rng.choice(HOSTILE_FILE_NAMES)
    content = rng.choice([GOOD, BROKEN, WARNS]).encode()
    return Attack({name: content}, spec=name, formats=("text", "github"),
                  relative=rng.random() < 0.5)


def attack_hostile_output(rng: random.Random) -> Attack:
    """-o naming the spec, a file it imports, a link, a FIFO or a directory: refused, the
    target untouched."""
    files: dict[str, bytes | tuple] = {
        "lib/blocks.arch": b"block b() { relu }\n",
        "main.arch": ('import "lib/blocks.arch"\n' + _net("  b")).encode(),
        "other.py": b"# another file\n"}
    kind = rng.choice(["spec", "spec-dotted", "import", "link", "link-spec", "dangling", "fifo",
                       "dir", "link-dir"])
    suffix = rng.choice([".py", ".py", ".dot", ".svg"])
    target = {"spec": "main.arch", "spec-dotted": "./lib/../main.arch",
              "import": "lib/blocks.arch"}.get(kind, "out" + suffix)
    if kind == "link":
        files[target] = ("link", "other.py")
    elif kind == "link-spec":
        files[target] = ("link", "main.arch")
    elif kind == "dangling":
        files[target] = ("link", "missing.py")
    elif kind == "fifo":
        files[target] = ("fifo",)
    elif kind == "dir":
        files[target] = ("dir",)
    elif kind == "link-dir":
        files["lib2"] = ("dir",)
        files[target] = ("link", "lib2")
    # diagram refuses other suffixes (.py, .arch) before it looks at the target
    command = "compile" if target.endswith((".py", ".arch")) else "diagram"
    return Attack(files, outputs=[(command, target)])


def attack_hostile_input(rng: random.Random) -> Attack:
    """The spec argument is a FIFO, a directory, a link out of its folder or to the
    environment, binary, or starts with a BOM."""
    kind = rng.randrange(6)
    if kind == 0:
        return Attack({"main.arch": ("fifo",)})
    if kind == 1:
        return Attack({"main.arch": ("dir",)})
    if kind == 2:
        return Attack({"main.arch": ("link", "/proc/self/environ")})
    if kind == 3:
        return Attack({"main.arch": ("link", "../secret.txt")})
    if kind == 4:
        return Attack({"main.arch": bytes(rng.randrange(256) for _ in range(200))})
    return Attack({"main.arch": b"\xef\xbb\xbf" + GOOD.encode()})


def attack_big_file(rng: random.Random) -> Attack:
    """The worst mixes of parsing and expansion within the size limits."""
    from archspec.limits import MAX_FILE_BYTES, MAX_IMPORT_BYTES  # in the worker

    full, kind = MAX_FILE_BYTES - 200, rng.randrange(4)
    expand = _net("  for i in range(100000) { for j in range(1000) { let q = i * j } }")

    def dense(name: str, size: int) -> str:
        head, tail = f"block {name}() {{\n  let a = [", "1]\n  relu\n}\n"
        return head + "1," * max(0, (size - len(head) - len(tail)) // 2) + tail

    if kind == 0:  # at the size limit, clean: every command parses it
        return Attack({"main.arch": (dense("big", full - 200) + GOOD).encode()})
    if kind == 1:  # at the size limit, then a full budget of expansion
        return Attack({"main.arch": (dense("big", full - len(expand)) + expand).encode()})
    if kind == 2:  # 50 syntax errors after 240 kB
        errors = "".join(f"block x{i}() {{ relu ) }}\n" for i in range(60))
        return Attack({"main.arch": (dense("big", full - len(errors)) + errors).encode()})
    files: dict[str, bytes | tuple] = {
        f"lib/l{k}.arch": dense(f"l{k}", MAX_IMPORT_BYTES // 4 - 100).encode() for k in range(4)}
    head = "".join(f'import "lib/l{k}.arch"\n' for k in range(4))
    files["main.arch"] = (head + dense("big", full - len(head) - len(expand)) + expand).encode()
    return Attack(files)


ATTACKS = {"exponential-calls": attack_exponential_calls, "label-blowup": attack_label_blowup,
           "huge-library": attack_huge_library, "many-imports": attack_many_imports,
           "many-variants": attack_many_variants, "long-line": attack_long_line,
           "hostile-name": attack_hostile_name, "hostile-output": attack_hostile_output,
           "hostile-input": attack_hostile_input, "big-file": attack_big_file}
ATTACK_WEIGHTS = {"big-file": 1, "hostile-name": 3, "hostile-output": 3, "hostile-input": 2}


def attack_recipe(seed: int, index: int) -> bytes:
    """What an attack case is: its shape and the seed of its generator (the files are made
    in the worker; a recipe is a few bytes however large the files)."""
    rng = random.Random(f"attack:{seed}:{index}")
    shapes = [s for s in ATTACKS for _ in range(ATTACK_WEIGHTS.get(s, 2))]
    return json.dumps({"shape": rng.choice(shapes), "seed": f"{seed}:{index}"}).encode()


def make_attack(recipe: bytes) -> Attack:
    spec = json.loads(recipe)
    return ATTACKS[spec["shape"]](random.Random(f"attack-files:{spec['seed']}"))


def materialize(folder: Path, files: dict[str, bytes | tuple]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content[0] == "fifo":
            os.mkfifo(path)
        elif content[0] == "dir":
            path.mkdir(exist_ok=True)
        else:
            path.symlink_to(content[1])


# ---------------------------------------------------------------- grammar (hypothesis)


@functools.lru_cache(maxsize=1)
def spec_strategy():
    """Hypothesis strategy for whole .arch files, following grammar.lark."""
    from hypothesis import strategies as st

    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
    ident = st.one_of(st.sampled_from(["c", "k", "n", "i", "j", "x", "width", "stage", "b1"]),
                      st.sampled_from(HOSTILE_NAMES[:40]),
                      st.tuples(st.sampled_from(letters), st.text(letters + "0123456789",
                                                                  max_size=6)).map("".join))
    number = st.one_of(st.integers(0, 8).map(str), st.integers(-3, 300).map(str),
                       st.sampled_from(HUGE_NUMBERS[:-1]),
                       st.floats(allow_nan=False, allow_infinity=False).map(repr))
    string = st.one_of(st.sampled_from(['"same"', '"valid"', '"tanh"', '"a"', '""']),
                       st.text(alphabet=st.characters(exclude_characters='"\n\r',
                                                      exclude_categories=["Cs"]),
                               max_size=8).map(lambda s: f'"{s}"'))
    atom = st.one_of(number, number, ident, string, st.sampled_from(
        ["true", "false", "in.c", "in.h", "in.w", "in.features", "in.shape", "in"]))

    def extend(inner):
        binop = st.tuples(inner, st.sampled_from(["+", "-", "*", "//", "/", "%", "**", "==",
                                                   "<", ">=", "and", "or"]), inner)
        return st.one_of(
            binop.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"({e})"), inner.map(lambda e: f"-{e}"),
            inner.map(lambda e: f"not {e}"),
            st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(" + ", ".join(xs) + ")"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"),
            st.tuples(inner, st.sampled_from(["x", "i", "(a, b)"]), inner,
                      st.one_of(st.just(""), inner.map(lambda c: f" if {c}"))).map(
                lambda t: f"[{t[0]} for {t[1]} in {t[2]}{t[3]}]"),
            st.tuples(st.sampled_from(["len", "min", "max", "sum", "abs", "range", "zip",
                                       "enumerate", "int", "float", "round", "ceil",
                                       "floor", "sqrt", "log", "nope"]),
                      st.lists(inner, min_size=1, max_size=3)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"))

    expr = st.recursive(atom, extend, max_leaves=5)
    small = st.one_of(st.integers(1, 8).map(str), st.sampled_from(["c", "2 * c", "in.c"]), expr)
    kwarg = st.tuples(st.sampled_from(["k", "s", "p", "d", "groups", "bias", "out", "size",
                                       "eps", "slope", "approximate", "stride", "padding",
                                       "multiplier", "ceil_mode", "conv", "zero_residual_bn",
                                       "init", "mode", "track", "affine", "momentum", "p",
                                       "bogus"]), st.one_of(small, expr))
    call = st.tuples(st.sampled_from(OPS), st.lists(small, max_size=2),
                     st.lists(kwarg, max_size=3)).map(
        lambda t: t[0] + ("(" + ", ".join(t[1] + [f"{k}={v}" for k, v in t[2]]) + ")"
                          if t[1] or t[2] else ""))
    label = st.one_of(st.just(""), ident.map(lambda s: f"{s}: "),
                      st.tuples(ident, expr).map(lambda t: f"{t[0]}{{{t[1]}}}: "),
                      st.sampled_from(['"0": ', '"block1-0": ', '"a.b": ', '"": ', "7: ",
                                       '"x{1 + 1}-{i}": ', '"forward": ']))

    def statements(inner):
        body = st.lists(inner, max_size=4).map(lambda xs: "{ " + " ".join(xs) + " }")
        return st.one_of(
            st.tuples(label, body).map("".join),
            st.tuples(label, st.sampled_from(["concat ", "add ", "split ", "gate ",
                                              "channels_last "]), body).map("".join),
            st.tuples(st.sampled_from(["repeat", "dense"]), small, body).map(" ".join),
            st.tuples(ident, expr, body).map(lambda t: f"for {t[0]} in {t[1]} {t[2]}"),
            st.tuples(expr, body, body).map(lambda t: f"if {t[0]} {t[1]} else {t[2]}"),
            st.tuples(ident, expr).map(lambda t: f"let {t[0]} = {t[1]}"))

    leaf = st.one_of(st.tuples(label, call).map("".join), call)
    stmt = st.recursive(leaf, statements, max_leaves=8)
    type_ = st.sampled_from(["int", "float", "bool", "str", "list", "tuple", "block", "any",
                             "(int, int)", "nope"])
    param = st.tuples(ident, type_, st.one_of(st.just(""), expr.map(lambda e: f" = {e}"))).map(
        lambda t: f"{t[0]}: {t[1]}{t[2]}")
    params = st.lists(param, max_size=3).map(", ".join)
    stmts = st.lists(stmt, max_size=6).map(lambda xs: "\n  ".join(xs))
    block = st.tuples(ident, params, stmts).map(
        lambda t: f"block {t[0]}({t[1]}) {{\n  {t[2]}\n}}\n")
    shape = st.one_of(st.sampled_from(["[3, 32, 32]", "[1, 28, 28]", "[784]", "[3, 224, 224]"]),
                      expr)
    network = st.tuples(ident, params, shape, stmts).map(
        lambda t: f"network {t[0]}({t[1]}) {{\n  input {t[2]}\n  {t[3]}\n}}\n")
    variant = st.tuples(ident, ident, st.lists(st.one_of(expr, kwarg.map(
        lambda kv: f"{kv[0]}={kv[1]}")), max_size=2)).map(
        lambda t: f"variant {t[0]} = {t[1]}({', '.join(t[2])})\n")
    imports = st.sampled_from(['import "lib/blocks.arch"\n',
                               'from "lib/blocks.arch" import res_block\n',
                               'import "lib/cycle_a.arch"\n',
                               'import "/etc/passwd"\n', 'import "../x.arch"\n', ""])
    return st.tuples(imports, st.lists(block, max_size=2), st.lists(network, min_size=1,
                     max_size=2), st.lists(variant, max_size=2)).map(
        lambda t: (t[0] + "".join(t[1]) + "".join(t[2]) + "".join(t[3])).encode(
            "utf-8", "surrogatepass"))


def grammar_cases(seed: int, batch: int, count: int) -> list[bytes]:
    """`count` programs drawn by Hypothesis, reproducibly from (seed, batch)."""
    if count == 0:
        return []
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    drawn: list[bytes] = []

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed * 1_000_003 + batch)
    @given(spec_strategy())
    def draw(text: bytes) -> None:
        if len(drawn) < count:
            drawn.append(text)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Hypothesis warns about the repr of big strategies
        draw()
    while len(drawn) < count:  # Hypothesis ran out of distinct examples: repeat (rare)
        drawn.append(drawn[len(drawn) % max(1, len(drawn))] if drawn else b"")
    return drawn


# ---------------------------------------------------------------- the cases


def case_kind(seed: int, index: int) -> str:
    r = random.Random(f"kind:{seed}:{index}").random()
    return "grammar" if r < 0.35 else "mutation" if r < 0.85 else "hostile"


def make_batch(seed: int, batch: int, size: int, files) -> list[tuple[int, str, bytes]]:
    indices = range(batch * size, (batch + 1) * size)
    kinds = [case_kind(seed, i) for i in indices]
    drawn = iter(grammar_cases(seed, batch, kinds.count("grammar")))
    cases = []
    for index, kind in zip(indices, kinds):
        rng = random.Random(f"case:{seed}:{index}")
        data = (next(drawn) if kind == "grammar" else mutate(rng, files) if kind == "mutation"
                else hostile(rng))
        cases.append((index, kind, data))
    return cases


def make_cases(seed: int, key: tuple[str, int], cases: int, attacks: int,
               files) -> list[tuple[int, str, bytes]]:
    """The cases of one batch: ("regular", b) is make_batch's batch b (cut at `cases`);
    ("attack", b) holds attack cases, numbered from `cases` on, ATTACK_BATCH at a time."""
    kind, batch = key
    if kind == "regular":
        return [c for c in make_batch(seed, batch, BATCH, files) if c[0] < cases]
    first = cases + batch * ATTACK_BATCH
    return [(i, "attack", attack_recipe(seed, i))
            for i in range(first, min(first + ATTACK_BATCH, cases + attacks))]


def batch_keys(cases: int, attacks: int, first: int = 0) -> list[tuple[str, int]]:
    """The batches of a run; regular cases from `first` on (a run in parts)."""
    return ([("regular", b) for b in range(first // BATCH, (cases + BATCH - 1) // BATCH)]
            + [("attack", b) for b in range((attacks + ATTACK_BATCH - 1) // ATTACK_BATCH)])


# ---------------------------------------------------------------- running a command


class Hang(BaseException):
    """Raised by SIGPROF (the command used its CPU time) or SIGALRM (the wall-clock backstop,
    for a command blocked without using CPU): a BaseException, so no `except Exception` in
    archspec catches it."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def _alarm(signum, frame):
    raise Hang("wall" if signum == signal.SIGALRM else "cpu")


def install_handlers() -> dict:
    """SIGPROF and SIGALRM raise Hang; returns the handlers they replace."""
    return {sig: signal.signal(sig, _alarm) for sig in (signal.SIGPROF, signal.SIGALRM)}


@dataclass
class Limits:
    """What a command may use: past `timeout` CPU seconds it is stopped (a hang), past `wall`
    seconds too (stuck, reported apart: a loaded machine stretches wall time, not CPU
    time); over `max_cpu` CPU seconds, or a case over `max_mb` of memory, is a failure."""

    timeout: float = 30.0
    wall: float = 300.0
    max_cpu: float = 10.0
    max_mb: float = 1024.0


@dataclass
class Outcome:
    index: int
    kind: str
    commands: list[tuple[str, int | str, float]] = field(default_factory=list)  # (name,
    # status, CPU seconds)
    failures: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    data: bytes = b""
    digest: str = ""  # sha256 of the case, to compare runs (--log)
    memory_mb: float = 0.0  # peak memory while it ran (see run_case)
    shape: str = ""  # an attack's shape


SENTINEL = "# left here before the command ran\n"
ALLOWED_IMPORTS = {"torch", "torch.nn.functional", "torch.nn", "collections"}
MAX_TEXT_OUTPUT = 1_000_000  # characters of text or github output (JSON may carry every diagnostic)
MAX_JSON_OUTPUT = 64_000_000
FORGED = re.compile(r"^::(error|warning|notice|debug|group|endgroup|add-mask|stop-commands)\b",
                    re.MULTILINE)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def time_limits(limits: Limits) -> Iterator[None]:
    """SIGPROF after limits.timeout seconds of CPU time, SIGALRM after limits.wall seconds."""
    signal.setitimer(signal.ITIMER_PROF, limits.timeout)
    signal.setitimer(signal.ITIMER_REAL, limits.wall)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_command(argv: list[str], limits: Limits) -> tuple[int | str, str, str, float]:
    """(exit status or "hang"/"stuck"/"raised ...", stdout, stderr, CPU seconds)."""
    from archspec.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = cpu_seconds()
    try:
        with time_limits(limits), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            status: int | str = main(argv)
    except Hang as hang:
        status = "hang" if hang.kind == "cpu" else "stuck"
    except SystemExit as exc:  # argparse
        status = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # noqa: BLE001 - anything escaping main() is a crash
        status = f"raised {type(exc).__name__}: {exc}"
    return status, out.getvalue(), err.getvalue(), cpu_seconds() - start


def check_generated(path: Path) -> str | None:
    """None when a compiled file is valid Python holding only imports, classes, functions."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        return f"generated source does not parse: {exc}"
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        else:
            return f"unexpected top-level statement: {ast.dump(node)[:200]}"
        if not set(names) <= ALLOWED_IMPORTS:
            return f"unexpected import: {names}"
    return None


def judge(name: str, status, out: str, err: str, outcome: Outcome, fmt: str = "text",
          output: Path | None = None) -> None:
    text = out + err
    problems = []
    if status == "hang":
        problems.append("hang (CPU time limit)")
    elif status == "stuck":
        problems.append("stuck (wall-clock backstop, little CPU used: blocked?)")
    elif status not in (0, 1, 2):
        problems.append(f"exit status {status!r}")
    for marker in ("Traceback", "internal error", "nested too deeply to check"):
        if marker in text:
            problems.append(f"`{marker}` in the output")
    if status == 1 and not re.search(r"error\[E\d{3}\]|\"code\": \"E\d{3}\"|::error ", text):
        problems.append("exit 1 without a coded diagnostic")
    if status in (1, 2) and not text.strip():
        problems.append(f"exit {status} with no message")
    if len(text) > (MAX_JSON_OUTPUT if fmt == "json" else MAX_TEXT_OUTPUT):
        problems.append(f"printed {len(text):,} characters")
    if SECRET in text:
        problems.append("printed the secret of a file or of the environment")
    if fmt == "json" and (status == 0 or name == "check") and not err.startswith("usage:"):
        try:
            json.loads(out)
        except ValueError as exc:
            problems.append(f"--format json printed no JSON: {exc}")
    if fmt == "github":
        bad = [line for line in out.splitlines()  # annotations, and the count of the rest
               if not re.match(r"::(error|warning) [^:\n]*::|\.\.\. and [\d,]+ more ", line)]
        if bad:
            problems.append(f"--format github printed a non-annotation line: {bad[0][:200]!r}")
    elif FORGED.search(text):
        problems.append(f"a line GitHub would read as a workflow command: "
                        f"{FORGED.search(text).group()!r}")
    if output is not None:
        content = output.read_text(encoding="utf-8", errors="replace") if output.exists() \
            else None
        if status != 0 and content != SENTINEL:
            problems.append("a failing command changed its output file")
        if status == 0 and content == SENTINEL:
            problems.append("a successful command left the output file unchanged")
        if status == 0 and output.suffix == ".py":
            problem = check_generated(output)
            if problem:
                problems.append(problem)
    outcome.codes += re.findall(r"(?:error|warning)\[([EW]\d{3})\]", text)
    outcome.failures += [f"{name}: {p}" for p in problems]


def _reset_peak_memory() -> bool:
    """Restart the kernel's count of this process's peak memory (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _resident_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


_BASE_MB = 0.0  # a worker's memory once archspec is imported: what a fresh `archspec` holds


def run_case(index: int, kind: str, data: bytes, folder: Path, limits: Limits) -> Outcome:
    """Run one case's commands; its memory is the worker's peak while it ran, less what the
    worker held before it beyond a fresh process's (torch, imported by earlier cases)."""
    outcome = Outcome(index, kind, digest=hashlib.sha256(data).hexdigest()[:16])
    exact = _reset_peak_memory()
    before = _resident_mb()
    if kind == "attack":
        run_attack(outcome, data, folder, limits)
    else:
        spec = folder / "case.arch"
        spec.write_bytes(data)
        run_spec(outcome, str(spec), folder, limits)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    outcome.memory_mb = max(0.0, peak - max(0.0, before - _BASE_MB)) if exact else peak
    if outcome.memory_mb > limits.max_mb:
        outcome.failures.append(f"used {outcome.memory_mb:,.0f} MB, over {limits.max_mb:g} MB")
    if outcome.failures:
        outcome.data = data
    return outcome


def _command(outcome: Outcome, name: str, argv: list[str], limits: Limits, fmt: str = "text",
             output: Path | None = None) -> tuple[int | str, str]:
    status, out, err, seconds = run_command(argv, limits)
    outcome.commands.append((name, status, seconds))
    judge(name, status, out, err, outcome, fmt, output)
    if seconds > limits.max_cpu:
        outcome.failures.append(f"{name}: {seconds:.1f} s CPU, over {limits.max_cpu:g} s")
    return status, err


def run_spec(outcome: Outcome, spec: str, folder: Path, limits: Limits,
             formats: tuple[str, ...] = ()) -> None:
    """`check` in the format the index picks (and `formats`), then by its result the other
    commands, each judged; outputs go to `folder`."""
    index = outcome.index
    fmt = ["text", "json", "github"][index % 3]
    status, _ = _command(outcome, "check", ["check", "--format", fmt, spec], limits, fmt)
    for other in formats:
        if other != fmt:
            _command(outcome, "check", ["check", "--format", other, spec], limits, other)
    runs = []
    if status == 0:
        summary_fmt = ["table", "markdown", "csv", "json"][index % 4]
        extra = ["--count", "all", "--rf"] if index % 3 == 0 else []
        runs.append(("summary", ["summary", "--format", summary_fmt, *extra], None, summary_fmt))
        runs.append(("diagram", ["diagram", "-o"], "case.dot", "text"))
        if index % 4 == 0:
            runs.append(("compile", ["compile", "-o"], "case.py", "text"))
        if index % 20 == 0:
            runs.append(("diagram-svg", ["diagram", "-o"], "case.svg", "text"))
        if index % 10 == 5:
            runs.append(("diff", ["diff", spec], None, "text"))
    elif status == 1 and index % 10 == 0:
        runs += [("summary", ["summary"], None, "text"),
                 ("compile", ["compile", "-o"], "case.py", "text"),
                 ("diagram", ["diagram", "-o"], "case.dot", "text")]
    for name, argv, target, fmt in runs:
        output = None
        if target is not None:
            output = folder / target
            output.write_text(SENTINEL, encoding="utf-8")
            argv = [*argv, str(output)]
        status, _ = _command(outcome, name, [*argv, spec], limits,
                             fmt if name == "summary" else "text", output)
        if name == "compile" and status == 0 and index % 8 == 0 and not outcome.failures:
            start = cpu_seconds()
            try:
                with time_limits(limits):
                    problem = compare_with_build(Path(spec), output, index)
            except Hang as hang:
                problem = "hang" if hang.kind == "cpu" else "stuck"
            outcome.commands.append(("compile-run", 0 if problem is None else "crash",
                                     cpu_seconds() - start))
            if problem:
                outcome.failures.append(f"compile-run: {problem}")


def _node(path: Path) -> tuple:
    """What must not change in a refused -o target: the node itself and what it leads to."""
    try:
        info = os.lstat(path)
    except OSError:
        return ("missing",)
    node = (stat.S_IFMT(info.st_mode), info.st_ino, info.st_size, info.st_mtime_ns)
    if stat.S_ISLNK(info.st_mode):
        return (*node, os.readlink(path), _node(path.parent / os.readlink(path)))
    if stat.S_ISREG(info.st_mode):
        return (*node, path.read_bytes())
    return node


def run_attack(outcome: Outcome, data: bytes, folder: Path, limits: Limits) -> None:
    """Make the attack's files in a fresh folder, run its spec's commands, then its -o
    targets, each of which must be refused (exit 2, `cannot write`) and left as it was."""
    attack = make_attack(data)
    outcome.shape = json.loads(data)["shape"]
    case = folder / "attack"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    materialize(case, attack.files)
    home = os.getcwd()
    try:
        if attack.relative:
            os.chdir(case)
        run_spec(outcome, attack.spec if attack.relative else str(case / attack.spec), case,
                 limits, attack.formats)
        for command, target in attack.outputs:
            path = case / target
            before = _node(path)
            status, err = _command(outcome, f"{command}-o", [command, str(case / attack.spec),
                                                             "-o", str(path)], limits)
            if status != 2 or "archspec: error: cannot write" not in err:
                outcome.failures.append(f"{command} -o {target}: exit {status!r}, not refused "
                                        f"as a target: {err.strip()[:200]!r}")
            if _node(path) != before:
                outcome.failures.append(f"{command} -o {target}: the target changed")
            left = [p.name for p in case.rglob(".archspec-*")]
            if left:
                outcome.failures.append(f"{command} -o {target}: left {left}")
    finally:
        os.chdir(home)
        shutil.rmtree(case, ignore_errors=True)


def compare_with_build(spec: Path, compiled: Path, index: int) -> str | None:
    """None when the compiled file's module equals archspec.build()'s (state_dict keys and
    shapes, and outputs once the weights are shared); a description otherwise."""
    import importlib.util

    import archspec

    network = archspec.load(str(spec))
    if network.params > 2_000_000 or len(network.input_shape) == 3 and \
            network.input_shape[0] * network.input_shape[1] * network.input_shape[2] > 200_000:
        return None
    import torch

    torch.set_num_threads(1)  # CPU time is the limit: one thread, as in a check
    tree = ast.parse(compiled.read_text(encoding="utf-8"))
    builder = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)][-1]
    loader = importlib.util.spec_from_file_location(f"fuzz_compiled_{index}", compiled)
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
        written = getattr(module, builder)().eval()
    except Exception as exc:  # noqa: BLE001 - the compiled file itself is broken
        return f"the compiled file fails: {type(exc).__name__}: {exc}"
    built = archspec.build(network).eval()
    ours = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in written.state_dict().items()}
    if ours != theirs:
        return f"state_dict differs: {sorted(set(ours.items()) ^ set(theirs.items()))[:4]}"
    written.load_state_dict(built.state_dict(), strict=True)
    torch.manual_seed(index)
    x = torch.randn(1, *network.input_shape)
    with torch.no_grad():
        if not torch.allclose(built(x), written(x), rtol=1e-5, atol=1e-6, equal_nan=True):
            return "outputs differ"
    return None


# ---------------------------------------------------------------- workers

_FOLDER: Path | None = None


def _init_worker(memory_gb: float) -> None:
    global _FOLDER, _BASE_MB
    install_handlers()
    if memory_gb > 0:
        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ["ARCHSPEC_FUZZ_SECRET"] = SECRET  # /proc/self/environ must never be shown
    _FOLDER = Path(tempfile.mkdtemp(prefix="archspec-fuzz-"))
    shutil.copytree(LIB, _FOLDER / "lib")
    (_FOLDER / "secret.txt").write_text(SECRET + "\n")  # outside every attack's folder
    os.chdir(_FOLDER)
    import archspec.cli  # noqa: F401 - what a fresh `archspec` process holds

    _BASE_MB = _resident_mb()


def run_batch(cases: list[tuple[int, str, bytes]], limits: Limits) -> list[Outcome]:
    return [run_case(index, kind, data, _FOLDER, limits) for index, kind, data in cases]


def run_all(cases: int, seed: int, jobs: int, limits: Limits, memory_gb: float,
            attacks: int = 0, first: int = 0,
            progress: bool = True) -> tuple[list[Outcome], list[str]]:
    """Make the cases here, batch by batch, and run them in `jobs` worker processes as they
    come; returns the outcomes and the batches that hung in a way the signals could not stop
    (their workers are killed, the other batches run again in fresh ones).

    The cases are made in this process, which never imports archspec: Hypothesis draws other
    programs from the same seed once archspec's modules are loaded, so drawing them in the
    workers would make a run depend on which worker ran what before."""
    files = corpus()
    total = cases - first // BATCH * BATCH + attacks
    made: dict[tuple[str, int], list] = {}
    todo = iter(batch_keys(cases, attacks, first))
    outcomes: list[Outcome] = []
    stuck: list[str] = []
    hard_limit = BATCH * (limits.wall + limits.timeout) + 120
    context = multiprocessing.get_context("fork")
    retry: list[tuple[str, int]] = []
    while True:
        pool = context.Pool(jobs, _init_worker, (memory_gb,), maxtasksperchild=10)
        pending: dict[tuple[str, int], multiprocessing.pool.AsyncResult] = {}
        broken = False
        try:
            while not broken:
                key = retry.pop(0) if retry else next(todo, None)
                if key is not None:
                    if key not in made:
                        made[key] = make_cases(seed, key, cases, attacks, files)
                    pending[key] = pool.apply_async(run_batch, (made[key], limits))
                while pending and (key is None or len(pending) > 2 * jobs
                                   or next(iter(pending.values())).ready()):
                    first, result = next(iter(pending.items()))
                    try:
                        outcomes += result.get(hard_limit)
                    except multiprocessing.TimeoutError:
                        indices = [c[0] for c in made[first]]
                        stuck.append(f"batch {first} (cases {indices[0]}..{indices[-1]})")
                        broken = True
                    except Exception as exc:  # noqa: BLE001 - a worker died (e.g. killed)
                        stuck.append(f"batch {first}: worker failed: {type(exc).__name__}")
                    del pending[first]
                    made.pop(first, None)
                    if broken:
                        break
                    if progress:
                        print(f"\r{len(outcomes)}/{total} cases", end="", file=sys.stderr,
                              flush=True)
                if key is None and not pending:
                    break
        finally:
            pool.terminate()
            pool.join()
        if not broken:
            break
        for b, result in pending.items():  # finished ones are kept, the others run again
            if result.ready() and result.successful():
                outcomes += result.get()
                made.pop(b, None)
            else:
                retry.append(b)
    if progress:
        print(file=sys.stderr)
    return sorted(outcomes, key=lambda o: o.index), stuck


def dump_cases(cases: int, seed: int, path: Path, attacks: int = 0) -> None:
    """Write the cases (index, kind, base64 data) as JSON lines, made as a run makes them."""
    files = corpus()
    with open(path, "w", encoding="utf-8") as out:
        for key in batch_keys(cases, attacks):
            out.writelines(json.dumps([i, kind, base64.b64encode(data).decode()]) + "\n"
                           for i, kind, data in make_cases(seed, key, cases, attacks, files))


def load_cases(path: Path) -> list[tuple[int, str, bytes]]:
    with open(path, encoding="utf-8") as lines:
        return [(i, kind, base64.b64decode(data)) for i, kind, data in map(json.loads, lines)]


def report(outcomes: list[Outcome], stuck: list[str], seconds: float, out_dir: Path) -> int:
    by_command: Counter = Counter()
    slowest: list[tuple[float, int, str]] = []
    for outcome in outcomes:
        for name, status, took in outcome.commands:
            by_command[(name, status if isinstance(status, int) else "crash")] += 1
            slowest.append((took, outcome.index, name))
    kinds = Counter(o.kind for o in outcomes)
    shapes = Counter(o.shape for o in outcomes if o.shape)
    codes = Counter(code for o in outcomes for code in set(o.codes))
    failed = [o for o in outcomes if o.failures]
    print(f"cases: {len(outcomes)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    if shapes:
        print("attack shapes: " + ", ".join(f"{k} {v}" for k, v in sorted(shapes.items())))
    print(f"wall time: {seconds:.1f} s")
    busy = Counter()
    for outcome in outcomes:
        busy[outcome.kind] += sum(took for _, _, took in outcome.commands)
    print("CPU time by kind: " + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(busy.items())))
    print("commands run (exit status: count):")
    known = ["check", "summary", "diff", "diagram", "diagram-svg", "compile", "compile-run"]
    for name in known + sorted({n for n, _ in by_command} - set(known)):
        counts = {s: c for (n, s), c in by_command.items() if n == name}
        if counts:
            shown = ", ".join(f"{s}: {c}" for s, c in sorted(counts.items(), key=str))
            print(f"  {name:12} {sum(counts.values()):6}  ({shown})")
    print("cases giving each code: " + ", ".join(f"{c} {n}" for c, n in sorted(codes.items())))
    slowest.sort(reverse=True)
    print("most CPU time: " + ", ".join(f"case {i} {n} {t:.2f} s" for t, i, n in slowest[:5]))
    if outcomes:
        case_cpu = max(outcomes, key=lambda o: sum(t for _, _, t in o.commands))
        biggest = max(outcomes, key=lambda o: o.memory_mb)
        print(f"max CPU of a command: {slowest[0][0]:.2f} s (case {slowest[0][1]} "
              f"{slowest[0][2]}); of a case: {sum(t for _, _, t in case_cpu.commands):.2f} s "
              f"(case {case_cpu.index})")
        print(f"max memory of a case: {biggest.memory_mb:,.0f} MB (case {biggest.index}, "
              f"{biggest.kind}{' ' + biggest.shape if biggest.shape else ''})")
    hangs = sum(1 for o in outcomes for _, s, _ in o.commands if s == "hang")
    walls = sum(1 for o in outcomes for _, s, _ in o.commands if s == "stuck")
    print(f"hangs (CPU limit): {hangs}; stuck (wall-clock backstop): {walls}")
    print(f"failed cases: {len(failed)}; stuck batches: {len(stuck)}")
    if failed:
        out_dir.mkdir(parents=True, exist_ok=True)
    for outcome in failed[:50]:
        suffix = ".json" if outcome.kind == "attack" else ".arch"
        path = out_dir / f"case{outcome.index:06d}{suffix}"
        path.write_bytes(outcome.data)
        print(f"  case {outcome.index} ({outcome.kind}{' ' + outcome.shape if outcome.shape else ''}"
              f") saved as {path}:")
        for failure in outcome.failures[:5]:
            print(f"    {failure}")
    for batch in stuck:
        print(f"  stuck: {batch}")
    return 1 if failed or stuck else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--attacks", type=int, default=500,
                        help="attack cases run after the others (issue 16's shapes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from", type=int, default=0, dest="first", metavar="INDEX",
                        help="start at this regular case (a multiple of 50), to run in parts")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="CPU seconds a command may use before it is stopped as a hang")
    parser.add_argument("--wall-timeout", type=float, default=300.0,
                        help="wall-clock seconds before a command is stopped as stuck (a "
                             "backstop for commands blocked without using CPU)")
    parser.add_argument("--max-cpu", type=float, default=10.0,
                        help="CPU seconds over which a command fails")
    parser.add_argument("--max-mb", type=float, default=1024.0,
                        help="memory (MB) over which a case fails")
    parser.add_argument("--memory-gb", type=float, default=4.0,
                        help="address-space limit per worker (0: none)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "archspec-fuzz",
                        help="where failing inputs are saved")
    parser.add_argument("--log", type=Path, help="write one JSON line per case (its digest, "
                        "the commands' exit statuses and codes) to compare runs")
    parser.add_argument("--dump", type=Path, metavar="FILE",
                        help="only write the cases to FILE (JSON lines), run nothing")
    args = parser.parse_args(argv)
    if args.dump:
        dump_cases(args.cases, args.seed, args.dump, args.attacks)
        return 0
    limits = Limits(args.timeout, args.wall_timeout, args.max_cpu, args.max_mb)
    start = time.perf_counter()
    outcomes, stuck = run_all(args.cases, args.seed, args.jobs, limits, args.memory_gb,
                              args.attacks, args.first)
    if args.log:
        with open(args.log, "w", encoding="utf-8") as log:
            log.writelines(json.dumps({"case": o.index, "kind": o.kind, "digest": o.digest,
                                      "commands": [[n, s] for n, s, _ in o.commands],
                                      "codes": sorted(set(o.codes))}) + "\n" for o in outcomes)
    return report(outcomes, stuck, time.perf_counter() - start, args.out)


if __name__ == "__main__":
    sys.exit(main())
