"""Expansion: run a network's definition (blocks, parameters, loops, conditionals, variants)
into the checked IR, inferring every shape on the way.

Expansion and inference go together, statement by statement, because a statement may read
the shape arriving at it (`in.c`). An error is recorded and its statement's output shape
becomes unknown (None); later statements then skip shape checks instead of cascading, so one
run reports every independent mistake.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from pydantic import Field, ValidationError

from . import ir
from . import nodes as n
from .binding import Signature, collect, complete, keywords_hint
from .diagnostics import Diagnostic, Span, did_you_mean
from .evaluate import (
    MAX_ITEMS,
    UNKNOWN,
    BlockRef,
    Env,
    EvalError,
    Evaluator,
    UnknownShape,
    fail,
    show,
    type_name,
    unpack,
)
from .flow import gives_fresh, is_init
from .infer import (
    add_shape,
    apply_op,
    check_tensor,
    concat_shape,
    dense_step_shape,
    gate_shape,
    projection,
    split_shape,
)
from .limits import (
    CALL_STEPS,
    ERROR_STEPS,
    INT_LIMIT,
    LAYER_STEPS,
    MAX_LAYERS,
    MAX_NESTING,
    MAX_PATH,
    TENSOR_HINT,
    LimitError,
    charge,
    current_budget,
    measure,
)
from .names import label_problem
from .ops import (
    PERMUTE,
    REGISTRY,
    TENSOR_ARGUMENTS,
    Args,
    OpSpec,
    Shape,
    ShapeError,
    fmt_shape,
    need_map,
    unknown_op_hint,
)
from .reuse import Expansion, call_key, moved
from .symbolic import has_formula


class InitArgs(Args):
    """Weight initialisation a network asks for; PyTorch's defaults where not given."""

    conv: Literal["default", "kaiming_normal", "kaiming_uniform", "xavier_normal",
                  "xavier_uniform"] = Field("default", description="scheme for conv weights")
    linear: Literal["default", "normal", "xavier_uniform"] = Field(
        "default", description="scheme for linear weights ('normal': std 0.01)")
    bn: Literal["default", "constant"] = Field(
        "default", description="batchnorm: 'constant' sets weight 1 and bias 0")
    zero_residual_bn: bool = Field(
        False, description="zero the last batchnorm of every residual branch")


def _init_shape(args: InitArgs, shape: Shape):
    return shape, {}


INIT = OpSpec("init", "init", InitArgs, _init_shape, torch=lambda attrs, shape, fresh: None,
              source=lambda a: None,
              other_ops=lambda attrs, shape, out: 0, other_rule="not an op")



# Block calls repeated with the same arguments and input copy the first expansion (reuse.py);
# tests/test_expand_reuse.py turns this off to compare the IR with and without.
REUSE_BLOCKS = True

SIMPLE_TYPES = {"int", "float", "bool", "str", "list", "tuple", "block", "any"}
_VALUE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal",
                 "literal_error", "value_error", "too_long", "too_short"}


@dataclass
class Saved:
    """A named tensor of a module scope: what `@name` reads."""

    shape: Shape | None  # None after an error: references to it skip quietly
    training: bool  # computed in an `aux` branch, so only in training mode
    done: bool = True  # False while its own statement runs


class Like(NamedTuple):
    """The value of `like=@name` while an op's arguments are collected."""

    name: str
    shape: Shape


@dataclass
class Scope:
    """Names of the modules inside one module scope: labels, or the position as in
    nn.Sequential for unlabelled statements; and the tensors its labels name (`@name`),
    `input` being the tensor the scope received. `source` is the scope's statement list,
    searched to explain a reference that finds nothing."""

    path: str
    counter: int = 0
    labels: dict[str, Span] = field(default_factory=dict)
    tensors: dict[str, Saved] = field(default_factory=dict)
    source: list = field(default_factory=list)
    parent: Scope | None = None  # a labelled scope reads its enclosing scope's tensors too
    free: list[str] = field(default_factory=list)  # those it reads, passed in as inputs
    finished: dict[str, tuple[Scope, ir.Seq]] = field(default_factory=dict)  # child scopes
    outputs: dict[str, Shape | None] = field(default_factory=dict)  # every module's output
    reads_tensors: bool | None = None  # does `source` use `@name` (decided when first asked)

    def take(self, label: str | None, span: Span) -> str:
        """The module's name: its label, or its position. A label may be a number
        (`"0": ...`), so positions and labels share one set of names."""
        index = self.counter
        self.counter += 1
        name = label if label is not None else str(index)
        check_path(self.path, name, span)
        if name in self.labels:
            first = self.labels[name]
            what = "label" if label is not None else "position of this statement"
            title = "label" if label is not None else "module name"
            raise fail("E206", f"duplicate {title} `{name}`", span,
                       detail=f"`{name}` is already a module here (the {what} repeats it)",
                       hint="labels name modules and must be unique within a block; "
                            "in a loop, put the index in the label: `name{i}:`; an unlabelled "
                            "statement is named by its position",
                       notes=[f"first used at {first.file}:{first.line}:{first.col}"])
        self.labels[name] = span
        return name

    def child(self, name: str, shape: Shape | None, source: list,
              nested: bool = False) -> Scope:
        """The scope of a block call, or (`nested`) of a labelled statement, which also
        sees the tensors around it."""
        inner = Scope(f"{self.path}.{name}" if self.path else name, source=source,
                      parent=self if nested else None)
        inner.tensors["input"] = Saved(shape, False)
        return inner

    def find(self, name: str) -> tuple[Saved | None, Scope]:
        """`@name` here: a tensor of this scope, `scope.module` of a finished child scope,
        or, in a labelled scope, a tensor of the scopes around it (then an input of it);
        and the scope the tensor belongs to."""
        head, dot, module = name.partition(".")
        if dot:
            child = self.finished.get(head)
            if child is None or module not in child[0].outputs:
                saved = None
            else:
                if module not in child[1].exports:
                    child[1].exports.append(module)  # the child returns it with its output
                    keep_intact(child[1], module)
                saved = Saved(child[0].outputs[module], False)
        else:
            saved = self.tensors.get(name)
        if saved is None and self.parent is not None and name != "input":
            saved, owner = self.parent.find(name)
            if saved is not None and saved.done and name not in self.free:
                self.free.append(name)
            return saved, owner
        return saved, self


def check_path(path: str, name: str, span: Span) -> None:
    """E409 if `path.name` would pass MAX_PATH; checked before the string is built, so a
    hostile label costs its length once, not the length of every path it would make."""
    length = len(path) + 1 + len(name) if path else len(name)
    if length > MAX_PATH:
        start = f"{path}.{name[:60]}" if path else name[:60]
        raise fail("E409", f"module path too long: more than {MAX_PATH} characters", span,
                   detail=f"`{start[:60]}...` has {length} characters",
                   hint="use shorter labels, or nest fewer labelled scopes")


_OP_SIGNATURES: dict[str, tuple[OpSpec, Signature]] = {}


def op_signature(spec: OpSpec) -> Signature:
    """An op's signature, made once per op rather than at every call of it."""
    known = _OP_SIGNATURES.get(spec.name)
    if known is None or known[0] is not spec:
        known = spec, Signature(f"`{spec.name}`", tuple(spec.args.model_fields),
                                tuple(spec.positional), spec.aliases)
        _OP_SIGNATURES[spec.name] = known
    return known[1]


_NO_ARGUMENTS: dict[str, tuple[OpSpec, Args]] = {}


def _validated(spec: OpSpec, given: dict) -> Args:
    """The op's validated arguments. A call without arguments (`relu`, `batchnorm`) gets the
    same frozen defaults every time: they are validated once per op."""
    if given:
        return spec.args.model_validate(given)
    known = _NO_ARGUMENTS.get(spec.name)
    if known is None or known[0] is not spec:
        known = spec, spec.args.model_validate(given)
        _NO_ARGUMENTS[spec.name] = known
    return known[1]


