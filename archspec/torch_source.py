"""Source backend: a checked network as a standalone PyTorch file.

The file's modules are those of the torch lowering (lowering.py), the tree `archspec.build()`
instantiates: the same names, the same classes, the same constructor arguments. Where the
network's definitions can be written with their parameters, loops and conditions
(source_model.py), the classes are those definitions; otherwise (this module's printer) each
class is written out for the argument values it was called with, and the file says so.
No torch import: the file is written as text.
"""

from __future__ import annotations

import ast
import keyword
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from . import ir
from .lowering import INPUT_ERROR, SEQUENTIAL, TorchModule, lower
from .names import docstring_text, is_attribute_name, python_function
from .ops import Training, fmt_shape
from .pytext import INDENT, LINE, literal, wrap, wrap_def, wrap_line
from .translate import ClassModel, Translation, where
from .version import __version__


@dataclass
class FileParts:
    """What a compiled file needs besides its classes."""

    helpers: set[str] = field(default_factory=set)  # torch_helpers classes to copy


# ---------------------------------------------------------------- expressions


def attribute(name: str) -> str:
    """`self.conv1`, or `self._modules["0"]` for a name that is no identifier."""
    return f"self.{name}" if is_attribute_name(name) else f"self._modules[{literal(name)}]"


def call_text(callee: str, args: tuple, kwargs: dict) -> str:
    parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in kwargs.items()]
    return f"{callee}({', '.join(parts)})"


def function_text(step: tuple, x: str, parts: FileParts) -> str:
    """A functional op of a forward program, applied to `x`."""
    _, name, args, kwargs = step
    items = [x] + [literal(a) for a in args] + [
        f"{k}={'self.training' if isinstance(v, Training) else literal(v)}"
        for k, v in kwargs.items()]
    return f"{name}({', '.join(items)})"


def with_attributes(step: tuple) -> tuple:
    """A lowered program with child names as attribute texts (`self.conv1`)."""
    if step[0] in ("call", "scale"):
        return (step[0], attribute(step[1]), *step[2:])
    if step[0] in ("seq", "concat", "add", "split", "gate", "dense"):
        return (step[0], tuple(with_attributes(s) for s in step[1]))
    if step[0] in ("keep", "side", "inputs"):
        return (step[0], step[1], with_attributes(step[2]))
    if step[0] == "exports":
        return (*step[:3], with_attributes(step[3]))
    return step


def _reads_input(step) -> bool:
    """Does a program read its scope's input by name (`@input`, `like=@input`)?"""
    if not isinstance(step, tuple) or not step:
        return False
    if not isinstance(step[0], str):  # a tuple of steps
        return any(_reads_input(inner) for inner in step)
    if step[:2] == ("ref", "input") or (step[0] == "call" and "input" in step[2:]):
        return True
    if step[0] == "return":
        return any(name == "input" for _, name, _ in step[1])
    if step[0] == "inputs":
        return _reads_input(step[2])
    return any(_reads_input(inner) for inner in step[1:] if isinstance(inner, tuple))


def parameter_name(name: str) -> str:
    """A named tensor as a Python name: `backbone.4` is `backbone_4`."""
    text = re.sub(r"\W", "_", name)
    if not text.isidentifier() or keyword.iskeyword(text) or text in ("x", "self"):
        text = f"t_{text}"
    return text


def forward_head(program: tuple | None) -> str:
    """The `def forward` line: its inputs, and what it returns (the network's
    `return(...)`)."""
    params = "x: torch.Tensor"
    if program and program[0] == "inputs":
        params += "".join(f", {parameter_name(name)}: torch.Tensor" for name in program[1])
        program = program[2]
    result = "torch.Tensor"
    last = program[1][-1] if program and program[0] == "seq" and program[1] else None
    if last is not None and last[0] == "return":
        entries = last[1]
        result = ("dict[str, torch.Tensor]" if entries[0][0] is not None else
                  "torch.Tensor" if len(entries) == 1 else
                  "tuple[torch.Tensor, ...]")
        if entries[0][0] is None and any(training for _, _, training in entries):
            result = "torch.Tensor | tuple[torch.Tensor, ...]"
    return wrap_def(f"{INDENT}def forward(", f"self, {params}", f") -> {result}:")


