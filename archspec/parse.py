"""Parse .arch text into AST nodes (nodes.py), reporting every broken top-level item.

The grammar lives in grammar.lark; Lark builds an LALR parser once per process (cached on disk
between processes, which keeps `archspec check` fast). The parser's callbacks build the nodes
as it reduces (`_callbacks`): no parse tree is made and walked again.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from operator import itemgetter

import lark
from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.parse_tree_builder import maybe_create_child_filter
from lark.parsers.lalr_analysis import Shift

from . import nodes as n
from .diagnostics import ArchError, Diagnostic, Span
from .limits import MAX_NESTING, TRANSPARENT_RULES, syntax_depth_error

MAX_SYNTAX_ERRORS = 50
_ITEM_START = re.compile(r"^(block|network|variant|import|from)\b", re.MULTILINE)


_LARK_OPTIONS = {"parser": "lalr", "start": ["start", "expr"], "maybe_placeholders": True}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser, its callbacks replaced by `_callbacks`: parsing returns a `_Built`."""
    grammar = resources.files("archspec").joinpath("grammar.lark").read_text()
    parser = Lark(grammar, **_LARK_OPTIONS, cache=cache_file("parser", grammar, _LARK_OPTIONS))
    parser._callbacks.update(_callbacks(parser.rules))  # the dict the LALR tables call
    return parser


