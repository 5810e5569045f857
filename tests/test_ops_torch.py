"""Every op in the registry against real PyTorch layers.

For each op there is a grid of cases (input shape and arguments). All cases of one op family are
written as one-layer networks into a single spec in a temporary directory and checked once; each
case then builds the corresponding torch layer, runs a real tensor (batch 2) through it and
compares:

* the statically inferred output shape with the tensor PyTorch produces;
* where PyTorch raises, the diagnostic code archspec reports at the op's line (and the other way
  round: archspec may report an error only where PyTorch raises too);
* the parameter count (sum of the torch module's parameters' numel) for every op, and the MACs of
  convolutions (output numel * in_channels / groups * kh * kw) and linear layers (in * out);
* where PyTorch runs an input that archspec refuses on purpose (BY_DESIGN: layernorm on a map,
  groupnorm and dropout2d on flat features), the code archspec gives, with the reason;
* for convolutions, the resolved per-side padding: 'same' follows TensorFlow's rule (computed here
  independently), and F.pad with archspec's padding followed by an unpadded conv reproduces the
  torch layer's output exactly (for stride 1 that layer is PyTorch's own padding='same').
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from itertools import product

import pytest
import torch
import torch.nn.functional as F
from test_op_modules import ChannelsLastNorm, DropRows, Scale
from torch import nn

import archspec
from archspec.ops import REGISTRY, TENSOR_ARGUMENTS

pytestmark = [pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"),
              pytest.mark.filterwarnings("ignore:dropout2d. Received a 2-D input:UserWarning")]

# ---------------------------------------------------------------- cases


def _fmt(value) -> str:
    """A value written in .arch syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return repr(value)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


# Argument order when written positionally: the order of the torch layer's own arguments.
POSITIONAL = {
    "conv": ("out", "k", "s", "p"),
    "dwconv": ("k", "s", "p"),
    "pwconv": ("out",),
    "maxpool": ("k", "s", "p"),
    "avgpool": ("k", "s", "p"),
    "adaptive_avgpool": ("size",),
    "adaptive_maxpool": ("size",),
    "lrn": ("size",),
    "leaky_relu": ("slope",),
    "gelu": ("approximate",),
    "dropout": ("p",),
    "linear": ("out",),
    "groupnorm": ("groups",),
    "dropout2d": ("p",),
    "alpha_dropout": ("p",),
    "stochastic_depth": ("p", "mode"),
    "scale": ("init",),
    "channel_shuffle": ("groups",),
    "conv_transpose": ("out", "k", "s", "p"),
    "upsample": ("scale",),
    "crop": ("size",),
    "pad": ("p", "mode", "value"),
    "pixel_shuffle": ("r",),
    "pixel_unshuffle": ("r",),
}


@dataclass(frozen=True)
class Case:
    op: str
    in_shape: tuple[int, ...]
    args: tuple[tuple[str, object], ...] = ()  # (name, value), in POSITIONAL order first
    n_positional: int = 0  # how many leading args are written without their name

    @property
    def params(self) -> dict:
        return dict(self.args)

    @property
    def stmt(self) -> str:
        parts = [_fmt(v) if i < self.n_positional else f"{k}={_fmt(v)}"
                 for i, (k, v) in enumerate(self.args)]
        return f"{self.op}({', '.join(parts)})" if parts else self.op

    @property
    def id(self) -> str:
        return f"{'x'.join(map(str, self.in_shape))}-{self.stmt.replace(' ', '')}"


def case(op: str, in_shape: tuple, positional: bool = False, **kwargs) -> Case:
    """A case; None-valued arguments are left out (the op's default applies)."""
    order = POSITIONAL.get(op, ())
    given = {k: v for k, v in kwargs.items() if v is not None}
    args = [(k, given.pop(k)) for k in order if k in given]
    n_positional = 0
    if positional:  # leading positional arguments must be contiguous in the positional order
        while n_positional < len(args) and args[n_positional][0] == order[n_positional]:
            n_positional += 1
    return Case(op, tuple(in_shape), tuple(args) + tuple(given.items()), n_positional)


def _unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, Case] = {}
    for c in cases:
        seen.setdefault(c.id, c)
    return list(seen.values())


MAPS = [(4, 1, 1), (4, 2, 3), (4, 5, 5), (4, 6, 9), (4, 8, 7)]
FLAT = (12,)


