"""The spec's definitions as PyTorch class definitions: a class per block with the block's
parameters, loops where the spec loops, `if` where it branches, a network class taking the
network's parameters. This is the parametric half of the torch lowering: `lowering.py`
names the runtime classes after these, and the source backend prints them.

Translation is a partial evaluation of a definition's body: values known while writing
(literals, the builder's arguments) are folded, the others become Python expressions
(`Sym`) of the class's parameters and of `channels`, the incoming channel count that the
generated constructor tracks as it goes. What Python cannot express the same way raises
`Unsupported`, and the network is written out for its argument values instead:

- anything that needs the input's height or width (`in.h`, `flatten` after convolutions,
  'same' padding with strides), since generated constructors track channels only;
- control flow inside a scope that merges tensors (its forward() would have to replay it);
- unlabelled modules after a scope that may be empty (their index would not be fixed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from . import ir
from . import nodes as n
from .evaluate import BUILTINS, BlockRef, EvalError, _arith, _compare, unpack
from .flow import gives_fresh, is_init, labelled_scope_merges, merges_at_own_level
from .names import (
    GENERATED_GLOBALS,
    PYTHON_NAMES,
    ClassNames,
    is_attribute_name,
    python_parameter,
)
from .ops import KEEP, LOST, REGISTRY, OpSpec, SourceCall, fmt_shape, pair

INDENT = "    "


ATOM, POWER, UNARY, PRODUCT, SUM, COMPARE, NOT, AND, OR, CONDITION = (
    10, 9, 8, 7, 6, 4, 3, 2, 1, 0)
_BINARY = {"+": SUM, "-": SUM, "*": PRODUCT, "/": PRODUCT, "//": PRODUCT, "%": PRODUCT,
           "**": POWER}


class _NeedsLocal(Exception):
    """A dry run (block_out) needs a variable of the block's own."""


class Unsupported(Exception):
    """This definition cannot be written with its parameters; says why, and where."""

    def __init__(self, reason: str, span=None) -> None:
        where = f" ({span.file}:{span.line})" if span is not None else ""
        super().__init__(reason + where)


@dataclass(frozen=True)
class Sym:
    """A value known only when the generated constructor runs: its Python text."""

    text: str
    prec: int = ATOM
    kind: str = "any"  # declared type when known: int, float, bool, str, list, tuple, block


def is_sym(value) -> bool:
    return isinstance(value, Sym) or (
        isinstance(value, (list, tuple)) and any(is_sym(v) for v in value))


# ---------------------------------------------------------------- Python text of values


def text(value, classes: ClassTable | None = None) -> str:
    """Python source for a value: folded constants, expressions, class references."""
    if isinstance(value, Sym):
        return value.text
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, BlockRef):
        return classes.block(value) if classes is not None else value.name
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        items = [text(v, classes) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, list):
        return f"[{', '.join(text(v, classes) for v in value)}]"
    if value is None:
        return "None"
    return repr(value)


def _operand(value, prec: int, classes, right: bool = False) -> str:
    inner = value.prec if isinstance(value, Sym) else (
        UNARY if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0
        else ATOM)
    body = text(value, classes)
    return f"({body})" if inner < prec or (right and inner == prec) else body


def _simple(value) -> bool:
    """ruff format hugs `**` between names and numbers: `2**i`."""
    if isinstance(value, Sym):
        return value.prec == ATOM and value.text.replace(".", "").replace("_", "").isalnum()
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def binary(op: str, left, right, classes=None, kind: str = "any") -> Sym:
    prec = _BINARY[op]
    if op == "**":
        lhs = _operand(left, prec + 1, classes)
        rhs = _operand(right, prec, classes)
        joiner = "**" if _simple(left) and _simple(right) else " ** "
        return Sym(f"{lhs}{joiner}{rhs}", prec, kind)
    return Sym(f"{_operand(left, prec, classes)} {op} "
               f"{_operand(right, prec, classes, right=True)}", prec, kind)


def product(*values):
    """Folded when all are known, else a Python product."""
    known = [v for v in values if not is_sym(v)]
    result = 1
    for v in known:
        result *= v
    syms = [v for v in values if is_sym(v)]
    if not syms:
        return result
    out = syms[0]
    for v in syms[1:] + ([result] if result != 1 else []):
        out = binary("*", out, v, kind="int")
    return out


# ---------------------------------------------------------------- classes


@dataclass
class ClassModel:
    """One generated class: what the source backend prints."""

    name: str
    base: str  # "sequential" | "module"
    doc: str
    params: list[str] = field(default_factory=list)  # `name: type = default` texts
    init: list[str] = field(default_factory=list)  # body lines of __init__ (indent 2)
    forward: tuple | None = None  # program with Python attribute texts (see lowering.py)


class ClassTable:
    """Generated classes by what they come from; names are unique and valid."""

    def __init__(self, translator: Translator) -> None:
        self.translator = translator
        self.namer = ClassNames()
        self.names: dict[tuple, str] = self.namer.names
        self.models: dict[str, ClassModel] = {}

    def name(self, key: tuple, wanted: str) -> str:
        return self.namer.get(key, wanted)

    def block(self, ref: BlockRef) -> str:
        key = ("block", id(ref.definition))
        if key not in self.names:
            name = self.name(key, ref.name)
            self.models[name] = self.translator.block_model(ref, name)
        return self.names[key]


# ---------------------------------------------------------------- translation state


@dataclass
class State:
    """What the constructor knows at a point of a statement list."""

    env: dict  # spec name -> value or Sym
    channels: object  # incoming channels (features)
    rank: int  # 3 for maps, 1 for features
    spatial: object  # (H, W) when known without the input size, else LOST
    namespace: dict

    def copy(self, **changes) -> State:
        values = dict(self.__dict__, env=dict(self.env))
        values.update(changes)
        return State(**values)