def _as_tuples(value):
    """Op arguments take pairs as tuples; a user may write them as lists."""
    if isinstance(value, (list, tuple)):
        charge(len(value) + 1)
        return tuple(_as_tuples(v) for v in value)
    return value


class Expander:
    """Expands one network (or variant) of a program; diagnostics go to `sink`."""

    def __init__(self, sink: list[Diagnostic], network: str, max_nodes: int = MAX_LAYERS,
                 symbols: dict | None = None,
                 missing_hint: Callable[[list[str]], str] = keywords_hint,
                 expansions: dict[tuple, Expansion] | None = None):
        """`expansions`: first expansions of block calls to share with the other networks
        of one check (the variants of a family call the same blocks alike)."""
        self.sink = sink
        self.missing_hint = missing_hint  # how the caller passes the network's parameters
        self.symbols = symbols or {}  # the input's size names (`input [3, H, W]`): SymDims
        self.network = network
        self.stack: list[tuple[str, Span]] = []  # block calls in progress
        self.node_count = 0
        self.max_nodes = max_nodes
        self.depth = 0  # statements being expanded inside each other
        self.fresh_input = False  # the statement being expanded gets a fresh tensor
        self.positions: tuple[int, int] | None = None  # H x W inside channels_last
        self.training_only = False  # expanding an `aux` branch
        self.reading: dict[int, bool] = {}  # id(statement) -> it uses `@name`
        self.signatures: dict[int, Signature] = {}  # id(block definition) -> its signature
        self.outputs: list[ir.Output] | None = None  # the network's `return(...)`
        # first expansions of block calls, by what they depend on (None: not reused)
        self.expansions: dict[tuple, Expansion] | None = (
            ({} if expansions is None else expansions) if REUSE_BLOCKS else None)
        self.deepest = 0  # the deepest statement nesting reached (within the block call)
        self.longest = 0  # the longest module path made (within the block call)
        self.called: set[str] = set()  # blocks called (within the block call)

    # ------------------------------------------------------------ reporting

    def report(self, diag: Diagnostic) -> None:
        notes = [f"in block `{name}`, called at {span.file}:{span.line}:{span.col}"
                 for name, span in reversed(self.stack)]
        diag.notes = diag.notes + notes + [f"while checking `{self.network}`"]
        self.sink.append(diag)

    def report_error(self, diag: Diagnostic) -> None:
        """An error the expansion goes on after: it costs work, so that a mistake inside a
        loop of a million rounds does not build a million diagnostics (E408 instead)."""
        self.report(diag)
        charge(ERROR_STEPS)

    # ------------------------------------------------------------ networks

    def instantiate(self, definition: n.Definition, namespace: dict, args: dict,
                    args_span: Span, input_override: Shape | None,
                    arg_spans: dict | None = None) -> ir.Network | None:
        """The checked network, or None after errors. `args` are bound already (their names
        checked); `arg_spans` says where each was written (default: `args_span`). A limit
        (E404, E405, E408) stops the expansion where it is reached."""
        try:
            network = self._instantiate(definition, namespace, args, args_span, input_override,
                                        arg_spans or {})
        except LimitError as exc:
            if not exc.reported:
                self.report(exc.diagnostic)
            return None
        if network is None:
            return None
        layers = list(network.layers())  # walked once for both totals
        params, macs = sum(x.params for x in layers), sum(x.macs for x in layers)
        if int(max(params, macs)) > INT_LIMIT:
            self.report(Diagnostic(
                "E407", "network too large", definition.name_span,
                detail=f"{params:,} parameters, {macs:,} MACs", hint=TENSOR_HINT))
            return None
        return network

    def _instantiate(self, definition: n.Definition, namespace: dict, args: dict,
                     args_span: Span, input_override: Shape | None,
                     arg_spans: dict) -> ir.Network | None:
        try:
            values = complete(definition, args, arg_spans, args_span,
                              Evaluator(Env(), namespace, None, True), self.missing_hint)
        except EvalError as exc:
            self.report(exc.diagnostic)
            return None
        body = definition.body
        if not body or not isinstance(body[0], n.Input):
            self.report(Diagnostic(
                "E215", f"network `{definition.name}` does not start with `input`",
                definition.name_span,
                hint="declare the input shape first: `input [3, 224, 224]` (C, H, W) or "
                     "`input [784]` (features)"))
            return None
        env = Env(dict(values))  # `let` must not add to the recorded arguments
        count = next((i for i, s in enumerate(body) if not isinstance(s, n.Input)), len(body))
        root_scope = Scope("", source=definition.body)
        try:
            shape = input_override or self.input_shape(body[0], env, namespace)
            inputs = [self.named_input(stmt, env, namespace, root_scope, shape)
                      for stmt in body[:count]]
            if input_override is None and not self.symbols:
                self.channels_last_warning(body[0], shape)
        except EvalError as exc:
            self.report(exc.diagnostic)
            return None
        stmts = [s for s in body[count:] if not is_init(s)]
        init = self.init_choices([s for s in body[count:] if is_init(s)], env, namespace)
        nodes, out = self.body(stmts, env, namespace, shape, root_scope)
        root = ir.Seq(definition.span, shape, out, nodes)
        return ir.Network(self.network, definition.name, values, shape, root, definition.span,
                          init, definition, namespace, self.outputs, inputs[1:])

    def channels_last_warning(self, stmt: n.Input, shape: Shape) -> None:
        """W003 for `input [224, 224, 3]`: an image written height, width, channels, as
        NumPy and PIL hold it; archspec's (and PyTorch's) maps are channels first."""
        if len(shape) == 3 and shape[2] in (1, 3, 4) and shape[0] > 4 and shape[1] > 4:
            self.report(Diagnostic(
                "W003", f"input [{', '.join(map(str, shape))}] looks like height, width, "
                "channels", stmt.shape.span,
                detail=f"maps are C x H x W: this is {shape[0]} channels of {shape[1]}x"
                       f"{shape[2]}",
                hint=f"write the channels first: `input [{shape[2]}, {shape[0]}, "
                     f"{shape[1]}]`"))

    def named_input(self, stmt: n.Input, env: Env, namespace: dict, scope: Scope,
                    first: Shape) -> tuple[str, Shape]:
        """One of the network's inputs: the first is `@input` (and its name, if it has one),
        the others are named tensors of the network (`input depth: [1, 224, 224]`)."""
        if stmt.name is None and scope.tensors:
            raise fail("E215", "a second input needs a name", stmt.span,
                       hint="name it, `input depth: [1, 224, 224]`, and read it as `@depth`")
        shape = first if not scope.tensors else self.input_shape(stmt, env, namespace)
        try:
            check_tensor(shape)
        except ShapeError as error:
            raise self._at(error, stmt.span) from None
        if not scope.tensors:
            scope.tensors["input"] = Saved(shape, False)
        if stmt.name is None:
            return "input", shape
        name = self.label_text(stmt.name, Evaluator(env, namespace, None, True))
        if not name.isidentifier() or keyword.iskeyword(name) or name in ("x", "self"):
            raise fail("E216", f"input name `{name}` is not a parameter name", stmt.name.span,
                       hint="forward() takes the inputs as parameters: use an identifier "
                            "other than `x` and `self`")
        scope.take(name, stmt.name.span)
        scope.counter -= 1  # an input is no module: it takes no position
        scope.tensors[name] = Saved(shape, False)
        return name, shape

    def init_choices(self, stmts: list[n.Call], env: Env, namespace: dict) -> dict:
        """The network's `init(...)` statement: weight initialisation the backends apply."""
        if len(stmts) > 1:
            self.report(Diagnostic("E210", "`init` is given twice", stmts[1].span,
                                   hint="put every choice in one `init(...)`"))
        if not stmts:
            return {}
        try:
            given, spans = self._collect_args(stmts[0], [], list(InitArgs.model_fields), {},
                                              "`init`", Evaluator(env, namespace, None, True))
            args = self.validate(INIT, stmts[0], given, spans)
        except EvalError as exc:
            self.report(exc.diagnostic)
            return {}
        return args.model_dump()

    def input_shape(self, stmt: n.Input, env: Env, namespace: dict) -> Shape:
        scope = env.child(self.symbols) if self.symbols else env
        value = Evaluator(scope, namespace, None, True)(stmt.shape)
        ok = (isinstance(value, (list, tuple)) and len(value) in (1, 2, 3, 4)
              and all(type_name(v) == "int" and v >= 1 for v in value))
        if not ok:
            raise fail("E216", "the input shape must be [C, H, W], [features], a sequence "
                       "[T, F] (or [C, L]) or a volume [C, D, H, W], positive integers",
                       stmt.shape.span, detail=f"got {show(value)}")
        return tuple(value)

    # ------------------------------------------------------------ argument binding

    def bind_call(self, definition: n.Definition, call: n.Call, evaluator: Evaluator) -> dict:
        """A block call's parameter values, bound by the one binder (binding.py)."""
        key = id(definition)  # the definition outlives the expander: its id stays its own
        if key not in self.signatures:
            self.signatures[key] = Signature.of(definition)
        given, spans = collect(self.signatures[key], call.args, evaluator)
        return complete(definition, given, spans, call.span, evaluator)

    def _collect_args(self, call: n.Call, positional: list[str], names: list[str],
                      aliases: dict, what: str, evaluator: Evaluator) -> tuple[dict, dict]:
        """An op's (or `init`'s) arguments by name; pydantic then checks and completes them."""
        return collect(Signature(what, tuple(names), tuple(positional), aliases), call.args,
                       evaluator)

    # ------------------------------------------------------------ statements

    def body(self, stmts: list[n.Stmt], env: Env, ns: dict, shape: Shape | None,
             scope: Scope) -> tuple[list[ir.Node], Shape | None]:
        out: list[ir.Node] = []
        before = False  # does the statement before this one give a fresh tensor?
        for stmt in stmts:
            if self.outputs is not None and not scope.path and not self.stack:
                self.report_error(Diagnostic(
                    "E222", "a statement after `return`", stmt.span,
                    hint="`return(...)` is the last statement of a network"))
                return out, shape
            self.fresh_input = before
            nodes, shape = self.stmt(stmt, env, ns, shape, scope)
            out.extend(nodes)
            before = gives_fresh(stmt, before, lambda name: self.op_named(name, env, ns))
            if stmt.label is not None and self.refers_to_tensors(scope):
                before = False  # a later `@label` may read it: nothing may overwrite it
        return out, shape

    def refers_to_tensors(self, scope: Scope) -> bool:
        """Does a scope's statement list use `@name` anywhere? Decided once per scope, each
        statement walked once per network (a labelled statement's scope has a list made
        for it, so the statements, which outlive the expansion, are what is remembered)."""
        if scope.reads_tensors is None:
            scope.reads_tensors = any(self._reads_tensors(stmt) for stmt in scope.source)
        return scope.reads_tensors

    def _reads_tensors(self, stmt: n.Stmt) -> bool:
        key = id(stmt)
        if key not in self.reading:
            self.reading[key] = any(isinstance(node, n.TensorRef) for node in n.walk(stmt))
        return self.reading[key]

    def op_named(self, name: str, env: Env, ns: dict) -> OpSpec | None:
        """The op a call statement names, or None when it names a block (as `resolve`)."""
        if isinstance(env.get(name), BlockRef):
            return None
        return None if name in ns else REGISTRY.get(name)

    def stmt(self, stmt: n.Stmt, env: Env, ns: dict, shape: Shape | None,
             scope: Scope) -> tuple[list[ir.Node], Shape | None]:
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        try:
            if self.depth > MAX_NESTING:
                raise LimitError(Diagnostic(
                    "E404", f"nested too deeply: more than {MAX_NESTING} levels", stmt.span,
                    detail="statements inside statements, through block calls",
                    hint="flatten the structure: fewer nested groups and block calls"))
            charge(1, stmt.span)
            return self._stmt(stmt, env, ns, shape, scope)
        except EvalError as exc:
            for diag in exc.diagnostics:
                self.report_error(diag)
        except UnknownShape:
            pass
        except LimitError as exc:
            if not exc.reported:  # reported here, with the chain of block calls
                exc.reported = True
                self.report(exc.diagnostic)
            raise
        finally:
            self.depth -= 1
        return [], None

    def _evaluator(self, env: Env, ns: dict, shape: Shape | None) -> Evaluator:
        return Evaluator(env, ns, shape, shape is not None)

    def _stmt(self, stmt, env, ns, shape, scope):
        if stmt.label is None:
            return self._unlabelled(stmt, env, ns, shape, scope)
        if isinstance(stmt, n.RefStmt | n.Side | n.Return):
            raise fail("E222", f"a label on {describe_statement(stmt)}", stmt.label.span,
                       hint=LABEL_HINTS[type(stmt)])
        label = self.label_text(stmt.label, self._evaluator(env, ns, shape), scope.path)
        name = self.take(scope, label, stmt.label.span)
        scope.tensors[name] = Saved(None, self.training_only, done=False)
        out = None
        try:
            nodes, out = self._labelled(stmt, name, env, ns, shape, scope)
        finally:  # after an error, references to it skip quietly
            scope.tensors[name] = Saved(out, self.training_only)
        return nodes, out

    def _labelled(self, stmt, name: str, env, ns, shape, scope):
        if isinstance(stmt, n.Call):
            return self.call(stmt, env, ns, shape, scope, name)
        inner = scope.child(name, shape, [stmt], nested=True)
        nodes, out = self._unlabelled(stmt, env, ns, shape, inner)
        if not nodes:
            return [], out
        node = ir.Seq(stmt.span, shape, out, nodes, name=name, path=inner.path,
                      statement=stmt, free=inner.free)
        scope.finished[name], scope.outputs[name] = (inner, node), out
        return [node], out

    def label_text(self, label: n.LabelPart, evaluator: Evaluator, path: str = "") -> str:
        """The label's text, refused where PyTorch would refuse the module name."""
        return self._checked_label(label, self.joined(label, evaluator, path))

    def joined(self, label: n.LabelPart, evaluator: Evaluator, path: str = "") -> str:
        """The label's pieces joined. Its length (under `path`) is checked piece by piece,
        before the pieces are joined: a label may repeat a 100,000-character string."""
        parts: list[str] = []
        length = 0
        for piece in label.pieces:
            if isinstance(piece, str):
                part = piece
            else:
                value = evaluator(piece)
                if type_name(value) not in ("int", "str"):
                    raise fail("E204", f"a label piece must be an int or str, got "
                               f"{type_name(value)}", piece.span)
                part = str(value)
            length += len(part)
            if length > MAX_PATH:
                check_path(path, "".join(parts) + part, label.span)
            parts.append(part)
        return "".join(parts)

    def _checked_label(self, label: n.LabelPart, text: str) -> str:
        if not text or "." in text or not text.isprintable() or not text.isascii():
            shown = text if text.isprintable() and len(text) <= 80 else show(text, 80)
            raise fail("E216", f"label `{shown}` is not a valid module name",
                       label.span, hint="a module name is printable ASCII without `.` (PyTorch "
                       "joins names with dots); quote names that are not identifiers: "
                       '`"block1-0": ...`')
        problem = label_problem(text)
        if problem is None and text == "input":
            problem = "`@input` names the tensor the scope received"
        if problem is not None:
            raise fail("E220", f"label `{text}` is reserved", label.span, detail=problem,
                       hint=f"choose another name, e.g. `{text.strip('_') or 'layer'}_`")
        return text

    def _unlabelled(self, stmt, env, ns, shape, scope):
        if isinstance(stmt, n.Call):
            return self.call(stmt, env, ns, shape, scope, None)
        if isinstance(stmt, n.Group):
            return self.body(stmt.body, env, ns, shape, scope)
        method = STATEMENT_METHODS.get(type(stmt))
        if method is not None:
            return getattr(self, method)(stmt, env, ns, shape, scope)
        if isinstance(stmt, n.Let):
            try:
                value = self._evaluator(env, ns, shape)(stmt.value)
            except (EvalError, UnknownShape):
                env.values[stmt.name] = UNKNOWN  # later uses skip quietly, not "unknown name"
                raise
            env.values[stmt.name] = value
            return [], shape
        raise fail("E215", "`input` must be the first statement of a network", stmt.span,
                   hint="blocks take their input from the statement before the call")

    # ------------------------------------------------------------ calls

    def call(self, stmt: n.Call, env, ns, shape, scope, name):
        target = self.resolve(stmt, env, ns)
        if isinstance(target, BlockRef):
            return self.call_block(target, stmt, env, ns, shape, scope, name)
        layer = self.call_op(target, stmt, self._evaluator(env, ns, shape), shape,
                             self.take(scope, name, stmt.span) if name is None else name, scope)
        scope.outputs[layer.name] = layer.out_shape
        return [layer], layer.out_shape

    def resolve(self, stmt: n.Call, env: Env, ns: dict):
        """A statement call names a block held in a variable, a block, or an op."""
        if stmt.name == "init":
            raise fail("E219", "`init` belongs at the top level of a network", stmt.name_span,
                       hint="move it next to `input`; it sets the initialisation of every layer")
        value = env.get(stmt.name)
        if isinstance(value, BlockRef):
            return value
        target = ns.get(stmt.name) or REGISTRY.get(stmt.name)
        if target is not None:
            return target
        if value is not None:
            raise fail("E204", f"`{stmt.name}` is a {type_name(value)}, not a block",
                       stmt.name_span, detail=f"its value is {show(value)}",
                       hint="only blocks and ops can be called as statements")
        def known() -> set[str]:
            return set(ns) | set(REGISTRY) | {
                k for k in env.names() if isinstance(env.lookup(k), BlockRef)}

        raise fail("E201", f"unknown op or block `{stmt.name}`", stmt.name_span,
                   hint=unknown_op_hint(stmt.name)
                   or did_you_mean(stmt.name, known, stmt.name_span)
                   or "see docs/language.md for the ops")

    def call_block(self, ref: BlockRef, stmt: n.Call, env, ns, shape, scope, name):
        if any(frame == ref.name for frame, _ in self.stack):
            raise fail("E207", f"block `{ref.name}` calls itself", stmt.name_span,
                       detail=" -> ".join([f for f, _ in self.stack] + [ref.name]),
                       hint="blocks cannot be recursive; unroll with `repeat` or `for`")
        charge(CALL_STEPS)  # a call costs work even when the block is empty
        values = self.bind_call(ref.definition, stmt, self._evaluator(env, ns, shape))
        if values is None:
            return [], None
        for value in values.values():
            measure(value)  # the IR keeps the arguments: they cost their size
        if name is None:
            name = self.take(scope, None, stmt.span)
        inner = scope.child(name, shape, ref.definition.body)
        key = self.reuse_key(ref, values, shape)
        known = None if key is None else self.expansions.get(key)
        if known is not None and self.can_reuse(known, inner.path):
            nodes, out = self.reuse(known, ref, inner)
        else:
            nodes, out = self.expand_block(ref, stmt, values, shape, inner, key)
        block = ir.BlockCall(ref.name, values, ref.definition.span, ref.definition,
                              ref.namespace, stmt)
        node = ir.Seq(stmt.span, shape, out, nodes, name=name, path=inner.path, block=block)
        scope.finished[name], scope.outputs[name] = (inner, node), out
        return [node], out

    def reuse_key(self, ref: BlockRef, values: dict, shape: Shape | None) -> tuple | None:
        """What the call's expansion depends on; None where it is not reused (size names:
        their conditions are recorded as the body runs)."""
        if self.expansions is None or self.symbols:
            return None
        return call_key(ref, values, shape,
                        (self.positions, self.training_only, self.fresh_input))

    def expand_block(self, ref: BlockRef, stmt: n.Call, values: dict, shape: Shape | None,
                     inner: Scope, key: tuple | None) -> tuple[list[ir.Node], Shape | None]:
        """Run the block's body, and keep a copy for `key` if it expanded without a word."""
        outer = self.deepest, self.longest, self.called
        self.deepest, self.longest, self.called = self.depth, 0, set()
        reported, layers = len(self.sink), self.node_count
        budget = current_budget()
        left, span = (budget.left, budget.span) if budget else (0, None)
        self.stack.append((ref.name, stmt.span))
        try:
            nodes, out = self.body(ref.definition.body, Env(dict(values)), ref.namespace, shape,
                                   inner)
            # every path below is built on inner.path (its scope reads no enclosing one)
            if key is not None and len(self.sink) == reported:
                self.expansions[key] = Expansion(
                    ref.definition, ref.namespace, values, inner.path,
                    [moved(node, inner.path, inner.path) for node in nodes], out,
                    dict(inner.outputs), left - budget.left if budget else 0,
                    budget.span if budget and budget.span is not span else None,
                    self.node_count - layers, self.deepest - self.depth,
                    max(0, self.longest - len(inner.path)), frozenset(self.called),
                    self.fresh_input)
        finally:
            self.stack.pop()
            self.deepest = max(outer[0], self.deepest)
            self.longest = max(outer[1], self.longest)
            self.called = outer[2] | self.called | {ref.name}
        return nodes, out

    def can_reuse(self, known: Expansion, path: str) -> bool:
        """Would expanding the body again here pass every limit, as the first time? (Else
        it is expanded, and reports the limit where it is reached.)"""
        budget = current_budget()
        return ((budget is None or budget.left >= known.steps)
                and self.node_count + known.layers <= self.max_nodes
                and self.depth + known.depth <= MAX_NESTING
                and len(path) + known.longest <= MAX_PATH
                and not any(frame in known.called for frame, _ in self.stack))

    def reuse(self, known: Expansion, ref: BlockRef,
              inner: Scope) -> tuple[list[ir.Node], Shape | None]:
        """The first expansion moved to `inner`'s path, leaving the state expanding the
        body would leave: work charged, layers counted, the scope's module outputs."""
        charge(known.steps)
        budget = current_budget()
        if budget is not None and known.span is not None:
            budget.span = known.span
        self.node_count += known.layers
        self.deepest = max(self.deepest, self.depth + known.depth)
        self.longest = max(self.longest, len(inner.path) + known.longest)
        self.called |= known.called | {ref.name}
        self.fresh_input = known.fresh
        inner.outputs.update(known.outputs)
        return [moved(node, known.path, inner.path) for node in known.children], known.out

    def take(self, scope: Scope, label: str | None, span: Span) -> str:
        """A module's name in `scope` (Scope.take), noting the longest path made."""
        name = scope.take(label, span)
        self.longest = max(self.longest, len(scope.path) + 1 + len(name))
        return name

    def call_op(self, spec: OpSpec, stmt: n.Call, evaluator: Evaluator,
                shape: Shape | None, name: str, scope: Scope) -> ir.Layer:
        if self.positions is not None and not spec.pointwise:
            raise fail("E312", f"`{spec.name}` cannot run inside channels_last",
                       stmt.name_span, detail="inside channels_last each position's channels "
                       "are a vector of their own: only layers that act on one position "
                       "run there", hint=f"move `{spec.name}` before or after the "
                       "channels_last; inside it go linear, layernorm, activations and dropout")
        evaluator.tensors = lambda ref: self.like(ref, evaluator, scope)
        given, spans = collect(op_signature(spec), stmt.args, evaluator)
        like = self.like_argument(spec, given, spans)
        args = self.validate(spec, stmt, {k: _as_tuples(v) for k, v in given.items()}, spans)
        self.node_count += 1
        charge(LAYER_STEPS)  # a layer (validation, shape rule) costs many plain steps
        if self.node_count > self.max_nodes:
            raise LimitError(Diagnostic(
                "E405", f"the expanded network has more than {self.max_nodes:,} layers",
                stmt.span, hint="check repeat counts and loop bounds"))
        path = f"{scope.path}.{name}" if scope.path else name
        layer = ir.Layer(stmt.span, shape, None, spec, {}, name, path, fresh=self.fresh_input,
                         call=stmt, like=like)
        if shape is None:
            return layer
        try:
            layer.out_shape, layer.attrs, layer.params, layer.macs = apply_op(spec, args, shape)
        except ShapeError as exc:
            detail = exc.detail or ""
            if fmt_shape(shape) not in detail:  # every shape error names the incoming shape
                detail += ("; " if detail else "") + f"the incoming shape is {fmt_shape(shape)}"
            diagnostic = Diagnostic(exc.code, exc.message, stmt.span, detail=detail,
                                    formula=exc.formula, hint=exc.hint)
            if exc.recovered is None:
                raise EvalError(diagnostic) from None
            self.report_error(diagnostic)  # and go on with the shape the fix would give
            layer.out_shape = exc.recovered
        return layer

    def like(self, ref: n.TensorRef, evaluator: Evaluator, scope: Scope) -> Like:
        name, saved, _ = self.tensor(ref, evaluator, scope)
        if saved.shape is None:
            raise UnknownShape()  # its statement failed and was reported
        return Like(name, saved.shape)

    def like_argument(self, spec: OpSpec, given: dict, spans: dict) -> str | None:
        """The named tensor a `like=@name` argument reads; its shape goes to the op's rule."""
        for key, value in given.items():
            if isinstance(value, Like) != (key in TENSOR_ARGUMENTS):
                raise fail("E204", f"`{key}` of `{spec.name}` is "
                           f"{'not ' * (key not in TENSOR_ARGUMENTS)}a tensor", spans[key],
                           hint="`like=@name` takes another tensor's size; the other "
                                "arguments are values")
        if "like" not in given:
            return None
        like = given["like"]
        given["like"] = like.shape
        return like.name

    def validate(self, spec: OpSpec, stmt: n.Call, given: dict, spans: dict):
        try:
            args = _validated(spec, given)
        except ValidationError as exc:
            diags = self._validation_diagnostics(spec, stmt, given, spans, exc)
        else:
            self._exactly_one(spec, stmt, given, spans)
            sized = {k: _as_tuples(v) for k, v in given.items() if has_formula(v)}
            return args.model_copy(update=sized) if sized else args  # pydantic drops them
        for diag in diags[:-1]:
            self.report_error(diag)
        raise EvalError(diags[-1])

    @staticmethod
    def _exactly_one(spec: OpSpec, stmt: n.Call, given: dict, spans: dict) -> None:
        """The schema's `one_of` fields: exactly one of them is given."""
        choices = spec.args.one_of
        if not choices:
            return
        named = [f for f in choices if given.get(f) is not None]
        usage = " or ".join(f"{spec.name}({f}=...)" for f in choices)
        if not named:
            wanted = " or ".join(f"`{f}`" for f in choices)
            raise fail("E205", f"`{spec.name}` needs {wanted}", stmt.name_span,
                       hint=f"call it as {usage}")
        if len(named) > 1:
            raise fail("E216", f"`{spec.name}` takes only one of "
                       f"{', '.join(f'`{f}`' for f in choices)}, got {' and '.join(named)}",
                       spans.get(named[1], stmt.span),
                       detail=f"`{named[0]}` already sets the output size",
                       hint=f"keep one: {usage}")

    def _validation_diagnostics(self, spec, stmt, given, spans, exc) -> list[Diagnostic]:
        by_field: dict[str, list[dict]] = {}
        for error in exc.errors():
            by_field.setdefault(str(error["loc"][0]) if error["loc"] else "", []).append(error)
        diags = []
        for fname, errors in by_field.items():
            info = spec.args.model_fields.get(fname)
            expected = info.description if info and info.description else fname
            if any(e["type"] == "missing" for e in errors):
                usage = ", ".join(spec.positional) or fname
                diags.append(Diagnostic("E205", f"`{spec.name}` needs `{fname}` ({expected})",
                                        stmt.name_span, hint=f"call it as {spec.name}({usage})"))
                continue
            value_errors = [e for e in errors if e["type"] in _VALUE_ERRORS]
            code = "E216" if value_errors else "E204"
            reason = (value_errors[0]["msg"].replace("Input should", "it should")
                      if value_errors else f"expected {expected}")
            diags.append(Diagnostic(
                code, f"bad value for `{fname}` of `{spec.name}`: {show(given.get(fname))}"
                if code == "E216" else
                f"`{fname}` of `{spec.name}` has the wrong type: "
                f"{type_name(given.get(fname))}",
                spans.get(fname, stmt.span), detail=reason,
                hint=_float_hint(given.get(fname), errors) or f"`{fname}` is the {expected}"))
        return diags

    # ------------------------------------------------------------ connection patterns

    def channels_last(self, stmt: n.ChannelsLast, env, ns, shape, scope):
        """The body sees each position's channels, (C,), as linear and layernorm do; the IR
        gets the shapes torch sees (H x W x C) between the two permutes."""
        if self.positions is not None:
            raise fail("E312", "channels_last cannot run inside channels_last", stmt.span,
                       hint="the channels are last already: remove the inner channels_last")
        if shape is None:
            return self.body(stmt.body, env, ns, None, scope)
        try:
            need_map(shape, "channels_last")
        except ShapeError as exc:
            raise self._at(exc, stmt.span) from None
        c, h, w = shape
        enter = self.permute(stmt, (1, 2, 0), shape, scope)
        self.positions = (h, w)
        try:
            nodes, out = self.body(stmt.body, env, ns, (c,), scope)
        finally:
            self.positions = None
        for node in (node for top in nodes for node in ir.iter_nodes(top)):
            node.in_shape = None if node.in_shape is None else (h, w, *node.in_shape)
            node.out_shape = None if node.out_shape is None else (h, w, *node.out_shape)
            if isinstance(node, ir.Layer):
                node.macs *= h * w
                check_tensor(node.out_shape or (), node.params, node.macs)
        if out is None:
            return [enter, *nodes], None
        leave = self.permute(stmt, (2, 0, 1), (h, w, out[0]), scope)
        return [enter, *nodes, leave], leave.out_shape

    def permute(self, stmt: n.Stmt, dims: tuple[int, ...], shape: Shape,
                scope: Scope) -> ir.Layer:
        """A permute that channels_last writes, named by its position like a layer."""
        name = self.take(scope, None, stmt.span)
        self.node_count += 1
        path = f"{scope.path}.{name}" if scope.path else name
        out, attrs, _, _ = apply_op(PERMUTE, PERMUTE.args(dims=dims), shape)
        return ir.Layer(stmt.span, shape, out, PERMUTE, attrs, name, path)

    def parallel(self, stmt: n.Parallel, env, ns, shape, scope):
        if self.positions is not None:
            raise fail("E312", f"`{stmt.kind}` cannot run inside channels_last", stmt.span,
                       hint="merge before or after the channels_last: inside it the channels "
                            "are the last dimension, and merges work on channels first")
        branch_shape = self.split_shape(stmt, shape) if stmt.kind == "split" else shape
        branches: list[ir.Seq] = []
        names: list[str] = []
        for branch_stmt in stmt.branches:
            self.fresh_input = False  # every branch reads the merge's input
            nodes, out = self.stmt(branch_stmt, env, ns, branch_shape, scope)
            if isinstance(branch_stmt, n.Let):
                continue  # a `let` binds a name for the later branches; it is not a branch
            branch = ir.Seq(branch_stmt.span, branch_shape, out if nodes else branch_shape,
                            nodes)
            branches.append(branch)
            labelled = getattr(branch_stmt, "label", None) is not None  # else a position
            scoped = nodes[0] if len(nodes) == 1 and labelled else None
            skip = nodes[0].target if nodes and isinstance(nodes[0], ir.Ref) else None
            names.append(scoped.name if scoped else f"@{skip}" if skip else
                         f"branch {len(branches)}")
        if stmt.kind == "add" and len(branches) == 1:
            branches.append(ir.Seq(stmt.span, shape, shape, []))
            names.append("the shortcut")
        if not branches:
            raise fail("E203", f"`{stmt.kind}` needs at least one branch", stmt.span)
        node = ir.Merge(stmt.span, shape, None, stmt.kind, branches)
        identity = node.identities
        if stmt.kind == "gate" and identity[0]:
            raise fail("E203", "`gate` needs layers that compute the gate", stmt.span,
                       hint="e.g. gate { global_avgpool conv(c // 4, k=1) relu conv(c, k=1) "
                            "sigmoid }")
        names = ["the shortcut" if ident and stmt.kind == "add" else name
                 for name, ident in zip(names, identity)]
        shapes = [b.out_shape for b in branches]
        if shape is None or any(s is None for s in shapes):
            return [node], None
        try:
            node.out_shape = (concat_shape(names, shapes) if stmt.kind in ("concat", "split")
                              else gate_shape(shape, shapes[0]) if stmt.kind == "gate"
                              else add_shape(names, shapes, identity))
        except ShapeError as exc:
            exc.hint = skip_hint(node) or padding_hint(node, identity) or exc.hint
            where = odd_branch(node, stmt) or Span(stmt.span.file, stmt.span.line,
                                                   stmt.span.col, stmt.span.line,
                                                   stmt.span.col + len(stmt.kind))
            if exc.code not in MISMATCHES:
                raise self._at(exc, where) from None  # a limit (E407): nothing to go on with
            self.report_error(self._at(exc, where).diagnostic)
            node.out_shape = recovered_merge(node, shape, shapes)  # checking goes on
        return [node], node.out_shape

    # ------------------------------------------------------------ named tensors

    def tensor(self, ref: n.TensorRef, evaluator: Evaluator, scope: Scope,
               in_return: bool = False) -> tuple[str, Saved, Scope]:
        """The scope's tensor that `@name` names, and the scope it belongs to (E221 if none,
        E223 if it exists only in training mode and this is not an output)."""
        if self.positions is not None:
            raise fail("E312", "a tensor reference cannot be used inside channels_last",
                       ref.span, hint="refer to the tensor before or after the channels_last")
        name = self.joined(ref.name, evaluator, scope.path)
        saved, owner = scope.find(name)
        if saved is None or not saved.done:
            raise self.missing_tensor(ref, name, scope)
        if saved.training and not (in_return or self.training_only):
            raise fail("E223", f"`@{name}` exists only in training mode", ref.span,
                       detail=f"`{name}` is computed inside an `aux` branch, which eval mode "
                              "skips",
                       hint="use it only in `return(...)` (eval mode leaves it out), or "
                            "compute it in a `side` branch, which always runs")
        return name, saved, owner

    def missing_tensor(self, ref: n.TensorRef, name: str, scope: Scope) -> EvalError:
        """E221, saying why: not computed yet, inside another scope, or no such label."""
        found = _find_label(scope.source, name, None)
        shown = f"`@{name}`"
        if name in scope.tensors:
            return fail("E221", f"{shown} is not computed yet", ref.span,
                        detail=f"the reference is inside the statement `{name}:` itself",
                        hint="refer to a tensor computed before this statement")
        if found is not None and found[1] is None:
            stmt = found[0]
            return fail("E221", f"{shown} is not computed yet", ref.span,
                        detail=f"`{name}:` is at line {stmt.span.line}, after this reference",
                        hint="a reference reads a tensor computed before it; move the "
                             "reference after that statement")
        if found is not None:
            return fail("E221", f"{shown} is inside the scope `{found[1]}`", ref.span,
                        detail=f"`{name}:` (line {found[0].span.line}) is a module of "
                               f"`{found[1]}`, which is a module scope of its own",
                        hint=f"write `@{found[1]}.{name}` (once `{found[1]}` has run), or "
                             f"`@{found[1]}` for its output")
        known = sorted(k for k in scope.tensors if k != "input")
        return fail("E221", f"no tensor named {shown} here", ref.span,
                    detail=("the named tensors here are " + ", ".join(
                        f"`@{k}`" for k in ["input", *known][:12]))
                    + ("" if len(known) < 12 else ", ..."),
                    hint=did_you_mean(f"@{name}", lambda: {f"@{k}" for k in scope.tensors},
                                      ref.span)
                    or "label the statement whose output you want: `name: conv(...)`, then "
                       "`@name`")

    def reference(self, stmt: n.RefStmt, env, ns, shape, scope):
        name, saved, owner = self.tensor(stmt.ref, self._evaluator(env, ns, shape), scope)
        if saved.shape is None:
            raise UnknownShape()  # its statement failed and was reported
        key = (f"{owner.path}@input" if name == "input" else
               f"{owner.path}.{name}" if owner.path else name)
        return [ir.Ref(stmt.span, shape, saved.shape, name, key)], saved.shape

    def side(self, stmt: n.Side, env, ns, shape, scope):
        """A side branch; its labels are tensors of the scope, the current one goes on."""
        if self.positions is not None:
            raise fail("E312", f"`{'aux' if stmt.training else 'side'}` cannot run inside "
                       "channels_last", stmt.span, hint="branch off before or after it")
        was = self.training_only
        self.training_only = was or stmt.training
        self.fresh_input = False  # the tensor goes on after the branch
        try:
            nodes, out = self.body(stmt.body, env, ns, shape, scope)
        finally:
            self.training_only = was
        body = ir.Seq(stmt.span, shape, out, nodes)
        return [ir.Side(stmt.span, shape, shape, body, stmt.training)], shape

    def returns(self, stmt: n.Return, env, ns, shape, scope):
        """The network's outputs (checked here, built by the backends)."""
        if scope.path or self.stack or self.training_only:
            raise fail("E222", "`return` belongs at the top level of a network", stmt.span,
                       hint="a block gives its last tensor; a network returns named tensors "
                            "with `return(...)` as its last statement")
        if not stmt.args:
            raise fail("E203", "`return` needs at least one output", stmt.span,
                       hint="e.g. `return(out=in, aux=@aux)` or `return(in, @aux1)`")
        keyed = {arg.name is not None for arg in stmt.args}
        if len(keyed) > 1:
            raise fail("E222", "`return` mixes named and unnamed outputs", stmt.span,
                       hint="name every output (a dict: `return(out=in, aux=@aux)`) or none "
                            "(a tuple: `return(in, @aux)`)")
        evaluator = self._evaluator(env, ns, shape)
        outputs, seen = [], set()
        for arg in stmt.args:
            if arg.name is not None and arg.name in seen:
                raise fail("E210", f"output `{arg.name}` is given twice", arg.span)
            seen.add(arg.name)
            outputs.append(self.output(arg, evaluator, scope, shape))
        if all(o.training for o in outputs):
            raise fail("E223", "every output of `return` exists only in training mode",
                       stmt.span, hint="return the main output too, e.g. `return(in, @aux1)`")
        if any(o.shape is None for o in outputs):
            raise UnknownShape()
        self.outputs = outputs
        return [], shape

    def output(self, arg: n.Arg, evaluator: Evaluator, scope: Scope,
               shape: Shape | None) -> ir.Output:
        if isinstance(arg.value, n.InRef):
            return ir.Output(arg.name, None, shape, self.training_only)
        if not isinstance(arg.value, n.TensorRef):
            raise fail("E204", "an output of `return` is a tensor", arg.value.span,
                       hint="write `@name` for a labelled statement's tensor, or `in` for the "
                            "tensor arriving at `return`")
        name, saved, _ = self.tensor(arg.value, evaluator, scope, in_return=True)
        return ir.Output(arg.name, name, saved.shape, saved.training)

    def split_shape(self, stmt: n.Parallel, shape: Shape | None) -> Shape | None:
        """What each branch of a split gets: an equal share of the channels."""
        count = sum(not isinstance(b, n.Let) for b in stmt.branches)
        if shape is None or count == 0:
            return shape
        try:
            return split_shape(shape, count)
        except ShapeError as exc:
            raise self._at(exc, Span(stmt.span.file, stmt.span.line, stmt.span.col,
                                     stmt.span.line, stmt.span.col + len(stmt.kind))) from None

    def _at(self, exc: ShapeError, span: Span) -> EvalError:
        return EvalError(Diagnostic(exc.code, exc.message, span, detail=exc.detail,
                                    formula=exc.formula, hint=exc.hint))

    def count(self, expr: n.Expr, evaluator: Evaluator, what: str) -> int:
        value = evaluator(expr)
        if type_name(value) != "int" or value < 0:
            raise fail("E216" if type_name(value) == "int" else "E204",
                       f"a {what} count must be a non-negative int", expr.span,
                       detail=f"got {show(value)}")
        if value > MAX_ITEMS:
            raise fail("E402", f"{what} count {value} is too large", expr.span,
                       hint=f"at most {MAX_ITEMS}")
        charge(value)
        return value

    def dense(self, stmt: n.Dense, env, ns, shape, scope):
        steps_n = self.count(stmt.count, self._evaluator(env, ns, shape), "dense")
        node = ir.DenseMerge(stmt.span, shape, None)
        if shape is not None:
            try:
                need_map(shape, "dense")
            except ShapeError as exc:
                raise self._at(exc, stmt.span) from None
        current = shape
        for k in range(steps_n):
            step_env = env.child({stmt.var: k} if stmt.var else {})
            nodes, out = self.body(stmt.body, step_env, ns, current, scope)
            node.steps.append(ir.Seq(stmt.span, current, out, nodes))
            if current is None or out is None:
                current = None
                continue
            try:
                current = dense_step_shape(k, shape, current, out)
            except ShapeError as exc:
                raise self._at(exc, stmt.span) from None
        node.out_shape = current
        return [node], current

    def repeat(self, stmt: n.Repeat, env, ns, shape, scope):
        times = self.count(stmt.count, self._evaluator(env, ns, shape), "repeat")
        out: list[ir.Node] = []
        for j in range(times):
            nodes, shape = self.body(stmt.body, env.child({stmt.var: j} if stmt.var else {}),
                                     ns, shape, scope)
            out.extend(nodes)
        return out, shape

    def for_loop(self, stmt: n.For, env, ns, shape, scope):
        items = self._evaluator(env, ns, shape)(stmt.iterable)
        if not isinstance(items, (list, tuple)):
            raise fail("E204", f"`for` needs a list or tuple, got {type_name(items)}",
                       stmt.iterable.span, detail=f"the value is {show(items)}",
                       hint="use range(n) to count")
        charge(len(items))
        out: list[ir.Node] = []
        for item in items:
            bound: dict = {}
            unpack(stmt.target, item, bound)
            nodes, shape = self.body(stmt.body, env.child(bound), ns, shape, scope)
            out.extend(nodes)
        return out, shape

    def conditional(self, stmt: n.If, env, ns, shape, scope):
        evaluator = self._evaluator(env, ns, shape)
        for test, body in stmt.tests:
            if evaluator.truth(evaluator(test), test.span):
                return self.body(body, env, ns, shape, scope)
        if stmt.orelse is not None:
            return self.body(stmt.orelse, env, ns, shape, scope)
        return [], shape