def conv_cases() -> list[Case]:
    rng = random.Random(1)
    kernels = [1, 2, 3, (3, 1), (2, 5), 5]
    pads = [0, 1, (1, 2), ((0, 1), (2, 0)), ((2, 1), (0, 3)), "same", "valid"]
    cases = []
    for draw, (shape, k, p) in product(range(2), product(MAPS, kernels, pads)):
        s = rng.choice([1, 1, 2, (2, 1), 3])
        d = rng.choice([1, 1, 1, 2, (1, 3)])
        groups = rng.choice([1, 1, 1, 1, 2, 2, 3, 4])  # 3 does not divide 4 inputs, 4 not 6 outputs
        bias = rng.choice([None, False])
        cases.append(case("conv", shape, positional=len(cases) % 4 == 0, out=6, k=k,
                          s=None if s == 1 and draw else s, p=p, d=d,
                          groups=None if groups == 1 else groups, bias=bias))
    # 'same' with stride 1 against PyTorch's padding='same', every kernel parity and dilation
    for shape, k, d in product(MAPS[:3], [1, 2, 3, 4, (2, 3)], [1, 2, (3, 1)]):
        cases.append(case("conv", shape, out=4, k=k, p="same", d=d))
    # 'same' with strides, even kernels
    for shape, k, s in product(MAPS, [2, 3, 4, (1, 4)], [2, 3, (3, 2)]):
        cases.append(case("conv", shape, out=4, k=k, s=s, p="same"))
    cases.append(case("conv", FLAT, out=4, k=3))
    cases.append(case("conv", FLAT, out=4, k=1, p="same"))
    return _unique(cases)


def dwconv_cases() -> list[Case]:
    rng = random.Random(2)
    cases = []
    for _, (shape, k, p) in product(range(2), product(
            [(3, *hw[1:]) for hw in MAPS], [1, 3, (2, 3)], [0, 1, "same", ((1, 0), (0, 2))])):
        cases.append(case("dwconv", shape, positional=len(cases) % 3 == 0, k=k,
                          s=rng.choice([1, 2, (1, 2)]), p=p, d=rng.choice([1, 1, 2]),
                          multiplier=rng.choice([None, 2]), bias=rng.choice([None, False])))
    cases.append(case("dwconv", FLAT, k=3))
    return _unique(cases)


def pwconv_cases() -> list[Case]:
    cases = []
    for shape, s, groups, out, bias in product(
            [(6, *hw[1:]) for hw in MAPS], [1, 2, (3, 1)], [1, 2, 3, 4], [4, 6], [None, False]):
        cases.append(case("pwconv", shape, positional=bias is None, out=out,
                          s=None if s == 1 else s, groups=None if groups == 1 else groups,
                          bias=bias))
    cases.append(case("pwconv", FLAT, out=4))
    return _unique(cases)


POOL_MAPS = [(2, 1, 1), (2, 2, 2), (2, 3, 5), (2, 6, 6), (2, 7, 4), (2, 9, 8)]


def maxpool_cases() -> list[Case]:
    rng = random.Random(3)
    cases = []
    for _, (shape, k, p) in product(range(2), product(POOL_MAPS, [1, 2, 3, (2, 3), 4],
                                                      [0, 1, 2, (1, 0), (0, 2)])):
        cases.append(case("maxpool", shape, positional=len(cases) % 3 == 0, k=k,
                          s=rng.choice([None, 1, 2, 3, (1, 2)]), p=p or None,
                          d=rng.choice([None, None, 2, (1, 2)]),
                          ceil_mode=rng.choice([None, True])))
    # ceil_mode's rule that the last window must start inside the input or its left padding
    for n, k, s, p in product([4, 5, 6, 7], [2, 3], [2, 3], [0, 1]):
        cases.append(case("maxpool", (1, n, n + 1), k=k, s=s, p=p, ceil_mode=True))
    # too small on one axis, too much padding on the other: PyTorch names the padding
    for shape, k, p in product([(1, 1, 9), (1, 9, 1)], [2, (1, 3), (3, 1)], [(0, 2), (2, 0)]):
        cases.append(case("maxpool", shape, k=k, p=p))
    cases.append(case("maxpool", FLAT, k=2))
    return _unique(cases)


def avgpool_cases() -> list[Case]:
    rng = random.Random(4)
    cases = []
    for _, (shape, k, p) in product(range(2), product(POOL_MAPS, [1, 2, 3, (2, 3), 4],
                                                      [0, 1, 2, (1, 0), (0, 2)])):
        cases.append(case("avgpool", shape, positional=len(cases) % 3 == 0, k=k,
                          s=rng.choice([None, 1, 2, 3, (1, 2)]), p=p or None,
                          ceil_mode=rng.choice([None, True]),
                          count_include_pad=rng.choice([None, False])))
    for n, k, s, p in product([4, 5, 6, 7], [2, 3], [2, 3], [0, 1]):
        cases.append(case("avgpool", (1, n, n + 1), k=k, s=s, p=p, ceil_mode=True))
    for shape, k, p in product([(1, 1, 9), (1, 9, 1)], [2, (1, 3), (3, 1)], [(0, 2), (2, 0)]):
        cases.append(case("avgpool", shape, k=k, p=p))
    cases.append(case("avgpool", FLAT, k=2))
    return _unique(cases)


ANY_SHAPES = [(3, 4, 5), (1, 1, 1), (2, 7, 3), (6,), (1,)]


def adaptive_cases() -> list[Case]:
    cases = []
    for op in ("adaptive_avgpool", "adaptive_maxpool"):
        for shape, size in product([(3, 1, 1), (3, 5, 5), (2, 7, 4), (2, 12, 9)],
                                   [1, 2, 3, (2, 5), 7, (1, 4)]):
            cases.append(case(op, shape, positional=size != 3, size=size))
        cases.append(case(op, FLAT, size=2))
    for op in ("global_avgpool", "global_maxpool"):
        cases += [case(op, shape) for shape in ANY_SHAPES]
    return _unique(cases)