def cache_file(name: str, grammar: str, options: dict) -> str | bool:
    """Where Lark keeps the built parser `name` between runs. Lark unpickles that file, so
    it must be in a folder only this user can write to: its default, the shared temporary
    folder, would let another user plant code there. No such folder: no cache (0.1 s
    slower). The name holds a digest of the grammar and options: Lark rebuilds a cache made for others, so two
    versions of archspec sharing one file would rebuild it for each other (1 s each)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "archspec")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return False
    except (OSError, AttributeError):  # no home, read-only, or no getuid (Windows)
        return False
    version = f"{sys.version_info[0]}{sys.version_info[1]}"
    digest = hashlib.sha256((grammar + repr(options)).encode()).hexdigest()[:16]
    return os.path.join(folder, f"{name}-{digest}-lark{lark.__version__}-py{version}.pickle")


def _span(file: str, meta) -> Span:
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


def _int(text: str) -> int:
    digits = text.replace("_", "").lstrip("0") or "0"
    if len(digits) > 4000:  # int() refuses over 4300 digits; anything this long is E401
        return 10**4000  # the evaluator reports it where it is used
    return int(digits)


class _ToAst:
    """Builds the nodes of one parse as the parser reduces. Each rule's method takes the
    node's positions (a `_Built`) and its children, already nodes. A label's expression that
    does not parse is kept in `error`, raised after the parse unless the nesting depth
    (E404, which comes first) is exceeded."""

    def __init__(self, file: str):
        self.file = file
        self.error: ArchError | None = None

    def _s(self, meta) -> Span:
        return _span(self.file, meta)

    # ---- expressions
    def int_lit(self, meta, c):
        return n.Literal(self._s(meta), _int(c[0]))

    def float_lit(self, meta, c):
        return n.Literal(self._s(meta), float(c[0].replace("_", "")))

    def str_lit(self, meta, c):
        return n.Literal(self._s(meta), str(c[0])[1:-1])

    def true_lit(self, meta, c):
        return n.Literal(self._s(meta), True)

    def false_lit(self, meta, c):
        return n.Literal(self._s(meta), False)

    def name(self, meta, c):
        return n.Name(self._s(meta), str(c[0]))

    def in_ref(self, meta, c):
        return n.InRef(self._s(meta))

    def tuple_lit(self, meta, c):
        return n.TupleExpr(self._s(meta), list(c))

    def list_lit(self, meta, c):
        return n.ListExpr(self._s(meta), [x for x in c if x is not None])

    def list_comp(self, meta, c):
        return n.ListComp(self._s(meta), c[0], c[1], c[2], c[3])

    def binop(self, meta, c):
        return n.BinOp(self._s(meta), str(c[1]), c[0], c[2])

    def pow_op(self, meta, c):
        return n.BinOp(self._s(meta), "**", c[0], c[1])

    def unary(self, meta, c):
        return n.UnaryOp(self._s(meta), str(c[0]), c[1])

    def not_op(self, meta, c):
        return n.UnaryOp(self._s(meta), "not", c[0])

    def or_op(self, meta, c):
        return n.BoolOp(self._s(meta), "or", c[0], c[1])

    def and_op(self, meta, c):
        return n.BoolOp(self._s(meta), "and", c[0], c[1])

    def compare(self, meta, c):
        rest = [(str(c[i]), c[i + 1]) for i in range(1, len(c), 2)]
        return n.Compare(self._s(meta), c[0], rest)

    def cond_expr(self, meta, c):
        return n.CondExpr(self._s(meta), c[0], c[1], c[2])

    def index(self, meta, c):
        return n.Index(self._s(meta), c[0], c[1])

    def attr(self, meta, c):
        return n.Attr(self._s(meta), c[0], str(c[1]))

    def funcall(self, meta, c):
        return n.FunCall(self._s(meta), str(c[0]), c[1] or [])

    # ---- arguments
    def arg_list(self, meta, c):
        return [x if isinstance(x, n.Arg) else n.Arg(None, x, x.span) for x in c]

    def kwarg(self, meta, c):
        return n.Arg(str(c[0]), c[1], self._s(meta))

    # ---- statements
    def labeled(self, meta, c):
        label_tok, stmt = c
        if label_tok is not None:
            stmt.label = self._label(label_tok)
        return stmt

    def _label(self, tok: Token) -> n.LabelPart:
        return self._label_text(tok, str(tok)[:-1], 0)

    def _label_text(self, tok: Token, text: str, start: int) -> n.LabelPart:
        """The pieces of a label-like name: `text` begins `start` characters into `tok`."""
        quoted = text.startswith('"')
        if quoted:
            text = text[1:-1]
        pieces: list = []
        pos = 0
        for match in re.finditer(r"\{([^{}]*)\}", text):
            if match.start() > pos:
                pieces.append(text[pos:match.start()])
            inner_col = tok.column + start + match.start(1) + quoted
            try:
                pieces.append(parse_expr(match.group(1), self.file, tok.line, inner_col))
            except ArchError as exc:
                self.error = self.error or exc
                pieces.append(match.group(0))
            pos = match.end()
        if pos < len(text):
            pieces.append(text[pos:])
        end = Span(self.file, tok.line, tok.column, tok.line, tok.column + len(tok) - 1)
        return n.LabelPart(pieces, end)

    def _tensor_ref(self, tok: Token) -> n.TensorRef:
        return n.TensorRef(_token_span(self.file, tok), self._label_text(tok, str(tok)[1:], 1))

    def tensor_ref(self, meta, c):
        return self._tensor_ref(c[0])

    def ref_stmt(self, meta, c):
        ref = self._tensor_ref(c[0])
        return n.RefStmt(ref.span, ref)

    def side_stmt(self, meta, c):
        return n.Side(self._s(meta), list(c), False)

    def aux_stmt(self, meta, c):
        return n.Side(self._s(meta), list(c), True)

    def return_stmt(self, meta, c):
        return n.Return(self._s(meta), c[0] or [])

    def call(self, meta, c):
        return n.Call(self._s(meta), str(c[0]), c[1] or [], _token_span(self.file, c[0]))

    def group(self, meta, c):
        return n.Group(self._s(meta), list(c))

    def gate_stmt(self, meta, c):
        span = self._s(meta)
        return n.Parallel(span, "gate", [n.Group(span, list(c))])

    def split_stmt(self, meta, c):
        return n.Parallel(self._s(meta), "split", list(c))

    def channels_last_stmt(self, meta, c):
        return n.ChannelsLast(self._s(meta), list(c))

    def concat_stmt(self, meta, c):
        return n.Parallel(self._s(meta), "concat", list(c))

    def add_stmt(self, meta, c):
        return n.Parallel(self._s(meta), "add", list(c))

    def dense_stmt(self, meta, c):
        var, count, body = c
        return n.Dense(self._s(meta), str(var) if var else None, count, body)

    def repeat_stmt(self, meta, c):
        var, count, body = c
        return n.Repeat(self._s(meta), str(var) if var else None, count, body)

    def for_stmt(self, meta, c):
        return n.For(self._s(meta), c[0], c[1], c[2])

    def target(self, meta, c):
        if len(c) == 1 and isinstance(c[0], n.Target):
            return c[0]  # `for (a, b) in ...` is `for a, b in ...`
        return n.Target([x if isinstance(x, n.Target) else str(x) for x in c], self._s(meta))

    def if_stmt(self, meta, c):
        tests = [(c[0], c[1])] + [clause for clause in c[2:-1]]
        return n.If(self._s(meta), tests, c[-1])

    def elif_clause(self, meta, c):
        return (c[0], c[1])

    def let_stmt(self, meta, c):
        return n.Let(self._s(meta), str(c[0]), c[1])

    def input_stmt(self, meta, c):
        name = None if c[0] is None else self._label(c[0])
        return n.Input(self._s(meta), c[1], name)

    def body(self, meta, c):
        return list(c)

    # ---- definitions
    def simple_type(self, meta, c):
        return n.TypeExpr(str(c[0]), [], self._s(meta))

    def tuple_type(self, meta, c):
        return n.TypeExpr(None, list(c), self._s(meta))

    def param(self, meta, c):
        return n.Param(str(c[0]), c[1], c[2], self._s(meta))

    def param_list(self, meta, c):
        return list(c)

    def _definition(self, meta, c, kind: str) -> n.Definition:
        return n.Definition(str(c[0]), c[1] or [], c[2], self._s(meta),
                            _token_span(self.file, c[0]), kind)

    def block_def(self, meta, c):
        return self._definition(meta, c, "block")

    def network_def(self, meta, c):
        return self._definition(meta, c, "network")

    def variant_def(self, meta, c):
        return n.Variant(str(c[0]), str(c[1]), c[2] or [], self._s(meta),
                         _token_span(self.file, c[0]), _token_span(self.file, c[1]))

    def import_all(self, meta, c):
        return n.Import(str(c[0])[1:-1], None, self._s(meta))

    def import_names(self, meta, c):
        names = [(str(t), _token_span(self.file, t)) for t in c[1:] if t is not None]
        return n.Import(str(c[0])[1:-1], names, self._s(meta))


# rule name -> the method that builds its node (the methods not starting with `_`)
_RULES = {name: method for name, method in vars(_ToAst).items()
          if not name.startswith("_") and callable(method)}
_PENDING = object()  # a `_Built` whose rule's method has not run yet
_SPLICED = object()  # the `value` of an `_rule`'s `_Built`: its children go into its parent's
_BUILDING: list[_ToAst] = []  # the parses in progress (a label's expression parses inside)


class _Built:
    """A node as the parser builds it: the rule's name, its children as Lark would put them
    in its tree, the node (`value`), its own positions and those of its container (the text
    of rules inlined into it: `?rule`s give their child a wider container), and its depth of
    nesting. Positions follow Lark's `propagate_positions` exactly: a node starts where its
    first child's container does, tokens the rule drops (brackets, keywords) included."""

    __slots__ = ("children", "column", "data", "depth", "end", "end_column", "end_line", "line",
                 "start", "value")

    def __init__(self, data: str, children: list, start: tuple | None = None,
                 end: tuple | None = None, depth: int = 0, value: object = _PENDING):
        self.data, self.children, self.value, self.depth = data, children, value, depth
        self.start, self.end = start, end
        self.line, self.column = start or (None, None)
        self.end_line, self.end_column = end or (None, None)

    @property
    def meta(self) -> _Built:
        return self  # syntax_depth_error reads positions as a Lark tree's `meta`

    @property
    def empty(self) -> bool:
        return self.line is None


