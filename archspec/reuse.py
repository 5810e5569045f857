"""Reuse of block expansions: a block called again with the same arguments, on the same
input, expands to the same subtree but for its module paths, so the expander copies the
first expansion instead of running the body again (identical bottlenecks of a stage).

An entry also remembers what the first expansion did to the expander's state (work
charged, layers counted, nesting reached, the longest module path, the blocks it called),
so that a copy leaves the same state and the limits are reached exactly where a fresh
expansion would reach them: the expander takes a copy only when none would be.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir
from . import nodes as n
from .diagnostics import Span
from .evaluate import BlockRef
from .ops import Shape

# Value types an argument may hold for its call to be reused (the rest: expanded each time).
PLAIN = frozenset({int, bool, str, type(None)})


@dataclass
class Expansion:
    """A block call's first expansion, kept as a private copy (later statements change the
    nodes they get, e.g. channels_last and `@scope.module`)."""

    definition: n.Definition  # kept alive, so that the id in the key stays its own
    namespace: dict
    values: dict
    path: str  # the module path it was expanded at
    children: list[ir.Node]
    out: Shape | None
    outputs: dict  # its scope's module outputs, which `@scope.module` reads
    steps: int  # work charged by the body
    span: Span | None  # the budget's statement at its end (None: the body charged none)
    layers: int  # layers it added to the network's count
    depth: int  # how much deeper than the call its statements nested
    longest: int  # its longest module path, less the length of `path`
    called: frozenset[str]  # blocks it called (E207 looks them up in the call stack)
    fresh: bool  # the expander's fresh_input at its end


def value_key(value) -> tuple | None:
    """A hashable form of an argument value that tells its type too (1, 1.0 and True
    differ as arguments, and so do 0.0 and -0.0); None for a value that is not plain."""
    kind = type(value)
    if kind is float:
        return (kind, repr(value))
    if kind in PLAIN:
        return (kind, value)
    if isinstance(value, (list, tuple)):
        items = tuple(value_key(item) for item in value)
        return None if None in items else (kind, items)
    if isinstance(value, BlockRef):
        return ("block", id(value.definition), id(value.namespace))
    return None


def call_key(ref: BlockRef, values: dict, shape: Shape | None, context: tuple) -> tuple | None:
    """What a block call's expansion depends on, or None when it is not to be reused."""
    if shape is None or any(type(size) is not int for size in shape):
        return None
    args = value_key(tuple(values.items()))
    if args is None:
        return None
    return id(ref.definition), id(ref.namespace), args, shape, context


def moved(node: ir.Node, old: str, new: str) -> ir.Node:
    """A copy of `node`'s subtree with module paths under `old` put under `new`."""
    clone = shallow(node)
    if isinstance(node, ir.Layer):
        clone.path = new + node.path[len(old):]
        clone.attrs = dict(node.attrs)
    elif isinstance(node, ir.Seq):
        clone.children = [moved(child, old, new) for child in node.children]
        clone.path = new + node.path[len(old):] if node.path else ""
        clone.free, clone.exports = list(node.free), list(node.exports)
        if node.block is not None:
            clone.block = shallow(node.block)
            clone.block.args = dict(node.block.args)
    elif isinstance(node, ir.Merge):
        clone.branches = [moved(branch, old, new) for branch in node.branches]
    elif isinstance(node, ir.DenseMerge):
        clone.steps = [moved(step, old, new) for step in node.steps]
    elif isinstance(node, ir.Ref):
        clone.key = new + node.key[len(old):]
    elif isinstance(node, ir.Side):
        clone.body = moved(node.body, old, new)
    return clone


def shallow(node):
    """A copy of a dataclass instance sharing its field values (copy.copy, without the
    generic protocol's cost: a copy is made of every node a reused call gives)."""
    clone = object.__new__(type(node))
    clone.__dict__.update(node.__dict__)
    return clone