# ---------------------------------------------------------------- the printer


class Printer:
    """Writes the lowered tree as classes with every value written out: a class per module
    structure and values, named by the lowering (`Bottleneck`, `Bottleneck2`, ...)."""

    def __init__(self, parts: FileParts) -> None:
        self.parts = parts
        self.classes: dict[str, str] = {}  # class name -> its text

    def constructor(self, module: TorchModule) -> str:
        """The expression that builds `module`."""
        if module.is_leaf:
            if module.cls in helper_names():
                self.parts.helpers.add(module.cls)
            return call_text(module.cls, module.args, module.kwargs)
        if module.cls == SEQUENTIAL:
            return self.sequential(module)
        return f"{self.class_for(module)}()"

    def sequential(self, module: TorchModule) -> str:
        items = [self.constructor(child) for child in module.children.values()]
        if list(module.children) == [str(i) for i in range(len(items))]:
            return f"nn.Sequential({', '.join(items)})"
        pairs = [f"({literal(name)}, {item})" for name, item in zip(module.children, items)]
        return f"nn.Sequential(OrderedDict([{', '.join(pairs)}]))"

    def class_for(self, module: TorchModule, extra_init: list[str] = (),
                  check: list[str] = ()) -> str:
        body = self.init_lines(module) + list(extra_init)
        if module.base == "module":
            body += ["", forward_head(module.program), *check]
            body += Forward(self.parts).lines(with_attributes(module.program))
        else:
            body += list(check)
        if module.cls not in self.classes:  # the lowering gave each structure its name
            self.classes[module.cls] = self.class_text(module.cls, module, body)
        return module.cls

    def init_lines(self, module: TorchModule) -> list[str]:
        lines = [f"{INDENT}def __init__(self) -> None:", f"{INDENT * 2}super().__init__()"]
        for name, (shape, value) in module.parameters.items():
            text = f"nn.Parameter(torch.full({literal(shape)}, {literal(value)}))"
            if is_attribute_name(name):
                lines.append(wrap(f"{INDENT * 2}self.{name} = ", text))
            else:
                lines.append(wrap(INDENT * 2, f"self.register_parameter({literal(name)}, {text})"))
        for name, child in module.children.items():
            text = self.constructor(child)
            if is_attribute_name(name):
                lines.append(wrap(f"{INDENT * 2}self.{name} = ", text))
            else:
                lines.append(wrap(INDENT * 2, f"self.add_module({literal(name)}, {text})"))
        return lines

    def class_text(self, name: str, module: TorchModule, body: list[str]) -> str:
        base = "nn.Sequential" if module.base == "sequential" else "nn.Module"
        node = module.node
        shapes = f"{fmt_shape(node.in_shape)} -> {fmt_shape(node.out_shape)}"
        doc = f'{INDENT}"""{shapes}, as called at {docstring_text(where(node.span))}."""'
        return "\n".join([f"class {name}({base}):", doc, ""] + body)