def _first(children: list) -> tuple[int, int] | None:
    """Where the first child's text (its container's) starts; None for no text at all."""
    for child in children:
        kind = type(child)
        if kind is Token:
            return child.line, child.column
        if kind is _Built and child.start is not None:
            return child.start
    return None


def _last(children: list) -> tuple[int, int]:
    """Where the last child's text ends (some child has text)."""
    for child in reversed(children):
        kind = type(child)
        if kind is Token:
            return child.end_line, child.end_column
        if kind is _Built and child.end is not None:
            return child.end
    raise AssertionError("a node with a start has an end")


def _callbacks(rules) -> dict:
    """Rule -> the function the LALR parser calls with the rule's children: Lark's own child
    filter (dropped tokens, placeholders for missing optionals, inlined `_rules` and
    `?rules`), then positions and the node."""
    return {rule: itemgetter(0) if _passes_child_on(rule) else _callback(rule)
            for rule in rules}


def _passes_child_on(rule) -> bool:
    """A `?rule` of one kept symbol (`?sum: term`): its node is its child, container and all.
    Half the reductions of an expression are these steps down the precedence chain."""
    (symbol,) = rule.expansion if len(rule.expansion) == 1 else (None,)
    return (symbol is not None and rule.options.expand1 and not rule.alias
            and not any(rule.options.empty_indices)
            and not symbol.name.startswith("_") and not getattr(symbol, "filter_out", False))


