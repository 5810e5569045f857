"""Runtime PyTorch backend: the lowered module tree (lowering.py) becomes nn.Modules.

The modules are plain PyTorch objects: torch.nn layers, nn.Sequential subclasses and
`ArchBlock` subclasses named after the spec's blocks (`Bottleneck`, `Inception`), made on
first use in block_classes.py and sequential_classes.py, where unpickling finds them again by
name, so `torch.save`, pickle, deepcopy and spawn workers all work. A block's forward() runs its program: nested tuples of names and
constants, which torch.compile and torch.export trace fully. Shapes come from the IR;
nothing here infers them again.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from math import prod

TORCH_MISSING = ("building a network needs PyTorch, which is not installed: pip install torch "
                 "(archspec's torch extra: pip install '.[torch]' in archspec's folder)")

try:
    import torch
except ModuleNotFoundError as missing:  # say how to get it, not only its name
    if missing.name != "torch":
        raise
    raise ModuleNotFoundError(TORCH_MISSING, name="torch") from None
import torch.nn.functional as F
from torch import nn

from . import ir, torch_helpers
from .diagnostics import ArchError, Diagnostic
from .lowering import INPUT_ERROR, TorchModule, lower
from .ops import Training, fmt_shape
from .sizes import SizeSet


class ArchBlock(nn.Module):
    """A scope that merges tensors (concat, add, dense): children plus the program that
    wires them (see lowering.py)."""

    def __init__(self, program: tuple) -> None:
        super().__init__()
        self._program = program

    def forward(self, x: torch.Tensor, *inputs: torch.Tensor):
        saved, program = {"input": x}, self._program
        if program[0] == "inputs":  # a network's named inputs after the first
            saved.update(zip(program[1], inputs))
            program = program[2]
        return self._run(program, x, saved)

    def _run(self, step: tuple, x: torch.Tensor, saved: dict):
        """`step` applied to `x`; `saved` holds the scope's named tensors read later."""
        kind = step[0]
        if kind == "call":
            return self._modules[step[1]](x, *(saved[name] for name in step[2:]))
        if kind == "fn":
            return self._function(step, x)
        if kind == "seq":
            for inner in step[1]:
                x = self._run(inner, x, saved)
            return x
        if kind == "keep":
            saved[step[1]] = x = self._run(step[2], x, saved)
            return x
        if kind == "ref":
            return saved[step[1]]
        if kind == "exports":  # the child gave its output and those of some modules
            x, *exported = self._run(step[3], x, saved)
            saved.update((f"{step[1]}.{name}", value) for name, value in zip(step[2], exported))
            return x
        if kind == "side":
            if self.training or not step[1]:
                self._run(step[2], x, saved)
            return x
        if kind == "return":
            return network_outputs(step[1], x, saved, self.training)
        if kind == "concat":
            return torch.cat([self._run(branch, x, saved) for branch in step[1]], 1)
        if kind == "add":
            out = self._run(step[1][0], x, saved)
            for branch in step[1][1:]:
                out = out + self._run(branch, x, saved)
            return out
        if kind == "gate":
            return x * self._run(step[1][0], x, saved)
        if kind == "split":
            parts = x.chunk(len(step[1]), 1)
            return torch.cat([self._run(b, part, saved) for b, part in zip(step[1], parts)], 1)
        if kind == "scale":
            return self._parameters[step[1]] * x
        features = [x]  # dense: each step sees everything before it
        for inner in step[1]:
            features.append(self._run(inner, torch.cat(features, 1), saved))
        return torch.cat(features, 1)

    def _function(self, step: tuple, x: torch.Tensor) -> torch.Tensor:
        _, name, args, kwargs = step
        kwargs = {k: self.training if isinstance(v, Training) else v for k, v in kwargs.items()}
        return _function(name)(x, *args, **kwargs)


def network_outputs(entries: tuple, x: torch.Tensor, saved: dict, training: bool):
    """A network's `return(...)`: eval mode leaves out what only training computes. (A
    function, not a method: a block's attributes are names its labels cannot take.)"""
    kept = [(key, x if name is None else saved[name])
            for key, name, only_training in entries if training or not only_training]
    if entries[0][0] is not None:
        return dict(kept)
    return kept[0][1] if len(kept) == 1 else tuple(value for _, value in kept)