class Container:
    """Where modules go: `self` of the class being written, or a local nn.Sequential."""

    def __init__(self, target: str, merges: bool, translator: Translator, lines: list[str],
                 depth: int) -> None:
        self.target, self.merges, self.tr = target, merges, translator
        self.lines, self.depth = lines, depth
        self.index: int | None = 0  # the next unlabelled statement's name, while fixed
        self.maybe_empty = False  # a labelled scope that may hold nothing was added

    def emit(self, line: str) -> None:
        self.lines.append(INDENT * self.depth + line)

    def add(self, name, module: str, span) -> str:
        """Add a module under `name` (a str or a Sym of a label); the attribute text."""
        if isinstance(name, Sym):
            self.emit(f"{self.target}.add_module({name.text}, {module})")
            return f"getattr({self.target}, {name.text})"
        if name == "out_channels":  # what translated block classes record
            raise Unsupported("a module named `out_channels`", span)
        if is_attribute_name(name):
            self.emit(f"{self.target}.{name} = {module}")
            return f"{self.target}.{name}"
        self.emit(f"{self.target}.add_module({json.dumps(name)}, {module})")
        return f"{self.target}._modules[{json.dumps(name)}]"

    def skip(self) -> None:
        """An unlabelled statement that is no module (a function call in forward())."""
        if self.index is not None:
            self.index += 1

    def take(self, label, span):
        """The name of the next statement, as the expander numbers them."""
        if label is not None:
            if self.index is not None:
                self.index += 1
            return label
        if self.maybe_empty and self.index is None:
            raise Unsupported("an unlabelled statement after a scope that may be empty",
                              span)
        if not self.merges and not self.maybe_empty:
            return None  # nn.Sequential.append numbers it as the expander does
        if self.index is None:
            raise Unsupported("an unlabelled module after a loop in a merging block", span)
        name = str(self.index)
        self.index += 1
        return name


# ---------------------------------------------------------------- the translator


