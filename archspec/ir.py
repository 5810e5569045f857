"""The checked IR: what expansion and shape inference produce, and what every backend reads.

A network is a tree of `Seq` (sequential), `Merge` (concat or add of branches) and `DenseMerge`
(DenseNet's growing concat) over `Layer` leaves. Every node carries its incoming and outgoing
shape, so backends never infer shapes again. A `Seq` with a `name` is a module scope (a label or
a block call); an unnamed `Seq` is transparent, and its layers are named in the enclosing scope.
Next to the instances, the IR keeps what they came from: each layer its statement, each block
call its definition and arguments, the network its definition, so that a backend can write
the spec's own structure (loops, conditions, parameters) without reading a file again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from . import nodes as n
from .diagnostics import Span
from .ops import OpSpec, Shape, fmt_shape


@dataclass
class Node:
    span: Span
    in_shape: Shape | None
    out_shape: Shape | None


@dataclass
class Layer(Node):
    op: OpSpec
    attrs: dict  # resolved attributes: in_channels, explicit padding, ...
    name: str  # module name inside its scope
    path: str  # full dotted module path, e.g. "layer1.0.conv1"
    params: int = 0
    macs: int = 0
    fresh: bool = False  # its input is a fresh tensor nobody else reads (see flow.py)
    call: n.Call | None = None  # the statement it came from


@dataclass
class BlockCall:
    """Which block a scope instantiates, with the argument values it was called with."""

    name: str
    args: dict
    definition_span: Span
    definition: n.Definition | None = None
    namespace: dict = field(default_factory=dict)  # names the definition sees (BlockRefs)


@dataclass
class Seq(Node):
    children: list[Node] = field(default_factory=list)
    name: str | None = None  # module name if this is a scope
    path: str = ""  # dotted path of the scope ('' for the root or a transparent group)
    block: BlockCall | None = None
    statement: n.Stmt | None = None  # the labelled statement of a label's scope


@dataclass
class Merge(Node):
    kind: str  # 'concat' | 'add'
    branches: list[Seq] = field(default_factory=list)


@dataclass
class DenseMerge(Node):
    """Step k sees concat(input, out_0 .. out_{k-1}); the output concatenates all of them."""

    steps: list[Seq] = field(default_factory=list)


@dataclass
class Network:
    name: str
    definition: str  # name of the `network` this instantiates (== name unless a variant)
    args: dict
    input_shape: Shape
    body: Seq
    span: Span
    init: dict = field(default_factory=dict)  # the spec's `init(...)` choices
    source: n.Definition | None = None  # the `network` definition it instantiates
    namespace: dict = field(default_factory=dict)  # names its definition sees (BlockRefs)

    def residual_batchnorms(self) -> list[str]:
        """Paths of the batchnorm that ends each residual branch (zero-init candidates)."""
        found = []
        for merge in iter_nodes(self.body):
            if isinstance(merge, Merge) and merge.kind == "add":
                for branch in merge.branches:
                    last = list(iter_layers(branch))[-1:]
                    if last and last[0].op.name == "batchnorm":
                        found.append(last[0].path)
        return found

    @property
    def output_shape(self) -> Shape | None:
        return self.body.out_shape

    def layers(self) -> Iterator[Layer]:
        """Every layer in execution order (branches in source order)."""
        yield from iter_layers(self.body)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers())

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers())

    def describe(self) -> str:
        return f"{fmt_shape(self.input_shape)} -> {fmt_shape(self.output_shape)}"



def iter_nodes(node: Node) -> Iterator[Node]:
    """Every node below `node` (inclusive), in execution order."""
    yield node
    children = (node.children if isinstance(node, Seq) else
                node.branches if isinstance(node, Merge) else
                node.steps if isinstance(node, DenseMerge) else [])
    for child in children:
        yield from iter_nodes(child)


def iter_layers(node: Node) -> Iterator[Layer]:
    if isinstance(node, Layer):
        yield node
    elif isinstance(node, Seq):
        for child in node.children:
            yield from iter_layers(child)
    elif isinstance(node, Merge):
        for branch in node.branches:
            yield from iter_layers(branch)
    elif isinstance(node, DenseMerge):
        for step in node.steps:
            yield from iter_layers(step)
