"""AST nodes of the .arch language. Every node keeps the span it was parsed from."""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import Span

# ---------------------------------------------------------------- expressions


@dataclass
class Expr:
    span: Span


@dataclass
class Literal(Expr):
    value: object


@dataclass
class Name(Expr):
    id: str


@dataclass
class InRef(Expr):
    """The shape arriving at the statement: `in.c`, `in.h`, `in.w`, `in.features`, `in.shape`."""


@dataclass
class TensorRef(Expr):
    """`@name`: the tensor a labelled statement gave earlier in the same module scope, or
    `@input`, the tensor the scope received. The name is written like a label (`@down{i}`)."""

    name: LabelPart


@dataclass
class TupleExpr(Expr):
    items: list[Expr]


@dataclass
class ListExpr(Expr):
    items: list[Expr]


@dataclass
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass
class UnaryOp(Expr):
    op: str  # '-', '+', 'not'
    operand: Expr


@dataclass
class BoolOp(Expr):
    op: str  # 'and' | 'or'
    left: Expr
    right: Expr


@dataclass
class Compare(Expr):
    first: Expr
    rest: list[tuple[str, Expr]]


@dataclass
class CondExpr(Expr):
    then: Expr
    cond: Expr
    other: Expr


@dataclass
class Index(Expr):
    target: Expr
    index: Expr


@dataclass
class Attr(Expr):
    target: Expr
    attr: str


@dataclass
class Arg:
    """A call argument; `name` is None for a positional one."""

    name: str | None
    value: Expr
    span: Span


@dataclass
class FunCall(Expr):
    func: str
    args: list[Arg]


@dataclass
class ListComp(Expr):
    """`[item for target in items if condition]`: one list from another."""

    item: Expr
    target: Target
    items: Expr
    condition: Expr | None


# ---------------------------------------------------------------- statements


@dataclass
class LabelPart:
    """A label such as `layer{i+1}`: literal text pieces and the expressions between them."""

    pieces: list[str | Expr]
    span: Span


@dataclass
class Stmt:
    span: Span
    label: LabelPart | None = field(default=None, kw_only=True)


@dataclass
class Call(Stmt):
    name: str
    args: list[Arg]
    name_span: Span


@dataclass
class Group(Stmt):
    body: list[Stmt]


@dataclass
class Parallel(Stmt):
    """Branches on one input, merged: 'concat', 'add', 'split' (each branch gets its share
    of the channels, the results concatenated) or 'gate' (one branch, the input times it)."""

    kind: str
    branches: list[Stmt]


@dataclass
class ChannelsLast(Stmt):
    """Layers that act on each position's channels, run with the channels moved last."""

    body: list[Stmt]


@dataclass
class RefStmt(Stmt):
    """`@name` as a statement: the statements after it continue from that tensor."""

    ref: TensorRef


@dataclass
class Side(Stmt):
    """A side branch: its body runs on the current tensor, which the statements after it
    see unchanged. `training`: it runs only in training mode (`aux`, auxiliary heads)."""

    body: list[Stmt]
    training: bool


@dataclass
class Return(Stmt):
    """The network's outputs: `return(a, b)` a tuple, `return(out=a, aux=b)` a dict."""

    args: list[Arg]


@dataclass
class Dense(Stmt):
    var: str | None
    count: Expr
    body: list[Stmt]


@dataclass
class Repeat(Stmt):
    var: str | None
    count: Expr
    body: list[Stmt]


@dataclass
class Target:
    """A loop target: a name or a (nested) tuple of names."""

    names: list[str | Target]
    span: Span


@dataclass
class For(Stmt):
    target: Target
    iterable: Expr
    body: list[Stmt]


@dataclass
class If(Stmt):
    tests: list[tuple[Expr, list[Stmt]]]  # if and elif clauses, in order
    orelse: list[Stmt] | None


@dataclass
class Let(Stmt):
    name: str
    value: Expr


@dataclass
class Input(Stmt):
    """`input [3, 224, 224]`, or a named one, `input depth: [1, 224, 224]`: a network's
    inputs, in the order its forward() takes them."""

    shape: Expr
    name: LabelPart | None = None


# ---------------------------------------------------------------- definitions


@dataclass
class TypeExpr:
    name: str | None  # simple type name, None for a tuple type
    items: list[TypeExpr]
    span: Span

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        return "(" + ", ".join(str(t) for t in self.items) + ")"


@dataclass
class Param:
    name: str
    type: TypeExpr
    default: Expr | None
    span: Span


@dataclass
class Definition:
    name: str
    params: list[Param]
    body: list[Stmt]
    span: Span
    name_span: Span
    kind: str  # 'block' | 'network'


@dataclass
class Variant:
    name: str
    base: str
    args: list[Arg]
    span: Span
    name_span: Span
    base_span: Span


@dataclass
class Import:
    path: str
    names: list[tuple[str, Span]] | None  # None imports every block
    span: Span


@dataclass
class Module:
    """One parsed .arch file."""

    file: str
    source: str
    imports: list[Import]
    blocks: list[Definition]
    networks: list[Definition]
    variants: list[Variant]


def walk(node):
    """Every AST node below `node` (inclusive), depth first, in source order. Iterative, with
    each class's fields listed once: a recursive generator paid for every level at every
    node it passed up."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
            continue
        fields = _FIELDS.get(type(item))
        if fields is None:
            if not hasattr(item, "__dataclass_fields__") or isinstance(item, Span):
                continue
            fields = _FIELDS[type(item)] = tuple(reversed(item.__dataclass_fields__))
        yield item
        stack.extend([getattr(item, key) for key in fields])


_FIELDS: dict[type, tuple[str, ...]] = {}  # a node class -> its fields, last first