class Translator:
    """Writes a network's definitions as classes (raises Unsupported)."""

    def __init__(self, network: ir.Network) -> None:
        self.network = network
        self.classes = ClassTable(self)
        self.outs: dict[tuple, object] = {}  # block_out's answers
        self.dry = False  # inside a dry run (block_out): no variables of its own allowed
        self.locals: set[str] = set()  # local variables of the class being written
        self.reserved: set[str] = set()  # the spec's names in it (loop variables, lets)

    # ---- classes

    def network_model(self) -> ClassModel:
        network = self.network
        source = network.source
        if source is None:
            raise Unsupported("no definition")
        for value in network.args.values():
            self._check_value(value)
        name = self.classes.name(("network", id(source)), source.name)
        self.locals, self.reserved = set(), _spec_names(source)
        merges = merges_at_own_level(source.body)
        env, params, prologue = self._parameters(source, first_channels=None)
        lines: list[str] = ["super().__init__()"] + prologue
        channels = self._input_channels(source, env)
        state = State(env, channels, len(network.input_shape), network.input_shape[1:],
                      network.namespace)
        stmts = [s for s in source.body[1:] if not is_init(s)]
        forward = self._body_into(stmts, state, "self", merges, lines, source.span)
        if network.init:
            lines.append(self._init_call())
        model = ClassModel(name, "module" if merges else "sequential",
                           f"Network `{source.name}` from {where(source.span)}.\n\nAs "
                           f"`{network.name}`: {network.describe()}.", params,
                           lines, forward)
        self.classes.models[name] = model
        return model

    def block_model(self, ref: BlockRef, name: str) -> ClassModel:
        definition = ref.definition
        saved = self.locals, self.reserved
        self.locals, self.reserved = set(), _spec_names(definition)
        try:
            return self._block_model(ref, name, definition)
        finally:
            self.locals, self.reserved = saved

    def _block_model(self, ref: BlockRef, name: str, definition: n.Definition) -> ClassModel:
        merges = merges_at_own_level(definition.body)
        env, params, prologue = self._parameters(definition, first_channels="in_channels")
        state = State(env, Sym("in_channels", kind="int"), self._rank_of(definition), LOST,
                      ref.namespace)
        lines = ["super().__init__()"] + prologue
        forward = self._body_into(definition.body, state, "self", merges, lines,
                                  definition.span, record_out=True)
        return ClassModel(name, "module" if merges else "sequential",
                          f"Block `{definition.name}` from {where(definition.span)}."
                          f"{self._first_use(definition)}", params, lines, forward)

    def _first_use(self, definition: n.Definition) -> str:
        """The shapes of the block's first call, for a reader of the class."""
        for seq in _block_calls(self.network.body):
            if seq.block.definition is definition:
                return (f"\n\nFirst called at {where(seq.span)}: {fmt_shape(seq.in_shape)} -> "
                        f"{fmt_shape(seq.out_shape)}.")
        return ""

    def _rank_of(self, definition: n.Definition) -> int:
        """The input rank of a block: the same in every call, or Unsupported."""
        ranks = {len(seq.in_shape) for seq in _block_calls(self.network.body)
                 if seq.block.definition is definition and seq.in_shape is not None}
        if len(ranks) != 1:
            raise Unsupported(f"block `{definition.name}` is called on maps and on features",
                              definition.span)
        return ranks.pop()

    def _parameters(self, definition: n.Definition, first_channels: str | None):
        """Constructor parameters: (spec name -> Sym env, `name: type = default` texts,
        lines that fill expression defaults)."""
        env: dict = {}
        params: list[str] = [f"{first_channels}: int"] if first_channels else []
        prologue: list[str] = []
        for param in definition.params:
            python = python_parameter(param.name)
            kind = param.type.name or "tuple"
            hint = _HINTS.get(kind, "object")
            if param.default is None:
                params.append(f"{python}: {hint}")
            elif isinstance(param.default, n.Literal) or not (
                    _names_in(param.default) or _reads_in(param.default)):
                default = self.expr(param.default, State(env, None, 3, LOST, {}))
                params.append(f"{python}: {hint} = {text(default, self.classes)}")
            else:  # it depends on other parameters or the input: filled in the constructor
                params.append(f"{python}: {hint} | None = None")
                entry = Sym(first_channels, kind="int") if first_channels else None
                default = self.expr(param.default, State(env, entry, 3, LOST, {}))
                prologue.append(f"if {python} is None:")
                prologue.append(f"{INDENT}{python} = {text(default, self.classes)}")
            env[param.name] = Sym(python, kind=kind)
        return env, params, prologue

    def _input_channels(self, source: n.Definition, env: dict):
        shape = source.body[0].shape if source.body and isinstance(source.body[0], n.Input) \
            else None
        if isinstance(shape, n.ListExpr | n.TupleExpr) and shape.items:
            value = self.expr(shape.items[0], State(env, None, 3, LOST, {}))
            if not is_sym(value) and value == self.network.input_shape[0]:
                return value
            if is_sym(value) and len(shape.items) == len(self.network.input_shape):
                return value
        return self.network.input_shape[0]

    def _init_call(self) -> str:
        choices = dict(self.network.init)
        if choices.pop("zero_residual_bn"):
            raise Unsupported("zero_residual_bn names the residual batchnorms of one variant")
        args = "".join(f", {k}={text(v)}" for k, v in choices.items() if v != "default")
        return f"init_weights(self{args})"

    def _check_value(self, value) -> None:
        if isinstance(value, (list, tuple)):
            for item in value:
                self._check_value(item)
        elif isinstance(value, str) and not value.isprintable():
            raise Unsupported("an argument with unprintable characters")

    def builder_arguments(self) -> dict[str, str]:
        """The values the builder passes: those not equal to a literal default."""
        source = self.network.source
        arguments = {}
        for param in source.params:
            value = self.network.args[param.name]
            default = param.default
            if isinstance(default, n.Literal) and type(default.value) is type(value) and \
                    default.value == value:
                continue
            arguments[python_parameter(param.name)] = text(value, self.classes)
        return arguments

    # ---- statement lists

    def _body_into(self, stmts, state: State, target: str, merges: bool, lines: list[str],
                   span, record_out: bool = False) -> tuple | None:
        container = Container(target, merges, self, lines, 0)
        program = self.stmts(stmts, state, container)
        if record_out:
            lines.append(f"self.out_channels = {text(state.channels, self.classes)}")
        return ("seq", tuple(program)) if merges else None

    def stmts(self, stmts: list[n.Stmt], state: State, box: Container) -> list[tuple]:
        """Translate a statement list into `box`; returns its forward steps."""
        program: list[tuple] = []
        before = False
        for stmt in stmts:
            step = self.stmt(stmt, state, box, before)
            if step is not None:
                program.append(step)
            before = gives_fresh(stmt, before, lambda name: self.op_named(name, state))
        return program

    def stmt(self, stmt: n.Stmt, state: State, box: Container, fresh: bool):
        if isinstance(stmt, n.Let):
            state.env[stmt.name] = self.bind_local(stmt.name, self.expr(stmt.value, state),
                                                   box, state)
            return None
        if isinstance(stmt, n.Call):
            label = self.label(stmt.label, state) if stmt.label is not None else None
            return self.call(stmt, state, box, fresh, label)
        if stmt.label is not None:
            return self.labelled_scope(stmt, state, box)
        if isinstance(stmt, n.Group):
            return ("seq", tuple(self.stmts(stmt.body, state, box)))
        if isinstance(stmt, n.Parallel):
            return self.parallel(stmt, state, box)
        if isinstance(stmt, n.ChannelsLast):
            return self.channels_last(stmt, state, box)
        if isinstance(stmt, n.Dense):
            return self.dense(stmt, state, box)
        if isinstance(stmt, n.If):
            return self.conditional(stmt, state, box)
        if isinstance(stmt, n.Repeat | n.For):
            return self.loop(stmt, state, box)
        raise Unsupported(f"statement {type(stmt).__name__}", stmt.span)

    def bind_local(self, name: str, value, box: Container, state: State):
        """A spec variable whose value is only known when the constructor runs becomes a
        Python variable of the same name."""
        if not is_sym(value) or (isinstance(value, Sym) and value.prec == ATOM):
            return value
        self.local_variable()
        python = python_parameter(name)
        box.emit(f"{python} = {text(value, self.classes)}")
        return Sym(python, kind=value.kind if isinstance(value, Sym) else "any")

    # ---- calls

    def op_named(self, name: str, state: State) -> OpSpec | None:
        value = state.env.get(name)
        if isinstance(value, BlockRef) or (isinstance(value, Sym) and value.kind == "block"):
            return None
        return None if name in state.namespace else REGISTRY.get(name)

    def call(self, stmt: n.Call, state: State, box: Container, fresh: bool, label):
        value = state.env.get(stmt.name)
        if isinstance(value, Sym) and value.kind in ("block", "any"):
            return self.block_call(value.text, stmt, state, box, label)
        ref = value if isinstance(value, BlockRef) else state.namespace.get(stmt.name)
        if ref is not None:
            return self.block_call(self.classes.block(ref), stmt, state, box, label, ref)
        op = REGISTRY.get(stmt.name)
        if op is not None and op.name == "scale":
            return self.scale(stmt, state, box, label)
        if op is None:
            raise Unsupported(f"call of `{stmt.name}`", stmt.span)
        return self.op_call(op, stmt, state, box, fresh, label)

    def block_call(self, cls: str, stmt: n.Call, state: State, box: Container, label,
                   ref: BlockRef | None = None):
        module = self.block_text(cls, stmt, state)
        out = self.block_out(ref, stmt, state) if ref is not None else None
        name = box.take(label, stmt.span)
        if out is not None:
            attr = self.place(box, name, module, stmt.span)
            state.channels, state.spatial = out, LOST
            return ("call", attr)
        return self.place_block(box, name, module, state, stmt.span)

    def place_block(self, box: Container, name, module: str, state: State, span):
        """Add a block module whose output channels only the module itself knows."""
        self.local_variable()  # a dry run cannot say them in the caller's terms
        if isinstance(name, str) and is_attribute_name(name):
            attr = self.place(box, name, module, span)
            state.channels = Sym(f"{attr}.out_channels", kind="int")
        else:
            self.local_variable()
            local = self.temp_name(state, _local_base(name if name is not None else "block"),
                                   unique=True)
            box.emit(f"{local} = {module}")
            self.place(box, name, local, span)
            state.channels = Sym(f"{local}.out_channels", kind="int")
            attr = f"{box.target}[-1]" if name is None else (
                f"getattr({box.target}, {name.text})" if isinstance(name, Sym)
                else f'{box.target}._modules["{name}"]')
        state.spatial = LOST
        return ("call", attr)

    def block_text(self, cls: str, stmt: n.Call, state: State) -> str:
        args = [text(state.channels, self.classes)]
        for arg in stmt.args:
            value = text(self.expr(arg.value, state), self.classes)
            args.append(f"{python_parameter(arg.name)}={value}" if arg.name else value)
        return f"{cls}({', '.join(args)})"

    def block_out(self, ref: BlockRef, stmt: n.Call, state: State):
        """A block's output channels in the caller's terms (`c3r`, `4 * c`), when its body
        gives them without variables of its own; else None (read `.out_channels`)."""
        definition = ref.definition
        values = self.bound_arguments(definition, stmt, state)
        if values is None:
            return None
        key = (id(definition), tuple(text(v, self.classes) for v in values.values()),
               text(state.channels, self.classes))
        if key not in self.outs:
            self.outs[key] = self.dry_out(ref, values, state)
        return self.outs[key]

    def bound_arguments(self, definition: n.Definition, stmt: n.Call, state: State):
        given = {}
        params = [p.name for p in definition.params]
        for index, arg in enumerate(a for a in stmt.args if a.name is None):
            given[params[index]] = self.expr(arg.value, state)
        for arg in stmt.args:
            if arg.name is not None:
                given[arg.name] = self.expr(arg.value, state)
        values = {}
        for param in definition.params:
            if param.name in given:
                values[param.name] = given[param.name]
            elif param.default is not None:
                values[param.name] = self.expr(param.default, State(dict(values), None, 3,
                                                                    LOST, {}))
            else:
                return None
        return values

    def dry_out(self, ref: BlockRef, values: dict, state: State):
        inner = State(dict(values), state.channels, state.rank, LOST, ref.namespace)
        box = Container("self", merges_at_own_level(ref.definition.body), self, [], 0)
        box.dry = True
        saved = self.dry
        self.dry = True
        try:
            self.stmts(ref.definition.body, inner, box)
        except (Unsupported, _NeedsLocal):
            return None
        finally:
            self.dry = saved
        return inner.channels

    def place(self, box: Container, name, module: str, span) -> str:
        if name is None:
            box.emit(f"{box.target}.append({module})")
            return f"{box.target}[-1]"
        return box.add(name, module, span)

    def local_variable(self) -> None:
        """A variable of the block's own is about to hold channels: a dry run stops."""
        if self.dry:
            raise _NeedsLocal()

    def temp_name(self, state: State, base: str, unique: bool = False) -> str:
        """A local variable of the constructor: `channels` is the one running channel count;
        the others (`unique`) are new in the class."""
        base = base[:1].lower() + base[1:]  # capitalised names are the file's classes
        taken = ({python_parameter(k) for k in state.env} | PYTHON_NAMES | GENERATED_GLOBALS
                 | self.reserved | (self.locals if unique else set()))
        name, count = base, 2
        while name in taken:
            name, count = f"{base}{count}" if unique else f"{name}_", count + 1
        if unique:
            self.locals.add(name)
        return name

    def op_call(self, op: OpSpec, stmt: n.Call, state: State, box: Container, fresh: bool,
                label):
        given = self.op_arguments(op, stmt, state)
        if box.merges and label is None and op.functional is not None:
            if is_sym(list(given.values())):
                raise Unsupported(f"`{op.name}` with arguments only known at run time, "
                                  "inside a merging block", stmt.span)
            box.skip()
            attrs = op.args.model_validate(given).model_dump()
            self.advance(op.source(_SourceView(op, given, state, fresh, self)), state)
            return ("fn", *op.functional(attrs, fresh))
        view = _SourceView(op, given, state, fresh, self)
        call = op.source(view)
        args = [text(a, self.classes) for a in call.args]
        args += [f"{k}={text(v, self.classes)}" for k, v in call.kwargs.items()]
        name = box.take(label, stmt.span)
        attr = self.place(box, name, f"{call.callee}({', '.join(args)})", stmt.span)
        self.advance(call, state)
        return ("call", attr)

    def scale(self, stmt: n.Call, state: State, box: Container, label) -> tuple:
        """`scale`: a parameter of the (merging) module, one value per channel."""
        init = self.op_arguments(REGISTRY["scale"], stmt, state).get("init", 1.0)
        name = box.take(label, stmt.span)
        if not isinstance(name, str) or not is_attribute_name(name) or is_sym(init):
            raise Unsupported("a `scale` without a plain label or with a run-time value",
                              stmt.span)
        shape = ", ".join([text(state.channels, self.classes)] + ["1"] * (state.rank - 1))
        shape += "," if state.rank == 1 else ""
        box.emit(f"{box.target}.{name} = nn.Parameter(torch.full(({shape}), {float(init)!r}))")
        return ("scale", f"{box.target}.{name}")

    def channels_last(self, stmt: n.ChannelsLast, state: State, box: Container):
        """Permute, the body on each position's channels (as on features), permute back."""
        steps = [self.unlabelled_module(box, "Permute((0, 2, 3, 1))", stmt.span)]
        rank, state.rank = state.rank, 1
        steps += [step for step in self.stmts(stmt.body, state, box) if step is not None]
        state.rank = rank
        steps.append(self.unlabelled_module(box, "Permute((0, 3, 1, 2))", stmt.span))
        return ("seq", tuple(steps))

    def unlabelled_module(self, box: Container, module: str, span) -> tuple:
        return ("call", self.place(box, box.take(None, span), module, span))

    def advance(self, call: SourceCall, state: State) -> None:
        if call.channels is not KEEP:
            state.channels = call.channels
            if call.callee == "nn.Flatten":
                state.rank, state.spatial = 1, LOST
        if call.spatial is not KEEP:
            state.spatial = call.spatial

    def op_arguments(self, op: OpSpec, stmt: n.Call, state: State) -> dict:
        given: dict = {}
        positional = list(op.positional)
        for index, arg in enumerate(a for a in stmt.args if a.name is None):
            given[positional[index]] = self.expr(arg.value, state)
        for arg in stmt.args:
            if arg.name is not None:
                given[op.aliases.get(arg.name, arg.name)] = self.expr(arg.value, state)
        return {k: _tuples(v) for k, v in given.items()}

    def label(self, label: n.LabelPart, state: State):
        pieces = []
        for piece in label.pieces:
            pieces.append(piece if isinstance(piece, str) else self.expr(piece, state))
        if not any(is_sym(p) for p in pieces):
            return "".join(str(p) for p in pieces)
        inner = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str)
                        else "{" + text(p, self.classes) + "}" for p in pieces)
        return Sym(f'f"{inner}"')

    # ---- scopes

    def labelled_scope(self, stmt: n.Stmt, state: State, box: Container):
        label = self.label(stmt.label, state)
        if isinstance(stmt, n.If):
            return self.optional_scope(stmt, label, state, box)
        if labelled_scope_merges(stmt):
            return self.scope_class(stmt, label, state, box)
        body = stmt.body if isinstance(stmt, n.Group) else [_unlabelled(stmt)]
        name = box.take(label, stmt.span)
        return ("call", self.sequential_scope(body, name, state, box, stmt.span))

    def sequential_scope(self, body: list[n.Stmt], name, state: State, box: Container,
                         span) -> str:
        """A labelled scope that only chains modules: an nn.Sequential, written inline when
        its modules need no statements around them."""
        local = self.temp_name(state, _local_base(name), unique=True)
        lines: list[str] = []
        inner = Container(local, False, self, lines, 0)
        self.stmts(body, state, inner)
        appended = [line[len(local) + 8:-1] for line in lines
                    if line.startswith(f"{local}.append(") and line.endswith(")")]
        # only appends, none of them conditional: the scope always holds those modules
        inline = bool(lines) and len(appended) == len(lines) and \
            not any(local in a for a in appended)
        if inline:
            module = f"nn.Sequential({', '.join(appended)})"
        else:
            box.emit(f"{local} = nn.Sequential()")
            box.lines.extend(INDENT * box.depth + line for line in lines)
            module = local
        holds = inline or _always_holds_a_module(body)
        if holds or isinstance(name, Sym) or name is None:
            if not holds:
                raise Unsupported("a scope that may hold no module, without a plain label",
                                  span)
            return self.place(box, name, module, span)
        box.maybe_empty = True  # an empty scope is no module (as the expander has it)
        box.emit(f"if len({local}):")
        box.depth += 1
        attr = self.place(box, name, module, span)
        box.depth -= 1
        return attr

    def optional_scope(self, stmt: n.If, label, state: State, box: Container):
        """`name: if cond { ... }`: the module exists when cond holds, else it is None and
        the scope passes its input through (torchvision's `downsample`)."""
        if len(stmt.tests) != 1 or stmt.orelse is not None:
            raise Unsupported("a labelled if with elif or else", stmt.span)
        test, body = stmt.tests[0]
        condition = self.expr(test, state)
        name = box.take(label, stmt.span)
        if not is_sym(condition):
            if not condition:
                box.maybe_empty = True
                return None
            return ("call", self.sequential_scope(body, name, state, box, stmt.span))
        if isinstance(name, Sym) or name is None or not is_attribute_name(name):
            raise Unsupported("an optional scope without a plain label", stmt.span)
        box.maybe_empty = True
        attr = f"{box.target}.{name}"
        box.emit(f"{attr} = None")
        box.emit(f"if {text(condition, self.classes)}:")
        inner_state = state.copy()
        box.depth += 1
        self.sequential_scope(body, name, inner_state, box, stmt.span)
        box.depth -= 1
        if _differs(inner_state.channels, state.channels):
            state.channels = Sym(f"({text(inner_state.channels, self.classes)} if "
                                 f"{text(condition, self.classes)} else "
                                 f"{text(state.channels, self.classes)})", CONDITION, "int")
        state.spatial = LOST if inner_state.spatial != state.spatial else state.spatial
        return ("maybe", attr)

    def scope_class(self, stmt: n.Stmt, label, state: State, box: Container):
        """A labelled scope that merges tensors gets a class of its own, taking the names
        it reads from around it."""
        free = sorted(_free_names(stmt) & set(state.env))
        key = ("scope", id(stmt))
        stem = _local_base(label)
        cls = self.classes.name(key, stem)
        if cls not in self.classes.models:
            saved = self.locals, self.reserved
            self.locals, self.reserved = set(), _spec_names(stmt)
            env = {name: Sym(python_parameter(name), kind=_kind(state.env[name]))
                   for name in free}
            inner = State(env, Sym("in_channels", kind="int"), state.rank, LOST,
                          state.namespace)
            lines = ["super().__init__()"]
            body = stmt.body if isinstance(stmt, n.Group) else [_unlabelled(stmt)]
            forward = self._body_into(body, inner, "self", True, lines, stmt.span,
                                      record_out=True)
            params = ["in_channels: int"] + [_annotated(f, _kind(state.env[f])) for f in free]
            self.classes.models[cls] = ClassModel(
                cls, "module", f"Scope `{stem}` from {where(stmt.span)}.", params, lines,
                forward)
            self.locals, self.reserved = saved
        args = [text(state.channels, self.classes)] + [
            text(state.env[f], self.classes) for f in free]
        name = box.take(label, stmt.span)
        return self.place_block(box, name, f"{cls}({', '.join(args)})", state, stmt.span)

    # ---- merges

    def parallel(self, stmt: n.Parallel, state: State, box: Container):
        if not box.merges:
            raise Unsupported("a merge in a sequential scope", stmt.span)
        branches, outs = [], []
        entry = state.channels
        if stmt.kind == "split":
            count = sum(not isinstance(b, n.Let) for b in stmt.branches)
            state.channels = (entry // count if not is_sym(entry)
                              else binary("//", entry, count, self.classes, "int"))
        for branch in stmt.branches:
            inner = state.copy()
            step = self.stmt(branch, inner, box, False)
            if isinstance(branch, n.Let):
                state.env.update(inner.env)
                continue
            branches.append(step if step is not None else ("seq", ()))
            outs.append(inner.channels)
            state.env.update({k: v for k, v in inner.env.items() if k not in state.env})
        if stmt.kind == "add" and len(branches) == 1:
            branches.append(("seq", ()))
            outs.append(state.channels)
        if stmt.kind in ("concat", "split"):
            total = outs[0]
            for out in outs[1:]:
                total = out + total if not is_sym(out) and not is_sym(total) else \
                    binary("+", total, out, self.classes, "int")
            state.channels = total
        else:
            state.channels = entry if stmt.kind == "gate" else outs[0]
        state.spatial = LOST
        return (stmt.kind, tuple(branches))

    def dense(self, stmt: n.Dense, state: State, box: Container):
        """A dense block that is a whole scope of one call a step: the constructor loops,
        forward() runs the children in order (as torchvision's _DenseBlock does)."""
        step = stmt.body[0] if len(stmt.body) == 1 else None
        if not box.merges or box.index != 0 or not isinstance(step, n.Call):
            raise Unsupported("a dense block that is not a whole scope of one call a step",
                              stmt.span)
        self.local_variable()
        count = self.expr(stmt.count, state)
        var = python_parameter(stmt.var) if stmt.var else self.temp_name(state, "step",
                                                                          unique=True)
        channels = self.temp_name(state, "channels")
        box.emit(f"{channels} = {text(state.channels, self.classes)}")
        box.emit(f"for {var} in range({text(count, self.classes)}):")
        inner = state.copy(channels=Sym(channels, kind="int"))
        if stmt.var:
            inner.env[stmt.var] = Sym(var, kind="int")
        label = self.label(step.label, inner) if step.label is not None else Sym(f"str({var})")
        body = Container(box.target, True, self, box.lines, box.depth + 1)
        body.emit(f"{channels} += {text(self.dense_step(step, inner, body, label), self.classes)}")
        box.index = None
        state.channels, state.spatial = Sym(channels, kind="int"), LOST
        return ("dense_children",)

    def dense_step(self, step: n.Call, state: State, box: Container, label):
        """Add one step's module under `label`; its output channels."""
        op = self.op_named(step.name, state)
        if op is not None and op.functional is not None and step.label is None:
            raise Unsupported("a dense step that is a function call", step.span)
        if op is not None:
            call = op.source(_SourceView(op, self.op_arguments(op, step, state), state, False,
                                         self))
            args = [text(a, self.classes) for a in call.args] + [
                f"{k}={text(v, self.classes)}" for k, v in call.kwargs.items()]
            box.emit(f"{box.target}.add_module({text(label)}, "
                     f"{call.callee}({', '.join(args)}))")
            return call.channels if call.channels is not KEEP else state.channels
        value = state.env.get(step.name)
        ref = value if isinstance(value, BlockRef) else state.namespace.get(step.name)
        cls = self.classes.block(ref) if ref is not None else value.text
        layer = self.temp_name(state, "layer", unique=True)
        box.emit(f"{layer} = {self.block_text(cls, step, state)}")
        box.emit(f"{box.target}.add_module({text(label)}, {layer})")
        return Sym(f"{layer}.out_channels", kind="int")

    # ---- control flow

    def conditional(self, stmt: n.If, state: State, box: Container):
        for test, body in stmt.tests:
            condition = self.expr(test, state)
            if is_sym(condition):
                return self.runtime_if(stmt, state, box)
            if condition:
                return ("seq", tuple(self.stmts(body, state, box)))
        if stmt.orelse is not None:
            return ("seq", tuple(self.stmts(stmt.orelse, state, box)))
        return None

    def runtime_if(self, stmt: n.If, state: State, box: Container):
        if box.merges:
            raise Unsupported("an `if` decided at run time inside a merging block", stmt.span)
        clauses = list(stmt.tests) + [(None, stmt.orelse or [])]
        heads, bodies, outs, spatial = [], [], [], []
        for number, (test, body) in enumerate(clauses):
            heads.append(f"{'if' if number == 0 else 'elif'} "
                         f"{text(self.expr(test, state), self.classes)}:" if test is not None
                         else "else:")
            inner_state = state.copy()
            inner = self.nested(box)
            inner.lines = []
            self.stmts(body, inner_state, inner)
            self.join(box, inner)
            bodies.append(inner.lines)
            outs.append(inner_state.channels)
            spatial.append(inner_state.spatial)
            state.env.update({k: v for k, v in inner_state.env.items() if k in state.env})
        same = all(text(o, self.classes) == text(outs[0], self.classes) for o in outs)
        if not same:
            self.local_variable()
            channels = self.temp_name(state, "channels")
            for lines, out in zip(bodies, outs):
                if text(out, self.classes) != channels:
                    lines.append(INDENT * (box.depth + 1) + f"{channels} = "
                                 f"{text(out, self.classes)}")
            state.channels = Sym(channels, kind="int")
        else:
            state.channels = outs[0]
        for head, lines in zip(heads, bodies):
            if lines or head != "else:":
                box.emit(head)
                box.lines.extend(lines or [INDENT * (box.depth + 1) + "pass"])
        state.spatial = spatial[0] if all(s == spatial[0] for s in spatial) else LOST

    def loop(self, stmt, state: State, box: Container):
        if isinstance(stmt, n.Repeat):
            count = self.expr(stmt.count, state)
            header = f"range({text(count, self.classes)})"
            target = python_parameter(stmt.var) if stmt.var else "_"
            bound = {stmt.var: Sym(target, kind="int")} if stmt.var else {}
        else:
            iterable = self.expr(stmt.iterable, state)
            header = text(iterable, self.classes)
            target, bound = self.loop_target(stmt.target)
        if box.merges:
            raise Unsupported("a loop inside a merging block", stmt.span)
        self.local_variable()
        channels = self.temp_name(state, "channels")
        self.set_channels(box, channels, state)
        box.emit(f"for {target} in {header}:")
        inner_state = state.copy(channels=Sym(channels, kind="int"))
        inner_state.env.update(bound)
        inner = self.nested(box)
        start = len(box.lines)
        self.stmts(stmt.body, inner_state, inner)
        self.set_channels(inner, channels, inner_state)
        if len(box.lines) == start:
            inner.emit("pass")
        self.join(box, inner)
        state.channels = Sym(channels, kind="int")
        if inner_state.spatial != state.spatial:
            state.spatial = LOST

    def set_channels(self, box: Container, variable: str, state: State) -> None:
        value = text(state.channels, self.classes)
        if value != variable:
            box.emit(f"{variable} = {value}")

    def loop_target(self, target: n.Target) -> tuple[str, dict]:
        bound: dict = {}

        def walk(t: n.Target) -> str:
            parts = []
            for name in t.names:
                if isinstance(name, n.Target):
                    parts.append(f"({walk(name)})")
                else:
                    python = python_parameter(name)
                    bound[name] = Sym(python)
                    parts.append(python)
            return ", ".join(parts)
        return walk(target), bound

    def nested(self, box: Container) -> Container:
        inner = Container(box.target, box.merges, self, box.lines, box.depth + 1)
        inner.index = None
        inner.maybe_empty = box.maybe_empty
        return inner

    def join(self, box: Container, inner: Container) -> None:
        box.index = None if inner.index != 0 or box.index is None else box.index
        if inner.index is None:
            box.index = None
        box.maybe_empty = box.maybe_empty or inner.maybe_empty

    # ---- expressions

    def expr(self, e: n.Expr, state: State):
        method = getattr(self, "_" + type(e).__name__, None)
        if method is None:
            raise Unsupported(f"expression {type(e).__name__}", e.span)
        return method(e, state)

    def _Literal(self, e, state):
        return e.value

    def _Name(self, e, state):
        if e.id in state.env:
            return state.env[e.id]
        if e.id in state.namespace:
            return state.namespace[e.id]
        raise Unsupported(f"name `{e.id}`", e.span)

    def _Attr(self, e, state):
        if isinstance(e.target, n.InRef) and (e.attr == "c" or (
                e.attr == "features" and state.rank == 1)):
            return state.channels
        raise Unsupported(f"`in.{e.attr}` depends on the input size", e.span)

    def _InRef(self, e, state):
        raise Unsupported("`in`", e.span)

    def _TupleExpr(self, e, state):
        return tuple(self.expr(x, state) for x in e.items)

    def _ListExpr(self, e, state):
        return [self.expr(x, state) for x in e.items]

    def _BinOp(self, e, state):
        left, right = self.expr(e.left, state), self.expr(e.right, state)
        if not is_sym(left) and not is_sym(right):
            return self.fold(_arith, e.op, left, right, e.span)
        numeric = all(_kind(v) in ("int", "float") for v in (left, right))
        kind = ("float" if "float" in (_kind(left), _kind(right)) or e.op == "/" else "int") \
            if numeric else "any"
        return binary(e.op, left, right, self.classes, kind)

    def _UnaryOp(self, e, state):
        value = self.expr(e.operand, state)
        if not is_sym(value):
            if e.op == "not":
                return not value
            return -value if e.op == "-" else value
        if e.op == "not":
            return Sym(f"not {_operand(value, NOT, self.classes)}", NOT, "bool")
        return Sym(f"{e.op}{_operand(value, UNARY, self.classes)}", UNARY, _kind(value))

    def _BoolOp(self, e, state):
        left = self.expr(e.left, state)
        if not is_sym(left):
            if (e.op == "and") != bool(left):
                return left
            return self.expr(e.right, state)
        right = self.expr(e.right, state)
        prec = AND if e.op == "and" else OR
        return Sym(f"{_operand(left, prec, self.classes)} {e.op} "
                   f"{_operand(right, prec, self.classes, right=True)}", prec, "bool")

    def _Compare(self, e, state):
        values = [self.expr(e.first, state)] + [self.expr(r, state) for _, r in e.rest]
        if not any(is_sym(v) for v in values):
            for (op, _), left, right in zip(e.rest, values, values[1:]):
                if not self.fold(_compare, op, left, right, e.span):
                    return False
            return True
        parts = [_operand(values[0], COMPARE + 1, self.classes)]
        for (op, _), value in zip(e.rest, values[1:]):
            parts.append(f"{op} {_operand(value, COMPARE + 1, self.classes)}")
        return Sym(" ".join(parts), COMPARE, "bool")

    def _CondExpr(self, e, state):
        condition = self.expr(e.cond, state)
        if not is_sym(condition):
            return self.expr(e.then if condition else e.other, state)
        then, other = self.expr(e.then, state), self.expr(e.other, state)
        kind = _kind(then) if _kind(then) == _kind(other) else "any"
        return Sym(f"{_operand(then, CONDITION + 1, self.classes)} if "
                   f"{_operand(condition, CONDITION + 1, self.classes)} else "
                   f"{_operand(other, CONDITION, self.classes)}", CONDITION, kind)

    def _Index(self, e, state):
        target, index = self.expr(e.target, state), self.expr(e.index, state)
        if not is_sym(target) and not is_sym(index):
            return target[index]
        return Sym(f"{_operand(target, ATOM, self.classes)}[{text(index, self.classes)}]")

    def _FunCall(self, e, state):
        args = [self.expr(a.value, state) for a in e.args]
        if not any(is_sym(a) for a in args):
            return self.fold(lambda *a: BUILTINS[e.func][0](list(a[:-1]), a[-1]), *args,
                             e.span)
        kind = "int" if e.func in ("len", "sum", "int", "ceil", "floor") else "any"
        func = f"math.{e.func}" if e.func in MATH_FUNCTIONS else e.func
        return Sym(f"{func}({', '.join(text(a, self.classes) for a in args)})", ATOM, kind)

    def _ListComp(self, e, state):
        """Folded when the items and every result are known; else a Python comprehension
        (its loop names are the spec's, as Python parameters)."""
        items = self.expr(e.items, state)
        if not is_sym(items):
            folded = [self._comprehension_item(e, state, item) for item in items]
            return [value for keep, value in folded if keep]
        target, bound = self.loop_target(e.target)
        inner = state.copy()
        inner.env.update(bound)
        clause = f"for {target} in {text(items, self.classes)}"
        if e.condition is not None:
            clause += f" if {text(self.expr(e.condition, inner), self.classes)}"
        return Sym(f"[{text(self.expr(e.item, inner), self.classes)} {clause}]", ATOM, "list")

    def _comprehension_item(self, e, state, item) -> tuple[bool, object]:
        bound: dict = {}
        self.fold(unpack, e.target, item, bound)
        inner = state.copy()
        inner.env.update(bound)
        if e.condition is not None:
            keep = self.expr(e.condition, inner)
            if is_sym(keep):
                raise Unsupported("a comprehension condition known only at run time", e.span)
            if not keep:
                return False, None
        return True, self.expr(e.item, inner)

    def fold(self, function, *args):
        try:
            return function(*args)
        except EvalError as exc:
            raise Unsupported(exc.diagnostic.message) from None


