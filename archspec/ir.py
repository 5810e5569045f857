"""The checked IR: what expansion and shape inference produce, and what every backend reads.

A network is a tree of `Seq` (sequential), `Merge` (concat or add of branches) and `DenseMerge`
(DenseNet's growing concat) over `Layer` leaves. Every node carries its incoming and outgoing
shape, so backends never infer shapes again. A `Seq` with a `name` is a module scope (a label or
a block call); an unnamed `Seq` is transparent, and its layers are named in the enclosing scope.
`graph()` gives the same network as a networkx dataflow graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

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


@dataclass
class BlockCall:
    """Which block a scope instantiates, with the argument values it was called with."""

    name: str
    args: dict
    definition_span: Span


@dataclass
class Seq(Node):
    children: list[Node] = field(default_factory=list)
    name: str | None = None  # module name if this is a scope
    path: str = ""  # dotted path of the scope ('' for the root or a transparent group)
    block: BlockCall | None = None


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

    def _repr_svg_(self) -> str | None:
        """Jupyter shows a network as its diagram (None without Graphviz's `dot`)."""
        from .diagram import repr_svg  # lazily: graphviz only when drawing

        return repr_svg(self)

    def graph(self):
        """The dataflow graph (networkx.DiGraph): layers and merges as nodes, tensors as
        edges labelled with their shape. Imported lazily: only graph users pay for networkx."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_node("input", kind="input", shape=self.input_shape)
        last = _add_to_graph(g, self.body, "input")
        g.add_node("output", kind="output", shape=self.output_shape)
        g.add_edge(last, "output", shape=self.output_shape)
        return g


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


# Ops whose output is a new tensor read by nobody else, so a following activation may
# overwrite it in place (as torchvision's models do).
_FRESH_FAMILIES = {"conv", "norm", "linear", "pool"}


@dataclass
class Member:
    """A direct child module of a scope: a layer, or a named scope (block call or label)."""

    name: str
    node: Layer | Seq
    fresh: bool  # its input is a fresh tensor that may be overwritten in place


def scope_plan(children: list[Node]) -> tuple[tuple, list[Member]]:
    """How a module scope runs its children, as a static plan of nested tuples:
    ("call", name, node), ("seq", steps, node), ("concat" | "add", branches, node),
    ("dense", steps, node). Both torch backends read this one plan."""
    members: list[Member] = []

    def plan(node: Node, fresh: bool) -> tuple:
        if isinstance(node, Layer) or (isinstance(node, Seq) and node.name is not None):
            members.append(Member(node.name, node, fresh))
            return ("call", node.name, node)
        if isinstance(node, Seq):
            return sequence(node.children, node)
        if isinstance(node, Merge):
            return (node.kind, tuple(plan(b, False) for b in node.branches), node)
        return ("dense", tuple(plan(step, False) for step in node.steps), node)

    def sequence(nodes: list[Node], owner: Node | None) -> tuple:
        steps, previous = [], None
        for child in nodes:
            steps.append(plan(child, previous is not None and _gives_fresh_tensor(previous)))
            previous = child
        return ("seq", tuple(steps), owner)

    return sequence(children, None), members


def _gives_fresh_tensor(node: Node) -> bool:
    if isinstance(node, Layer):
        return node.op.family in _FRESH_FAMILIES
    if isinstance(node, Seq):  # a group or block: what its last statement gives
        return bool(node.children) and _gives_fresh_tensor(node.children[-1])
    return isinstance(node, (Merge, DenseMerge))


def _add_to_graph(g, node: Node, source: str) -> str:
    """Add `node` fed by graph node `source`; return the graph node that gives its output."""
    if isinstance(node, Layer):
        g.add_node(node.path, kind="layer", op=node.op.name, shape=node.out_shape)
        g.add_edge(source, node.path, shape=node.in_shape)
        return node.path
    if isinstance(node, Seq):
        for child in node.children:
            source = _add_to_graph(g, child, source)
        return source
    merge_id = f"{node.kind if isinstance(node, Merge) else 'dense'}@{node.span.line}:" \
               f"{node.span.col}#{g.number_of_nodes()}"
    g.add_node(merge_id, kind="merge", op=getattr(node, "kind", "dense"), shape=node.out_shape)
    if isinstance(node, Merge):
        for branch in node.branches:
            end = _add_to_graph(g, branch, source)
            g.add_edge(end, merge_id, shape=branch.out_shape)
        return merge_id
    feeds = [source]
    for step in node.steps:
        step_in = f"{merge_id}/in{len(feeds)}"
        g.add_node(step_in, kind="merge", op="concat", shape=step.in_shape)
        for feed in feeds:
            g.add_edge(feed, step_in, shape=g.nodes[feed].get("shape"))
        feeds.append(_add_to_graph(g, step, step_in))
    for feed in feeds:
        g.add_edge(feed, merge_id, shape=g.nodes[feed].get("shape"))
    return merge_id
