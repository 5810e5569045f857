"""The op registry: each op is declared once, with its argument schema (pydantic), its shape
rule, its parameter count and its MAC count. Backends look ops up here by name.

A shape rule takes the validated arguments and the incoming shape and returns the outgoing
shape plus the op's *resolved attributes* (input channels, explicit per-side padding, ...):
everything a backend needs, so that no backend ever repeats shape inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) for flat features; no batch
Pair = tuple[int, int]
Pads = tuple[Pair, Pair]  # ((top, bottom), (left, right))


class ShapeError(Exception):
    """A shape rule's complaint; the expander turns it into a Diagnostic at the call."""

    def __init__(self, code: str, message: str, detail: str | None = None,
                 formula: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.detail, self.formula, self.hint = detail, formula, hint


def fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


# ---------------------------------------------------------------- argument schemas

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosPair = PosInt | tuple[PosInt, PosInt]
NonNegPair = NonNegInt | tuple[NonNegInt, NonNegInt]
Padding = (NonNegInt | tuple[NonNegInt, NonNegInt]
           | tuple[tuple[NonNegInt, NonNegInt], tuple[NonNegInt, NonNegInt]]
           | Literal["same", "valid"])
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


class Args(BaseModel):
    """Base of every op's argument schema: strict types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class NoArgs(Args):
    pass


class ConvArgs(Args):
    out: PosInt = Field(description="output channels")
    k: PosPair = Field(description="kernel size: k or (kh, kw)")
    s: PosPair = Field(1, description="stride: s or (sh, sw)")
    p: Padding = Field(0, description="padding: p, (ph, pw), ((top, bottom), (left, right)), "
                                      "'same' or 'valid'")
    d: PosPair = Field(1, description="dilation: d or (dh, dw)")
    groups: PosInt = Field(1, description="number of channel groups")
    bias: bool = Field(True, description="learn an additive bias")


class DepthwiseArgs(Args):
    k: PosPair = Field(description="kernel size")
    s: PosPair = Field(1, description="stride")
    p: Padding = Field(0, description="padding")
    d: PosPair = Field(1, description="dilation")
    multiplier: PosInt = Field(1, description="output channels per input channel")
    bias: bool = Field(True, description="learn an additive bias")


class PointwiseArgs(Args):
    out: PosInt = Field(description="output channels")
    s: PosPair = Field(1, description="stride")
    groups: PosInt = Field(1, description="number of channel groups")
    bias: bool = Field(True, description="learn an additive bias")


class MaxPoolArgs(Args):
    k: PosPair = Field(description="window size")
    s: PosPair | None = Field(None, description="stride (default: the window size)")
    p: NonNegPair = Field(0, description="padding, at most half the window")
    d: PosPair = Field(1, description="dilation")
    ceil_mode: bool = Field(False, description="round the output size up")


class AvgPoolArgs(Args):
    k: PosPair = Field(description="window size")
    s: PosPair | None = Field(None, description="stride (default: the window size)")
    p: NonNegPair = Field(0, description="padding, at most half the window")
    ceil_mode: bool = Field(False, description="round the output size up")
    count_include_pad: bool = Field(True, description="count padded zeros in the average")


class AdaptivePoolArgs(Args):
    size: PosPair = Field(description="output size: s or (sh, sw)")


class BatchNormArgs(Args):
    eps: PositiveFloat = Field(1e-5, description="added to the variance")
    momentum: Probability = Field(0.1, description="running-statistics momentum")
    affine: bool = Field(True, description="learn scale and shift")


class LeakyReluArgs(Args):
    slope: float = Field(0.01, description="slope for negative inputs")


class GeluArgs(Args):
    approximate: Literal["none", "tanh"] = Field("none", description="'none' or 'tanh'")


class LrnArgs(Args):
    size: PosInt = Field(description="number of neighbouring channels")
    alpha: float = Field(1e-4, description="scale")
    beta: float = Field(0.75, description="exponent")
    k: float = Field(1.0, description="additive constant")


class DropoutArgs(Args):
    p: Probability = Field(0.5, description="probability of zeroing, in [0, 1)")


class LinearArgs(Args):
    out: PosInt = Field(description="output features")
    bias: bool = Field(True, description="learn an additive bias")


# ---------------------------------------------------------------- geometry helpers


def pair(value) -> Pair:
    return (value, value) if isinstance(value, int) else tuple(value)


def need_map(shape: Shape, op: str) -> None:
    if len(shape) != 3:
        raise ShapeError("E306", f"`{op}` needs a C x H x W input, got {fmt_shape(shape)}",
                         detail=f"incoming shape is {fmt_shape(shape)}",
                         hint="spatial ops come before `flatten`; remove the flatten above "
                              "or move this op before it")


def same_pads(size: int, k: int, s: int, d: int) -> Pair:
    """TensorFlow's 'same': output ceil(size / s); the odd pixel goes to the bottom/right."""
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def resolve_padding(p, hw: Pair, k: Pair, s: Pair, d: Pair) -> Pads:
    if p == "valid":
        return ((0, 0), (0, 0))
    if p == "same":
        return (same_pads(hw[0], k[0], s[0], d[0]), same_pads(hw[1], k[1], s[1], d[1]))
    if isinstance(p, int):
        return ((p, p), (p, p))
    if isinstance(p[0], int):
        return ((p[0], p[0]), (p[1], p[1]))
    return (tuple(p[0]), tuple(p[1]))


def _window_formula(axis: str, size: int, pads: Pair, k: int, s: int, d: int,
                    ceil: bool, result: int) -> str:
    rounding = "ceil" if ceil else "floor"
    return (f"{axis}_out = {rounding}(({axis} + pad_before + pad_after - d*(k-1) - 1) / s) + 1 "
            f"= {rounding}(({size} + {pads[0]} + {pads[1]} - {d}*({k}-1) - 1) / {s}) + 1 "
            f"= {result}")


def conv_extent(axis: str, size: int, pads: Pair, k: int, s: int, d: int, op: str) -> int:
    """PyTorch's convolution output size, refusing a kernel larger than the padded input."""
    padded = size + pads[0] + pads[1]
    reach = d * (k - 1) + 1
    if padded < reach:
        raise ShapeError(
            "E302", f"`{op}` kernel is larger than the padded input",
            detail=f"padded {'height' if axis == 'H' else 'width'} is {padded} "
                   f"({size} + {pads[0]} + {pads[1]}), the kernel spans {reach}",
            formula=_window_formula(axis, size, pads, k, s, d, False,
                                    (padded - reach) // s + 1),
            hint="pad more, use a smaller kernel or dilation, or downsample less before this")
    return (padded - reach) // s + 1


def pool_extent(axis: str, size: int, pads: Pair, k: int, s: int, d: int,
                ceil_mode: bool, op: str) -> int:
    """PyTorch's pooling output size (pooling_output_shape), with ceil_mode's correction."""
    if pads[0] > k // 2:
        raise ShapeError(
            "E308", f"`{op}` padding is larger than half the window",
            detail=f"padding {pads[0]} with window {k}; PyTorch allows at most {k // 2}",
            hint=f"use p <= {k // 2}, or a larger window")
    numerator = size + pads[0] + pads[1] - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    if ceil_mode and (out - 1) * s >= size + pads[0]:
        out -= 1
    if out < 1:
        raise ShapeError(
            "E301", f"`{op}` output {'height' if axis == 'H' else 'width'} becomes {out}",
            detail=f"incoming {'height' if axis == 'H' else 'width'} is {size}, window {k}",
            formula=_window_formula(axis, size, pads, k, s, d, ceil_mode, out),
            hint="the input is too small here: downsample less before this, or pad")
    return out


# ---------------------------------------------------------------- shape rules


def _conv_like(op: str, shape: Shape, out: int, k, s, p, d, groups: int,
               bias: bool) -> tuple[Shape, dict]:
    need_map(shape, op)
    c, h, w = shape
    k, s, d = pair(k), pair(s), pair(d)
    if c % groups or out % groups:
        raise ShapeError(
            "E305", f"`{op}` groups={groups} must divide input and output channels",
            detail=f"input channels {c}, output channels {out}, groups {groups}",
            formula=f"{c} % {groups} = {c % groups}, {out} % {groups} = {out % groups}",
            hint="pick groups that divide both channel counts")
    pads = resolve_padding(p, (h, w), k, s, d)
    oh = conv_extent("H", h, pads[0], k[0], s[0], d[0], op)
    ow = conv_extent("W", w, pads[1], k[1], s[1], d[1], op)
    attrs = {"in_channels": c, "out_channels": out, "kernel": k, "stride": s, "padding": pads,
                 "dilation": d, "groups": groups, "bias": bias}
    return (out, oh, ow), attrs


def conv_shape(a: ConvArgs, shape: Shape):
    return _conv_like("conv", shape, a.out, a.k, a.s, a.p, a.d, a.groups, a.bias)


def dwconv_shape(a: DepthwiseArgs, shape: Shape):
    need_map(shape, "dwconv")
    c = shape[0]
    return _conv_like("dwconv", shape, c * a.multiplier, a.k, a.s, a.p, a.d, c, a.bias)


def pwconv_shape(a: PointwiseArgs, shape: Shape):
    return _conv_like("pwconv", shape, a.out, 1, a.s, 0, 1, a.groups, a.bias)


def _pool_shape(op: str, a, shape: Shape, dilation) -> tuple[Shape, dict]:
    need_map(shape, op)
    c, h, w = shape
    k = pair(a.k)
    s = pair(a.s) if a.s is not None else k
    d = pair(dilation)
    p = pair(a.p)
    pads = ((p[0], p[0]), (p[1], p[1]))
    oh = pool_extent("H", h, pads[0], k[0], s[0], d[0], a.ceil_mode, op)
    ow = pool_extent("W", w, pads[1], k[1], s[1], d[1], a.ceil_mode, op)
    attrs = {"kernel": k, "stride": s, "padding": p, "dilation": d, "ceil_mode": a.ceil_mode}
    return (c, oh, ow), attrs


def maxpool_shape(a: MaxPoolArgs, shape: Shape):
    return _pool_shape("maxpool", a, shape, a.d)


def avgpool_shape(a: AvgPoolArgs, shape: Shape):
    out, attrs = _pool_shape("avgpool", a, shape, 1)
    attrs.pop("dilation")
    attrs["count_include_pad"] = a.count_include_pad
    return out, attrs


def _adaptive_shape(op: str):
    def rule(a: AdaptivePoolArgs, shape: Shape):
        need_map(shape, op)
        size = pair(a.size)
        return (shape[0], *size), {"size": size}
    return rule


def _global_shape(op: str):
    def rule(a: NoArgs, shape: Shape):
        need_map(shape, op)
        return (shape[0], 1, 1), {}
    return rule


def _map_preserving(op: str):
    def rule(a: Args, shape: Shape):
        need_map(shape, op)
        return shape, dict(a.model_dump())
    return rule


def _any_preserving(a: Args, shape: Shape):
    return shape, dict(a.model_dump())


def batchnorm_shape(a: BatchNormArgs, shape: Shape):
    return shape, dict(a.model_dump(), features=shape[0], dims=2 if len(shape) == 3 else 1)


def flatten_shape(a: NoArgs, shape: Shape):
    return (prod(shape),), {}


def linear_shape(a: LinearArgs, shape: Shape):
    if len(shape) != 1:
        raise ShapeError(
            "E307", f"`linear` needs a flat input, got {fmt_shape(shape)}",
            detail=f"incoming shape is {fmt_shape(shape)} ({prod(shape)} values)",
            hint=f"add `flatten` before it (it gives {prod(shape)} features), or a "
                 f"`global_avgpool` then `flatten` (it gives {shape[0]})")
    return (a.out,), {"in_features": shape[0], "out_features": a.out, "bias": a.bias}


# ---------------------------------------------------------------- counts


def conv_params(attrs: dict, out: Shape) -> int:
    kh, kw = attrs["kernel"]
    weights = attrs["out_channels"] * attrs["in_channels"] // attrs["groups"] * kh * kw
    return weights + (attrs["out_channels"] if attrs["bias"] else 0)


def conv_macs(attrs: dict, out: Shape) -> int:
    kh, kw = attrs["kernel"]
    return prod(out) * attrs["in_channels"] // attrs["groups"] * kh * kw


def linear_params(attrs: dict, out: Shape) -> int:
    return attrs["in_features"] * attrs["out_features"] + (attrs["out_features"]
                                                           if attrs["bias"] else 0)


def linear_macs(attrs: dict, out: Shape) -> int:
    return attrs["in_features"] * attrs["out_features"]


def batchnorm_params(attrs: dict, out: Shape) -> int:
    return 2 * attrs["features"] if attrs["affine"] else 0


def _zero(attrs: dict, out: Shape) -> int:
    return 0


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class OpSpec:
    name: str
    family: str  # conv, norm, activation, pool, linear, reshape, regularization, identity
    args: type[Args]
    shape: Callable[[Args, Shape], tuple[Shape, dict]]
    positional: tuple[str, ...] = ()
    params: Callable[[dict, Shape], int] = _zero
    macs: Callable[[dict, Shape], int] = _zero
    doc: str = ""
    aliases: dict[str, str] = field(default_factory=dict)


_CONV_ALIASES = {"kernel": "k", "stride": "s", "padding": "p", "dilation": "d",
                 "out_channels": "out"}
_POOL_ALIASES = {"kernel": "k", "stride": "s", "padding": "p", "dilation": "d"}

_OPS = [
    OpSpec("conv", "conv", ConvArgs, conv_shape, ("out", "k", "s", "p"), conv_params, conv_macs,
           "2-D convolution (nn.Conv2d); input channels are inferred", _CONV_ALIASES),
    OpSpec("dwconv", "conv", DepthwiseArgs, dwconv_shape, ("k", "s", "p"), conv_params,
           conv_macs, "depthwise convolution: groups = input channels", _CONV_ALIASES),
    OpSpec("pwconv", "conv", PointwiseArgs, pwconv_shape, ("out",), conv_params, conv_macs,
           "pointwise (1x1) convolution", _CONV_ALIASES),
    OpSpec("batchnorm", "norm", BatchNormArgs, batchnorm_shape, (), batchnorm_params,
           doc="batch normalisation (BatchNorm2d on maps, BatchNorm1d on features)"),
    OpSpec("lrn", "norm", LrnArgs, _map_preserving("lrn"), ("size",),
           doc="local response normalisation (AlexNet, GoogLeNet)"),
    OpSpec("relu", "activation", NoArgs, _any_preserving, doc="max(x, 0)"),
    OpSpec("relu6", "activation", NoArgs, _any_preserving, doc="min(max(x, 0), 6)"),
    OpSpec("leaky_relu", "activation", LeakyReluArgs, _any_preserving, ("slope",),
           doc="x, or slope * x for x < 0"),
    OpSpec("sigmoid", "activation", NoArgs, _any_preserving, doc="1 / (1 + exp(-x))"),
    OpSpec("tanh", "activation", NoArgs, _any_preserving, doc="hyperbolic tangent"),
    OpSpec("gelu", "activation", GeluArgs, _any_preserving, ("approximate",),
           doc="Gaussian error linear unit"),
    OpSpec("silu", "activation", NoArgs, _any_preserving, doc="x * sigmoid(x) (swish)"),
    OpSpec("softmax", "activation", NoArgs, _any_preserving,
           doc="softmax over channels (maps) or features (flat)"),
    OpSpec("maxpool", "pool", MaxPoolArgs, maxpool_shape, ("k", "s", "p"),
           doc="max pooling (nn.MaxPool2d)", aliases=_POOL_ALIASES),
    OpSpec("avgpool", "pool", AvgPoolArgs, avgpool_shape, ("k", "s", "p"),
           doc="average pooling (nn.AvgPool2d)", aliases=_POOL_ALIASES),
    OpSpec("global_avgpool", "pool", NoArgs, _global_shape("global_avgpool"),
           doc="average over all of H x W: C x 1 x 1"),
    OpSpec("global_maxpool", "pool", NoArgs, _global_shape("global_maxpool"),
           doc="maximum over all of H x W: C x 1 x 1"),
    OpSpec("adaptive_avgpool", "pool", AdaptivePoolArgs, _adaptive_shape("adaptive_avgpool"),
           ("size",), doc="average pooling to a fixed output size"),
    OpSpec("adaptive_maxpool", "pool", AdaptivePoolArgs, _adaptive_shape("adaptive_maxpool"),
           ("size",), doc="max pooling to a fixed output size"),
    OpSpec("dropout", "regularization", DropoutArgs, _any_preserving, ("p",),
           doc="zero each value with probability p while training"),
    OpSpec("flatten", "reshape", NoArgs, flatten_shape, doc="C x H x W to C*H*W features"),
    OpSpec("linear", "linear", LinearArgs, linear_shape, ("out",), linear_params, linear_macs,
           "fully connected layer (nn.Linear); input features are inferred",
           {"out_features": "out"}),
    OpSpec("identity", "identity", NoArgs, _any_preserving, doc="passes its input through"),
]

REGISTRY: dict[str, OpSpec] = {op.name: op for op in _OPS}