# spec functions a generated file calls from Python's math module
MATH_FUNCTIONS = frozenset({"ceil", "floor", "log", "sqrt"})


# ---------------------------------------------------------------- the op view


class _SourceView:
    """What an op's `source` rule sees of one call (see ops.py, "source forms")."""

    def __init__(self, op: OpSpec, given: dict, state: State, fresh: bool,
                 translator: Translator) -> None:
        self.op, self.given, self.state, self.fresh = op, given, state, fresh
        self.fields = set(op.args.model_fields)
        self.channels, self.rank = state.channels, state.rank

    def value(self, name: str, default=None):
        if name in self.given:
            return self.given[name]
        info = self.op.args.model_fields.get(name)
        if info is None:
            return default
        return info.default if not info.is_required() else default

    def keywords(self, options: dict) -> dict:
        kept = {}
        for key, (value, default) in options.items():
            value = _compact(value)
            if is_sym(value) or value != _compact(default):
                kept[key] = value
        return kept

    def padding(self, value):
        if isinstance(value, Sym):
            if value.kind not in ("int", "tuple"):
                raise Unsupported("padding that may be 'same' at run time")
            return value
        if value == "valid":
            return 0
        if isinstance(value, str) or (isinstance(value, tuple) and value and
                                      isinstance(value[0], tuple)):
            raise Unsupported("'same' or per-side padding depends on the input size")
        return value

    def mul(self, *values):
        return product(*values)

    def floordiv(self, value, divisor):
        """value // divisor, folded when both are known."""
        if is_sym(value) or is_sym(divisor):
            return binary("//", value, divisor, kind="int")
        return value // divisor

    @staticmethod
    def is_sym(value) -> bool:
        return is_sym(value)

    def refuse(self, reason: str):
        raise Unsupported(reason)

    def pair(self, value):
        if isinstance(value, Sym):
            if value.kind != "int":
                return LOST
            return (value, value)
        return pair(value)

    def size(self):
        if self.state.spatial is LOST:
            raise Unsupported("`flatten` of a map whose size depends on the input size")
        return self.state.spatial


