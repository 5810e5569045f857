"""Every limit archspec enforces on a spec, in one place, and the machinery that enforces the
ones that are not a single comparison: the work budget of a check, the size and depth of
values, the depth of the syntax tree and the size of tensors.

A spec may come from anyone (a pull request, a download), so whatever it says, a check ends
quickly, in bounded memory, with a diagnostic that has a code. `LIMITS` is the table that
docs/errors.md shows; tests/test_limits.py has a test per row.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from .diagnostics import Diagnostic, Span, suggestions

INT_LIMIT = 2**63 - 1  # E401: every integer a spec computes, as in int64
MAX_ITEMS = 100_000  # E402: items of a list or range, repeat and dense counts, value size
MAX_FILE_BYTES = 200_000  # E403: one .arch file (parsing 200 kB takes up to ~6.5 s)
MAX_NESTING = 32  # E404: syntax nesting, statement nesting through block calls, values, variants
MAX_LAYERS = 100_000  # E405: layers of one expanded network
MAX_IMPORT_DEPTH = 16  # E406: files in a chain of imports
MAX_STEPS = 5_000_000  # E408: units of work for one check (statements, loop rounds, values)
LAYER_STEPS = 40  # what one layer costs of MAX_STEPS: a file expands at most 125,000 layers
CALL_STEPS = 40  # what one block call costs (arguments, scope, a node), even an empty block
ERROR_STEPS = 40  # what one error costs that expansion goes on after (a diagnostic is built)
PARSE_STEPS = 18  # what parsing one character of a file costs (Lark: up to ~32 us each)
MAX_PATH = 1_000  # E409: characters of a module path (`layer1.0.conv1`)
MAX_IMPORT_FILES = 32  # E410: different files one check imports (directly or not)
MAX_IMPORT_BYTES = 40_000  # E410: bytes of all the files one check imports (parsing: ~1.3 s)
# Parsing is charged before it runs, so parsing and expanding together stay within about
# 9 s on the development machine at its slowest (tools/bench_bounds.py); the largest main
# file and imports leave this much of the budget to expand them.
PARSE_ROOM = MAX_STEPS - PARSE_STEPS * (MAX_FILE_BYTES + MAX_IMPORT_BYTES)


@dataclass(frozen=True)
class Limit:
    what: str
    value: str
    code: str


LIMITS: list[Limit] = [
    Limit("integers a spec writes or computes (also `**` with an exponent above 64)",
          f"within +-{INT_LIMIT} (int64)", "E401"),
    Limit("floats a spec writes or computes", "finite (no inf, no nan)", "E401"),
    Limit("items of a list, tuple or range; characters of a string", f"{MAX_ITEMS:,}", "E402"),
    Limit("`repeat` and `dense` counts", f"{MAX_ITEMS:,}", "E402"),
    Limit("size of a value: items of nested lists and tuples (a list used twice counts twice) "
          "and characters of their strings", f"{MAX_ITEMS:,}", "E402"),
    Limit("size of one .arch file (the main file or an import)", f"{MAX_FILE_BYTES:,} bytes",
          "E403"),
    Limit("nesting in the source: `{ }` bodies, brackets, calls and operators inside each "
          "other", f"{MAX_NESTING} levels", "E404"),
    Limit("statements nested inside each other while a network is expanded, through block "
          "calls", f"{MAX_NESTING} levels", "E404"),
    Limit("lists and tuples nested inside each other", f"{MAX_NESTING} levels", "E404"),
    Limit("variants based on variants", f"{MAX_NESTING} levels", "E404"),
    Limit("layers of one expanded network", f"{MAX_LAYERS:,}", "E405"),
    Limit("files in one chain of imports (a file importing a file importing ...)",
          f"{MAX_IMPORT_DEPTH}", "E406"),
    Limit("import cycles", "none allowed", "E105"),
    Limit("imported files", "inside the main file's folder (and below) or a folder given "
          "with `--allow-dir`", "E107"),
    Limit("values of one tensor (C x H x W), parameters and MACs of a layer or a network",
          f"{INT_LIMIT} (int64)", "E407"),
    Limit("work of one check: characters parsed, statements run, loop rounds, expression "
          f"steps, the values they build and the errors reported ({PARSE_STEPS} steps a "
          f"character parsed, {LAYER_STEPS} a layer, so at most "
          f"{MAX_STEPS // LAYER_STEPS:,} layers in all the networks of a file, fewer in a "
          "large file)", f"{MAX_STEPS:,} steps", "E408"),
    Limit("length of a module path such as `layer1.0.conv1`", f"{MAX_PATH:,} characters",
          "E409"),
    Limit("different files imported by one check (directly or through other imports)",
          f"{MAX_IMPORT_FILES}", "E410"),
    Limit("bytes of all the files imported by one check, together", f"{MAX_IMPORT_BYTES:,} "
          "bytes", "E410"),
]


class LimitError(Exception):
    """A limit was reached: the expansion of the network stops here (its diagnostic is the
    only one for what remains), unlike an EvalError, after which checking goes on."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic
        self.reported = False  # set by the expander once it has recorded the diagnostic


# ---------------------------------------------------------------- the work budget


class Budget:
    """Units of work left to one check. Every character parsed, statement, loop round,
    expression step, value built and error reported is charged; running out is E408,
    reported where it happened."""

    def __init__(self, steps: int = MAX_STEPS):
        self.steps = steps
        self.left = steps
        self.span: Span | None = None  # the statement being expanded
        self.where: Span | None = None  # where the budget ran out

    def exhausted(self) -> LimitError:
        if self.where is None:
            self.where = self.span
        return LimitError(Diagnostic(
            "E408", f"the spec needs more than {self.steps:,} steps to expand", self.where,
            detail="loops, repeats and the values they build multiply",
            hint="check repeat counts and loop bounds, and loops nested in loops"))