def _float_hint(value, errors: list[dict]) -> str | None:
    """A float where a whole number belongs: usually `c / 2`, which Python's rules make a
    float even when it divides."""
    if type_name(value) != "float" or not any(e["type"] == "int_type" for e in errors):
        return None
    return (f"{show(value)} is a float: `/` always gives one; use `//` for a whole number "
            "(`c // 2`), or int(...)")


MISMATCHES = frozenset({"E303", "E304", "E310", "E311"})  # merges that checking goes on after


def recovered_merge(merge: ir.Merge, shape: Shape, shapes: list[Shape]) -> Shape:
    """The shape checking goes on with after a merge that does not fit: the first
    branch's size, with every branch's channels where they concatenate."""
    if merge.kind == "gate":
        return shape
    first = shapes[0]
    if merge.kind in ("concat", "split") and all(len(s) == len(first) for s in shapes):
        return (sum(s[0] for s in shapes), *first[1:])
    return first


def odd_branch(merge: ir.Merge, stmt: n.Parallel) -> Span | None:
    """The one branch of a concat whose height and width differ from all the others' (the
    mistake is there, as in an Inception branch that lost its padding)."""
    if merge.kind not in ("concat", "split") or len(merge.branches) < 3:
        return None
    sizes = [b.out_shape[1:] for b in merge.branches]
    odd = [i for i, size in enumerate(sizes) if sizes.count(size) == 1]
    branches = [b for b in stmt.branches if not isinstance(b, n.Let)]
    if len(odd) != 1 or len(set(sizes)) != 2 or len(branches) != len(sizes):
        return None
    return branches[odd[0]].span


