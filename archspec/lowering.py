"""The torch lowering: a checked network as the tree of torch modules it becomes.

Both torch backends read this one tree: `archspec.build()` instantiates it, `archspec compile`
must write source whose modules are the same (tests compare them), so names, classes and
constructor arguments are decided here once. No torch import.

Every module scope of the spec (the network, a block call, a label) is a container; every
layer is a torch module, except unlabelled stateless ops (relu, pooling, flatten, dropout)
inside a scope that merges tensors itself: those are function calls in its forward(), as
torchvision writes `F.relu(out)` in a block. A scope whose statements only chain modules is
an nn.Sequential (a subclass named after its block); one that merges (concat, add, dense)
has a forward() of its own, given here as a small program of plain tuples:

    ("call", name)                   run a child module
    ("fn", function, args, kwargs)   a functional op, e.g. ("F.relu", (), {"inplace": True})
    ("seq", steps)                   one after the other
    ("concat", branches), ("add", branches)
    ("split", branches)              branch i gets the i-th equal share of the channels
    ("gate", (branch,))              the input times what the branch gives
    ("dense", steps)                 step k sees the input and every earlier step's output
    ("scale", name)                  multiply by the module's parameter `name`
    ("keep", name, step)             run step and keep its result as the named tensor `name`
    ("ref", name)                    go on from the named tensor `name` (`input`: the scope's)
    ("call", name, *tensors)         a child module given named tensors after its input (a
                                     `like=`, what a labelled scope reads from around it)
    ("exports", name, modules, step) run step, the child `name` returning its output and
                                     those of its `modules` (kept as `name.module`)
    ("side", training, step)         run step on the tensor, go on with the tensor itself;
                                     `training`: only in training mode
    ("inputs", names, step)          a network's forward(x, *inputs): the inputs after the
                                     first are the named tensors `names`; then step
    ("return", entries)              the network's outputs: (key, name or None for the
                                     tensor itself, training) each; a dict where keys are
                                     given, else a tuple (one entry alone: the tensor)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import ir
from .flow import labelled_scope_merges, merges_at_own_level
from .names import ClassNames
from .ops import HELPER_CLASSES, Default
from .translate import Translation, Unsupported, translate

SEQUENTIAL = "nn.Sequential"
# What built networks and compiled files say when an input has the wrong rank.
INPUT_ERROR = ("expected a batch of {shape} inputs ({dims} dimensions), "
               "got a tensor of shape {got}")


@dataclass
class TorchModule:
    """One module of the lowered tree."""

    cls: str  # "nn.Conv2d", a helper ("PaddedConv2d"), "nn.Sequential" or a generated class
    node: ir.Node
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    children: dict[str, TorchModule] = field(default_factory=dict)
    base: str | None = None  # generated classes: "sequential" or "module"
    program: tuple | None = None  # forward() of a merging scope
    # parameters of a merging scope itself (`scale`): name -> (shape, initial value)
    parameters: dict[str, tuple[tuple[int, ...], float]] = field(default_factory=dict)

    @property
    def is_leaf(self) -> bool:
        return self.base is None and self.cls != SEQUENTIAL


@dataclass
class Lowered:
    """The module tree, and the parametric classes when the definitions translate."""

    tree: TorchModule
    translation: Translation | None
    why_not: str | None  # why the classes are written out for these argument values


def lower(network: ir.Network) -> Lowered:
    """The network's module tree. Its classes are the translated definitions' (one
    `Bottleneck` for every call), or, where a definition does not translate, one class per
    structure and values (`Bottleneck`, `Bottleneck2`)."""
    try:
        translation, why_not = translate(network), None
    except Unsupported as exc:
        translation, why_not = None, str(exc)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        # a construct the translator does not know yet: the written-out classes are exact
        translation, why_not = None, f"not translated yet ({type(exc).__name__})"
    # one class name per definition (a block, a labelled scope, the network); the
    # translation's names where the definitions could be written with their parameters
    names = ClassNames(translation.names if translation else None)
    source = network.source
    merges = merges_at_own_level(source.body) if source is not None else True
    key = ("network", id(source) if source is not None else network.definition)
    root = TorchModule(names.get(key, network.definition), network.body)
    _fill(root, network.body.children, merges or bool(network.inputs), names, network.outputs)
    if network.inputs:  # forward(x, depth, ...): the other inputs are named tensors
        root.program = ("inputs", tuple(name for name, _ in network.inputs), root.program)
    if translation is None:
        _name_copies(root, names, {})
    return Lowered(root, translation, why_not)


def _name_copies(module: TorchModule, names: ClassNames, seen: dict) -> tuple:
    """Give each generated class one structure: a scope whose modules or values differ from
    the first one of its name becomes a class of its own (`Bottleneck2`). Returns the
    module's signature (children first, so a parent sees its children's final names)."""
    children = tuple((name, _name_copies(child, names, seen))
                     for name, child in module.children.items())
    signature = (module.cls, module.base, module.args, tuple(module.kwargs.items()),
                 children, module.program, tuple(module.parameters.items()))
    if module.base is not None:
        copies = seen.setdefault(module.cls, {})  # signature -> its number, by hash
        index = copies.setdefault(_hashable(signature), len(copies))
        if index:
            module.cls = names.get(("copy", module.cls, index), module.cls)
        signature = (module.cls,) + signature[1:]
    return signature


def _hashable(signature: tuple):
    """The signature, or its text where a value in it cannot be hashed."""
    try:
        hash(signature)
    except TypeError:
        return repr(signature)
    return signature


def _fill(module: TorchModule, children: list[ir.Node], merges: bool,
          names: ClassNames, outputs: list[ir.Output] | None = None) -> None:
    module.base = "module" if merges else "sequential"
    kept = _named_tensors_read(children, outputs or [])
    steps = [_kept(child, _step(child, module, merges, names, kept), kept)
             for child in children]
    if outputs:
        steps.append(("return", tuple((o.key, o.target, o.training) for o in outputs)))
    if merges:
        module.program = ("seq", tuple(s for s in steps if s is not None))


def _named_tensors_read(children: list[ir.Node], outputs: list[ir.Output]) -> set[str]:
    """The scope's named tensors that a reference, a `like=`, an output or a labelled scope
    inside it reads."""
    found = {o.target for o in outputs if o.target is not None}
    stack = list(children)
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Ref):
            found.add(node.target)
        elif isinstance(node, ir.Layer) and node.like is not None:
            found.add(node.like)
        elif isinstance(node, ir.Seq) and node.name is not None:
            found.update(node.free)  # its other references are its own
        else:
            stack.extend(ir.children(node))
    return found


def _kept(node: ir.Node, step, kept: set[str]):
    """The step, keeping its result where it is a named tensor that is read later."""
    name = getattr(node, "name", None)
    if isinstance(node, ir.Layer | ir.Seq) and name in kept:
        return ("keep", name, step)
    return step


def _step(node: ir.Node, module: TorchModule, merges: bool, names: ClassNames,
          kept: set[str]):
    """The forward step of one IR node, adding the modules it needs to `module`; `kept`:
    the scope's named tensors that are read later."""
    if isinstance(node, ir.Ref):
        return ("ref", node.target)
    if isinstance(node, ir.Side):
        return ("side", node.training, _step(node.body, module, merges, names, kept))
    if isinstance(node, ir.Layer):
        if node.op.name == "scale":
            module.parameters[node.name] = (node.attrs["shape"], node.attrs["init"])
            return ("scale", node.name)
        if (merges and node.name.isdigit() and node.op.functional is not None
                and node.like is None):
            return ("fn", *node.op.functional(node.attrs, node.fresh))
        module.children[node.name] = layer_module(node)
        return ("call", node.name) if node.like is None else ("call", node.name, node.like)
    if isinstance(node, ir.Seq) and node.name is not None:
        module.children[node.name] = _scope(node, names)
        call = ("call", node.name, *node.free)
        return ("exports", node.name, tuple(node.exports), call) if node.exports else call
    if isinstance(node, ir.Seq):
        return ("seq", tuple(_kept(c, _step(c, module, merges, names, kept), kept)
                             for c in node.children))
    if isinstance(node, ir.Merge):
        return (node.kind, tuple(_step(b, module, merges, names, kept) for b in node.branches))
    return ("dense", tuple(_step(s, module, merges, names, kept) for s in node.steps))