def norm_cases() -> list[Case]:
    cases = []
    for shape, (eps, momentum, affine) in product(
            [(3, 4, 5), (1, 1, 1), (8, 2, 2), (5,), (16,), (1,)],
            [(None, None, None), (0.001, None, None), (None, 0.3, False), (1e-3, 0.0, True)]):
        cases.append(case("batchnorm", shape, eps=eps, momentum=momentum, affine=affine))
    for shape, size in product([(1, 3, 3), (3, 4, 5), (8, 2, 2), (16, 1, 1)], [1, 2, 3, 5, 7]):
        extra = {} if size % 2 else {"alpha": 0.001, "beta": 0.5, "k": 2.0}
        cases.append(case("lrn", shape, positional=size != 5, size=size, **extra))
    cases += [case("lrn", shape, size=3) for shape in [FLAT, (1,)]]
    return _unique(cases)


def channel_norm_cases() -> list[Case]:
    """groupnorm, instancenorm, layernorm and layernorm2d: maps with one position or many,
    channel counts that the groups divide or not, flat features."""
    cases = []
    shapes = [(4, 3, 5), (6, 1, 1), (6, 2, 2), (1, 1, 1), (8, 3, 3), (2, 1, 3), (6,), (12,)]
    for i, (shape, groups, (eps, affine)) in enumerate(product(
            shapes, [1, 2, 3, 4], [(None, None), (0.001, False), (0.5, True)])):
        cases.append(case("groupnorm", shape, positional=i % 2 == 0, groups=groups, eps=eps,
                          affine=affine))
    for shape, (eps, momentum, affine, track) in product(shapes, [
            (None, None, None, None), (0.001, None, True, None), (None, 0.3, None, True),
            (1e-3, 0.0, True, True), (None, None, False, False)]):
        cases.append(case("instancenorm", shape, eps=eps, momentum=momentum, affine=affine,
                          track=track))
    # layernorm on maps: PyTorch refuses where the last dimension is not C, and runs
    # (normalising W) where it is: (4, 2, 4), (1, 1, 1), (6, 1, 6)
    for shape, (eps, affine) in product(
            [(1,), (5,), (16,), (3, 4, 5), (4, 2, 4), (1, 1, 1), (6, 1, 6), (2, 3, 1)],
            [(None, None), (0.001, None), (None, False), (1e-6, True)]):
        cases.append(case("layernorm", shape, eps=eps, affine=affine))
        cases.append(case("layernorm2d", shape, eps=eps, affine=affine))
    return _unique(cases)


def activation_cases() -> list[Case]:
    variants = {
        "relu": [{}], "relu6": [{}], "sigmoid": [{}], "tanh": [{}], "silu": [{}],
        "softmax": [{}], "identity": [{}],
        "leaky_relu": [{}, {"slope": 0.2}, {"slope": -0.5}],
        "gelu": [{}, {"approximate": "tanh"}, {"approximate": "none"}],
        "dropout": [{}, {"p": 0.0}, {"p": 0.9}],
        "hardswish": [{}], "hardsigmoid": [{}], "mish": [{}],
        "dropout2d": [{}, {"p": 0.0}, {"p": 0.9}],
        "alpha_dropout": [{}, {"p": 0.0}, {"p": 0.9}],
        "stochastic_depth": [{"p": 0.2}, {"p": 1.0, "mode": "batch"}, {"p": 0.0, "mode": "row"}],
        "scale": [{}, {"init": 1e-6}, {"init": -2.0}],
    }
    cases = []
    for op, arg_sets in variants.items():
        for i, (shape, args) in enumerate(product(ANY_SHAPES, arg_sets)):
            cases.append(case(op, shape, positional=i % 2 == 1, **args))
    return _unique(cases)


def reshape_linear_cases() -> list[Case]:
    cases = [case("flatten", shape) for shape in ANY_SHAPES + [(2, 1, 6), (5, 3, 1)]]
    for features, out, bias in product([1, 7, 30], [1, 5, 16], [None, False]):
        cases.append(case("linear", (features,), positional=out != 5, out=out, bias=bias))
    # on an unflattened map (with C * H > 1, so that torch's matmul on the last axis fails)
    cases += [case("linear", shape, out=4) for shape in [(3, 4, 5), (2, 1, 6), (1, 2, 2)]]
    for i, (shape, groups) in enumerate(product(
            [(6, 2, 3), (4, 1, 1), (5, 3, 3), (1, 2, 2), (12, 1, 4), (12,)], [1, 2, 3, 4, 6])):
        cases.append(case("channel_shuffle", shape, positional=i % 2 == 0, groups=groups))
    return _unique(cases)