# ---------------------------------------------------------------- small helpers

_HINTS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "list": "list",
          "tuple": "tuple", "block": "type[nn.Module]", "any": "object"}


def _annotated(name: str, kind: str) -> str:
    python = python_parameter(name)
    return f"{python}: {_HINTS[kind]}" if kind in _HINTS and kind != "any" else python


def _kind(value) -> str:
    if isinstance(value, Sym):
        return value.kind
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, BlockRef):
        return "block"
    return type(value).__name__


def _compact(value):
    if isinstance(value, tuple) and len(value) == 2 and not is_sym(value) and \
            value[0] == value[1]:
        return value[0]
    return value


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_tuples(v) for v in value)
    return value


def _differs(a, b) -> bool:
    return text(a) != text(b)


def where(span) -> str:
    """`file:line`, as docstrings of generated classes say where a definition is."""
    return f"{span.file}:{span.line}"



def _spec_names(node) -> set[str]:
    """Every name a definition binds or reads, as Python names: locals must not clash."""
    names = set()
    for item in n.walk(node):
        if isinstance(item, n.Name):
            names.add(item.id)
        elif isinstance(item, n.Let):
            names.add(item.name)
        elif isinstance(item, n.Target):
            names |= {x for x in item.names if isinstance(x, str)}
        elif isinstance(item, n.Repeat | n.Dense) and item.var:
            names.add(item.var)
        elif isinstance(item, n.Param):
            names.add(item.name)
    return {python_parameter(name) for name in names}


