"""`archspec fmt`: one layout for every .arch file, comments kept, meaning untouched.

The formatter works on the parser's tokens (every one kept, brackets and commas included)
and on the syntax tree they come from, which says where each statement starts. What lies
between two tokens is only whitespace and comments (the grammar ignores nothing else), so
the comments are read from those gaps, each with the line it ends.

The layout, from what the specs in specs/ already do:
* two spaces of indentation per body; a body whose `{` ends its line is laid out one level
  in, its `}` on a line of its own; a body that starts on the line of its `{` (`{ a  b }`)
  stays inline, its later lines aligned under its first statement, `}` after the last one;
* the author's line breaks between statements are kept, statements sharing a line are
  separated by two spaces (a statement broken outside brackets continues four spaces in;
  `else` and `elif` follow a block's `}` on its line); at most one blank line in a row, none at the start or end of a
  body; top-level definitions each start a line;
* inside brackets a line break is kept where the author put one: the next line aligns with
  the first item after the bracket, or, where the bracket ends its line, is indented two
  spaces and the closing bracket gets a line of its own;
* single spaces around operators (none around `**` between plain names and numbers, as in
  `2**i`), after commas and colons, none inside brackets, around `=` of a keyword argument,
  before a call's `(` or an index's `[`, or around `.`;
* a comment after code stays at the end of its line, two spaces after the code; a comment
  on a line of its own takes the indentation of what follows it.

Only whitespace changes: the formatted text has the same tokens and comments, in the same
order, which `format_source` checks before returning it (so a formatted file parses, and
checks, exactly as the original).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree

from .diagnostics import ArchError
from .parse import cache_file, parse_module

INDENT = 2  # per body level, and for the items of a bracket that ends its line
CONTINUATION = 4  # the later lines of a statement broken outside brackets
STATEMENT_SEPARATOR = "  "
STATEMENT_LISTS = {"start", "body", "group", "concat_stmt", "add_stmt", "gate_stmt",
                   "split_stmt", "channels_last_stmt", "side_stmt", "aux_stmt"}
SIMPLE_OPERANDS = {"name", "int_lit", "float_lit", "in_ref"}


@lru_cache(maxsize=1)
def _token_parser() -> Lark:
    """The grammar of parse.py, keeping every token: the layout places each one."""
    grammar = resources.files("archspec").joinpath("grammar.lark").read_text()
    options = {"parser": "lalr", "keep_all_tokens": True, "maybe_placeholders": False}
    return Lark(grammar, **options, cache=cache_file("fmt-parser", grammar, options))


@dataclass
class Gap:
    """What lies between two tokens: a comment ending the previous token's line, then the
    comments on lines of their own and blank lines (None), and whether the next token
    starts a line."""

    trailing: str | None = None
    lines: list[str | None] = field(default_factory=list)
    newline: bool = False

    @property
    def comments(self) -> list[str]:
        return ([self.trailing] if self.trailing else []) + [c for c in self.lines if c]


def read_gap(text: str, after_token: bool) -> Gap:
    """The comments and line structure of whitespace-and-comments text."""
    pieces = text.split("\n")
    gap = Gap(newline=len(pieces) > 1)
    for number, piece in enumerate(pieces):
        content = piece.strip()
        if content.startswith("#"):
            if number == 0 and after_token:
                gap.trailing = content
            else:
                gap.lines.append(content)
        elif 0 < number < len(pieces) - 1 and (not gap.lines or gap.lines[-1] is not None):
            gap.lines.append(None)
    return gap


@dataclass
class Marks:
    """What the syntax tree says about tokens, by index: where statements and top-level
    items start, and which tokens follow the previous one without a space."""

    items: set[int] = field(default_factory=set)
    statements: set[int] = field(default_factory=set)
    tight: set[int] = field(default_factory=set)


class _Walker:
    """Collects the tokens of a tree in order, and the marks its rules give them."""

    def __init__(self):
        self.tokens: list[Token] = []
        self.marks = Marks()

    def walk(self, node) -> int:
        """Add the tokens of `node`; returns the index of its first one."""
        first = len(self.tokens)
        if isinstance(node, Token):
            self.tokens.append(node)
            return first
        starts = [self.walk(child) for child in node.children]
        self._mark(node, starts)
        return first

    def _mark(self, tree: Tree, starts: list[int]) -> None:
        children, marks = tree.children, self.marks
        if tree.data in STATEMENT_LISTS:
            found = marks.items if tree.data == "start" else marks.statements
            found.update(at for at, child in zip(starts, children) if isinstance(child, Tree))
        elif tree.data == "kwarg":  # k=3
            marks.tight.update(starts[1:3])
        elif tree.data == "unary":  # -x
            marks.tight.add(starts[1])
        elif tree.data in ("index", "attr"):  # x[0], in.c
            marks.tight.update(starts[1:3] if tree.data == "attr" else starts[1:2])
        elif tree.data == "pow_op" and _simple(children[0]) and _simple(children[2]):
            marks.tight.update(starts[1:3])  # 2**i


def _simple(node) -> bool:
    """An operand `**` hugs: a name, a number, a bracketed expression, an attribute of one, or
    one negated."""
    if isinstance(node, Token) or node.data in SIMPLE_OPERANDS:
        return True
    if node.data == "atom":  # (i + 1), as in 2**(i + 1)
        return True
    if node.data == "attr":
        return _simple(node.children[0])
    return node.data == "unary" and _simple(node.children[1])


@dataclass
class _Context:
    """An open body or bracket: the column its new lines start at (`indent`), that of its
    closing token on a line of its own (`close`), and `kind`: top, block (a body laid out
    one level in), inline (a body on its `{` line), empty (`{}`), hanging (a bracket
    ending its line) or aligned (a bracket followed by its first item)."""

    kind: str
    indent: int
    close: int
    statement: int = 0  # where the body's latest statement starts: its bodies indent from it

    @property
    def is_body(self) -> bool:
        return self.kind in ("top", "block", "inline", "empty")

    @property
    def is_bracket(self) -> bool:
        return self.kind in ("hanging", "aligned")


class _Layout:
    """Writes tokens with the gaps between them laid out."""

    def __init__(self, tokens: list[Token], gaps: list[Gap], marks: Marks):
        self.tokens, self.gaps, self.marks = tokens, gaps, marks
        self.lines: list[str] = []
        self.comment_of: dict[int, str] = {}  # line number -> the comment ending that line
        self.line_comment: str | None = None  # the comment ending the line being written
        self.line = ""
        self.stack = [_Context("top", 0, 0)]
        self.at_list_start = True  # nothing written yet in the innermost body
        self.closed = ""  # the kind of the body or bracket closed last

    def text(self) -> str:
        for index in range(len(self.tokens)):
            self._token(index)
        self._trailing(self.gaps[-1])
        self._comments(self.gaps[-1], 0, True)
        self._end_line()
        lines = _aligned_comments(self.lines, self.comment_of)
        return "\n".join(lines).strip("\n") + "\n" if any(lines) else ""

    # ---- one token
    def _token(self, index: int) -> None:
        token, gap = self.tokens[index], self.gaps[index]
        newline, indent, in_list = self._placement(index, gap)
        self._trailing(gap)
        comment_indent = self.stack[-1].indent if in_list or token.value == "}" else indent
        self._comments(gap, comment_indent, in_list)
        if newline or gap.comments:
            blank = in_list and not self.at_list_start and gap.lines[-1:] == [None] \
                and token.value != "}"
            self._new_line(indent, blank)
        else:
            self.line += self._space(index)
        if in_list:
            self.stack[-1].statement = len(self.line)
        self.line += token.value
        self.at_list_start = False
        self._after(index)

    def _placement(self, index: int, gap: Gap) -> tuple[bool, int, bool]:
        """Whether the token starts a line, at which column, and whether it starts a
        statement or item (where blank lines and comment paragraphs are kept)."""
        context, value = self.stack[-1], self.tokens[index].value
        if index in self.marks.items:
            return index > 0, 0, True
        if index in self.marks.statements:
            first = self.at_list_start
            return (context.kind == "block" if first else gap.newline), context.indent, True
        if value == "}":
            return context.kind == "block", context.close, False
        if value in (")", "]") and context.is_bracket:
            return context.kind == "hanging", context.close, False
        if context.is_bracket:
            return gap.newline, context.indent, False
        statement = self._body().statement
        if value in ("else", "elif"):  # after a block's `}`: `} else {`
            return gap.newline and self.closed != "block", statement, False
        return gap.newline and value != "{", statement + CONTINUATION, False

    def _body(self) -> _Context:
        """The innermost body (or the top level): the statement being written is in it."""
        return next(c for c in reversed(self.stack) if c.is_body)

    def _space(self, index: int) -> str:
        """What separates a token from the previous one on the same line."""
        token, before = self.tokens[index], self.tokens[index - 1] if index else None
        if before is None:
            return ""
        if index in self.marks.statements:
            return " " if self.stack[-1].kind == "inline" and before.value == "{" \
                else STATEMENT_SEPARATOR
        if token.value == "}":
            return "" if self.stack[-1].kind == "empty" else " "
        if index in self.marks.tight or token.value in (")", "]", ",", ":"):
            return ""
        if before.value in ("(", "["):
            return ""
        if token.value == "(" and (before.type == "NAME" or before.value == "return"):
            return ""
        return " "

    def _after(self, index: int) -> None:
        """Open or close the body or bracket the token begins or ends."""
        value = self.tokens[index].value
        if value in ("}", ")", "]"):
            self.closed = self.stack.pop().kind
            return
        if value not in ("{", "(", "["):
            return
        following = self.gaps[index + 1]
        margin = len(self.line) - len(self.line.lstrip(" "))
        broken = following.newline or bool(following.comments)
        if value == "{":
            self.at_list_start = True
            if self.tokens[index + 1].value == "}" and not following.comments:
                self.stack.append(_Context("empty", 0, 0))
            elif broken:
                start = self._body().statement
                self.stack.append(_Context("block", start + INDENT, start))
            else:
                column = len(self.line) - 1
                self.stack.append(_Context("inline", column + 2, column))
        elif broken:
            self.stack.append(_Context("hanging", margin + INDENT, margin))
        else:
            self.stack.append(_Context("aligned", len(self.line), len(self.line)))

    # ---- lines
    def _trailing(self, gap: Gap) -> None:
        if gap.trailing:
            self.line_comment = gap.trailing

    def _comments(self, gap: Gap, indent: int, paragraphs: bool) -> None:
        """The comments of a gap on lines of their own, with the blank lines between them
        where blank lines are kept (between statements)."""
        pending = False
        for entry in gap.lines:
            if entry is None:
                pending = paragraphs and not self.at_list_start
                continue
            self._new_line(indent, pending)
            self.line += entry
            pending, self.at_list_start = False, False
        if gap.lines and gap.lines[-1] is not None:
            self._end_line()

    def _new_line(self, indent: int, blank: bool = False) -> None:
        self._end_line()
        if blank and self.lines and self.lines[-1]:
            self.lines.append("")
        self.line = " " * indent

    def _end_line(self) -> None:
        if self.line_comment is not None:
            self.comment_of[len(self.lines)] = self.line_comment
            self.line_comment = None
        if self.line.strip():
            self.lines.append(self.line.rstrip())
        self.line = ""


def _aligned_comments(lines: list[str], comment_of: dict[int, str]) -> list[str]:
    """Lines with their end-of-line comments; the comments of consecutive lines start in
    one column, two spaces after the longest of those lines (as the specs align them)."""
    lines = list(lines)
    run: list[int] = []
    for number in sorted(comment_of) + [None]:
        if run and (number is None or number != run[-1] + 1):
            column = max(len(lines[n]) for n in run) + len(STATEMENT_SEPARATOR)
            for n in run:
                lines[n] = lines[n].ljust(column) + comment_of[n]
            run = []
        if number is not None:
            run.append(number)
    return lines


def tokens_and_gaps(source: str) -> tuple[list[Token], list[Gap], Marks]:
    """Every token of a file that parses, the gap before each one and after the last."""
    walker = _Walker()
    walker.walk(_token_parser().parse(source))
    tokens = walker.tokens
    ends = [0] + [t.end_pos for t in tokens]
    starts = [t.start_pos for t in tokens] + [len(source)]
    gaps = [read_gap(source[end:start], at > 0) for at, (end, start) in
            enumerate(zip(ends, starts))]
    return tokens, gaps, walker.marks


def format_source(source: str, file: str = "<text>") -> str:
    """The canonical layout of a spec's text; ArchError with the diagnostics if it does not
    parse. Raises RuntimeError (a bug) if the layout would change a token or a comment."""
    diagnostics = parse_module(source, file)[1]
    if diagnostics:
        raise ArchError(diagnostics, {file: source})
    tokens, gaps, marks = tokens_and_gaps(source)
    formatted = _Layout(tokens, gaps, marks).text()
    if _content(source) != _content(formatted):
        raise RuntimeError(f"formatting {file} would change its tokens or comments")
    return formatted


def _content(source: str) -> list[tuple[str, str]]:
    """The tokens and comments of a text, in order: all the formatter may not change."""
    tokens, gaps, _ = tokens_and_gaps(source)
    found = []
    for token, gap in zip(tokens + [None], gaps):
        found += [("#", c) for c in gap.comments]
        if token is not None:
            found.append((token.type, token.value))
    return found


def unified_diff(before: str, after: str, file: str) -> str:
    """What formatting changes, as `diff -u` shows it."""
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"{file} (original)", f"{file} (formatted)"))