def _child_plan(rule) -> tuple[list, int] | None:
    """Lark's child filter of a rule: (index, splice in an `_rule`'s children, placeholders
    before it) for each child kept, and the placeholders after the last; None: the children
    are kept as they are."""
    made = maybe_create_child_filter(rule.expansion, rule.options.keep_all_tokens, False,
                                     rule.options.empty_indices)
    if made is None:
        return None
    if len(made.args) == 1:  # a rule without optionals: Lark's filter has no placeholders
        return [(index, splice, 0) for index, splice in made.args[0]], 0
    return made.args


def _kept(children: list, plan: tuple[list, int]) -> list:
    """The children a rule's node keeps, as Lark's LALR child filter keeps them. An `_rule`
    that kept exactly the one child it had passed that child on in place of its container
    (`_stmt` -> its statement), so only a container is spliced."""
    to_include, trailing = plan
    kept: list = []
    for index, splice, nones in to_include:
        if nones:
            kept += [None] * nones
        child = children[index]
        if splice and type(child) is _Built and child.value is _SPLICED:
            if kept:
                kept += child.children
            else:  # the list of a left-recursive repetition grows in place
                kept = child.children
        else:
            kept.append(child)
    if trailing:
        kept += [None] * trailing
    return kept


def _callback(rule):
    data = rule.alias or rule.origin.name
    plan = _child_plan(rule)
    if data.startswith("_"):
        return _splice_callback(data, plan)
    method = _RULES.get(data)
    counts = data not in TRANSPARENT_RULES
    single = rule.options.expand1 and not rule.alias  # a `?rule`: one kept child is the node

    def build(children: list):
        kept = children if plan is None else _kept(children, plan)
        if single and len(kept) == 1:
            return _widened(kept[0], children)
        start = _first(children)
        if start is None:
            return _Built(data, kept)
        deepest = 0
        for child in kept:
            if type(child) is _Built and child.depth > deepest:
                deepest = child.depth
        tail = children[-1]  # where the text ends, mostly: as _last() finds it, inline
        end = tail.end if type(tail) is _Built else None
        if end is None:
            end = _last(children)
        node = _Built(data, kept, start, end, counts + deepest)
        values = [c.value if type(c) is _Built else c for c in kept]
        node.value = method(_BUILDING[-1], node, values) if method else None
        return node

    return build


def _widened(only, children: list):
    """A `?rule`'s one kept child as its node: its container grows by the tokens the rule
    dropped (`( x )`)."""
    if type(only) is _Built and not (len(children) == 1 and only is children[0]):
        start = _first(children)
        if start is not None:
            only.start, only.end = start, _last(children)
    return only


def _splice_callback(data: str, plan: tuple[list, int] | None):
    """An `_rule`'s: a container of the children its parent splices in, or the one child it
    had when it kept just that (the container would hold the same text)."""
    def build(children: list):
        kept = children if plan is None else _kept(children, plan)
        if len(kept) == 1 and len(children) == 1 and kept[0] is children[0]:
            return kept[0]
        grown = children[0] if children else None
        if type(grown) is _Built and grown.children is kept and grown.start is not None:
            grown.end = _last(children)  # a repetition's list grew in place: so does its text
            return grown
        start = _first(children)
        return _Built(data, kept, start, start and _last(children), value=_SPLICED)

    return build


# Token() less its check for a deprecated keyword, which cost as much as making the token
_new_token = Token._future_new


class _NoParse(Exception):
    """The text does not parse: Lark's own parser is run again to raise its exception."""


@dataclass(frozen=True)
class _Table:
    """Lark's LALR table as plain ints: `actions[state][symbol]` is the state to shift or
    go to (>= 0) or `~r` to reduce by `reductions[r]`: (size, the rule's name, its
    callback, None for a `?rule` passing its child on). `lexers`: each state's lexer of
    Lark's contextual lexer, as `_lexer` gives it, made at first use (as Lark does)."""

    actions: dict[int, dict[str, int]]
    reductions: list[tuple[int, str, object]]
    starts: dict[str, int]
    ends: dict[str, int]
    contextual: object
    lexers: dict[int, tuple]
    steps_down: dict[tuple, int]  # by `_step_down`