def _scope(seq: ir.Seq, names: ClassNames) -> TorchModule:
    if seq.block is not None and seq.block.definition is not None:
        definition = seq.block.definition
        merges = merges_at_own_level(definition.body)
        cls = names.get(("block", id(definition)), seq.block.name)
    else:
        merges = seq.statement is not None and labelled_scope_merges(seq.statement)
        stem = re.sub(r"\d+$", "", seq.name or "") or "Scope"
        cls = names.get(("scope", id(seq.statement)), stem) if merges else SEQUENTIAL
    if (seq.free or seq.exports) and cls == SEQUENTIAL:
        cls = names.get(("scope", id(seq.statement)), re.sub(r"\d+$", "", seq.name) or "Scope")
    module = TorchModule(cls, seq)
    exports = [ir.Output(None, name, (), False) for name in seq.exports]
    _fill(module, seq.children, merges or bool(seq.free or seq.exports), names,
          [ir.Output(None, None, (), False), *exports] if exports else None)
    if seq.free:  # forward(x, *free): the tensors it reads from around it
        module.program = ("inputs", tuple(seq.free), module.program)
    if cls == SEQUENTIAL:
        module.base = None
    return module


def layer_module(layer: ir.Layer) -> TorchModule:
    """The torch module the op registry names for a layer, PyTorch's defaults left out."""
    name, args, kwargs = layer.op.torch(layer.attrs, layer.in_shape, layer.fresh)
    kept = {k: v for k, v in kwargs.items() if not isinstance(v, Default)}
    return TorchModule(name if name in HELPER_CLASSES else f"nn.{name}", layer, args, kept)