def conv_transpose_cases() -> list[Case]:
    rng = random.Random(5)
    cases = []
    for _, (shape, k, p) in product(range(2), product(MAPS, [1, 2, 3, (2, 3)],
                                                      [0, 1, (1, 2), 3])):
        groups = rng.choice([1, 1, 2, 3, 4])  # 3 does not divide 4 inputs, 4 not 6 outputs
        cases.append(case("conv_transpose", shape, positional=len(cases) % 3 == 0, out=6, k=k,
                          s=rng.choice([None, 2, (2, 3), 3]), p=p or None,
                          output_padding=rng.choice([None, None, 1, (1, 0), 2]),
                          groups=None if groups == 1 else groups,
                          bias=rng.choice([None, False]), d=rng.choice([None, None, 2, (1, 3)])))
    cases.append(case("conv_transpose", FLAT, out=4, k=2))
    return _unique(cases)


def upsample_cases() -> list[Case]:
    """Scales (integer, fractional, per axis, shrinking to nothing), sizes, both or neither,
    every mode, align_corners where torch takes it and where it refuses it."""
    cases = []
    sizes = [{"scale": 2}, {"scale": 0.5}, {"scale": 1.5}, {"scale": (2, 3)},
             {"scale": (0.3, 1.0)}, {"scale": 0.2}, {"size": 3}, {"size": (5, 2)},
             {"scale": 2, "size": 3}, {}]
    modes = [(None, None), ("nearest", True), ("nearest-exact", False), ("bilinear", None),
             ("bilinear", True), ("bicubic", False)]
    for i, (shape, size, (mode, align)) in enumerate(product(
            [(2, 1, 1), (2, 3, 5), (2, 7, 4), FLAT], sizes, modes)):
        if not size and align is not None:
            continue  # torch names align_corners before the missing size: one error a case
        cases.append(case("upsample", shape, positional=i % 2 == 0, mode=mode,
                          align_corners=align, **size))
    return _unique(cases)


def crop_cases() -> list[Case]:
    cases = []
    for i, (shape, size) in enumerate(product([(2, 1, 1), (2, 5, 5), (2, 6, 9), (2, 8, 7), FLAT],
                                              [1, 2, (3, 5), 5, (6, 1), (8, 7), 9])):
        cases.append(case("crop", shape, positional=i % 2 == 0, size=size))
    return _unique(cases)


def pad_cases() -> list[Case]:
    rng = random.Random(6)
    cases = []
    for i, (shape, p, mode) in enumerate(product(
            [(2, 1, 1), (2, 2, 3), (2, 5, 5), (2, 4, 7), FLAT],
            [0, 1, 2, (1, 0, 3, 2), ((0, 2), (1, 1)), (4, 0, 0, 0), ((0, 0), (0, 5))],
            [None, "reflect", "replicate", "circular", "constant"])):
        cases.append(case("pad", shape, positional=i % 3 == 0, p=p, mode=mode,
                          value=rng.choice([None, None, -1.0, 0.0])))
    return _unique(cases)


def pixel_shuffle_cases() -> list[Case]:
    cases = []
    for i, (op, shape, r) in enumerate(product(
            ["pixel_shuffle", "pixel_unshuffle"],
            [(4, 2, 3), (8, 1, 1), (9, 3, 3), (6, 4, 6), (1, 4, 4), (12,)], [1, 2, 3])):
        cases.append(case(op, shape, positional=i % 2 == 0, r=r))
    return _unique(cases)


FAMILIES: dict[str, list[Case]] = {
    "conv": conv_cases(),
    "dwconv": dwconv_cases(),
    "pwconv": pwconv_cases(),
    "maxpool": maxpool_cases(),
    "avgpool": avgpool_cases(),
    "adaptive_global_pool": adaptive_cases(),
    "norm": norm_cases(),
    "channel_norm": channel_norm_cases(),
    "activation": activation_cases(),
    "reshape_linear": reshape_linear_cases(),
    "conv_transpose": conv_transpose_cases(),
    "upsample": upsample_cases(),
    "crop": crop_cases(),
    "pad": pad_cases(),
    "pixel_shuffle": pixel_shuffle_cases(),
}

# ---------------------------------------------------------------- torch layers


def tf_same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's 'same', written out here independently of archspec."""
    out = math.ceil(size / s)
    needed = (out - 1) * s + (k - 1) * d + 1
    total = max(needed - size, 0)
    return (total // 2, total - total // 2)


def expected_pads(p, shape, k, s, d):
    """((top, bottom), (left, right)) that the padding argument must resolve to."""
    if p == "same":
        return tuple(tf_same_pads(shape[i + 1], _pair(k)[i], _pair(s)[i], _pair(d)[i])
                     for i in range(2))
    if p == "valid":
        return ((0, 0), (0, 0))
    if isinstance(p, int):
        return ((p, p), (p, p))
    if isinstance(p[0], int):
        return ((p[0], p[0]), (p[1], p[1]))
    return p


def conv_layer(shape, cin, out, k, s=1, p=0, d=1, groups=1, bias=True) -> nn.Module:
    """nn.Conv2d with PyTorch's own padding where it has one; otherwise F.pad (ZeroPad2d)
    followed by a conv with padding 0."""
    s = _pair(s)
    if len(shape) != 3 or (p == "same" and s == (1, 1)) or p == "valid" or isinstance(p, int) \
            or isinstance(p[0], int):
        padding = p if len(shape) == 3 else 0
        return nn.Conv2d(cin, out, k, s, padding, _pair(d), groups, bias)
    (top, bottom), (left, right) = expected_pads(p, shape, k, s, d)
    return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)),
                         nn.Conv2d(cin, out, k, s, 0, _pair(d), groups, bias))


