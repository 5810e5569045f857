"""parse._drive runs Lark's tables, scanners and callbacks in a loop of its own: it must build
what Lark's own LALR parser builds from the same callbacks, node for node and span for span,
and it must be what parses every valid file (Lark's parser only explains a syntax error)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from archspec import parse
from archspec.diagnostics import ArchError
from archspec.parse import (
    _BUILDING,
    _LARK_OPTIONS,
    _Built,
    _drive,
    _NoParse,
    _parser,
    _ToAst,
    parse_module,
)

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "specs").glob("*.arch")) + sorted((ROOT / "tests/broken").glob("*.arch"))
TEXTS = {p.name: p.read_bytes().decode("utf-8", errors="replace") for p in FILES}


def built(run, text: str, start: str):
    _BUILDING.append(_ToAst("x.arch"))
    try:
        return run(text, start)
    finally:
        _BUILDING.pop()


def lark_parse(text: str, start: str):
    return _parser().parse(text, start=start)


def outcome(run, text: str, start: str):
    """What a parse built, or the kind of failure: no text (UnexpectedInput, or the loop's
    _NoParse), or an error raised by a node's method (ArchError, a bad label)."""
    try:
        return built(run, text, start)
    except (UnexpectedInput, _NoParse):
        return "does not parse"
    except ArchError as exc:
        return [d.code for d in exc.diagnostics]


@pytest.mark.parametrize("name", TEXTS)
def test_the_loop_builds_what_lark_builds(name):
    ours, theirs = outcome(_drive, TEXTS[name], "start"), outcome(lark_parse, TEXTS[name], "start")
    if isinstance(theirs, str | list):
        assert ours == theirs
        return
    assert [c.value for c in ours.children] == [c.value for c in theirs.children]
    assert (ours.depth, ours.start, ours.end) == (theirs.depth, theirs.start, theirs.end)


def test_the_files_compared_include_both_outcomes():
    parsed = [n for n in TEXTS if not isinstance(outcome(lark_parse, TEXTS[n], "start"), str)]
    assert len(parsed) > 20 and len(parsed) < len(TEXTS)


@pytest.mark.parametrize("expr", ["1", "a if b else c", "-x ** 2 * (y + 1) // 3",
                                  "[i for i in range(3) if i != 1]", "f(a, k=2)[0].c",
                                  "not a and b or c < d <= e", "(1,)", "()", "in.c // 2"])
def test_expressions_alike(expr):
    ours, theirs = built(_drive, expr, "expr"), built(lark_parse, expr, "expr")
    assert ours.value == theirs.value


def test_every_valid_file_parses_in_the_loop(monkeypatch):
    """Lark's own parser runs only for text that does not parse (falling back silently
    would be correct, and slow)."""
    def refuse(*args, **kwargs):
        raise AssertionError("Lark's parser ran")

    lark = _parser()
    monkeypatch.setattr(lark, "parse", refuse)
    for spec in sorted((ROOT / "specs").glob("*.arch")):
        module, diagnostics = parse_module(spec.read_text(), str(spec))
        assert module is not None and diagnostics == [], spec.name


def test_a_syntax_error_is_lark_s(monkeypatch):
    """Where the loop stops, Lark's parser says what is wrong (its expected tokens)."""
    calls = []
    lark = _parser()
    real = lark.parse
    monkeypatch.setattr(lark, "parse", lambda *a, **k: calls.append(a) or real(*a, **k))
    module, diagnostics = parse_module("network n() {\n  input [3, 8, 8]\n  conv(8,, k=3)\n}\n",
                                       "x.arch")
    assert module is None and calls
    assert diagnostics[0].code == "E101" and diagnostics[0].span.line == 3
    assert parse.MAX_SYNTAX_ERRORS >= len(diagnostics)


def lark_tree(text: str, start: str) -> Tree:
    """Lark's own parse tree of the text, with Lark's own positions: the reference for the
    children and positions the callbacks give each node."""
    grammar = (ROOT / "archspec/grammar.lark").read_text()
    return _plain_lark(grammar).parse(text, start=start)


def _plain_lark(grammar: str, cache={}) -> Lark:  # noqa: B006 (one parser for every case)
    if grammar not in cache:
        cache[grammar] = Lark(grammar, **_LARK_OPTIONS, propagate_positions=True)
    return cache[grammar]


def differences(ours, theirs, path: str = "") -> list[str]:
    """Where our tree of `_Built` nodes and Lark's tree differ: rule names, children (tokens,
    placeholders), each node's positions and its container's (Lark's `container_*`)."""
    if isinstance(theirs, Tree):
        if type(ours) is not _Built or ours.data != theirs.data:
            return [f"{path}: {getattr(ours, 'data', ours)!r} for {theirs.data!r}"]
        meta = theirs.meta
        mine = (ours.line, ours.column, ours.end_line, ours.end_column)
        found = [] if meta.empty and ours.line is None or mine == (
            meta.line, meta.column, meta.end_line, meta.end_column) else [
            f"{path}/{theirs.data}: at {mine}, Lark at {meta.line, meta.column}"]
        if hasattr(meta, "container_line"):
            container = ((meta.container_line, meta.container_column),
                         (meta.container_end_line, meta.container_end_column))
            if (ours.start, ours.end) != container:
                found.append(f"{path}/{theirs.data}: container {ours.start, ours.end}, "
                             f"Lark's {container}")
        if len(ours.children) != len(theirs.children):
            count = f"{len(ours.children)} children, Lark's {len(theirs.children)}"
            return [*found, f"{path}/{theirs.data}: {count}"]
        for index, (mine, lark) in enumerate(zip(ours.children, theirs.children)):
            found += differences(mine, lark, f"{path}/{theirs.data}[{index}]")
        return found
    if isinstance(theirs, Token):
        same = (type(ours) is Token and (ours.type, str(ours), ours.line, ours.column) ==
                (theirs.type, str(theirs), theirs.line, theirs.column))
        return [] if same else [f"{path}: {ours!r} for {theirs!r}"]
    return [] if ours is theirs else [f"{path}: {ours!r} for {theirs!r}"]


@pytest.mark.parametrize("name", [n for n in TEXTS if n.endswith(".arch")])
def test_nodes_are_lark_s_tree_with_lark_s_positions(name):
    try:
        theirs = lark_tree(TEXTS[name], "start")
    except UnexpectedInput:
        return  # a broken spec: compared as an outcome above
    ours = built(_drive, TEXTS[name], "start")
    assert differences(ours, theirs) == []


@pytest.mark.parametrize("expr", ["(a + b) * c", "((x))", "f((1), [2, (3)])", "-(-x)",
                                  "a if (b) else (c)"])
def test_expression_positions_are_lark_s(expr):
    assert differences(built(_drive, expr, "expr"), lark_tree(expr, "expr")) == []