def padding_hint(merge: ir.Merge, identity: list[bool]) -> str | None:
    """A branch that lost height and width to convs without their padding (k // 2): the
    padding that fixes it, named at each conv; for a residual whose shortcut must also
    change (other channels, or a stride), with the projection that fits the padded branch."""
    shapes = [b.out_shape for b in merge.branches]
    if any(s is None or len(s) != 3 for s in shapes) or len({s[1:] for s in shapes}) == 1:
        return None
    if merge.kind == "add" and any(identity):
        return _residual_padding(merge, identity)
    if merge.kind == "add" and len({s[0] for s in shapes}) > 1:
        return None  # channels differ too: add_shape's hint
    want = max(s[1:] for s in shapes)
    for branch in merge.branches:
        fixes = _padding_fixes(branch) if branch.out_shape[1:] != want else {}
        if fixes and _padded_size(branch, fixes) == want:
            return _padding_text(shapes, fixes)
    return None


def _residual_padding(merge: ir.Merge, identity: list[bool]) -> str | None:
    """An identity shortcut next to a main branch that lost size to missing padding: the
    padding alone where the channels match and nothing else shrinks; otherwise the padding
    and the projection the padded branch needs. None leaves add_shape's projection."""
    mains = [b for b, ident in zip(merge.branches, identity) if not ident]
    fixes = _padding_fixes(mains[0]) if len(mains) == 1 else {}
    size = _padded_size(mains[0], fixes) if fixes else None
    if size is None:
        return None
    source, main = merge.branches[identity.index(True)].out_shape, mains[0].out_shape
    if (main[0], *size) == source:
        return _padding_text([main, source], fixes)
    shortcut = projection(source, (main[0], *size))
    if shortcut is None:
        return None
    return (f"padded, the main branch would give {fmt_shape((main[0], *size))} (it gives "
            f"{fmt_shape(main)}): give {_fix_list(fixes)}, and the shortcut a projection: "
            f"{shortcut}")