_FUNCTIONS = {"torch.sigmoid": torch.sigmoid, "torch.tanh": torch.tanh,
              "torch.flatten": torch.flatten}


def _function(name: str):
    return _FUNCTIONS.get(name) or getattr(F, name.removeprefix("F."))


_MADE: dict[tuple[str, str], type] = {}


def made_class(module: str, name: str, base: type) -> type:
    """The class `name` of block_classes.py or sequential_classes.py, made once."""
    if name.startswith("_") or not name.isidentifier():
        raise AttributeError(name)  # not a class name: dunders that pickle and copy probe
    if (module, name) not in _MADE:
        _MADE[module, name] = type(name, (base,), {
            "__module__": module, "__qualname__": name,
            "__doc__": f"`{name}`, built by archspec from a spec."})
    return _MADE[module, name]


def instantiate(spec: TorchModule) -> nn.Module:
    """The nn.Module for one node of the lowered tree, children included."""
    if spec.is_leaf:
        cls = getattr(torch_helpers, spec.cls, None) or getattr(nn, spec.cls[3:])
        return cls(*spec.args, **spec.kwargs)
    children = {name: instantiate(child) for name, child in spec.children.items()}
    if spec.base == "module":
        module = made_class("archspec.block_classes", spec.cls, ArchBlock)(spec.program)
        for name, (shape, value) in spec.parameters.items():
            module.register_parameter(name, nn.Parameter(torch.full(shape, value)))
        for name, child in children.items():
            module.add_module(name, child)
        return module
    cls = nn.Sequential if spec.base is None else made_class("archspec.sequential_classes",
                                                             spec.cls, nn.Sequential)
    module = cls()
    for name, child in children.items():
        module.add_module(name, child)
    return module


def build_module(network: ir.Network, find_sizes: SizeFinder | None = None) -> nn.Module:
    """The nn.Module for a checked network, initialised as its `init(...)` asks (PyTorch's
    defaults otherwise). It refuses inputs its layers cannot take (InputCheck); the API
    passes `find_sizes` (check.input_sizes: a backend does not check specs itself)."""
    module = instantiate(lower(network).tree)
    if network.init:
        torch_helpers.init_weights(module, **init_arguments(network))
    if "input_shape" not in module._modules:  # a label may have taken the name
        module.input_shape = input_shapes(network)[0]
    module.register_forward_pre_hook(InputCheck(network, find_sizes))
    return module


SizeFinder = Callable[[ir.Network], dict[str, SizeSet]]


def declared_sizes(network: ir.Network) -> dict[str, SizeSet]:
    """Without the checker (a module built inside this backend, to verify): the first
    input's declared sizes only."""
    shape = input_shapes(network)[0]
    return {f"dim{i + 1}": SizeSet.exactly(int(size)) for i, size in enumerate(shape)}


class InputCheck:
    """A built network's forward pre-hook: as many inputs as it has, each of its rank (an
    unbatched 3x8x8 tensor would otherwise be concatenated along H without a word), and of
    a size its layers and weights take, said in the spec's terms rather than as torch's
    `mat1 and mat2 shapes cannot be multiplied` deep inside. The declared shape passes at
    the cost of a tuple compare; the valid sizes of the first input (check.input_sizes,
    up to a second's checking) are found the first time another shape comes, and named
    extra inputs take their declared shape only. Traced and compiled graphs (torch.compile,
    torch.export, jit tracing, ONNX export) skip the size check, which would specialise
    their dynamic shapes."""

    def __init__(self, network: ir.Network, find_sizes: SizeFinder | None) -> None:
        self.name, self.network, self.sizes = network.name, network, None
        self.find_sizes = find_sizes or declared_sizes
        self.shapes = input_shapes(network)
        self.names = [name for name, _ in network.inputs]  # those after the first

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if len(args) != len(self.shapes):
            raise TypeError(f"the network takes {len(self.shapes)} input(s), got {len(args)}")
        if tracing():
            self.check_ranks(args)
        elif [arg.shape[1:] for arg in args] != self.shapes:
            self.check_ranks(args)
            self.check_sizes(args)

    def check_ranks(self, args: tuple) -> None:
        for shape, arg in zip(self.shapes, args):
            if arg.dim() != len(shape) + 1:
                raise ValueError(input_error(shape, tuple(arg.shape)))

    def check_sizes(self, args: tuple) -> None:
        """Raise ValueError unless every input has a size the network takes."""
        got = tuple(args[0].shape)
        if self.sizes is None:
            self.sizes = self.find_sizes(self.network)
        wrong = [reason(axis, size, sizes)
                 for (axis, sizes), size in zip(self.sizes.items(), got[1:])
                 if not accepts(sizes, size)]
        if wrong:
            raise ValueError(f"{self.name} expects {expected(got[0], self.sizes)} (batch "
                             f"first), got {' x '.join(map(str, got))}: {'; '.join(wrong)}")
        for name, shape, arg in zip(self.names, self.shapes[1:], args[1:]):
            if arg.shape[1:] != shape:
                raise ValueError(f"{self.name} expects its input `{name}` to be {got[0]} x "
                                 f"{' x '.join(map(str, shape))} (batch first), got "
                                 f"{' x '.join(map(str, arg.shape))}")

    def __getstate__(self) -> dict:
        """Pickled with the valid sizes, not the IR they are found from."""
        if self.sizes is None:
            self.sizes = self.find_sizes(self.network)
        return {**vars(self), "network": None, "find_sizes": None}

    def __deepcopy__(self, memo: dict) -> InputCheck:
        """A copy shares the IR (nothing changes it): no sizes to find for a deepcopy."""
        clone = object.__new__(InputCheck)
        vars(clone).update(vars(self))
        return clone