class CropRule(nn.Module):
    """`crop` as docs/language.md states it: rows from (H - h) // 2, columns from
    (W - w) // 2, of a batch of maps at least as large as the crop."""

    def __init__(self, size) -> None:
        super().__init__()
        self.size = _pair(size)

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"crop: Expected 3D (unbatched) or 4D input, got {x.dim()}D")
        (h, w), (height, width) = self.size, x.shape[2:]
        if h > height or w > width:
            raise ValueError("crop larger than the input")
        top, left = (height - h) // 2, (width - w) // 2
        return x[:, :, top:top + h, left:left + w]


class Pad(nn.Module):
    """F.pad with the (left, right, top, bottom) that each form of `p` stands for."""

    def __init__(self, p, mode: str, value) -> None:
        super().__init__()
        if isinstance(p, int):
            p = (p, p, p, p)
        elif isinstance(p[0], tuple):
            (top, bottom), (left, right) = p
            p = (left, right, top, bottom)
        self.pad, self.mode, self.value = p, mode, value

    def forward(self, x):
        return F.pad(x, self.pad, self.mode, self.value)


def torch_layer(c: Case) -> nn.Module:
    a, shape = c.params, c.in_shape
    if c.op == "conv_transpose":
        return nn.ConvTranspose2d(shape[0], a["out"], a["k"], a.get("s", 1), a.get("p", 0),
                                  a.get("output_padding", 0), a.get("groups", 1),
                                  a.get("bias", True), a.get("d", 1))
    if c.op == "upsample":
        return nn.Upsample(a.get("size"), a.get("scale"), a.get("mode", "nearest"),
                           a.get("align_corners"))
    if c.op == "pad":
        return Pad(a["p"], a.get("mode", "constant"), a.get("value"))
    if c.op == "conv":
        return conv_layer(shape, shape[0], a["out"], a["k"], a.get("s", 1), a.get("p", 0),
                          a.get("d", 1), a.get("groups", 1), a.get("bias", True))
    if c.op == "dwconv":
        return conv_layer(shape, shape[0], shape[0] * a.get("multiplier", 1), a["k"],
                          a.get("s", 1), a.get("p", 0), a.get("d", 1), shape[0],
                          a.get("bias", True))
    if c.op == "pwconv":
        return nn.Conv2d(shape[0], a["out"], 1, a.get("s", 1), 0, 1, a.get("groups", 1),
                         a.get("bias", True))
    if c.op == "maxpool":
        return nn.MaxPool2d(a["k"], a.get("s"), a.get("p", 0), a.get("d", 1),
                            ceil_mode=a.get("ceil_mode", False))
    if c.op == "avgpool":
        return nn.AvgPool2d(a["k"], a.get("s"), a.get("p", 0), a.get("ceil_mode", False),
                            a.get("count_include_pad", True))
    if c.op == "batchnorm":
        norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        return norm(shape[0], a.get("eps", 1e-5), a.get("momentum", 0.1), a.get("affine", True))
    if c.op == "lrn":
        return nn.LocalResponseNorm(a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75),
                                    a.get("k", 1.0))
    if c.op == "linear":
        return nn.Linear(math.prod(shape), a["out"], a.get("bias", True))
    if c.op == "groupnorm":
        return nn.GroupNorm(a["groups"], shape[0], a.get("eps", 1e-5), a.get("affine", True))
    if c.op == "instancenorm":
        return nn.InstanceNorm2d(shape[0], a.get("eps", 1e-5), a.get("momentum", 0.1),
                                 a.get("affine", False), a.get("track", False))
    if c.op in ("layernorm", "layernorm2d"):
        # over the channels, as one means it: nn.LayerNorm(C) itself normalises the last axis
        norm = nn.LayerNorm(shape[0], a.get("eps", 1e-5), a.get("affine", True))
        return norm if c.op == "layernorm" else ChannelsLastNorm(norm)
    if c.op == "scale":
        return Scale((shape[0],) + (1,) * (len(shape) - 1), a.get("init", 1.0))
    simple = {
        # sizes as pairs: AdaptiveAvgPool2d(1) has a fast path (a mean over the last two
        # axes) that accepts a flat (N, F) input and silently averages the batch away
        "adaptive_avgpool": lambda: nn.AdaptiveAvgPool2d(_pair(a["size"])),
        "adaptive_maxpool": lambda: nn.AdaptiveMaxPool2d(_pair(a["size"])),
        "global_avgpool": lambda: nn.AdaptiveAvgPool2d((1, 1)),
        "global_maxpool": lambda: nn.AdaptiveMaxPool2d((1, 1)),
        "relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
        "silu": nn.SiLU, "identity": nn.Identity, "flatten": nn.Flatten,
        "softmax": lambda: nn.Softmax(dim=1),  # channels of a map, features of a flat input
        "leaky_relu": lambda: nn.LeakyReLU(a.get("slope", 0.01)),
        "gelu": lambda: nn.GELU(approximate=a.get("approximate", "none")),
        "dropout": lambda: nn.Dropout(a.get("p", 0.5)),
        "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid, "mish": nn.Mish,
        "dropout2d": lambda: nn.Dropout2d(a.get("p", 0.5)),
        "alpha_dropout": lambda: nn.AlphaDropout(a.get("p", 0.5)),
        "stochastic_depth": lambda: DropRows(a["p"], a.get("mode", "row")),
        "channel_shuffle": lambda: nn.ChannelShuffle(a["groups"]),
        "crop": lambda: CropRule(a["size"]),
        "pixel_shuffle": lambda: nn.PixelShuffle(a["r"]),
        "pixel_unshuffle": lambda: nn.PixelUnshuffle(a["r"]),
    }
    return simple[c.op]()