def _reads_in(expr: n.Expr) -> bool:
    return any(isinstance(node, n.InRef) for node in n.walk(expr))


def _names_in(expr) -> set[str]:
    return {node.id for node in n.walk(expr) if isinstance(node, n.Name)}


def _free_names(stmt: n.Stmt) -> set[str]:
    """Names a labelled scope's body reads (its own label aside)."""
    body = _unlabelled(stmt)
    return {node.id for node in n.walk(body) if isinstance(node, n.Name)} | {
        node.name for node in n.walk(body) if isinstance(node, n.Call)}


def _unlabelled(stmt: n.Stmt) -> n.Stmt:
    values = {k: getattr(stmt, k) for k in stmt.__dataclass_fields__}
    values["label"] = None
    return type(stmt)(**values)


def _local_base(label) -> str:
    if isinstance(label, Sym):  # f"layer{i + 1}": its literal start
        match = re.match(r'f"([A-Za-z_]\w*)', label.text)
        return match.group(1).rstrip("0123456789") or "block" if match else "block"
    stem = label.rstrip("0123456789") or label
    return stem if stem.isidentifier() else "scope"


def _always_holds_a_module(body: list[n.Stmt]) -> bool:
    return any(isinstance(stmt, n.Call) for stmt in body)


def _block_calls(node: ir.Node):
    for child in ir.iter_nodes(node):
        if isinstance(child, ir.Seq) and child.block is not None:
            yield child


@dataclass
class Translation:
    """A network's classes (children first, the network's last) and its builder's
    arguments (Python name -> text)."""

    models: list[ClassModel]
    root: ClassModel
    arguments: dict[str, str]
    names: dict[tuple, str]  # what each class comes from -> its name (for lowering.py)


def translate(network: ir.Network) -> Translation:
    """The classes of a network; raises Unsupported."""
    translator = Translator(network)
    root = translator.network_model()
    arguments = translator.builder_arguments()
    models = [m for m in translator.classes.models.values() if m is not root] + [root]
    return Translation(models, root, arguments, translator.classes.names)