@lru_cache(maxsize=1)
def _table() -> _Table:
    parser = _parser()
    lalr = parser.parser.parser.parser
    callbacks = parser._callbacks
    index: dict = {}
    actions = {state: {symbol: target if action is Shift
                       else ~index.setdefault(target, len(index))
                       for symbol, (action, target) in row.items()}
               for state, row in lalr.parse_table.states.items()}
    reductions = [(len(rule.expansion), rule.origin.name,
                   None if _passes_child_on(rule) else callbacks[rule]) for rule in index]
    return _Table(actions, reductions, lalr.parse_table.start_states,
                  lalr.parse_table.end_states, parser.parser.lexer, {}, {})


def _lexer(table: _Table, state: int) -> tuple:
    """The lexer of a parser state: its pattern's match, called directly rather than through
    Lark's Scanner.match (a call less for every token), the callbacks that retype a match (a
    keyword matched as a NAME) and the types they gave (`_retyped`), the ignored types and
    those that may hold a newline, all Lark's own."""
    lexer = table.contextual.lexers[state]
    scanner = lexer.scanner  # made first, with the callbacks
    # one pattern: Lark splits the terminals only where `re` refuses that many groups in one
    # pattern, which Python 3's does not
    (pattern,) = scanner._mres
    found = table.lexers[state] = (pattern.match, lexer.callback, {}, lexer.ignore_types,
                                   lexer.newline_types)
    return found


def _retyped(known: dict, callback, kind: str, value: str) -> str:
    """The type Lark's callback gives a token (`block` matched as a NAME is the keyword),
    kept in `known` by text: the callbacks read only the text."""
    known[value] = retyped = callback(_new_token(kind, value, 0, 1, 1, 1, 1, 0)).type
    return retyped


def _drive(text: str, start: str):
    """Lark's LALR loop and contextual lexer over Lark's tables, scanners and callbacks,
    without the generator, state objects and checks between them; a `?rule` passing its
    child on costs a state change only (half the reductions of an expression). Raises
    _NoParse where the text is wrong (Lark's own parser then says how)."""
    table = _table()
    lexers = table.lexers
    stack, values = [table.starts[start]], []
    pos, line, line_start, size = 0, 1, 0, len(text)
    last = None
    while pos < size:
        state = stack[-1]
        match, retype, retyped, ignore, newlines = lexers.get(state) or _lexer(table, state)
        found = match(text, pos)
        if found is None:
            raise _NoParse
        value, kind = found.group(), found.lastgroup
        end, end_line, end_start = pos + len(value), line, line_start
        if kind in newlines and "\n" in value:
            end_line += value.count("\n")
            end_start = pos + value.rindex("\n") + 1
        if kind not in ignore:  # no callback of Lark's does anything to an ignored token
            if kind in retype:
                kind = retyped.get(value) or _retyped(retyped, retype[kind], kind, value)
            last = _new_token(kind, value, pos, line, pos - line_start + 1, end_line,
                              end - end_start + 1, end)
            _feed(kind, last, stack, values, table)
        pos, line, line_start = end, end_line, end_start
    end = Token.new_borrow_pos("$END", "", last) if last else Token("$END", "", 0, 1, 1)
    _feed("$END", end, stack, values, table, table.ends[start])
    return values[-1]


def _feed(kind: str, token: Token, stack: list, values: list, table: _Table,
          end: int | None = None) -> None:
    """Reduce as the token asks, then shift it; `end`: the token is the last ($END),
    reduce until the start rule's state."""
    actions, reductions = table.actions, table.reductions
    while True:
        code = actions[stack[-1]].get(kind)
        if code is None:
            raise _NoParse
        if code >= 0:
            stack.append(code)
            values.append(token)
            return
        size, origin, build = reductions[~code]
        if build is None:  # only the top state changes, by what is below it
            key = stack[-2], stack[-1], kind
            top = table.steps_down.get(key) if end is None else None
            stack[-1] = top if top is not None else _step_down(table, stack, kind, end, key)
        else:
            children = values[-size:] if size else []
            if size:
                del values[-size:]
                del stack[-size:]
            values.append(build(children))
            stack.append(actions[stack[-1]][origin])
        if stack[-1] == end:
            return