class Forward:
    """forward() from a lowered program; tensors in variables named after what they are."""

    def __init__(self, parts: FileParts) -> None:
        self.parts = parts
        self.out: list[str] = []
        self.used = {"x", "self"}
        self.next: dict[str, int] = {}  # where each base's numbers go on (`out7`)
        self.saved: dict[str, str] = {"input": "x"}  # named tensors -> their variables
        self.depth = 2  # indentation of the statements being written
        self.returned = False

    def lines(self, program: tuple) -> list[str]:
        if program[0] == "inputs":  # the other inputs are parameters of forward()
            self.saved.update((name, parameter_name(name)) for name in program[1])
            self.used.update(parameter_name(name) for name in program[1])
            program = program[2]
        if _reads_input(program):  # `x` will be overwritten: keep the input in a variable
            self.saved["input"] = self.fresh("x_in")
            self.emit(self.saved["input"], "x")
        result = self.run(program, "x", "x")
        return self.out + ([] if self.returned else [f"{INDENT * 2}return {result}"])

    def fresh(self, base: str) -> str:
        """`base`, or the next of `base2`, `base3` ... that is free: one try a name, not one
        per earlier name of the same base (20,000 residuals were quadratic)."""
        name, k = (base, 2) if base not in self.next else (f"{base}{self.next[base]}",
                                                          self.next[base] + 1)
        while name in self.used:
            name, k = f"{base}{k}", k + 1
        self.next[base] = k
        self.used.add(name)
        return name

    def emit(self, target: str, value: str) -> str:
        self.out.append(wrap_line(f"{INDENT * self.depth}{target} = {value}"))
        return target

    def variable(self, name: str) -> str:
        """The variable of a named tensor: its label where that is a free identifier."""
        return self.fresh(parameter_name(name))

    def named(self, step: tuple, x: str, target: str) -> str:
        """The steps that keep, read and return named tensors, and side branches."""
        kind = step[0]
        if kind == "keep":
            if step[1] not in self.saved:
                self.saved[step[1]] = self.variable(step[1])
            result = self.run(step[2], x, self.saved[step[1]])
            if result != self.saved[step[1]]:
                self.emit(self.saved[step[1]], result)
            return self.saved[step[1]]
        if kind == "ref":
            return self.saved[step[1]]
        if kind == "side":
            if step[1]:
                self.out.append(f"{INDENT * self.depth}if self.training:")
                self.depth += 1
            self.run(step[2], x, self.fresh("side"))
            self.depth -= step[1]
            return x
        self.write_return(step[1], x)
        return x

    def write_return(self, entries: tuple, x: str) -> None:
        def text(kept: list) -> str:
            values = [x if name is None else self.saved[name] for _, name, _ in kept]
            if kept[0][0] is not None:
                return "{" + ", ".join(f"{literal(key)}: {value}" for (key, _, _), value
                                       in zip(kept, values)) + "}"
            return ", ".join(values)

        pad = INDENT * self.depth
        if any(training for _, _, training in entries):
            self.out.append(f"{pad}if self.training:")
            self.out.append(wrap_line(f"{pad}{INDENT}return {text(list(entries))}"))
        kept = [entry for entry in entries if not entry[2]]
        self.out.append(wrap_line(f"{pad}return {text(kept)}"))
        self.returned = True

    def run(self, step: tuple, x: str, target: str) -> str:
        """Emit `step` applied to the tensor in `x`; returns the variable holding the result
        (the same `x` for an empty sequence)."""
        kind = step[0]
        if kind == "call" and len(step) > 2:
            tensors = ", ".join(self.saved[name] for name in step[2:])
            return self.emit(target, f"{step[1]}({x}, {tensors})")
        if kind == "exports":  # `x, backbone_4 = self.backbone(x)`
            names = [f"{step[1]}.{module}" for module in step[2]]
            for name in names:
                self.saved[name] = self.variable(name)
            result = self.run(step[3], x, ", ".join([target, *(self.saved[n] for n in names)]))
            return target if result != x else x
        if kind == "call":
            return self.emit(target, f"{step[1]}({x})")
        if kind in ("keep", "ref", "side", "return"):
            return self.named(step, x, target)
        if kind == "maybe":
            self.out.append(f"{INDENT * self.depth}if {step[1]} is not None:")
            self.out.append(wrap_line(f"{INDENT * (self.depth + 1)}{target} = {step[1]}({x})"))
            if target != x:
                self.out.insert(len(self.out) - 2, f"{INDENT * self.depth}{target} = {x}")
            return target
        if kind == "dense_children":
            features = self.fresh("features")
            self.emit(features, f"[{x}]")
            layer = self.fresh("layer")
            self.out.append(f"{INDENT * self.depth}for {layer} in self.children():")
            self.out.append(f"{INDENT * (self.depth + 1)}{features}.append("
                            f"{layer}(torch.cat({features}, 1)))")
            return self.emit(target, f"torch.cat({features}, 1)")
        if kind == "fn":
            return self.emit(target, function_text(step, x, self.parts))
        if kind == "scale":
            return self.emit(target, f"{step[1]} * {x}")
        if kind == "gate":
            gate = self.branch(step[1][0], x, 0, kind)
            return self.emit(target, f"{x} * {gate}")
        if kind == "split":
            shares = [self.fresh(f"{x}_{i + 1}") for i in range(len(step[1]))]
            self.emit(", ".join(shares) + ("," if len(shares) == 1 else ""),
                      f"{x}.chunk({len(shares)}, 1)")
            branches = [self.branch(b, share, i, kind)
                        for i, (b, share) in enumerate(zip(step[1], shares))]
            return self.emit(target, f"torch.cat([{', '.join(branches)}], 1)")
        if kind == "seq":
            for inner in step[1]:
                x = self.run(inner, x, target)
            return x
        if kind in ("concat", "add"):
            branches = [self.branch(b, x, i, kind) for i, b in enumerate(step[1])]
            joined = (f"torch.cat([{', '.join(branches)}], 1)" if kind == "concat"
                      else " + ".join(branches))
            return self.emit(target, joined)
        features = self.fresh("features")
        self.emit(features, f"[{x}]")
        for inner in step[1]:
            h = self.run(inner, f"torch.cat({features}, 1)", self.fresh("h"))
            self.out.append(f"{INDENT * self.depth}{features}.append({h})")
        return self.emit(target, f"torch.cat({features}, 1)")

    def branch(self, step: tuple, x: str, index: int, kind: str) -> str:
        """One branch of a merge, in a variable of its own unless it is a single call."""
        if step[0] == "seq" and not step[1]:
            return x  # the identity
        if step[0] == "seq" and len(step[1]) == 1:
            return self.branch(step[1][0], x, index, kind)
        name = (("out" if index == 0 else "identity") if kind == "add" else
                "scale" if kind == "gate" else f"branch{index + 1}")
        if step[0] == "maybe":
            return self.emit(self.fresh(name), f"{x} if {step[1]} is None else {step[1]}({x})")
        if step[0] == "call" and len(step) == 2:
            return f"{step[1]}({x})"
        return self.run(step, x, self.fresh(name))


