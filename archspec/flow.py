"""Static facts about statement lists that the expander records and the source generator
relies on, decided from the spec's text alone so that every instance of a definition agrees.

An activation may overwrite its input (`inplace=True`) when the statement just before it, in
the same statement list, gives a fresh tensor that nobody else reads: a conv, norm, linear or
pool, or a merge (concat, add, dense). The first statement of a list, and anything after a
block call or a loop, is not known to get a fresh tensor.
"""

from __future__ import annotations

from collections.abc import Callable

from . import nodes as n
from .ops import OpSpec

FRESH_FAMILIES = frozenset({"conv", "norm", "linear", "pool"})

OpLookup = Callable[[str], OpSpec | None]  # the op a call names, None for a block


def gives_fresh(stmt: n.Stmt, before: bool, op_of: OpLookup) -> bool:
    """Is the tensor after `stmt` fresh, given whether the one before it was?"""
    if isinstance(stmt, n.Call):
        op = op_of(stmt.name)
        return op is not None and op.family in FRESH_FAMILIES
    if isinstance(stmt, (n.Parallel, n.Dense)):
        return True
    if isinstance(stmt, n.Group):
        return ends_fresh(stmt.body, before, op_of)
    if isinstance(stmt, n.ChannelsLast):
        return False  # it ends with a permute: a view of the tensor before
    if isinstance(stmt, n.Side):
        return before  # the tensor before goes on
    if isinstance(stmt, n.If):
        bodies = [body for _, body in stmt.tests]
        rest = ends_fresh(stmt.orelse, before, op_of) if stmt.orelse is not None else before
        return rest and all(ends_fresh(body, before, op_of) for body in bodies)
    if isinstance(stmt, n.Let):
        return before
    return False  # loops (may run zero times), input


def ends_fresh(stmts: list[n.Stmt], before: bool, op_of: OpLookup) -> bool:
    for stmt in stmts:
        before = gives_fresh(stmt, before, op_of)
    return before


SEQUENCES = n.Group | n.Repeat | n.For | n.ChannelsLast  # bodies run in sequence


def is_parameter(stmt: n.Stmt) -> bool:
    """A `scale`: a parameter of the scope it is in, which a Sequential cannot hold."""
    return isinstance(stmt, n.Call) and stmt.name == "scale"


def reads_named_tensors(stmt: n.Stmt) -> bool:
    """Does the statement itself read or branch tensors by name: `@name`, a `like=@name`
    argument, a side branch, `return`?"""
    if isinstance(stmt, n.RefStmt | n.Side | n.Return):
        return True
    return isinstance(stmt, n.Call) and any(isinstance(a.value, n.TensorRef)
                                            for a in stmt.args)


def merges_at_own_level(stmts: list[n.Stmt]) -> bool:
    """Does this statement list combine tensors itself (concat, add, split, gate, dense,
    named tensors) or hold a parameter (`scale`), rather than only inside the modules it
    calls? Such a scope needs a forward() of its own; the others are sequences of modules
    (nn.Sequential)."""
    for stmt in stmts:
        if is_parameter(stmt) or reads_named_tensors(stmt):
            return True
        if stmt.label is not None:
            continue  # a labelled statement is a module scope of its own
        if isinstance(stmt, n.Parallel | n.Dense):
            return True
        if isinstance(stmt, SEQUENCES) and merges_at_own_level(stmt.body):
            return True
        if isinstance(stmt, n.If) and any(
                merges_at_own_level(body) for body in _if_bodies(stmt)):
            return True
    return False


def _if_bodies(stmt: n.If) -> list[list[n.Stmt]]:
    return [body for _, body in stmt.tests] + ([stmt.orelse] if stmt.orelse else [])


def labelled_scope_merges(stmt: n.Stmt) -> bool:
    """`merges_at_own_level` for the scope a labelled statement opens (`name: { ... }`,
    `name: concat { ... }`, `name: if ... { ... }`)."""
    if isinstance(stmt, n.Parallel | n.Dense):
        return True
    if isinstance(stmt, n.If):
        return any(merges_at_own_level(body) for body in _if_bodies(stmt))
    return isinstance(stmt, SEQUENCES) and merges_at_own_level(stmt.body)


def is_init(stmt: n.Stmt) -> bool:
    """The network's `init(...)` choices: a statement of the network, not a layer."""
    return isinstance(stmt, n.Call) and stmt.name == "init" and stmt.label is None