def _step_down(table: _Table, stack: list, kind: str, end: int | None, key: tuple) -> int:
    """The state after the `?rule`s that pass a child on which `kind` reduces in a row
    (`16` as an argument goes from atom down to arg: ten of them), kept for the next time:
    they depend on the two states on top of the stack only."""
    below, top = stack[-2], stack[-1]
    while True:
        code = table.actions[top].get(kind)
        if code is None or code >= 0 or top == end:
            break
        _, origin, build = table.reductions[~code]
        if build is not None:
            break
        top = table.actions[below][origin]
    if end is None:
        table.steps_down[key] = top
    return top


def _parse(text: str, file: str, start: str, line_offset: int = 0,
           col_offset: int = 0) -> _Built:
    """The parse of `text` from `start`; ArchError for a nesting too deep (E404) or a label
    whose expression does not parse. UnexpectedInput for a syntax error."""
    _BUILDING.append(_ToAst(file))
    try:
        try:
            root = _drive(text, start)
        except (UnexpectedInput, _NoParse):  # Lark's own loop says what is wrong
            _BUILDING[-1] = _ToAst(file)
            root = _parser().parse(text, start=start)
        error = _BUILDING[-1].error
    finally:
        _BUILDING.pop()
    if root.depth > MAX_NESTING:
        raise ArchError([syntax_depth_error(root, file, line_offset, col_offset)])
    if error is not None:
        raise error
    return root


def parse_expr(text: str, file: str, line: int = 1, col: int = 1) -> n.Expr:
    """Parse one expression (used for label templates); spans are placed at line:col."""
    try:
        expr = _parse(text, file, "expr", line - 1, col - 1).value
    except UnexpectedInput as exc:
        raise ArchError([_syntax_diagnostic(exc, file, line - 1, col - 1)]) from None
    _shift_spans(expr, line - 1, col - 1)
    return expr


def _shift_spans(node, line_offset: int, col_offset: int) -> None:
    """Label expressions are parsed on their own; move their spans to the label's place."""
    if isinstance(node, list | tuple):  # a comparison's `rest` holds (operator, operand)
        for item in node:
            _shift_spans(item, line_offset, col_offset)
        return
    if not hasattr(node, "__dataclass_fields__"):
        return
    for key, value in vars(node).items():
        if isinstance(value, Span):
            setattr(node, key, value.shifted(line_offset, col_offset))
        elif isinstance(value, (list, tuple)):
            for item in value:
                _shift_spans(item, line_offset, col_offset)
        else:
            _shift_spans(value, line_offset, col_offset)


def _describe_expected(expected: set[str]) -> str:
    lark = _parser()
    shown = []
    for name in sorted(expected):
        try:
            pattern = lark.get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str":
            shown.append(f"`{pattern.value}`")
        else:
            shown.append(name.lower().replace("_", " "))
    shown = sorted(set(shown))
    if len(shown) > 8:
        return ", ".join(shown[:8]) + ", ..."
    return ", ".join(shown)


def _syntax_diagnostic(exc: UnexpectedInput, file: str, line_offset: int = 0,
                       col_offset: int = 0) -> Diagnostic:
    line, col = exc.line + line_offset, exc.column + (col_offset if exc.line == 1 else 0)
    if isinstance(exc, UnexpectedCharacters):
        char = exc.char if exc.char.isprintable() else repr(exc.char)
        return Diagnostic("E102", f"unexpected character `{char}`",
                          Span(file, line, col, line, col + 1),
                          hint="names use letters, digits and `_`; comments start with `#`")
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        tok = exc.token
        width = max(1, len(str(tok)))
        end_line, end_col = line, col + width
        if "\n" in str(tok):
            end_line, end_col = line, col + 1
        expected = _describe_expected(set(exc.expected))
        return Diagnostic("E101", f"unexpected `{tok}`", Span(file, line, col, end_line, end_col),
                          detail=f"expected {expected}" if expected else None,
                          hint=_syntax_hint(str(tok), exc.expected))
    expected = _describe_expected(set(getattr(exc, "expected", set()) or set()))
    return Diagnostic("E101", "unexpected end of file", Span(file, line, col, line, col + 1),
                      detail=f"expected {expected}" if expected else None,
                      hint="a `{` is missing its `}`, or a definition is cut short")


def _syntax_hint(token: str, expected) -> str | None:
    if token == ":":
        return "labels are written without a space before the colon: `conv1: conv(64, k=3)`"
    if token == "=" and "COMMA" in expected:
        return "use `==` to compare"
    if token in ("block", "network", "variant", "import", "from"):
        return "the previous definition is not closed: add the missing `}`"
    return "look just before it: a `,`, a bracket or a value is probably missing"


