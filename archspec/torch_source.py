"""Source backend: a checked network as a standalone PyTorch file that reads as if written by
hand: a class per .arch block, a class for the network, a builder function named after it.

It reads only the IR and its plan (ir.scope_plan), the same plan the runtime builder
instantiates, so state_dict keys, shapes and outputs agree with `archspec.build()`.

Every block call of the network is an *instance*. Instances of one block that build the same
module tree share a class; where they build different trees (a ResNet block with and
without its projection shortcut) each tree gets a class of its own. Each constructor value
in a class becomes, in this order of preference: a parameter of the block that the call
names and whose value it follows in every instance (`c`, `4 * c`, `c // 2`), `in_channels`,
another parameter it follows, a literal when it is the same in every instance, or a new
constructor argument. No torch import: the file is written as text.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from . import __version__, ir
from . import nodes as n
from .diagnostics import Span
from .evaluate import Env, EvalError, Evaluator
from .names import docstring_text, python_class, python_function, python_parameter
from .ops import REGISTRY, Default, fmt_shape
from .parse import parse_module

LINE = 88  # ruff's default line length
INDENT = "    "
_CONV_SLOTS = {0: ("in", None), 1: ("out", "out"), "kernel_size": (None, "k"),
               "stride": (None, "s"), "padding": (None, "p"), "dilation": (None, "d"),
               "groups": (None, "groups"), "bias": (None, "bias")}
_POOL_SLOTS = {0: (None, "k"), "stride": (None, "s"), "padding": (None, "p"),
               "dilation": (None, "d"), "ceil_mode": (None, "ceil_mode"),
               "count_include_pad": (None, "count_include_pad")}
_NORM_SLOTS = {0: ("in", None), "eps": (None, "eps"), "momentum": (None, "momentum"),
               "affine": (None, "affine")}
# torch constructor argument -> (channel role, .arch op argument it comes from)
_SLOT_SOURCES = {
    "Conv2d": _CONV_SLOTS, "PaddedConv2d": _CONV_SLOTS, "MaxPool2d": _POOL_SLOTS,
    "AvgPool2d": _POOL_SLOTS, "BatchNorm2d": _NORM_SLOTS, "BatchNorm1d": _NORM_SLOTS,
    "Linear": {0: ("in", None), 1: ("out", "out"), "bias": (None, "bias")},
    "Dropout": {0: (None, "p")}, "LeakyReLU": {0: (None, "slope")},
    "LocalResponseNorm": {0: (None, "size"), "alpha": (None, "alpha"),
                          "beta": (None, "beta"), "k": (None, "k")},
    "AdaptiveAvgPool2d": {0: (None, "size")}, "AdaptiveMaxPool2d": {0: (None, "size")},
    "GELU": {"approximate": (None, "approximate")},
}
_STATELESS_FAMILIES = {"activation", "pool", "reshape", "regularization", "identity"}
_POSITIONAL_NAMES = {
    "Conv2d": ("in_channels", "out_channels"), "PaddedConv2d": ("in_channels", "out_channels"),
    "Linear": ("in_features", "out_features"), "BatchNorm2d": ("num_features",),
    "BatchNorm1d": ("num_features",), "MaxPool2d": ("kernel_size",),
    "AvgPool2d": ("kernel_size",), "Dropout": ("p",), "LocalResponseNorm": ("size",),
    "LeakyReLU": ("negative_slope",), "AdaptiveAvgPool2d": ("output_size",),
    "AdaptiveMaxPool2d": ("output_size",),
}


# ---------------------------------------------------------------- templates


@dataclass
class Slot:
    """One constructor value of one instance, and the spec call it came from."""

    value: object
    origin: Span
    default: bool = False
    source: str | None = None  # the spec argument it comes from (`out`, `k`, `stride`)
    kind: str | None = None  # 'in': input channels/features, 'out': output ones
    order: tuple = ()  # a block's parameter names, to bind positional arguments


@dataclass
class Ctor:
    """A constructor call to print: `nn.Conv2d(...)`, `nn.Sequential(...)`, `Unit(...)`."""

    callee: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    named: list[tuple[str, Ctor]] | None = None  # OrderedDict children (Sequential, Dense)


@dataclass
class ChildRef:
    """A nested scope that has a class of its own; filled in once that class is resolved."""

    group: ClassGroup
    index: int  # which instance of the group


@dataclass
class Instance:
    seq: ir.Seq | None  # None for the network root
    children: list[ir.Node]
    in_channels: int | None
    args: dict  # block (or network) argument values
    members: dict = field(default_factory=dict)  # member name -> Ctor | ChildRef
    nodes: dict = field(default_factory=dict)  # member name -> ir.Layer | ir.Seq
    plan: tuple = ()


@dataclass
class Param:
    name: str  # as written in Python (names.python_parameter)
    values: list  # per instance
    default: object = None  # printed as the default (network parameters only)
    spec: str | None = None  # the spec's name of a block or network parameter


@dataclass
class ClassGroup:
    base: str
    kind: str  # 'block' | 'scope' | 'network'
    title: str  # what the docstring says it is
    span: Span
    signature: tuple
    instances: list[Instance] = field(default_factory=list)
    name: str = ""
    params: list[Param] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)  # expression per slot position


def camel(name: str) -> str:
    words = re.split(r"_+", name.strip("_")) or [name]
    return "".join(w[:1].upper() + w[1:] for w in words if w) or "Net"


def _is_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


# ---------------------------------------------------------------- the generator


class SourceGenerator:
    def __init__(self, network: ir.Network, exposable: set[str] | None = None):
        self.network = network
        self.exposable = exposable  # network parameters proven safe to expose
        self.groups: list[ClassGroup] = []
        self.helpers: set[str] = set()
        self.calls = _calls_by_span({layer.span.file for layer in network.layers()}
                                    | {network.span.file})
        self.uses_ordered_dict = False

    # ---- phase 1: templates and class groups, children before parents

    def collect(self) -> ClassGroup:
        root = Instance(None, self.network.body.children, None, dict(self.network.args))
        return self._classify(root, "network", camel(self.network.name),
                              f"Network `{self.network.name}`", self.network.span)

    def _classify(self, inst: Instance, kind: str, base: str, title: str,
                  span: Span) -> ClassGroup:
        inst.plan, members = ir.scope_plan(inst.children)
        for member in members:
            inst.members[member.name] = self._member(member)
            inst.nodes[member.name] = member.node
        signature = (kind, base, _plan_signature(inst.plan),
                     tuple((k, _signature(v)) for k, v in inst.members.items()))
        for group in self.groups:
            if group.signature == signature:
                group.instances.append(inst)
                return group
        group = ClassGroup(base, kind, title, span, signature, [inst])
        self.groups.append(group)
        return group

    def _member(self, member: ir.Member):
        node = member.node
        if isinstance(node, ir.Layer):
            return self._layer_ctor(node, member.fresh)
        plan, members = ir.scope_plan(node.children)
        if node.block is None and _is_plain(plan):
            return self._sequential(members)
        if node.block is None and _is_dense_only(plan):
            self.helpers.add("DenseConcat")
            self.uses_ordered_dict = True
            return Ctor("DenseConcat", named=[(m.name, self._member(m)) for m in members])
        if node.block is not None and _is_plain(plan) and all(
                m.name == str(i) for i, m in enumerate(members)):
            return self._sequential(members)
        inst = Instance(node, node.children, node.in_shape[0] if node.in_shape else None,
                        dict(node.block.args) if node.block else {})
        if node.block is not None:
            title = f"Block `{node.block.name}`"
            group = self._classify(inst, "block", camel(node.block.name), title,
                                   node.block.definition_span)
        else:
            stem = re.sub(r"\d+$", "", node.name) or node.name
            group = self._classify(inst, "scope", camel(stem), f"Scope `{node.name}`",
                                   node.span)
        return ChildRef(group, group.instances.index(inst))

    def _sequential(self, members: list[ir.Member]) -> Ctor:
        named = [(m.name, self._member(m)) for m in members]
        if all(name == str(i) for i, (name, _) in enumerate(named)):
            return Ctor("nn.Sequential", [ctor for _, ctor in named])
        self.uses_ordered_dict = True
        return Ctor("nn.Sequential", named=named)

    def _layer_ctor(self, layer: ir.Layer, fresh: bool) -> Ctor:
        name, args, kwargs = layer.op.torch(layer.attrs, layer.in_shape, fresh)
        if name in _helper_names():
            self.helpers.add(name)
            callee = name
        else:
            callee = f"nn.{name}"
        table = _SLOT_SOURCES.get(name, {})

        def slot(key, value) -> Slot:
            kind, source = table.get(key, (None, None))
            if isinstance(value, Default):
                return Slot(value.value, layer.span, True, source, kind)
            return Slot(value, layer.span, False, source, kind)

        return Ctor(callee, [slot(i, v) for i, v in enumerate(args)],
                    {k: slot(k, v) for k, v in kwargs.items()})

    # ---- phase 2: what each constructor value is written as

    def resolve(self) -> None:
        for group in self.groups:
            self._resolve_group(group)
        by_base: dict[str, list[ClassGroup]] = {}
        for group in self.groups:
            by_base.setdefault(group.base, []).append(group)
        for groups in by_base.values():
            _name_variants(groups)
        taken: set[str] = set()  # class names are unique, and no keyword, builtin or import
        for group in self.groups:
            group.name = python_class(group.name, taken)
            taken.add(group.name)

    def _resolve_group(self, group: ClassGroup) -> None:
        rows = [self._slots_of(inst) for inst in group.instances]
        candidates = self._candidates(group)
        group.slots = []
        last_out: tuple[str, list] | None = None  # channels leaving the previous layer
        for position in range(len(rows[0])):
            column = [row[position] for row in rows]
            if column[0].kind == "end":
                last_out = None
                continue
            values = [slot.value for slot in column]
            if all(slot.default for slot in column):
                group.slots.append(None)  # PyTorch's default everywhere: not written
                continue
            text = None
            if column[0].kind == "in" and last_out and last_out[1] == values:
                text = last_out[0]
            text = text or self._expression(group, column, candidates, position)
            group.slots.append(text)
            if column[0].kind in ("in", "out"):
                last_out = (text, values)
        order = ["in_channels"] + [p.name for p in candidates if p.name != "in_channels"]
        group.params.sort(key=lambda p: order.index(p.name) if p.name in order else len(order))

    def _slots_of(self, inst: Instance) -> list[Slot]:
        slots: list[Slot] = []
        for ctor in inst.members.values():
            _flatten(ctor, slots)
        return slots

    def _candidates(self, group: ClassGroup) -> list[Param]:
        first = group.instances[0]
        found = []
        if group.kind != "network" and first.in_channels is not None:
            found.append(Param("in_channels", [i.in_channels for i in group.instances]))
        if group.kind != "network":
            overridable = set(first.args)
        elif self.exposable is not None:
            overridable = self.exposable
        else:
            overridable = self._overridable()
        for name in first.args:
            values = [i.args.get(name) for i in group.instances]
            if name in overridable and all(type(v) in (int, float) for v in values):
                found.append(Param(python_parameter(name), values,
                                   values[0] if group.kind == "network" else None, name))
        return found

    def _overridable(self) -> set[str]:
        """Network parameters the builder may expose: those the network body only ever
        passes bare to ops (`linear(classes)`), so the generated class stays exact when they
        change. A parameter that reaches a block or an expression is fixed in the source."""
        definition = self._definition()
        if definition is None:
            return set()
        safe = {p.name for p in definition.params}
        bare = set()
        for node in n.walk(definition.body):
            if isinstance(node, n.Call) and node.name in REGISTRY:
                bare |= {a.value.id for a in node.args if isinstance(a.value, n.Name)}
        for node in n.walk(definition.body):
            if isinstance(node, n.Name) and node.id in safe and node.id not in bare:
                safe.discard(node.id)
            if isinstance(node, n.Call) and node.name not in REGISTRY:
                safe -= {x.id for x in n.walk(node.args) if isinstance(x, n.Name)}
            if isinstance(node, n.Call) and node.name in REGISTRY:
                for arg in node.args:
                    if not isinstance(arg.value, n.Name):
                        safe -= {x.id for x in n.walk(arg.value) if isinstance(x, n.Name)}
        return safe

    def _definition(self) -> n.Definition | None:
        span = self.network.span
        for call_file in {span.file}:
            with open(call_file, encoding="utf-8") as handle:
                module, _ = parse_module(handle.read(), call_file)
            for definition in module.networks if module else []:
                if definition.span == span:
                    return definition
        return None

    def _expression(self, group: ClassGroup, column: list[Slot], candidates: list[Param],
                    position: int) -> str:
        values = [s.value for s in column]
        own = self._spec_expression(group, column, candidates)
        if own is not None:
            return own
        inputs = [p for p in candidates if p.name == "in_channels"]
        if column[0].kind == "in" and inputs and _relation(inputs[0], values) == "in_channels":
            self._use(group, inputs[0])
            return "in_channels"
        if len({repr(v) for v in values}) == 1:
            return _literal(values[0])
        if all(type(v) in (int, float) for v in values):
            for param in inputs + [p for p in candidates if p.name != "in_channels"]:
                text = _relation(param, values)
                if text:
                    self._use(group, param)
                    return text
        name = f"arg{position}"
        self._use(group, Param(name, values))
        return name

    def _spec_expression(self, group: ClassGroup, column: list[Slot],
                         candidates: list[Param]) -> str | None:
        """The expression the spec wrote for this argument, when it uses only parameters of
        this class and gives the value of every instance (checked, not assumed)."""
        call = self.calls.get(_key(column[0].origin))
        expr = _bound_argument(call, column[0].source, column[0].order) if call else None
        if expr is None:
            return None
        names = {p.spec: p for p in candidates if p.spec is not None}
        python_names = {spec: p.name for spec, p in names.items()}
        if any(p.spec is None and p.name == "in_channels" for p in candidates):
            python_names["in.c"] = "in_channels"
        text = _python(expr, python_names)
        if text is None:
            return None
        for index, slot in enumerate(column):
            env = Env({name: p.values[index] for name, p in names.items()})
            try:
                value = Evaluator(env, {}, None, True)(expr)
            except EvalError:
                return None
            if value != slot.value and _compact_pair(value) != slot.value:
                return None
        for name in sorted({x.id for x in n.walk(expr) if isinstance(x, n.Name)}):
            self._use(group, names[name])
        return text

    def _use(self, group: ClassGroup, param: Param) -> None:
        if all(p.name != param.name for p in group.params):
            group.params.append(param)

    # ---- phase 3: text

    def render(self, spec_path: str) -> str:
        root = self.groups[-1]
        classes = "\n\n\n".join(self._render_class(g) for g in self.groups)
        helpers = "\n\n\n".join(_helper_source(h) for h in sorted(self.helpers))
        parts = [self._imports()]
        if helpers:
            parts.append(helpers)
        parts += [classes, self._builder(root)]
        body = "\n\n\n".join(p.rstrip("\n") for p in parts)
        return f"{self._header(spec_path)}\n\n{body}\n"

    def _header(self, spec_path: str) -> str:
        net = self.network
        path, command = docstring_text(spec_path), docstring_text(shlex.quote(spec_path))
        return (f'"""`{net.name}`, compiled by archspec {__version__} from {path}.\n\n'
                f"Input {fmt_shape(net.input_shape)} (batch first), output "
                f"{fmt_shape(net.output_shape)}; {net.params:,} parameters, {net.macs:,} MACs.\n"
                f"Needs only PyTorch. Regenerate with: archspec compile {command} "
                f'--net {net.name}\n"""')

    def _imports(self) -> str:
        lines = ["from collections import OrderedDict", ""] if self.uses_ordered_dict else []
        lines.append("import torch")
        if "PaddedConv2d" in self.helpers:
            lines.append("import torch.nn.functional as F")
        lines.append("from torch import nn")
        return "\n".join(lines)

    def _render_class(self, group: ClassGroup) -> str:
        names = _attribute_names(group.instances[0])
        exprs = iter(group.slots)
        init = [f"{INDENT * 2}super().__init__()"]
        for member, ctor in group.instances[0].members.items():
            text = self._ctor_text(ctor, exprs, group)  # consumes the slots, even if shared
            attr = names[member]
            if attr is None:
                continue  # a stateless module shared with an earlier attribute
            if _is_identifier(attr):
                init.append(_wrap(f"{INDENT * 2}self.{attr} = ", text))
            else:
                init.append(_wrap(INDENT * 2, f'self.add_module("{attr}", {text})'))
        signature = ", ".join(["self"] + [self._param_text(group, p) for p in group.params])
        span = group.span
        doc = f'{INDENT}"""{group.title} from {docstring_text(span.file)}:{span.line}.'
        if len(group.instances) > 1:
            doc += f"\n\n{INDENT}Shapes in forward() are those of its first use."
        doc += '"""' if len(group.instances) == 1 else f'\n{INDENT}"""'
        lines = [f"class {group.name}(nn.Module):", doc, "",
                 _wrap_def(f"{INDENT}def __init__(", signature, ") -> None:")]
        lines += init
        if group.kind == "network" and self.network.init:
            lines.append(self._init_call())
        lines += ["", f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        lines += _Forward(group, names).lines()
        return "\n".join(lines)

    def _init_call(self) -> str:
        """The spec's init(...) choices, applied by the same helper as archspec.build()."""
        self.helpers.add("init_weights")
        choices = dict(self.network.init)
        zero = choices.pop("zero_residual_bn")
        paths = tuple(self.network.residual_batchnorms()) if zero else ()
        args = [f"{k}={_literal(v)}" for k, v in choices.items()]
        args.append(f"zero_bn={_literal(paths)}")
        return _wrap(INDENT * 2, f"init_weights(self, {', '.join(args)})")

    def _param_text(self, group: ClassGroup, param: Param) -> str:
        kind = type(param.values[0]).__name__
        if group.kind == "network":
            return f"{param.name}: {kind} = {_literal(param.default)}"
        return f"{param.name}: {kind}"

    def _ctor_text(self, ctor, exprs, group: ClassGroup) -> str:
        if isinstance(ctor, ChildRef):
            child = ctor.group
            values = [next(exprs) for _ in child.params]
            first = values[:1] if child.params[:1] and child.params[0].name == "in_channels" \
                else []
            rest = [f"{p.name}={v}" for p, v in zip(child.params[len(first):],
                                                      values[len(first):])]
            return f"{child.name}({', '.join(first + rest)})"
        if ctor.named is not None:
            items = ", ".join(f'("{k}", {self._ctor_text(c, exprs, group)})'
                              for k, c in ctor.named)
            return f"{ctor.callee}(OrderedDict([{items}]))"
        parts = [self._ctor_text(a, exprs, group) if isinstance(a, (Ctor, ChildRef))
                 else next(exprs) for a in ctor.args]
        for key in ctor.kwargs:
            text = next(exprs)
            if text is not None:
                parts.append(f"{key}={text}")
        return f"{ctor.callee}({', '.join(parts)})"

    def _builder(self, root: ClassGroup) -> str:
        net = self.network
        func = python_function(net.name, {group.name for group in self.groups})
        params = ", ".join(p.name for p in root.params) or "none"
        return (f"def {func}(**overrides) -> {root.name}:\n"
                f'{INDENT}"""`{net.name}` as specified in {docstring_text(net.span.file)}.\n\n'
                f"{INDENT}`overrides` may set the network's parameters: {params}.\n"
                f'{INDENT}"""\n'
                f"{INDENT}return {root.name}(**overrides)")


# ---------------------------------------------------------------- forward()


class _Forward:
    """Writes forward() from the plan of the class's first instance."""

    def __init__(self, group: ClassGroup, names: dict):
        self.group, self.names = group, names
        self.out: list[str] = []
        self.used: set[str] = {"x", "self"}
        self.plans = [inst.plan for inst in group.instances]

    def lines(self) -> list[str]:
        result = self.seq(self.plans, "x", "x")
        self.out.append(f"{INDENT * 2}return {result}")
        return self.out

    def call(self, plans: list[tuple], src: str) -> str:
        member = plans[0][1]
        attr = self.names.get(("shared", member)) or self.names[member]
        fn = f"self.{attr}" if _is_identifier(attr) else f'self._modules["{attr}"]'
        return f"{fn}({src})"

    def seq(self, plans: list[tuple], src: str, dst: str) -> str:
        kind = plans[0][0]
        if kind != "seq":
            return self.step(plans, src, dst)
        current = src
        for i in range(len(plans[0][1])):
            current = self.step([p[1][i] for p in plans], current, dst)
        return current

    def step(self, plans: list[tuple], src: str, dst: str) -> str:
        kind = plans[0][0]
        if kind == "seq":
            return self.seq(plans, src, dst)
        if kind == "call":
            self.emit(f"{dst} = {self.call(plans, src)}", plans)
            return dst
        if kind in ("concat", "add"):
            parts = [self.branch([p[1][i] for p in plans], src, i)
                     for i in range(len(plans[0][1]))]
            expr = (f"torch.cat([{', '.join(parts)}], 1)" if kind == "concat"
                    else " + ".join(parts))
            self.emit(f"{dst} = {expr}", plans)
            return dst
        features = self.fresh("features")
        self.emit(f"{features} = [{src}]", None)
        for i in range(len(plans[0][1])):
            step = [p[1][i] for p in plans]
            if _single_call(step[0]):
                call = self.call([_single_call(s) for s in step], f"torch.cat({features}, 1)")
                self.emit(f"{features}.append({call})", [_single_call(s) for s in step])
            else:
                h = self.fresh("h")
                self.emit(f"{h} = torch.cat({features}, 1)", None)
                self.emit(f"{features}.append({self.seq(step, h, h)})", None)
        self.emit(f"{dst} = torch.cat({features}, 1)", plans)
        return dst

    def branch(self, plans: list[tuple], src: str, index: int) -> str:
        single = _single_call(plans[0])
        if single is not None:
            return self.call([_single_call(p) for p in plans], src)
        if plans[0][0] == "seq" and not plans[0][1]:
            return src  # identity
        name = self.fresh(f"branch{index + 1}")
        return self.seq(plans, src, name)

    def fresh(self, base: str) -> str:
        name, k = base, 2
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def emit(self, text: str, plans: list[tuple] | None) -> None:
        line = f"{INDENT * 2}{text}"
        comment = _shape_comment([p[2] for p in plans]) if plans else ""
        if comment and len(line) + len(comment) + 2 <= LINE:
            line += f"  # {comment}"
        self.out.append(_wrap_line(line))


# ---------------------------------------------------------------- small helpers


def _name_variants(groups: list[ClassGroup]) -> None:
    """Classes of one block: the one with the fewest modules keeps the block's name, the
    others add the labels only they have (`Bottleneck`, `BottleneckDownsample`)."""
    plain = min(groups, key=lambda g: (len(g.instances[0].members), groups.index(g)))
    plain.name = plain.base
    labels = {m for m in plain.instances[0].members if not m.isdigit()}
    taken = {plain.name}
    for group in groups:
        if group is plain:
            continue
        extra = [m for m in group.instances[0].members if not m.isdigit() and m not in labels]
        name = group.base + "".join(camel(m) for m in extra)
        count = 2
        while name in taken:
            name, count = f"{group.base}{count}", count + 1
        taken.add(name)
        group.name = name


def _single_call(plan: tuple):
    if plan[0] == "call":
        return plan
    if plan[0] == "seq" and len(plan[1]) == 1:
        return _single_call(plan[1][0])
    return None


def _shape_comment(nodes: list) -> str:
    """The output shape at this line, in the class's first instance."""
    return fmt_shape(nodes[0].out_shape) if nodes and nodes[0] is not None else ""


def _is_plain(plan: tuple) -> bool:
    kind, body, _ = plan
    if kind == "call":
        return True
    return kind == "seq" and all(_is_plain(step) for step in body)


def _is_dense_only(plan: tuple) -> bool:
    kind, body, _ = plan
    return (kind == "seq" and len(body) == 1 and body[0][0] == "dense"
            and all(_single_call(step) is not None for step in body[0][1]))


def _plan_signature(plan: tuple):
    kind, body, _ = plan
    if kind == "call":
        return ("call", body)
    return (kind, tuple(_plan_signature(p) for p in body))


def _signature(ctor):
    if isinstance(ctor, ChildRef):
        return ("class", id(ctor.group))
    if isinstance(ctor, Slot):
        return "?"
    named = tuple((k, _signature(c)) for k, c in ctor.named) if ctor.named else None
    return (ctor.callee, tuple(_signature(a) for a in ctor.args),
            tuple((k, _signature(v)) for k, v in ctor.kwargs.items()), named)


def _flatten(ctor, out: list[Slot]) -> None:
    if isinstance(ctor, Slot):
        out.append(ctor)
    elif isinstance(ctor, ChildRef):
        inst = ctor.group.instances[ctor.index]
        for param in ctor.group.params:
            inbound = param.name == "in_channels"
            out.append(Slot(param.values[ctor.index], inst.seq.span,
                            source=None if inbound else param.name,
                            kind="in" if inbound else None, order=tuple(inst.args)))
        out.append(Slot(None, inst.seq.span, kind="end"))  # channels after it are not a slot
    elif ctor.named is not None:
        for _, c in ctor.named:
            _flatten(c, out)
    else:
        for a in ctor.args:
            _flatten(a, out)
        for v in ctor.kwargs.values():
            _flatten(v, out)


def _relation(param: Param, values: list) -> str | None:
    """`p`, `r * p` or `p // r` when the values follow the parameter in every instance."""
    pairs = list(zip(param.values, values))
    if all(type(v) is type(p) and v == p for p, v in pairs):
        return param.name
    if not all(type(p) is int and type(v) is int and p > 0 and v > 0 for p, v in pairs):
        return None
    if all(v % p == 0 for p, v in pairs) and len({v // p for p, v in pairs}) == 1:
        ratio = pairs[0][1] // pairs[0][0]
        return f"{ratio} * {param.name}" if ratio > 1 else None
    if all(p % v == 0 for p, v in pairs) and len({p // v for p, v in pairs}) == 1:
        return f"{param.name} // {pairs[0][0] // pairs[0][1]}"
    return None


def _literal(value) -> str:
    """Python text for a value, with double quotes as ruff format writes them."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        items = [_literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    return repr(value)


def _attribute_names(inst: Instance) -> dict:
    """Labels are the attribute names; unlabelled stateless modules (relu, pools) get the
    op's name, shared when identical, as in torchvision; others keep their index."""
    names: dict = {}
    shared: dict[str, str] = {}
    labels = {m for m in inst.members if not m.isdigit()}
    for member, ctor in inst.members.items():
        if not member.isdigit() or not isinstance(ctor, Ctor) or ctor.named is not None:
            names[member] = member
            continue
        layer = inst.nodes[member]
        if not isinstance(layer, ir.Layer) or layer.op.family not in _STATELESS_FAMILIES:
            names[member] = member
            continue
        key = repr(_signature_with_values(ctor))
        if key in shared:
            names[member] = None
            names[("shared", member)] = shared[key]
            continue
        base, k, attr = layer.op.name, 2, layer.op.name
        while attr in labels or attr in shared.values():
            attr, k = f"{base}_{k}", k + 1
        shared[key] = attr
        names[member] = attr
        names[("shared", member)] = attr
    return names


def _signature_with_values(ctor: Ctor):
    return (ctor.callee, [a.value for a in ctor.args],
            {k: v.value for k, v in ctor.kwargs.items()})


def _wrap(prefix: str, body: str, suffix: str = "") -> str:
    """Lay out `prefix + body + suffix` the way ruff format does: one line if it fits, else
    the outermost brackets' contents on one indented line, else one item per line."""
    line = prefix + body + suffix
    if len(line) <= LINE:
        return line
    match = re.match(r"[^([]*[([]", body)
    closer = {"(": ")", "[": "]"}.get(body[match.end() - 1]) if match else None
    if closer is None or not body.endswith(closer):
        return line
    head, inner = body[:match.end()], body[match.end():-1]
    outer = re.match(r"\s*", prefix).group(0)
    indent = outer + INDENT
    items = _split_args(inner)
    one_line = indent + ", ".join(items)
    if len(one_line) <= LINE and len(items) > 1 or len(items) == 1 and len(one_line) <= LINE:
        return f"{prefix}{head}\n{one_line}\n{outer}{closer}{suffix}"
    wrapped = [prefix + head] + [_wrap(indent, item, ",") for item in items]
    return "\n".join(wrapped) + f"\n{outer}{closer}{suffix}"


def _wrap_def(prefix: str, params: str, suffix: str) -> str:
    line = prefix + params + suffix
    if len(line) <= LINE:
        return line
    indent = re.match(r"\s*", prefix).group(0)
    lines = [prefix] + [f"{indent}{INDENT}{p}," for p in _split_args(params)]
    return "\n".join(lines) + f"\n{indent}{suffix}"


def _wrap_line(line: str) -> str:
    if len(line) <= LINE:
        return line
    match = re.match(r"(\s*\S+ = )(.*)$", line)
    return _wrap(match.group(1), match.group(2)) if match else line


def _split_args(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts


@lru_cache(maxsize=1)
def _helper_names() -> frozenset[str]:
    tree = ast.parse(resources.files("archspec").joinpath("torch_helpers.py").read_text())
    return frozenset(node.name for node in tree.body if isinstance(node, ast.ClassDef))


def _helper_source(name: str) -> str:
    text = resources.files("archspec").joinpath("torch_helpers.py").read_text()
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return ast.get_source_segment(text, node)
    raise KeyError(name)


def _bound_argument(call: n.Call, source: str | None, order: tuple) -> n.Expr | None:
    """The expression a call passes for argument `source` (by keyword, alias or position)."""
    if source is None:
        return None
    spec = REGISTRY.get(call.name) if not order else None
    positional = list(spec.positional) if spec else list(order)
    aliases = spec.aliases if spec else {}
    position = 0
    for arg in call.args:
        if arg.name is None:
            if position < len(positional) and positional[position] == source:
                return arg.value
            position += 1
        elif aliases.get(arg.name, arg.name) == source:
            return arg.value
    return None


def _python(expr: n.Expr, names: dict[str, str]) -> str | None:
    """An .arch expression as Python text, if it uses only `names` (spec name -> Python name;
    `in.c` -> `in_channels`), numbers and arithmetic."""
    if isinstance(expr, n.Name):
        return names.get(expr.id)
    if isinstance(expr, n.Literal):
        return repr(expr.value) if type(expr.value) in (int, float) else None
    if isinstance(expr, n.Attr) and isinstance(expr.target, n.InRef) and expr.attr == "c":
        return names.get("in.c")
    if isinstance(expr, n.TupleExpr):
        items = [_python(item, names) for item in expr.items]
        return None if None in items else f"({', '.join(items)})"
    if isinstance(expr, n.BinOp):
        left, right = _python(expr.left, names), _python(expr.right, names)
        if left is None or right is None:
            return None
        if isinstance(expr.left, n.BinOp):
            left = f"({left})"
        if isinstance(expr.right, n.BinOp):
            right = f"({right})"
        return f"{left} {expr.op} {right}"
    return None


def _compact_pair(value):
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def _key(span: Span) -> tuple:
    return (span.file, span.line, span.col)


def _calls_by_span(files: set[str]) -> dict:
    calls = {}
    for file in sorted(files):
        try:
            with open(file, encoding="utf-8") as handle:
                module, _ = parse_module(handle.read(), file)
        except OSError:
            continue
        for node in n.walk([module.blocks, module.networks] if module else []):
            if isinstance(node, n.Call):
                calls[_key(node.span)] = node
    return calls


def _render(network: ir.Network, spec_path: str, exposable: set[str] | None) -> str:
    generator = SourceGenerator(network, exposable)
    generator.collect()
    generator.resolve()
    return generator.render(spec_path)


def _constructors(source: str) -> str:
    """The __init__ bodies of a generated file: what a parameter override must not change
    beyond its own default."""
    return "\n".join(re.findall(r"def __init__\(.*?(?=\n    def forward)", source, re.DOTALL))


def _proven(network: ir.Network, spec_path: str, candidates: set[str]) -> set[str]:
    """Keep the network parameters whose change, run through archspec itself, changes
    nothing in the generated constructors but the parameter's own default."""
    base = _constructors(_render(network, spec_path, candidates))
    proven = set()
    for name in sorted(candidates):
        old = network.args[name]
        trials = (old + 1, 2 * old + 3) if type(old) is int else (old / 2, old / 4)
        if all(_same_but_default(network, spec_path, candidates, base, name, new)
               for new in trials):
            proven.add(name)
    return proven


def _same_but_default(network: ir.Network, spec_path: str, candidates: set[str], base: str,
                      name: str, new) -> bool:
    from .check import check_file

    old = network.args[name]
    result = check_file(network.span.file, network.name, None, {name: new})
    if result.errors or not result.networks:
        return False
    changed = _constructors(_render(result.networks[0], spec_path, candidates))
    pattern = f"{python_parameter(name)}: {type(old).__name__} = "
    return changed == base.replace(pattern + repr(old), pattern + repr(new))


def generate(network: ir.Network, spec_path: str) -> str:
    """The Python source of a checked network."""
    candidates = SourceGenerator(network)._overridable()
    return _render(network, spec_path, _proven(network, spec_path, candidates))
