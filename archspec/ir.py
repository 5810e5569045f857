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
from .ops import OpSpec, Shape
from .sizes import Sizes
from .symbolic import shape_formula


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
    like: str | None = None  # the named tensor its `like=` argument reads (its size)


@dataclass
class BlockCall:
    """Which block a scope instantiates, with the argument values it was called with."""

    name: str
    args: dict
    definition_span: Span
    definition: n.Definition | None = None
    namespace: dict = field(default_factory=dict)  # names the definition sees (BlockRefs)
    call: n.Call | None = None  # the statement that calls it (with its label, if any)


@dataclass
class Seq(Node):
    children: list[Node] = field(default_factory=list)
    name: str | None = None  # module name if this is a scope
    path: str = ""  # dotted path of the scope ('' for the root or a transparent group)
    block: BlockCall | None = None
    statement: n.Stmt | None = None  # the labelled statement of a label's scope
    # named tensors of the enclosing scope it reads (`@name` inside a labelled scope), which
    # its forward() takes after its input; and its modules whose outputs it returns with its
    # own, for `@scope.module` outside it
    free: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)


@dataclass
class Merge(Node):
    kind: str  # 'concat' | 'add'
    branches: list[Seq] = field(default_factory=list)

    @property
    def identities(self) -> list[bool]:
        """Which branches pass their input on unchanged (no layers, no `@name`)."""
        return [not any(isinstance(node, Layer | Ref) for node in iter_nodes(branch))
                for branch in self.branches]


@dataclass
class DenseMerge(Node):
    """Step k sees concat(input, out_0 .. out_{k-1}); the output concatenates all of them."""

    steps: list[Seq] = field(default_factory=list)


@dataclass
class Ref(Node):
    """`@name`: from here on the tensor `target` of the same module scope (`input`: the
    tensor the scope received) is the current one; `in_shape` is the one it replaces."""

    target: str
    key: str  # where the target is in the network: its module path, `<scope>@input`


@dataclass
class Side(Node):
    """A side branch (`side`, `aux`): `body` runs on the incoming tensor, which goes on
    unchanged; `training`: it runs only in training mode."""

    body: Seq
    training: bool


@dataclass
class Output:
    """One entry of a network's `return(...)`: `target` is a named tensor of the network's
    scope, or None for the tensor arriving at `return`."""

    key: str | None  # the dict key; None in a tuple
    target: str | None
    shape: Shape
    training: bool  # it comes from an `aux` branch: left out in eval mode


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
    outputs: list[Output] | None = None  # `return(...)`; None: the last tensor
    inputs: list[tuple[str, Shape]] = field(default_factory=list)  # after the first, by name
    sizes: Sizes | None = None  # with size names (`input [3, H, W]`): the valid sizes

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
        return f"{self.describe_inputs()} -> {self.describe_outputs()}"

    def describe_inputs(self) -> str:
        """`3x224x224`, or with named inputs after it: `(3x224x224, depth 1x224x224)`;
        sizes with names as formulas (`3 x H x W`)."""
        if not self.inputs:
            return shape_formula(self.input_shape)
        named = ", ".join(f"{name} {shape_formula(shape)}" for name, shape in self.inputs)
        return f"({shape_formula(self.input_shape)}, {named})"

    def describe_outputs(self) -> str:
        """`8x16x16`, or each output of `return(...)`: `(out 21x520x520, aux 21x520x520)`."""
        if self.outputs is None:
            return shape_formula(self.output_shape or ())
        items = [" ".join(filter(None, [o.key, shape_formula(o.shape),
                                        "(training)" if o.training else ""]))
                 for o in self.outputs]
        return "(" + ", ".join(items) + ")"

    @property
    def training_only_layers(self) -> list[Layer]:
        """Layers of `aux` branches: counted, but run only in training mode."""
        return [layer for side in iter_nodes(self.body)
                if isinstance(side, Side) and side.training for layer in iter_layers(side)]



def iter_nodes(node: Node) -> Iterator[Node]:
    """Every node below `node` (inclusive), in execution order."""
    yield node
    for child in children(node):
        yield from iter_nodes(child)


def children(node: Node) -> list[Node]:
    """The nodes directly inside `node`, in execution order."""
    return (node.children if isinstance(node, Seq) else
            node.branches if isinstance(node, Merge) else
            node.steps if isinstance(node, DenseMerge) else
            [node.body] if isinstance(node, Side) else [])


def iter_layers(node: Node) -> Iterator[Layer]:
    if isinstance(node, Layer):
        yield node
    for child in children(node):
        yield from iter_layers(child)