def _padding_text(shapes: list[Shape], fixes: dict) -> str:
    sizes = " and ".join(sorted({fmt_shape(s[1:]) for s in shapes}))
    (layer, _), *others = fixes.values()
    kernel = "x".join(map(str, layer.attrs["kernel"]))
    which = ("convs without their padding explain" if others else
             f"an {'unpadded' if layer.attrs['padding'] == ((0, 0), (0, 0)) else 'under-padded'}"
             f" {kernel} conv explains")
    return f"branches give {sizes}, which {which}: give {_fix_list(fixes)}"


def _fix_list(fixes: dict) -> str:
    return " and ".join(f"the `{layer.op.name}` at line {layer.span.line} {fix}"
                        for layer, fix in fixes.values())


def _padding_fixes(branch: ir.Seq) -> dict[int, tuple[ir.Layer, str]]:
    """The 2-D convs of a branch padded less than d * (k - 1) // 2 a side, by id, each with
    the padding that keeps its size (`p='same'` for an unpadded even kernel, stride 1)."""
    fixes = {}
    for layer in ir.iter_layers(branch):
        kernel, pads = layer.attrs.get("kernel"), layer.attrs.get("padding")
        if layer.op.family != "conv" or "output_padding" in layer.attrs or \
                not isinstance(kernel, tuple) or len(kernel) != 2:
            continue
        needed = [d * (k - 1) // 2 for k, d in zip(kernel, layer.attrs["dilation"])]
        if all(k % 2 for k in kernel) and any(min(pair) < want
                                               for pair, want in zip(pads, needed)):
            rule = "k // 2" if layer.attrs["dilation"] == (1, 1) else "d * (k - 1) // 2"
            fix = (f"`p={needed[0]}` ({rule})" if needed[0] == needed[1] else
                   f"`p={tuple(needed)}` ({rule} for each axis)")
        elif pads == ((0, 0), (0, 0)) and max(kernel) > 1 and layer.attrs["stride"] == (1, 1):
            fix = '`p="same"` (an even kernel pads one side more)'
        else:
            continue
        fixes[id(layer)] = (layer, fix)
    return fixes


def _padded_size(branch: ir.Seq, fixes: dict) -> tuple[int, ...] | None:
    """The height and width the branch would give with the convs of `fixes` padded: a plain
    chain of layers, each one's size worked out again from its window where its input
    changed; None where that cannot be told (a merge, a named tensor, a layer without a
    window that changes the size)."""
    size = branch.in_shape[1:]
    for node in ir.iter_nodes(branch):
        if isinstance(node, ir.Merge | ir.DenseMerge | ir.Ref | ir.Side):
            return None
        if not isinstance(node, ir.Layer):
            continue
        if id(node) in fixes:
            size = _window_size(node.attrs, size, padded=True)
        elif size == node.in_shape[1:]:
            size = node.out_shape[1:]
        elif node.op.family not in SIZE_KEEPING:
            size = _window_size(node.attrs, size)
        if size is None:
            return None
    return size


# Op families whose output has their input's height and width, whatever it is.
SIZE_KEEPING = frozenset({"activation", "regularization", "norm", "identity", "scale"})


def _window_size(attrs: dict, size: tuple, padded: bool = False) -> tuple[int, ...] | None:
    """A conv's or pool's output height and width for an input of `size`; `padded`: with
    d * (k - 1) in all (k // 2 a side, or an even kernel's 'same'), which keeps the size at
    stride 1."""
    if not {"kernel", "stride", "padding"} <= attrs.keys() or attrs.get("ceil_mode") or \
            len(size) != 2:
        return None
    out = []
    for axis, length in enumerate(size):
        k, s = attrs["kernel"][axis], attrs["stride"][axis]
        d = attrs.get("dilation", (1, 1))[axis]
        pad = attrs["padding"][axis]  # a conv's (before, after), a pool's one number
        total = d * (k - 1) if padded else sum(pad) if isinstance(pad, tuple) else 2 * pad
        out.append((length + total - d * (k - 1) - 1) // s + 1)
    return tuple(out) if min(out) >= 1 else None


def skip_hint(merge: ir.Merge) -> str | None:
    """For a skip connection (a branch that starts at `@name`) whose height and width no
    longer match the other branch: the crop and the pad that would fix it."""
    skips = [b for b in merge.branches if b.children and isinstance(b.children[0], ir.Ref)]
    shapes = [b.out_shape for b in merge.branches]
    if not skips or any(s is None or len(s) != 3 for s in shapes):
        return None
    if len({s[1:] for s in shapes}) != 2 or (merge.kind == "add" and len(set(shapes)) != 2):
        return None
    skip = skips[0]
    other = next(s for s in shapes if s[1:] != skip.out_shape[1:])
    ref, (_, sh, sw), (_, oh, ow) = skip.children[0].target, skip.out_shape, other
    if sh >= oh and sw >= ow:
        dh, dw = sh - oh, sw - ow
        return (f"the skip from `@{ref}` is {sh}x{sw}, the other branch {oh}x{ow}: crop it "
                f"to that size, `{{ @{ref} crop(({oh}, {ow})) }}` (U-Net's crop-and-concat), "
                f"or pad the other branch by ({dw // 2}, {dw - dw // 2}, {dh // 2}, "
                f"{dh - dh // 2}) (left, right, top, bottom) with `pad(...)`")
    if sh <= oh and sw <= ow:
        dh, dw = oh - sh, ow - sw
        return (f"the skip from `@{ref}` is {sh}x{sw}, the other branch {oh}x{ow}: pad the "
                f"skip, `{{ @{ref} pad(({dw // 2}, {dw - dw // 2}, {dh // 2}, "
                f"{dh - dh // 2})) }}` (left, right, top, bottom), or resize it with "
                f"`upsample(size=({oh}, {ow}))`")
    return None


# The Expander method that expands each kind of statement (calls, groups and `let` aside).
STATEMENT_METHODS = {n.Parallel: "parallel", n.ChannelsLast: "channels_last", n.Dense: "dense",
                     n.Repeat: "repeat", n.For: "for_loop", n.If: "conditional",
                     n.RefStmt: "reference", n.Side: "side", n.Return: "returns"}


def keep_intact(scope: ir.Seq, name: str) -> None:
    """The layer after module `name` of a finished scope may not overwrite its output in
    place any more: something outside reads it (`@scope.name`)."""
    inside: set[int] | None = None  # the nodes of module `name`, once found
    for node in ir.iter_nodes(scope):
        if inside is not None and id(node) not in inside and isinstance(node, ir.Layer):
            node.fresh = False
            return
        if inside is None and node is not scope and getattr(node, "name", None) == name \
                and getattr(node, "path", "").rpartition(".")[0] == scope.path:
            inside = {id(inner) for inner in ir.iter_nodes(node)}


def describe_statement(stmt: n.Stmt) -> str:
    return ("a tensor reference" if isinstance(stmt, n.RefStmt) else
            "`return`" if isinstance(stmt, n.Return) else
            "`aux`" if isinstance(stmt, n.Side) and stmt.training else "`side`")


LABEL_HINTS = {
    n.RefStmt: "`@name` continues from a tensor that has its name already; remove the label",
    n.Return: "`return` names its outputs inside the parentheses: `return(out=in)`",
    n.Side: "label the statements inside, which are modules of this scope: "
            "`aux { aux1: head(...) }`",
}


def _find_label(stmts: list, name: str, scope: str | None):
    """The statement labelled `name` (literally) among `stmts`, and the labelled scope
    it belongs to (None: this one), or None. Each statement looked at costs a step: a
    reference that finds nothing, inside a loop, searches the scope's text every time."""
    for stmt in stmts:
        if not isinstance(stmt, n.Stmt):
            continue
        charge(1)
        label = stmt.label.pieces if stmt.label is not None else None
        if label == [name]:
            return stmt, scope
        inner = scope
        if label is not None and not isinstance(stmt, n.Call):
            inner = "".join(p if isinstance(p, str) else "{...}" for p in label)
        for body in _bodies(stmt):
            found = _find_label(body, name, inner)
            if found is not None:
                return found
    return None


def _bodies(stmt: n.Stmt) -> list[list]:
    if isinstance(stmt, n.Parallel):
        return [stmt.branches]
    if isinstance(stmt, n.If):
        return [body for _, body in stmt.tests] + [stmt.orelse or []]
    body = getattr(stmt, "body", None)
    return [body] if isinstance(body, list) else []
