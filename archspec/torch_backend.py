"""Runtime PyTorch backend: the checked IR becomes an nn.Module tree.

Every module scope of the spec (the network, each block call, each label) becomes an
`ArchModule` whose children carry the spec's names, so state_dict keys are the spec's module
paths. Its forward runs a small static plan (sequence, concat, add, dense) over those
children. The plan is plain nested tuples, so torch.compile and torch.export trace it fully.
Shapes come from the IR; nothing here infers them again.
"""

from __future__ import annotations

import torch
from torch import nn

from . import ir, torch_helpers
from .diagnostics import ArchError, Diagnostic
from .ops import Default, fmt_shape


class ArchModule(nn.Module):
    """One module scope: named children plus the plan that wires them."""

    def __init__(self, plan: tuple = ("seq", (), None), block: str | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self.plan, x)

    def _run(self, plan: tuple, x: torch.Tensor) -> torch.Tensor:
        kind, body, _node = plan
        if kind == "call":
            return getattr(self, body)(x)
        if kind == "seq":
            for step in body:
                x = self._run(step, x)
            return x
        if kind == "concat":
            return torch.cat([self._run(branch, x) for branch in body], 1)
        if kind == "add":
            out = self._run(body[0], x)
            for branch in body[1:]:
                out = out + self._run(branch, x)
            return out
        features = [x]  # dense: each step sees everything before it
        for step in body:
            features.append(self._run(step, torch.cat(features, 1)))
        return torch.cat(features, 1)

    def extra_repr(self) -> str:
        return f"block={self.block}" if self.block else ""


class ArchNetwork(ArchModule):
    """The root module of a built network; remembers the spec it came from."""

    def __init__(self, network: ir.Network) -> None:
        super().__init__(block=None)
        self.spec_name = network.name
        self.input_shape = network.input_shape

    def extra_repr(self) -> str:
        return f"spec={self.spec_name}, input_shape={fmt_shape(self.input_shape)}"


def make_layer(layer: ir.Layer, fresh: bool) -> nn.Module:
    """Instantiate the torch module the op registry names for this layer."""
    name, args, kwargs = layer.op.torch(layer.attrs, layer.in_shape, fresh)
    cls = getattr(nn, name, None) or getattr(torch_helpers, name)
    return cls(*args, **{k: v for k, v in kwargs.items() if not isinstance(v, Default)})


def _fill(module: ArchModule, children: list[ir.Node]) -> ArchModule:
    module.plan, members = ir.scope_plan(children)
    for member in members:
        if isinstance(member.node, ir.Layer):
            module.add_module(member.name, make_layer(member.node, member.fresh))
        else:
            block = member.node.block.name if member.node.block else None
            module.add_module(member.name, _fill(ArchModule(block=block),
                                                 member.node.children))
    return module


def build_module(network: ir.Network) -> ArchNetwork:
    """The nn.Module for a checked network, initialised as its `init(...)` asks (PyTorch's
    defaults otherwise)."""
    module = _fill(ArchNetwork(network), network.body.children)
    if network.init:
        torch_helpers.init_weights(module, **init_arguments(network))
    return module


def init_arguments(network: ir.Network) -> dict:
    choices = dict(network.init)
    zero = choices.pop("zero_residual_bn")
    return {**choices, "zero_bn": tuple(network.residual_batchnorms()) if zero else ()}


def verify_network(network: ir.Network) -> None:
    """Run the network once on the meta device (no memory, no arithmetic) and confirm that
    every layer's real output shape is the statically inferred one."""
    with torch.device("meta"):
        meta = build_module(network).eval()
    seen: dict[str, tuple] = {}

    def record(path: str):
        def hook(_module, _inputs, output) -> None:
            seen.setdefault(path, tuple(output.shape[1:]))
        return hook

    for layer in network.layers():
        meta.get_submodule(layer.path).register_forward_hook(record(layer.path))
    meta(torch.empty((2, *network.input_shape), device="meta"))
    wrong = [layer for layer in network.layers() if seen.get(layer.path) != layer.out_shape]
    if wrong:
        raise ArchError([Diagnostic(
            "E501", f"`{layer.path}` gives {fmt_shape(seen.get(layer.path))} in PyTorch, "
            f"the checker said {fmt_shape(layer.out_shape)}", layer.span,
            hint="this is a bug in archspec; please report it with the spec")
            for layer in wrong])


def build(spec: str | ir.Network, net: str | None = None, verify: bool = False,
          **params) -> ArchNetwork:
    """Check a .arch file (or take a checked network) and return its nn.Module."""
    from .check import load

    network = spec if isinstance(spec, ir.Network) else load(spec, net, **params)
    if verify:
        verify_network(network)
    return build_module(network)
