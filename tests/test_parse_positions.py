"""Node positions against the text itself: the span of every expression in the library,
cut out of the file and parsed on its own at that place, gives back the same node (same
kind, values and every span inside it). Parentheses belong to the expression they close
around only as part of an enclosing one: `(a + b) * c` starts at the `(`, `a + b` at `a`."""

from __future__ import annotations

from pathlib import Path

import pytest

from archspec import nodes as n
from archspec.parse import parse_expr, parse_module

SPECS = sorted(Path(__file__).resolve().parent.parent.joinpath("specs").glob("*.arch"))


def _text(lines: list[str], span) -> str:
    """The source a span covers (columns from 1, the end column exclusive)."""
    if span.line == span.end_line:
        return lines[span.line - 1][span.col - 1:span.end_col - 1]
    middle = lines[span.line:span.end_line - 1]
    return "\n".join([lines[span.line - 1][span.col - 1:], *middle,
                      lines[span.end_line - 1][:span.end_col - 1]])


def _expressions(module: n.Module):
    for definition in module.blocks + module.networks:
        for node in n.walk(definition):
            if isinstance(node, n.Expr) and not isinstance(node, n.TensorRef):
                yield node


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_each_expression_span_is_its_own_text(path):
    source = path.read_text()
    module, diagnostics = parse_module(source, str(path))
    assert not diagnostics
    lines = source.split("\n")
    for expr in _expressions(module):
        text = _text(lines, expr.span)
        assert parse_expr(text, str(path), expr.span.line, expr.span.col) == expr, text


def test_parenthesised_operand_widens_the_operation():
    expr = parse_expr("(a + b) * c", "f")
    assert (expr.span.col, expr.span.end_col) == (1, 12)
    assert (expr.left.span.col, expr.left.span.end_col) == (2, 7)
