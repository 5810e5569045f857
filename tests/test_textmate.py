"""The TextMate grammar (editors/textmate/arch.tmLanguage.json) is up to date with the
keywords, ops and functions it names, and scopes the specs as archspec's own parser reads
them: every spec of specs/ is tokenised by a real TextMate engine (vscode-textmate on
Oniguruma, run by node: tests/textmate/tokenize.js), and each token the parser finds must
carry the scope of its kind (comments, keywords, op calls, numbers, strings, labels, `@names`),
and no text other than whitespace is left without a scope. Skips without node or without the
engine installed (tools/setup_textmate.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from lark import Lark

from archspec import nodes as n
from archspec.fmt import tokens_and_gaps
from archspec.ops import REGISTRY
from archspec.parse import parse_module

ROOT = Path(__file__).resolve().parent.parent
GRAMMAR = ROOT / "editors" / "textmate" / "arch.tmLanguage.json"
ENGINE = ROOT / "tests" / "textmate"
SPECS = sorted((ROOT / "specs").glob("*.arch"))
KEYWORD_SCOPES = ("keyword.", "storage.type.", "constant.language.", "support.type.")
SCOPE_OF_TOKEN = {"COMMENT": "comment.", "INT": "constant.numeric.",
                  "FLOAT": "constant.numeric.", "STRING": "string.",
                  "LABEL": "entity.name.tag.label.", "REF": "variable.other.tensor."}


def test_grammar_is_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_textmate.py"), "--check"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def scopes() -> dict[str, list[list]]:
    """Each spec's TextMate tokens, line by line: [start, end, scopes]."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (ENGINE / "node_modules" / "vscode-textmate").is_dir():
        pytest.skip("the TextMate engine is not installed: run sh tools/setup_textmate.sh")
    done = subprocess.run([node, str(ENGINE / "tokenize.js"), str(GRAMMAR),
                           *map(str, SPECS)], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _parser_tokens(text: str) -> list[tuple[str, int, int, int]]:
    """(kind, line, start column, end column) of every token and comment archspec's grammar
    finds; kind is the terminal, KEYWORD for the words the grammar spells out, OP for the
    name of a call of a registered op."""
    comments: list = []
    grammar = resources.files("archspec").joinpath("grammar.lark").read_text()
    Lark(grammar, parser="lalr", lexer_callbacks={"COMMENT": comments.append}).parse(text)
    module, _ = parse_module(text, "spec")
    op_calls = {(node.name_span.line, node.name_span.col) for node in n.walk(module.blocks +
                module.networks) if isinstance(node, n.Call) and node.name in REGISTRY}
    found = []
    for token in tokens_and_gaps(text)[0] + comments:
        kind = token.type
        if token.value.isidentifier() and kind != "NAME":
            kind = "KEYWORD"
        elif (token.line, token.column) in op_calls:
            kind = "OP"
        found.append((kind, token.line, token.column - 1, token.column - 1 + len(token)))
    return found


def _scopes_over(line_tokens: list, start: int, end: int) -> list[list[str]]:
    return [s for a, b, s in line_tokens if a < end and b > start]


def _expected(kind: str, value: str) -> tuple[str, ...]:
    if kind == "KEYWORD":  # `in` as a value (`in.c`) is the block's input
        return KEYWORD_SCOPES + (("variable.language.",) if value == "in" else ())
    if kind == "OP":
        return ("support.function.op.",)
    return (SCOPE_OF_TOKEN[kind],) if kind in SCOPE_OF_TOKEN else ()


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_tokens_have_the_scope_of_their_kind(spec: Path, scopes):
    text = spec.read_text(encoding="utf-8")
    lines, tokens = text.split("\n"), scopes[str(spec)]
    wrong = []
    for kind, line, start, end in _parser_tokens(text):
        wanted = _expected(kind, lines[line - 1][start:end])
        for found in _scopes_over(tokens[line - 1], start, end):
            inner = found[-1] if len(found) > 1 else "(none)"
            if wanted and not inner.startswith(wanted) or inner == "(none)":
                wrong.append(f"{line}:{start + 1} {lines[line - 1][start:end]!r} ({kind}) "
                             f"is {inner}, expected {' or '.join(wanted) or 'a scope'}")
    assert wrong == []


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_only_whitespace_is_left_unscoped(spec: Path, scopes):
    lines = spec.read_text(encoding="utf-8").split("\n")
    bare = [f"{number}:{a + 1} {lines[number - 1][a:b]!r}"
            for number, line_tokens in enumerate(scopes[str(spec)], 1)
            for a, b, found in line_tokens
            if len(found) == 1 and lines[number - 1][a:b].strip()]
    assert bare == []


def test_op_calls_are_found(scopes):
    """The reference sees op calls at all (a spec without any would make the test empty)."""
    text = (ROOT / "specs" / "resnet.arch").read_text(encoding="utf-8")
    assert sum(kind == "OP" for kind, *_ in _parser_tokens(text)) > 10