# ---------------------------------------------------------------- the file


def generate(networks: ir.Network | list[ir.Network], spec_path: str) -> str:
    """The Python source of checked networks (those of one file): their classes once, a
    builder for each. A network whose classes differ from ones already written under the
    same names is left out, and the file says so (compile it with --net)."""
    networks = [networks] if isinstance(networks, ir.Network) else list(networks)
    parts, several = FileParts(), len(networks) > 1
    classes: dict[str, str] = {}
    builders: list[str] = []
    written, left_out, notes = [], [], []
    for network in networks:
        own, builder, why_not = _network_parts(network, parts, several, set(classes))
        if any(classes.get(name, text) != text for name, text in own.items()):
            left_out.append(network.name)
            continue
        classes.update(own)
        builders.append(builder)
        written.append(network)
        if why_not is not None:
            notes.append(f"`{network.name}` is written out for its argument values: "
                         f"{_comment(why_not)}.")
    if left_out:
        notes.append(f"Not here (their classes differ under the same names; compile them "
                     f"with --net): {', '.join(left_out)}.")
    return _file(written, spec_path, parts, [*classes.values(), *builders], notes)


def _network_parts(network: ir.Network, parts: FileParts, several: bool,
                   taken: set[str]) -> tuple[dict[str, str], str, str | None]:
    """One network's classes (name -> text), its builder and why it is written out."""
    lowered = lower(network)
    if lowered.translation is not None:
        models = lowered.translation.models
        root = lowered.translation.root
        own = {m.name: model_text(m, parts, several, network if m is root else None)
               for m in models}
        return own, _parametric_builder(network, lowered.translation, taken | set(own)), None
    printer = Printer(parts)
    shape_line, check = input_check(network, lowered.tree.base)
    root_class = printer.class_for(lowered.tree, _init_call(network, parts)
                                   + [INDENT * 2 + line for line in shape_line], check)
    own = dict(printer.classes)
    return own, _builder(network, root_class, taken | set(own)), lowered.why_not