# What PyTorch's complaint means, as an archspec diagnostic code.
TORCH_ERRORS = [
    ("Kernel size can't be greater than actual input size", "E302"),
    ("Output size is too small", "E301"),
    ("pad should be", "E308"),
    ("divisible by groups", "E305"),
    ("Expected 3D", "E306"),
    ("3D or 4D", "E306"),
    ("Dimension out of range", "E306"),  # avg_pool2d on a flat (N, F) input
    ("Input dimension should be at least 3", "E306"),  # adaptive_avg_pool2d, flat input
    ("mat1 and mat2 shapes cannot be multiplied", "E307"),
    ("must be divisible by num_groups", "E305"),  # GroupNorm
    ("Number of channels must be divisible by groups", "E305"),  # channel_shuffle
    ("channel_shuffle expects input with > 2 dims", "E306"),
    ("Expected more than 1 spatial element", "E306"),  # instance norm over one position
    ("number of dimensions in the tensor input does not match", "E306"),  # permute, flat input
    ("Given normalized_shape", "E307"),  # LayerNorm(C) on a map whose last axis is not C
    # oneDNN's words for a transposed conv's output below 1 (without it: Output size is too
    # small)
    ("could not construct a memory descriptor", "E301"),
    ("output padding must be smaller than either stride or dilation", "E216"),
    ("either size or scale_factor should be defined", "E205"),
    ("only one of size or scale_factor should be defined", "E216"),
    ("align_corners option can only be set with the interpolating modes", "E216"),
    ("Input and output sizes should be greater than 0", "E301"),
    ("Only 3D, 4D and 5D input Tensors supported", "E306"),  # interpolate, flat input
    ("must have the same number of spatial dimensions", "E306"),  # per-axis sizes, flat
    ("crop larger than the input", "E313"),
    ("Padding size should be less than the corresponding input dimension", "E313"),
    ("Padding value causes wrapping around more than once", "E313"),
    ("doesn't take in value argument", "E216"),
    ("expects input to have at least 3 dimensions", "E306"),  # pixel_(un)shuffle, flat
    ("dimension to be divisible by the square of upscale_factor", "E305"),
    ("to be divisible by downscale_factor", "E314"),
]

# Inputs PyTorch runs but archspec refuses on purpose: (op, rank of the input) -> the code
# archspec gives. Why, for each:
BY_DESIGN = {
    # nn.LayerNorm(C) on N x C x H x W normalises the last axis, W, not the channels; PyTorch
    # runs it whenever W happens to equal C, and the result is silently not a layer norm over
    # the channels. layernorm2d, or layernorm inside channels_last, is that.
    ("layernorm", 3): "E307",
    # nn.GroupNorm accepts (N, C); on flat features it is a layer norm over groups of
    # features, which the spec should say with layernorm (the hint proposes it).
    ("groupnorm", 1): "E306",
    # nn.Dropout2d on (N, F) is deprecated (a warning) and then acts as plain dropout: a
    # spec that means dropout says so.
    ("dropout2d", 1): "E306",
    # F.pad on (N, F) with four widths pads the batch axis too: a spec pads maps.
    ("pad", 1): "E306",
}

# Ops whose PyTorch layer checks its input only while training: the grid runs these in train
# mode (instance norm refuses a single position per channel whenever it uses the sample's own
# statistics, that is always while training).
TRAINING_CHECKS = {"instancenorm"}


def torch_code(error: Exception) -> str:
    for fragment, code in TORCH_ERRORS:
        if fragment in str(error):
            return code
    raise AssertionError(f"unexpected PyTorch error {type(error).__name__}: {error}")


def convolution(module: nn.Module) -> nn.Conv2d:
    return module if isinstance(module, nn.Conv2d) else module[-1]


# ---------------------------------------------------------------- archspec, once per family