def tracing() -> bool:
    """Whether forward() runs to be traced or compiled rather than to compute: the first
    flag is set by torch.compile, torch.export (strict or not) and the dynamo ONNX
    exporter, the second by jit tracing and the TorchScript ONNX exporter."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def accepts(sizes: SizeSet, size: int) -> bool:
    """Sizes past those checked (a sweep that stopped) are left to the layers."""
    return size in sizes or (sizes.limit is not None and size > sizes.limit)


def expected(batch: int, sizes: dict[str, SizeSet]) -> str:
    """`1 x 3 x H x W with H >= 1, W >= 1`: a size that has one value is that value."""
    dims = [str(s.finite[0]) if s.exactly_one else axis for axis, s in sizes.items()]
    ranges = [s.describe(axis) for axis, s in sizes.items() if not s.exactly_one]
    return " x ".join([str(batch), *dims]) + (f" with {', '.join(ranges)}" if ranges else "")


def reason(axis: str, size: int, sizes: SizeSet) -> str:
    """`4 channels, it takes 3`; `H = 20, it takes H >= 29`."""
    if axis == "C":
        takes = str(sizes.finite[0]) if sizes.exactly_one else sizes.describe(axis)
        return f"{size} channel{'' if size == 1 else 's'}, it takes {takes}"
    return f"{axis} = {size}, it takes {sizes.describe(axis)}"


def input_shapes(network: ir.Network) -> list[tuple]:
    """The shapes of every input of a network, in the order forward() takes them (plain
    ints: a spec's named sizes are SymDims at a sample size)."""
    return [tuple(map(int, network.input_shape)),
            *(tuple(map(int, s)) for _, s in network.inputs)]


def input_error(shape: tuple, got: tuple) -> str:
    return INPUT_ERROR.format(shape=fmt_shape(shape), dims=len(shape) + 1, got=got)


def init_arguments(network: ir.Network) -> dict:
    choices = dict(network.init)
    zero = choices.pop("zero_residual_bn")
    return {**choices, "zero_bn": tuple(network.residual_batchnorms()) if zero else ()}


INDEX_LIMIT = 2**63 - 1  # elements of one tensor torch can index


def values_written(layer: ir.Layer) -> int:
    """Values of one sample a layer's forward() writes: its output and torch's temporaries
    (LRN's padded squares)."""
    return prod(layer.out_shape or ()) + layer.op.workspace(layer.attrs, layer.in_shape or ())


def memory_needed(network: ir.Network) -> int:
    """Bytes a built network holds and one forward pass of one sample writes: float32
    weights, batchnorm statistics (two per feature and a counter), every layer's output and
    workspace."""
    total = 0
    for layer in network.layers():
        total += 4 * layer.params + 4 * values_written(layer)
        if layer.op.name == "batchnorm":
            total += 8 * layer.attrs["features"] + 8
    return total


def available_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def refuse_if_too_large(network: ir.Network, max_bytes: int | None, batch: int = 1) -> None:
    """E502 before torch allocates: beyond the memory budget (default: what is free now),
    or a tensor beyond what torch can index (on the meta device too)."""
    biggest = max((values_written(layer) for layer in network.layers()), default=0)
    largest_layer = max((layer.params for layer in network.layers()), default=0)
    if max(biggest * batch, largest_layer) > INDEX_LIMIT // 8:
        raise ArchError([Diagnostic(
            "E502", "network too large to build: a tensor would have more elements than "
            "torch can index", network.span,
            detail=f"largest output or workspace {biggest:,} values a sample, largest layer "
                   f"{largest_layer:,} parameters",
            hint="make the input or the widths smaller")])
    if max_bytes is None:
        return
    needed = memory_needed(network)
    if needed > max_bytes:
        raise ArchError([Diagnostic(
            "E502", "network too large to build", network.span,
            detail=f"it needs about {needed / 2**30:,.1f} GiB (weights, batchnorm statistics "
                   f"and one sample's activations and workspaces); {max_bytes / 2**30:,.1f} GiB "
                   "are allowed",
            hint="make the network smaller, or pass max_bytes= to archspec.build (--max-bytes "
                 "to compile --verify) when you know it fits")])


def verify_network(network: ir.Network, max_bytes: int | None = None) -> None:
    """Refuse a network build() would refuse (E502: the memory budget, default the memory
    free now), then run it once on the meta device (no memory, no arithmetic) and confirm
    that every layer module's real output shape is the statically inferred one."""
    refuse_if_too_large(network, available_memory() if max_bytes is None else max_bytes,
                        batch=2)
    with torch.device("meta"):  # in training mode where `aux` branches run only then
        meta = build_module(network).train(bool(network.training_only_layers))
    modules = dict(meta.named_modules())
    layers = [layer for layer in network.layers() if layer.path in modules]
    seen: dict[str, tuple] = {}

    def record(path: str):
        def hook(_module, _inputs, output) -> None:
            seen.setdefault(path, tuple(output.shape[1:]))
        return hook

    for layer in layers:
        modules[layer.path].register_forward_hook(record(layer.path))
    meta(*(torch.empty((2, *shape), device="meta") for shape in input_shapes(network)))
    wrong = [layer for layer in layers if seen.get(layer.path) != layer.out_shape]
    if wrong:
        raise ArchError([Diagnostic(
            "E501", f"`{layer.path}` gives {fmt_shape(seen.get(layer.path))} in PyTorch, "
            f"the checker said {fmt_shape(layer.out_shape)}", layer.span,
            hint="this is a bug in archspec; please report it with the spec")
            for layer in wrong])


def verify_source(network: ir.Network, source: str) -> None:
    """Import the compiled source of one network and confirm that its builder makes the
    module archspec.build() makes: the same module classes under the same names, and the
    same parameter and buffer names and shapes (built on the meta device: no memory)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "compiled_network.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        loader = importlib.util.spec_from_file_location("archspec_compiled_network", path)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    builders = [value for name, value in vars(module).items()
                if callable(value) and getattr(value, "__module__", None) == module.__name__
                and not isinstance(value, type) and name != "init_weights"]
    with torch.device("meta"):
        built = build_module(network)
        try:
            compiled = builders[-1]()
        except Exception as exc:  # noqa: BLE001 - any failure of generated code is our bug
            compiled, differences = None, [f"its builder fails: {type(exc).__name__}: {exc}"]
    if compiled is not None:
        differences = _differences(built, compiled)
    if differences:
        raise ArchError([Diagnostic(
            "E501", f"the compiled source of `{network.name}` differs from archspec.build(): "
            f"{'; '.join(differences[:3])}", network.span,
            hint="this is a bug in archspec; please report it with the spec")])


def _differences(built: nn.Module, compiled: nn.Module) -> list[str]:
    mine = {k: (type(m).__name__) for k, m in built.named_modules()}
    theirs = {k: (type(m).__name__) for k, m in compiled.named_modules()}
    found = [f"`{k or '<network>'}` is {mine.get(k)} in one, {theirs.get(k)} in the other"
             for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
    shapes = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    other = {k: tuple(v.shape) for k, v in compiled.state_dict().items()}
    found += [f"`{k}` is {shapes.get(k)} in one, {other.get(k)} in the other"
              for k in sorted(set(shapes) | set(other)) if shapes.get(k) != other.get(k)]
    return found