def input_check(network: ir.Network, base: str) -> tuple[list[str], list[str]]:
    """The network class's input shape (an __init__ line) and the check forward() starts
    with: an input of the wrong rank is refused as build()'s networks refuse it."""
    shape = tuple(network.input_shape)
    check = []
    for name, each in [("x", shape), *network.inputs]:
        message = INPUT_ERROR.format(shape=fmt_shape(each), dims=len(each) + 1,
                                     got=f"{{tuple({name}.shape)}}")
        check += [f"{INDENT * 2}if {name}.dim() != {len(each) + 1}:",
                  f"{INDENT * 3}raise ValueError(", f'{INDENT * 4}f"{message}"',
                  f"{INDENT * 3})"]
    if base == "sequential":
        check = ["", f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:", *check,
                 f"{INDENT * 2}return super().forward(x)"]
    taken = any(child.name == "input_shape" for child in network.body.children
                if isinstance(child, (ir.Layer, ir.Seq)))
    return ([] if taken else [f"self.input_shape = {literal(shape)}"]), check


def model_text(model: ClassModel, parts: FileParts, several: bool = False,
               network: ir.Network | None = None) -> str:
    """A translated class: its parameters, its constructor, its forward(). In a file of
    several networks the docstring leaves out the shapes of one network's use."""
    base = "nn.Sequential" if model.base == "sequential" else "nn.Module"
    head = wrap_def(f"{INDENT}def __init__(", ", ".join(["self", *model.params]), ") -> None:")
    doc = model.doc.split("\n\n")[0] if several else model.doc
    lines = [f"class {model.name}({base}):", _docstring(doc), "", head]
    shape_line, check = input_check(network, model.base) if network else ([], [])
    for line in model.init + shape_line:
        parts.helpers.update(h for h in (*helper_names(), "init_weights") if f"{h}(" in line)
        lines.append(_wrapped(INDENT * 2 + line))
    if model.forward is not None:
        lines += ["", f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:", *check]
        lines += Forward(parts).lines(model.forward)
    elif check:
        lines += check
    return "\n".join(lines)


def _docstring(text: str) -> str:
    """A class docstring: paragraphs of `text`, the closing quotes on their own line when
    there are several."""
    paragraphs = [docstring_text(p) for p in text.split("\n\n")]
    if len(paragraphs) == 1:
        return f'{INDENT}"""{paragraphs[0]}"""'
    body = f"\n\n{INDENT}".join(paragraphs)
    return f'{INDENT}"""{body}\n{INDENT}"""'


def _wrapped(line: str) -> str:
    if len(line) <= LINE:
        return line
    indent = line[:len(line) - len(line.lstrip())]
    if re.match(r"\s*[\w.\[\]\"()]+ = ", line):
        return wrap_line(line)
    return wrap(indent, line.lstrip())


def _parametric_builder(network: ir.Network, translation: Translation,
                        taken: set[str]) -> str:
    root = translation.root.name
    arguments = ", ".join(f"{literal(k)}: {v}" for k, v in translation.arguments.items())
    doc = _builder_doc(network, f"`overrides` may change any argument of {root}.")
    return "\n".join([f"def {python_function(network.name, taken)}(**overrides) -> {root}:",
                      doc, wrap(f"{INDENT}arguments = ", f"{{{arguments}}}"),
                      f"{INDENT}return {root}(**{{**arguments, **overrides}})"])


def _builder_doc(network: ir.Network, last: str) -> str:
    return (f'{INDENT}"""`{docstring_text(network.name)}` as specified in '
            f"{docstring_text(where(network.span))}.\n\n{INDENT}"
            f"{network.describe()}, "
            f"{network.params:,} parameters, {network.macs:,} MACs.{' ' + last if last else ''}"
            f"\n{INDENT}\"\"\"")


def _init_call(network: ir.Network, parts: FileParts) -> list[str]:
    """The spec's init(...) choices, applied by the same helper as archspec.build()."""
    if not network.init:
        return []
    parts.helpers.add("init_weights")
    choices = dict(network.init)
    zero = choices.pop("zero_residual_bn")
    args = [f"{k}={literal(v)}" for k, v in choices.items()]
    args.append(f"zero_bn={literal(tuple(network.residual_batchnorms()) if zero else ())}")
    return [wrap(INDENT * 2, f"init_weights(self, {', '.join(args)})")]


def _builder(network: ir.Network, root_class: str, taken: set[str]) -> str:
    head = wrap_def(f"def {python_function(network.name, taken)}(", "", f") -> {root_class}:")
    return f"{head}\n{_builder_doc(network, '')}\n{INDENT}return {root_class}()"


def _file(networks: list[ir.Network], spec_path: str, parts: FileParts, code: list[str],
          notes: list[str]) -> str:
    helpers = [helper_source(h) for h in sorted(parts.helpers)]
    text = "\n\n\n".join([*helpers, *code])
    comments = "\n".join(f"# {line}" for note in notes for line in _wrapped_words(note, 2))
    top = "\n\n".join([_header(networks, spec_path), *([comments] if comments else [])])
    return f"{top}\n\n{_imports(text)}\n\n\n{text}\n"


def _wrapped_words(text: str, margin: int) -> list[str]:
    """Text as lines of at most LINE - margin characters, broken between words."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > LINE - margin:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line]


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _header(networks: list[ir.Network], spec_path: str) -> str:
    path, command = docstring_text(spec_path), docstring_text(shlex.quote(spec_path))
    names = ", ".join(f"`{docstring_text(n.name)}`" for n in networks)
    one = len(networks) == 1
    regenerate = f"archspec compile {command}" + (
        f" --net {docstring_text(shlex.quote(networks[0].name))}" if one else "")
    listed = "\n".join(_wrapped_words(f"{'Network' if one else 'Networks'}: {names}.", 0))
    return (f'"""Compiled by archspec {__version__} from {path}.\n\n{listed}\n'
            f"Needs only PyTorch. Regenerate with: {regenerate}\n\"\"\"")


def _imports(code: str) -> str:
    """The imports the code uses, as isort orders them."""
    standard = (["import math"] if re.search(r"\bmath\.", code) else []) + (
        ["from collections import OrderedDict"] if "OrderedDict(" in code else [])
    lines = [*standard, ""] if standard else []
    if re.search(r"\btorch\.", code):
        lines.append("import torch")
    if re.search(r"\bF\.", code):
        lines.append("import torch.nn.functional as F")
    lines.append("from torch import nn")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def _helpers_tree() -> tuple[str, ast.Module]:
    text = resources.files("archspec").joinpath("torch_helpers.py").read_text()
    return text, ast.parse(text)


def helper_names() -> frozenset[str]:
    return frozenset(node.name for node in _helpers_tree()[1].body
                     if isinstance(node, ast.ClassDef))


def helper_source(name: str) -> str:
    text, tree = _helpers_tree()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return ast.get_source_segment(text, node)
    raise KeyError(name)