@dataclass
class Outcome:
    line: int
    layer: object | None  # the one checked layer, or None
    errors: list  # diagnostics reported at the op's line


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """case id -> Outcome; each family's spec is written and checked on first use."""
    cache: dict[str, dict[str, Outcome]] = {}
    root = tmp_path_factory.mktemp("ops_torch")

    def outcomes(family: str) -> dict[str, Outcome]:
        if family not in cache:
            cases = FAMILIES[family]
            text = "".join(
                f"# {c.id}\nnetwork n{i}() {{\n  input [{', '.join(map(str, c.in_shape))}]\n"
                f"  {c.stmt}\n}}\n" for i, c in enumerate(cases))
            path = root / f"{family}.arch"
            path.write_text(text)
            result = archspec.check_file(str(path))
            lines = {5 * i + 4: c for i, c in enumerate(cases)}
            stray = [d for d in result.diagnostics if d.span is None or d.span.line not in lines
                     or d.span.file != str(path)]
            assert not stray, [(d.code, d.span, d.message) for d in stray]
            nets = {net.name: net for net in result.networks}
            found = {}
            for i, c in enumerate(cases):
                line = 5 * i + 4
                net = nets.get(f"n{i}")
                layers = list(net.layers()) if net is not None else []
                errors = [d for d in result.diagnostics if d.span.line == line]
                assert len(layers) <= 1 and all(layer.span.line == line for layer in layers)
                found[c.id] = Outcome(line, layers[0] if layers and not errors else None,
                                      errors)
            cache[family] = found
        return cache[family]

    return outcomes


def check_against_torch(family: str, c: Case, compiled) -> tuple[object, nn.Module, torch.Tensor]:
    """Shapes and errors of one case; returns (layer, torch module, torch output)."""
    outcome = compiled(family)[c.id]
    torch.manual_seed(0)
    x = torch.randn(2, *c.in_shape)
    got = [(d.code, d.span.line) for d in outcome.errors]
    design = BY_DESIGN.get((c.op, len(c.in_shape)))
    try:
        module = torch_layer(c).train(c.op in TRAINING_CHECKS)
        with torch.no_grad():
            y = module(x)
    except (RuntimeError, ValueError, IndexError) as error:
        code = torch_code(error)
        code = design or code  # archspec's refusal by design comes before its other checks
        assert got == [(code, outcome.line)], (
            f"PyTorch raises ({error}); archspec should report {code} at line {outcome.line}, "
            f"reported {got}")
        return None, None, None
    if 0 in y.shape[1:]:  # torch gives an empty map (conv_transpose); archspec refuses it
        assert got == [("E301", outcome.line)], (
            f"PyTorch gives the empty {tuple(y.shape[1:])}: archspec should refuse it with E301, "
            f"reported {got}")
        return None, None, None
    if design is not None:
        assert got == [(design, outcome.line)], (
            f"PyTorch runs this, archspec refuses it on purpose with {design}; got {got}")
        return None, None, None
    assert not outcome.errors, (
        f"false alarm: PyTorch gives {tuple(y.shape[1:])}, archspec reports "
        f"{[(d.code, d.message, d.detail) for d in outcome.errors]}")
    layer = outcome.layer
    assert layer is not None and layer.op.name == c.op
    assert layer.in_shape == c.in_shape
    assert layer.out_shape == tuple(y.shape[1:]), f"PyTorch gives {tuple(y.shape)}"
    assert layer.params == sum(p.numel() for p in module.parameters())
    return layer, module, y


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


# ---------------------------------------------------------------- one test per family


def _check_conv(family: str, c: Case, compiled) -> None:
    layer, module, y = check_against_torch(family, c, compiled)
    if layer is None:
        return
    conv = convolution(module)
    kh, kw = conv.kernel_size
    assert layer.macs == y[0].numel() * conv.in_channels // conv.groups * kh * kw
    assert layer.attrs["in_channels"] == c.in_shape[0]
    assert layer.attrs["groups"] == conv.groups
    a = c.params
    pads = expected_pads(a.get("p", 0), c.in_shape, a.get("k", 1), a.get("s", 1), a.get("d", 1))
    assert layer.attrs["padding"] == pads
    if a.get("p") == "same":  # TensorFlow's rule: ceil(size / stride)
        s = _pair(a.get("s", 1))
        assert layer.out_shape[1:] == tuple(math.ceil(n / st) for n, st in zip(c.in_shape[1:], s))
    # archspec's resolved padding, applied with F.pad, reproduces the torch layer exactly
    (top, bottom), (left, right) = layer.attrs["padding"]
    x = torch.randn(2, *c.in_shape)
    with torch.no_grad():
        expected = module(x)
        explicit = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias,
                            layer.attrs["stride"], 0, layer.attrs["dilation"], conv.groups)
    torch.testing.assert_close(explicit, expected)


@pytest.mark.parametrize("c", FAMILIES["conv"], ids=ids(FAMILIES["conv"]))
def test_conv(c, compiled):
    _check_conv("conv", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["dwconv"], ids=ids(FAMILIES["dwconv"]))
def test_dwconv(c, compiled):
    _check_conv("dwconv", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["pwconv"], ids=ids(FAMILIES["pwconv"]))
def test_pwconv(c, compiled):
    _check_conv("pwconv", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["maxpool"], ids=ids(FAMILIES["maxpool"]))
def test_maxpool(c, compiled):
    check_against_torch("maxpool", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["avgpool"], ids=ids(FAMILIES["avgpool"]))
def test_avgpool(c, compiled):
    check_against_torch("avgpool", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["adaptive_global_pool"],
                         ids=ids(FAMILIES["adaptive_global_pool"]))
def test_adaptive_global_pool(c, compiled):
    check_against_torch("adaptive_global_pool", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["norm"], ids=ids(FAMILIES["norm"]))