_BUDGET: ContextVar[Budget | None] = ContextVar("archspec_budget", default=None)


@contextmanager
def budget(steps: int = MAX_STEPS) -> Iterator[Budget]:
    """A fresh work budget for what runs inside (one check of one file)."""
    current = Budget(steps)
    token = _BUDGET.set(current)
    try:
        with suggestions():  # "did you mean" hints have their own allowance
            yield current
    finally:
        _BUDGET.reset(token)


@contextmanager
def collector_paused() -> Iterator[None]:
    """CPython's cyclic collector off while a check runs. A check allocates hundreds of
    thousands of small objects (nodes, spans, IR) that live until it ends, and the
    collector would walk them again and again: a fifth to a quarter of a large check's
    time (tools/bench_speed.py). The work budget bounds what one check can allocate (the
    specs that use up a limit peak under 140 MB without the collector), and its cycles are
    collected once it is back on. Restores the collector as it was (nested checks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# Objects a command-line run lets pile up between its files before it collects (below).
PILED_UP_OBJECTS = 2_000_000


def collect_if_piled_up() -> None:
    """The command line runs with the collector off (one short process; its checks'
    memory is freed at exit). Between files it collects once the objects allocated since
    the last collection exceed PILED_UP_OBJECTS (a few hundred MB), so that many files on
    one command line cannot pile up without bound."""
    if not gc.isenabled() and gc.get_count()[0] > PILED_UP_OBJECTS:
        gc.collect()


def current_budget() -> Budget | None:
    """The budget of the check that is running (None outside a check)."""
    return _BUDGET.get()


def charge(units: int = 1, span: Span | None = None) -> None:
    """Spend work; without a budget (outside a check) this does nothing."""
    current = _BUDGET.get()
    if current is None:
        return
    if span is not None:
        current.span = span
    current.left -= units
    if current.left < 0:
        raise current.exhausted()


# ---------------------------------------------------------------- values


def measure(value) -> tuple[int, int]:
    """(size, depth) of a value: items of nested lists and tuples (counted each time they
    appear) plus characters of strings, and how deeply lists and tuples nest. Stops as soon
    as either passes its limit, so it costs at most about MAX_ITEMS steps (charged)."""
    if isinstance(value, str):
        return len(value), 0
    if not isinstance(value, (list, tuple)):
        return 0, 0
    size = depth = 0
    stack = [(value, 1)]
    while stack and size <= MAX_ITEMS and depth <= MAX_NESTING:
        items, level = stack.pop()
        depth = max(depth, level)
        size += len(items)
        for item in items:
            if isinstance(item, (list, tuple)):
                stack.append((item, level + 1))
            elif isinstance(item, str):
                size += len(item)
        charge(len(items) + 1)
    return size, depth


# ---------------------------------------------------------------- tensors


def count_values(shape) -> int:
    """Values of a tensor; plain ints, so that a size with a formula records no condition
    (int64 bounds are no input size's business: they are far beyond any)."""
    total = 1
    for dim in shape:
        total *= int(dim)
    return total


def tensor_problem(shape, params: int = 0, macs: int = 0) -> str | None:
    """What goes beyond int64 in a layer's output, parameters or MACs, if anything."""
    values = count_values(shape)
    if values > INT_LIMIT:
        return f"the tensor has {values:,} values"
    if int(params) > INT_LIMIT:
        return f"the layer has {params:,} parameters"
    if int(macs) > INT_LIMIT:
        return f"the layer needs {macs:,} MACs"
    return None


TENSOR_HINT = f"sizes, parameters and MACs must stay within {INT_LIMIT:,} (int64)"


# ---------------------------------------------------------------- the syntax tree

# Parse-tree rules that are not a level of nesting of their own: wrappers around a statement,
# a body or arguments.
TRANSPARENT_RULES = {"start", "labeled", "body", "arg_list", "kwarg", "elif_clause", "param_list",
                "param"}


def syntax_depth_error(tree, file: str, line_offset: int = 0,
                       col_offset: int = 0) -> Diagnostic | None:
    """E404 at the first place (in source order) nested more than MAX_NESTING levels deep in
    a parse tree (the parser's `_Built` nodes); None if there is none. Iterative: it may be
    very deep."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        data = getattr(node, "data", None)
        if data is None:
            continue  # a token
        if str(data) not in TRANSPARENT_RULES:
            depth += 1
        if depth > MAX_NESTING:
            line, col = _position(node)
            col += col_offset if line == 1 else 0
            line += line_offset
            return Diagnostic(
                "E404", f"nested too deeply: more than {MAX_NESTING} levels", Span(
                    file, line, col, line, col + 1),
                detail="bodies, brackets, calls and operators inside each other",
                hint="split the expression with `let`, or the statements into blocks")
        stack.extend((child, depth) for child in reversed(node.children))
    return None


def _position(node) -> tuple[int, int]:
    """Line and column of a tree node (or of its first token)."""
    while True:
        meta = getattr(node, "meta", None)
        if meta is not None and not getattr(meta, "empty", True):
            return meta.line, meta.column
        if hasattr(node, "line") and node.line is not None:
            return node.line, node.column
        children = [c for c in getattr(node, "children", []) if c is not None]
        if not children:
            return 1, 1
        node = children[0]