def _offset(text: str, line: int, col: int, start: int = 0) -> int:
    """Index in `text` of a line and column counted from index `start`."""
    at = start
    for _ in range(line - 1):
        at = text.index("\n", at) + 1
    return at + col - 1


_TOKENS = re.compile(r"#[^\n]*|\"[^\"\n]*\"?|'[^'\n]*'?|\w+|\S")


def _unclosed_before(text: str, start: int, begin: int, starts: list[int]) -> int | None:
    """The start of the definition before `begin` (from `start` on) if it is still open there
    (a lost `}`): the parser then reads the next definitions as part of it and fails later,
    or at the end. The parser got past `begin`, so what lies before it is a valid start of
    a file, and a scan tells most cases without parsing again: a bracket still open there
    means an open definition (the first one whose brackets never close); with none, and
    the last definition plainly one (the first, or after a `}`), only it can be unfinished:
    a block or network without its closing `}` (`network n()`), or an import or variant,
    which is parsed again. Otherwise what lies before `begin` is parsed again."""
    earlier = [s for s in starts if start <= s < begin]
    if not earlier:
        return None
    depth, outside, last, before_last = _scan(text, earlier, begin)
    if depth > 0:
        return outside
    piece = start
    if earlier[-1] == start or before_last == "}":
        if _ITEM_START.match(text, earlier[-1]).group(1) in ("block", "network"):
            return None if last == "}" else earlier[-1]
        piece = earlier[-1]
    try:
        _parse(text[piece:begin], "", "start")
    except UnexpectedInput as exc:
        if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
            return earlier[-1]
    except ArchError:
        pass  # too deep, or a bad label: its syntax is complete, so nothing is left open
    return None


def _scan(text: str, earlier: list[int], begin: int) -> tuple[int, int, str, str]:
    """From earlier[0] to `begin`, comments skipped and strings whole: how many brackets are
    open at `begin`, the last of `earlier` outside every bracket, the last token, and the
    last token before earlier[-1]."""
    depth, outside, last, before_last, pending = 0, earlier[0], "", "", iter(earlier)
    item = next(pending)
    for match in _TOKENS.finditer(text, earlier[0], begin):
        while item is not None and item <= match.start():
            outside = item if depth == 0 else outside
            before_last = last if item == earlier[-1] else before_last
            item = next(pending, None)
        token = match.group()
        if token[0] == "#":
            continue
        depth += 1 if token in "([{" else -1 if token in ")]}" else 0
        last = token
    return depth, outside, last, before_last


def _unclosed_diagnostic(text: str, unclosed: int, begin: int, file: str) -> Diagnostic:
    keyword = _ITEM_START.match(text, begin).group(1)
    line = text.count("\n", 0, begin) + 1
    opened = text.count("\n", 0, unclosed) + 1
    bracket = _open_bracket(text, unclosed, begin)
    notes = ([f"the definition at {file}:{opened}:1 is not closed"] if bracket is None else
             _bracket_notes(text, file, *bracket))
    return Diagnostic("E101", f"unexpected `{keyword}`",
                      Span(file, line, 1, line, 1 + len(keyword)), detail="expected `}`",
                      hint=_syntax_hint(keyword, ()), notes=notes)


def _open_bracket(text: str, begin: int, end: int) -> tuple[int, int | None] | None:
    """Where the bracket that is never closed between `begin` and `end` opened (the
    innermost one: its closing bracket is the one missing), or None if all close. A `}`
    that begins a line less indented than the line of the `{` it closes belongs, by its
    indentation, to an outer block: then the `}` missing is that `{`'s, which is returned
    with where the `}` that closed it instead is."""
    stack: list[int] = []
    stolen: tuple[int, int] | None = None  # the first `{` closed by an outer block's `}`
    for match in _TOKENS.finditer(text, begin, end):
        token, at = match.group(), match.start()
        if token in ("(", "[", "{"):
            stack.append(at)
        elif token in (")", "]", "}") and stack:
            opened = stack.pop()
            if token == "}" and stolen is None and _indent(text, at) is not None \
                    and _indent(text, at) < _indent(text, opened, True):
                stolen = (opened, at)
    if not stack:
        return None
    if stolen is not None and stolen[0] > stack[-1]:
        return stolen
    return stack[-1], None