def test_norm(c, compiled):
    layer, module, _ = check_against_torch("norm", c, compiled)
    if layer is not None and c.op == "batchnorm":
        assert layer.attrs["features"] == module.num_features
        assert layer.attrs["dims"] == (2 if isinstance(module, nn.BatchNorm2d) else 1)


@pytest.mark.parametrize("c", FAMILIES["channel_norm"], ids=ids(FAMILIES["channel_norm"]))
def test_channel_norm(c, compiled):
    layer, module, _ = check_against_torch("channel_norm", c, compiled)
    if layer is not None:
        norm = getattr(module, "norm", module)  # layernorm2d's reference wraps nn.LayerNorm
        features = {"groupnorm": "num_channels", "instancenorm": "num_features"}
        want = getattr(norm, features[c.op]) if c.op in features else norm.normalized_shape[0]
        assert layer.attrs["features"] == want


@pytest.mark.parametrize("c", FAMILIES["activation"], ids=ids(FAMILIES["activation"]))
def test_activation(c, compiled):
    check_against_torch("activation", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["reshape_linear"], ids=ids(FAMILIES["reshape_linear"]))
def test_reshape_linear(c, compiled):
    layer, module, _ = check_against_torch("reshape_linear", c, compiled)
    if layer is not None and c.op == "linear":
        assert layer.macs == module.in_features * module.out_features
        assert layer.attrs["in_features"] == module.in_features


@pytest.mark.parametrize("c", FAMILIES["conv_transpose"], ids=ids(FAMILIES["conv_transpose"]))
def test_conv_transpose(c, compiled):
    """Shapes and refusals as torch's; MACs per input value (docs/counting.md)."""
    layer, module, _ = check_against_torch("conv_transpose", c, compiled)
    if layer is None:
        return
    kh, kw = module.kernel_size
    assert layer.macs == (math.prod(c.in_shape) * module.out_channels // module.groups
                          * kh * kw)


@pytest.mark.parametrize("c", FAMILIES["upsample"], ids=ids(FAMILIES["upsample"]))
def test_upsample(c, compiled):
    check_against_torch("upsample", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["crop"], ids=ids(FAMILIES["crop"]))
def test_crop(c, compiled, tmp_path):
    """The documented window, and archspec's module (CenterCrop2d) cropping that window."""
    layer, module, _ = check_against_torch("crop", c, compiled)
    if layer is None:
        return
    (_, h, w), (_, oh, ow) = c.in_shape, layer.out_shape
    assert layer.attrs["offset"] == ((h - oh) // 2, (w - ow) // 2)
    spec = tmp_path / "crop.arch"
    spec.write_text(f"network n() {{\n  input [{', '.join(map(str, c.in_shape))}]\n"
                    f"  {c.stmt}\n}}\n")
    x = torch.randn(2, *c.in_shape)
    assert torch.equal(archspec.build(str(spec))(x), module(x))


@pytest.mark.parametrize("c", FAMILIES["pad"], ids=ids(FAMILIES["pad"]))
def test_pad(c, compiled):
    check_against_torch("pad", c, compiled)


@pytest.mark.parametrize("c", FAMILIES["pixel_shuffle"], ids=ids(FAMILIES["pixel_shuffle"]))
def test_pixel_shuffle(c, compiled):
    check_against_torch("pixel_shuffle", c, compiled)


# ---------------------------------------------------------------- the grid covers everything


def test_every_op_and_argument_is_covered():
    """Adding an op (or an argument) without a torch case here fails this test."""
    cases = [c for family in FAMILIES.values() for c in family]
    ops = {c.op for c in cases}
    assert set(REGISTRY) - ops == set(), "ops without a torch check"
    assert ops - set(REGISTRY) == set()
    for name, spec in REGISTRY.items():
        used = {k for c in cases if c.op == name for k, _ in c.args}
        tensors = TENSOR_ARGUMENTS  # a second tensor: its grid is in tests/test_named_tensors.py
        assert set(spec.args.model_fields) - used - tensors == set(), (
            f"`{name}` arguments never varied")
        written = [c for c in cases if c.op == name and c.n_positional]
        assert not spec.positional or written, f"`{name}` never called positionally"
        assert all(c.params.keys() <= set(spec.args.model_fields) for c in cases if c.op == name)
    ids_all = [c.id for c in cases]
    assert len(ids_all) == len(set(ids_all))


def test_grid_reaches_every_torch_error(compiled):
    """The grid is not all happy paths: every shape error PyTorch can raise here is hit."""
    codes: dict[str, int] = {}
    successes: dict[str, int] = {}
    for family, cases in FAMILIES.items():
        for c in cases:
            outcome = compiled(family)[c.id]
            for d in outcome.errors:
                codes[d.code] = codes.get(d.code, 0) + 1
            if outcome.layer is not None:
                successes[c.op] = successes.get(c.op, 0) + 1
    assert {"E205", "E216", "E301", "E302", "E305", "E306", "E307", "E308", "E313",
            "E314"} <= set(codes), codes
    assert set(successes) == set(REGISTRY), "every op needs at least one case that runs"