def _indent(text: str, at: int, anywhere: bool = False) -> int | None:
    """The indentation of the line holding `at`; None where something comes before `at`
    on its line, unless `anywhere`."""
    start = text.rfind("\n", 0, at) + 1
    lead = len(text[start:at]) - len(text[start:at].lstrip(" \t"))
    return lead if anywhere or start + lead == at else None


def _line_col(text: str, at: int) -> tuple[int, int]:
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


def _bracket_notes(text: str, file: str, opened: int, stolen: int | None) -> list[str]:
    """What the diagnostic of a bracket never closed says about it, and about the `}` that
    closed it instead, if one did."""
    line, col = _line_col(text, opened)
    notes = [f"the `{text[opened]}` at {file}:{line}:{col} is never closed"]
    if stolen is not None:
        closed_line, closed_col = _line_col(text, stolen)
        notes.append(f"the `}}` at {file}:{closed_line}:{closed_col} closes it, but is "
                     "indented like an outer block: it is probably that block's `}`")
    return notes


def _end_diagnostic(text: str, begin: int, file: str, exc: UnexpectedInput) -> Diagnostic | None:
    """The file ends inside a bracket: the error is where that bracket opened (the one whose
    closing bracket is missing), not at the file's last token."""
    if not (isinstance(exc, UnexpectedEOF) or
            isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return None
    bracket = _open_bracket(text, begin, len(text))
    if bracket is None:
        return None
    opened = bracket[0]
    line, col = _line_col(text, opened)
    closing = {"(": ")", "[": "]", "{": "}"}[text[opened]]
    end_line, end_col = _line_col(text, max(0, len(text.rstrip()) - 1))  # its last character
    return Diagnostic("E101", f"the `{text[opened]}` at line {line}:{col} is never closed",
                      Span(file, line, col, line, col + 1),
                      detail=f"the file ends at {end_line}:{end_col} before its `{closing}`",
                      hint=f"add the `{closing}` where what it opens ends",
                      notes=_bracket_notes(text, file, *bracket)[1:])


def _parse_items(source: str, file: str) -> tuple[list | None, list[Diagnostic]]:
    """The file's items; on a syntax error skip the broken top-level item and go on, so each
    broken definition is reported in the same run. What came before an error parsed whole, so
    the next try starts after the skipped item, not at the top: each part of the file is
    parsed about once however many errors it has (re-parsing from the top made 50 errors in a
    200 kB file 100 parses of it). Nesting too deep and bad label expressions are reported
    only for a file without syntax errors."""
    diagnostics: list[Diagnostic] = []
    start = 0  # source[:start] is whole definitions and skipped broken ones
    starts = [m.start() for m in _ITEM_START.finditer(source)]
    while True:
        try:
            root = _parse(source[start:], file, "start")
        except ArchError as exc:
            return None, diagnostics or exc.diagnostics
        except UnexpectedInput as exc:
            error_at = _offset(source, exc.line, exc.column, start) if exc.line > 0 \
                else len(source)
            begin = max([s for s in starts if start <= s <= error_at], default=start)
            unclosed = _unclosed_before(source, start, begin, starts)
            line_offset = source.count("\n", 0, start)
            diagnostics.append(
                _unclosed_diagnostic(source, unclosed, begin, file) if unclosed is not None
                else _end_diagnostic(source, begin, file, exc)
                or _syntax_diagnostic(exc, file, line_offset))
            if len(diagnostics) >= MAX_SYNTAX_ERRORS:
                return None, diagnostics
            if unclosed is not None:  # skip only the open definition: the next one is fine
                start = begin
                continue
            later = [s for s in starts if s > error_at]
            end = later[0] if later else len(source)
            if end <= begin or not source[begin:end].strip():
                return None, diagnostics
            start = end
        else:
            if diagnostics:
                return None, diagnostics
            return [item.value for item in root.children], diagnostics


def parse_module(source: str, file: str) -> tuple[n.Module | None, list[Diagnostic]]:
    """Parse a whole file; returns the module (None if any syntax error) and the diagnostics."""
    items, diagnostics = _parse_items(source, file)
    if items is None:
        return None, diagnostics
    module = n.Module(file, source, [], [], [], [])
    for item in items:
        if isinstance(item, n.Import):
            module.imports.append(item)
        elif isinstance(item, n.Variant):
            module.variants.append(item)
        elif item.kind == "block":
            module.blocks.append(item)
        else:
            module.networks.append(item)
    return module, []
