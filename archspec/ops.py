"""The op registry: each op is declared once, with its argument schema (pydantic), its shape
rule, its parameter count and its MAC count. Backends look ops up here by name.

A shape rule takes the validated arguments and the incoming shape and returns the outgoing
shape plus the op's *resolved attributes* (input channels, explicit per-side padding, ...):
everything a backend needs, so that no backend ever repeats shape inference.

Unlike the other modules, this one's annotations are not strings (no `from __future__ import
annotations`): pydantic would evaluate each schema field's string again, a seventh of the
module's import time.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from typing import Annotated, ClassVar, Literal, NamedTuple, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model

# (C, H, W) for feature maps, (F,) for flat features, (C, L) or (T, F) for sequences,
# (C, D, H, W) for volumes; no batch. docs/language.md, "Ranks", says which op reads what.
Shape = tuple[int, ...]
Pair = tuple[int, int]
Pads = tuple[Pair, Pair]  # ((top, bottom), (left, right))


class ShapeError(Exception):
    """A shape rule's complaint; the expander turns it into a Diagnostic at the call."""

    def __init__(self, code: str, message: str, detail: str | None = None,
                 formula: str | None = None, hint: str | None = None,
                 recovered: Shape | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.detail, self.formula, self.hint = detail, formula, hint
        # the shape checking goes on with after the error, where one is plausible
        self.recovered = recovered


def fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


# ---------------------------------------------------------------- argument schemas

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosPair = PosInt | tuple[PosInt, PosInt]
NonNegPair = NonNegInt | tuple[NonNegInt, NonNegInt]
PosTriple = PosInt | tuple[PosInt, PosInt, PosInt]
NonNegTriple = NonNegInt | tuple[NonNegInt, NonNegInt, NonNegInt]
Padding = (NonNegInt | tuple[NonNegInt, NonNegInt]
           | tuple[tuple[NonNegInt, NonNegInt], tuple[NonNegInt, NonNegInt]]
           | Literal["same", "valid"])
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


class Args(BaseModel):
    """Base of every op's argument schema: strict types, no unknown fields. `one_of` names
    optional fields of which a call gives exactly one (`upsample`'s scale or size): the
    expander refuses none (E205) and more than one (E216)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)
    one_of: ClassVar[tuple[str, ...]] = ()

    def attrs(self, **more) -> dict:
        """The arguments as a new dict, with `more`: what model_dump() gives for fields of
        plain values (numbers, strings, tuples), at a tenth of its cost; a shape rule makes
        one for every layer."""
        return {**self.__dict__, **more}


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


class GroupNormArgs(Args):
    groups: PosInt = Field(description="number of channel groups, dividing the channels")
    eps: PositiveFloat = Field(1e-5, description="added to the variance")
    affine: bool = Field(True, description="learn a per-channel scale and shift")


class InstanceNormArgs(Args):
    eps: PositiveFloat = Field(1e-5, description="added to the variance")
    momentum: Probability = Field(0.1, description="running-statistics momentum")
    affine: bool = Field(False, description="learn a per-channel scale and shift")
    track: bool = Field(False, description="keep running statistics (track_running_stats)")


class LayerNormArgs(Args):
    eps: PositiveFloat = Field(1e-5, description="added to the variance")
    affine: bool = Field(True, description="learn a scale and shift (elementwise_affine)")


class ShuffleArgs(Args):
    groups: PosInt = Field(description="channel groups to interleave, dividing the channels")


class StochasticDepthArgs(Args):
    p: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        description="probability of dropping the branch while training, in [0, 1]")
    mode: Literal["row", "batch"] = Field("row", description="'row': per sample; 'batch'")


class ScaleArgs(Args):
    init: float = Field(1.0, description="initial value of every channel's scale")


class PermuteArgs(Args):
    dims: tuple[NonNegInt, ...] = Field(description="the new order of the sample's dimensions")


class LinearArgs(Args):
    out: PosInt = Field(description="output features")
    bias: bool = Field(True, description="learn an additive bias")


class ConvTransposeArgs(ConvArgs):
    """conv's arguments, but padding is taken off the output and can only be symmetric."""

    s: PosPair = Field(1, description="stride (the upsampling factor): s or (sh, sw)")
    p: NonNegPair = Field(0, description="padding taken off each side of the output: p or "
                                         "(ph, pw)")
    output_padding: NonNegPair = Field(0, description="added to one side (bottom, right) of "
                                                      "the output, below the stride or the "
                                                      "dilation")


UpsampleMode = Literal["nearest", "nearest-exact", "bilinear", "bicubic"]


class UpsampleArgs(Args):
    one_of: ClassVar[tuple[str, ...]] = ("scale", "size", "like")
    scale: PositiveFloat | tuple[PositiveFloat, PositiveFloat] | None = Field(
        None, description="scale factor: s or (sh, sw); the output is floor(H * sh)")
    size: PosPair | None = Field(None, description="output size: s or (h, w)")
    mode: UpsampleMode = Field("nearest", description="'nearest', 'nearest-exact', "
                                                      "'bilinear' or 'bicubic'")
    align_corners: bool | None = Field(None, description="align the corner pixels (bilinear "
                                                         "and bicubic only)")
    like: tuple[PosInt, ...] | None = Field(
        None, description="another tensor, `@name`, whose height and width the output takes "
                          "(at run time as well)")


class CropArgs(Args):
    one_of: ClassVar[tuple[str, ...]] = ("size", "like")
    size: PosPair | None = Field(None, description="output size: s or (h, w)")
    like: tuple[PosInt, ...] | None = Field(
        None, description="another tensor, `@name`, whose height and width the output takes "
                          "(at run time as well)")


PadWidths = (NonNegInt | tuple[NonNegInt, NonNegInt, NonNegInt, NonNegInt]
             | tuple[tuple[NonNegInt, NonNegInt], tuple[NonNegInt, NonNegInt]])


class PadArgs(Args):
    p: PadWidths = Field(description="padding: p, (left, right, top, bottom) as F.pad, or "
                                     "((top, bottom), (left, right)) as conv")
    mode: Literal["constant", "reflect", "replicate", "circular"] = Field(
        "constant", description="'constant', 'reflect', 'replicate' or 'circular'")
    value: float = Field(0.0, description="the fill value of mode 'constant'")


class ShuffleFactorArgs(Args):
    r: PosInt = Field(description="the factor r")


# 1-D (sequences, C x L) and 3-D (volumes, C x D x H x W) forms: the 2-D schemas with one
# or three numbers per axis. Their 'same' padding must be even: see `_conv_like`.

class Conv1dArgs(ConvArgs):
    k: PosInt = Field(description="kernel size")
    s: PosInt = Field(1, description="stride")
    p: NonNegInt | Literal["same", "valid"] = Field(0, description="padding: p, 'same' or "
                                                                   "'valid'")
    d: PosInt = Field(1, description="dilation")


class Conv3dArgs(ConvArgs):
    k: PosTriple = Field(description="kernel size: k or (kd, kh, kw)")
    s: PosTriple = Field(1, description="stride: s or (sd, sh, sw)")
    p: NonNegTriple | Literal["same", "valid"] = Field(
        0, description="padding: p, (pd, ph, pw), 'same' or 'valid'")
    d: PosTriple = Field(1, description="dilation: d or (dd, dh, dw)")


def _pool_args(name: str, base: type[Args], size, padding) -> type[Args]:
    """A pooling schema of another rank: `base`'s fields with `size` (PosInt or PosTriple)
    for the window, stride and dilation and `padding` for the padding."""
    fields = {"k": (size, Field(description="window size")),
              "s": (size | None, Field(None, description="stride (default: the window size)")),
              "p": (padding, Field(0, description="padding, at most half the window"))}
    if "d" in base.model_fields:
        fields["d"] = (size, Field(1, description="dilation"))
    return create_model(name, __base__=base, **fields)


MaxPool1dArgs = _pool_args("MaxPool1dArgs", MaxPoolArgs, PosInt, NonNegInt)
AvgPool1dArgs = _pool_args("AvgPool1dArgs", AvgPoolArgs, PosInt, NonNegInt)
MaxPool3dArgs = _pool_args("MaxPool3dArgs", MaxPoolArgs, PosTriple, NonNegTriple)
AvgPool3dArgs = _pool_args("AvgPool3dArgs", AvgPoolArgs, PosTriple, NonNegTriple)


class RecurrentArgs(Args):
    hidden: PosInt = Field(description="features of the hidden state (hidden_size)")
    layers: PosInt = Field(1, description="stacked recurrent layers (num_layers)")
    bias: bool = Field(True, description="learn the input and hidden biases")
    bidirectional: bool = Field(False, description="also run backwards and concatenate "
                                                   "both directions' features")
    dropout: Probability = Field(0.0, description="dropout on the outputs of every layer "
                                                  "but the last, while training")


class RnnArgs(RecurrentArgs):
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="'tanh' or 'relu'")


# ---------------------------------------------------------------- geometry helpers


def pair(value) -> Pair:
    return (value, value) if isinstance(value, int) else tuple(value)


def spread(value, n: int) -> tuple[int, ...]:
    """One number per axis: 3 -> (3, 3) for maps, (3,) for sequences, (3, 3, 3) for volumes."""
    return (value,) * n if isinstance(value, int) else tuple(value)


# the spatial axes after the channels, by rank, and how messages name them
AXES = {2: ("L",), 3: ("H", "W"), 4: ("D", "H", "W")}
AXIS_WORDS = {"L": "length", "D": "depth", "H": "height", "W": "width"}
RANK_NAMES = {1: "flat features", 2: "a sequence", 3: "a C x H x W map",
              4: "a C x D x H x W volume"}
_WRONG_RANK_HINTS = {  # (rank needed, rank given): the hint
    (3, 1): "spatial ops come before `flatten`; remove the flatten above or move this op "
            "before it",
    (3, 2): "this op takes maps and the input is a sequence: conv1d, maxpool1d, avgpool1d "
            "and batchnorm read C x L sequences; rnn, gru, lstm, linear and layernorm T x F",
    (3, 4): "this op takes maps and the input is a volume: conv3d, maxpool3d, avgpool3d and "
            "batchnorm read volumes",
    (2, 1): "a sequence has two dimensions: declare `input [T, F]`, or do not `flatten` "
            "before this",
    (2, 3): "turn the map into a sequence first: `to_sequence` makes its columns the time "
            "steps (W x C*H; `transpose` then gives C*H x W), or `flatten` it for `linear`",
    (2, 4): "turn the volume into a map or a sequence first (a conv3d or pool that leaves "
            "depth 1 cannot drop the axis: use the 2-D ops on C x H x W)",
    (4, 1): "volume ops come before `flatten`: declare `input [C, D, H, W]`",
    (4, 2): "this is a 3-D op and the input is a sequence: use conv1d, maxpool1d or "
            "avgpool1d",
    (4, 3): "this is a 3-D op and the input is a map: use conv, maxpool or avgpool, or "
            "declare `input [C, D, H, W]`",
}


def need_rank(shape: Shape, op: str, rank: int) -> None:
    """E306 (maps, volumes) or E313 (sequences) when the input has another rank."""
    if len(shape) == rank:
        return
    got = fmt_shape(shape)
    hint = _WRONG_RANK_HINTS.get((rank, len(shape)))
    detail = f"incoming shape is {got} ({RANK_NAMES.get(len(shape), 'rank ' + str(len(shape)))})"
    if rank == 2:
        raise ShapeError("E315", f"`{op}` needs a sequence input, got {got}",
                         detail=detail + "; a sequence is C x L for conv1d, the 1-D pools and "
                                         "batchnorm, T x F for recurrent layers and linear",
                         hint=hint)
    needed = "C x H x W" if rank == 3 else "C x D x H x W"
    raise ShapeError("E306", f"`{op}` needs a {needed} input, got {got}",
                     detail=detail if len(shape) != 1 else f"incoming shape is {got}", hint=hint)


def need_map(shape: Shape, op: str) -> None:
    need_rank(shape, op, 3)


def same_pads(size: int, k: int, s: int, d: int) -> Pair:
    """TensorFlow's 'same': output ceil(size / s); the odd pixel goes to the bottom/right."""
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def resolve_padding(p, sizes: tuple[int, ...], k: tuple, s: tuple, d: tuple) -> tuple[Pair, ...]:
    """(before, after) per spatial axis: ((top, bottom), (left, right)) on maps."""
    if p == "valid":
        return ((0, 0),) * len(sizes)
    if p == "same":
        return tuple(same_pads(*axis) for axis in zip(sizes, k, s, d))
    if isinstance(p, int):
        return ((p, p),) * len(sizes)
    if isinstance(p[0], int):
        return tuple((x, x) for x in p)
    return tuple(tuple(x) for x in p)


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
            detail=f"padded {AXIS_WORDS[axis]} is {padded} "
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
            "E301", f"`{op}` output {AXIS_WORDS[axis]} becomes {out}",
            detail=f"incoming {AXIS_WORDS[axis]} is {size}, window {k}",
            formula=_window_formula(axis, size, pads, k, s, d, ceil_mode, out),
            hint="the input is too small here: downsample less before this, or pad")
    return out


# ---------------------------------------------------------------- shape rules


def _conv_like(op: str, shape: Shape, out: int, k, s, p, d, groups: int,
               bias: bool, rank: int = 3) -> tuple[Shape, dict]:
    """Convolution over the spatial axes of a map (rank 3), sequence (2) or volume (4)."""
    need_rank(shape, op, rank)
    c, *sizes = shape
    axes = AXES[rank]
    k, s, d = spread(k, len(axes)), spread(s, len(axes)), spread(d, len(axes))
    if c % groups or out % groups:
        raise ShapeError(
            "E305", f"`{op}` groups={groups} must divide input and output channels",
            detail=f"input channels {c}, output channels {out}, groups {groups}",
            formula=f"{c} % {groups} = {c % groups}, {out} % {groups} = {out % groups}",
            hint="pick groups that divide both channel counts")
    pads = resolve_padding(p, tuple(sizes), k, s, d)
    uneven = [axis for axis, (before, after) in zip(axes, pads) if before != after]
    if uneven and rank != 3:  # only 2-D convs have a per-side padded form (PaddedConv2d)
        raise ShapeError(
            "E216", f"`{op}` p='same' would pad the {AXIS_WORDS[uneven[0]]} unevenly",
            detail=f"'same' needs {dict(zip(axes, pads))[uneven[0]]} (before, after) here; "
                   f"nn.Conv{rank - 1}d pads both sides alike",
            hint="use an odd kernel and stride 1, or give the padding as a number")
    extents = tuple(conv_extent(*axis, op) for axis in zip(axes, sizes, pads, k, s, d))
    attrs = {"in_channels": c, "out_channels": out, "kernel": k, "stride": s, "padding": pads,
             "dilation": d, "groups": groups, "bias": bias}
    return (out, *extents), attrs


def conv_shape(a: ConvArgs, shape: Shape):
    return _conv_like("conv", shape, a.out, a.k, a.s, a.p, a.d, a.groups, a.bias)


def dwconv_shape(a: DepthwiseArgs, shape: Shape):
    need_map(shape, "dwconv")
    c = shape[0]
    return _conv_like("dwconv", shape, c * a.multiplier, a.k, a.s, a.p, a.d, c, a.bias)


def pwconv_shape(a: PointwiseArgs, shape: Shape):
    return _conv_like("pwconv", shape, a.out, 1, a.s, 0, 1, a.groups, a.bias)


def _conv_nd(op: str, rank: int):
    """conv1d (rank 2, C x L) and conv3d (rank 4, C x D x H x W)."""
    def rule(a: ConvArgs, shape: Shape):
        return _conv_like(op, shape, a.out, a.k, a.s, a.p, a.d, a.groups, a.bias, rank)
    return rule


def _pool_shape(op: str, a, shape: Shape, dilation, rank: int) -> tuple[Shape, dict]:
    need_rank(shape, op, rank)
    c, *sizes = shape
    axes = AXES[rank]
    k = spread(a.k, len(axes))
    s = spread(a.s, len(axes)) if a.s is not None else k
    d = spread(dilation, len(axes))
    p = spread(a.p, len(axes))
    windows = [(axis, size, (pad, pad), *rest, a.ceil_mode, op)
               for axis, size, pad, *rest in zip(axes, sizes, p, k, s, d)]
    for window in windows:  # PyTorch rejects any axis's padding before any size
        if window[2][0] > window[3] // 2:
            pool_extent(*window)
    extents = tuple(pool_extent(*window) for window in windows)
    attrs = {"kernel": k, "stride": s, "padding": p, "dilation": d, "ceil_mode": a.ceil_mode}
    return (c, *extents), attrs


def _maxpool_rule(op: str, rank: int):
    def rule(a: MaxPoolArgs, shape: Shape):
        return _pool_shape(op, a, shape, a.d, rank)
    return rule


def _avgpool_rule(op: str, rank: int):
    def rule(a: AvgPoolArgs, shape: Shape):
        out, attrs = _pool_shape(op, a, shape, 1, rank)
        small = [(axis, size, k) for axis, size, k in zip(AXES[rank], shape[1:], attrs["kernel"])
                 if size < k]
        if rank == 4 and small:  # avg_pool3d wants the window inside the unpadded input
            axis, size, k = small[0]
            raise ShapeError(
                "E301", f"`{op}` window is larger than the input's {AXIS_WORDS[axis]}",
                detail=f"incoming {AXIS_WORDS[axis]} is {size}, window {k}; PyTorch's "
                       "avg_pool3d refuses a window larger than the unpadded input, padding "
                       "or not",
                hint="use a smaller window on that axis, or downsample less before this")
        attrs.pop("dilation")
        attrs["count_include_pad"] = a.count_include_pad
        return out, attrs
    return rule


maxpool_shape = _maxpool_rule("maxpool", 3)
avgpool_shape = _avgpool_rule("avgpool", 3)


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
        return shape, a.attrs()
    return rule


def _any_preserving(a: Args, shape: Shape):
    return shape, a.attrs()


# BatchNorm1d on features and on C x L sequences, 2d on maps, 3d on volumes
BATCHNORM_DIMS = {1: 1, 2: 1, 3: 2, 4: 3}


def batchnorm_shape(a: BatchNormArgs, shape: Shape):
    return shape, a.attrs(features=shape[0], dims=BATCHNORM_DIMS[len(shape)])


def _divides(op: str, shape: Shape, groups: int) -> None:
    if shape[0] % groups:
        raise ShapeError(
            "E305", f"`{op}` groups={groups} must divide the channels",
            detail=f"incoming shape is {fmt_shape(shape)}",
            formula=f"{shape[0]} % {groups} = {shape[0] % groups}",
            hint=f"pick groups that divide {shape[0]}")


def groupnorm_shape(a: GroupNormArgs, shape: Shape):
    if len(shape) == 1:
        raise ShapeError("E306", f"`groupnorm` needs a C x H x W input, got {fmt_shape(shape)}",
                         detail=f"incoming shape is {fmt_shape(shape)}",
                         hint="use layernorm or batchnorm on flat features")
    _divides("groupnorm", shape, a.groups)
    return shape, a.attrs(features=shape[0])


def instancenorm_shape(a: InstanceNormArgs, shape: Shape):
    need_map(shape, "instancenorm")
    if shape[1] * shape[2] == 1:  # PyTorch: "Expected more than 1 spatial element"
        raise ShapeError(
            "E306", f"`instancenorm` needs more than one position, got {fmt_shape(shape)}",
            detail=f"incoming shape is {fmt_shape(shape)}: each channel of a sample is one "
                   "value, which PyTorch refuses to normalise by its own statistics (always "
                   "while training)",
            hint="normalise before the global pooling, or use batchnorm or layernorm here")
    return shape, a.attrs(features=shape[0])


def layernorm_shape(a: LayerNormArgs, shape: Shape):
    if len(shape) not in (1, 2):
        raise ShapeError(
            "E307", f"`layernorm` normalises features, got {fmt_shape(shape)}",
            detail=f"incoming shape is {fmt_shape(shape)}; nn.LayerNorm would normalise "
                   f"the last dimension ({shape[-1]}), not the channels",
            hint="use `layernorm2d` for the channels of a map (ConvNeXt's LayerNorm2d), or "
                 "put `layernorm` inside `channels_last { ... }`")
    return shape, a.attrs(features=shape[-1])  # T x F: each step's features


def layernorm2d_shape(a: LayerNormArgs, shape: Shape):
    need_map(shape, "layernorm2d")
    return shape, a.attrs(features=shape[0])


def shuffle_shape(a: ShuffleArgs, shape: Shape):
    need_map(shape, "channel_shuffle")
    _divides("channel_shuffle", shape, a.groups)
    return shape, a.attrs()


def scale_shape(a: ScaleArgs, shape: Shape):
    return shape, {"init": a.init, "shape": (shape[0], *[1] * (len(shape) - 1))}


def permute_shape(a: PermuteArgs, shape: Shape):
    return tuple(shape[d] for d in a.dims), {"dims": (0, *[d + 1 for d in a.dims])}


def flatten_shape(a: NoArgs, shape: Shape):
    return (prod(shape),), {}


def linear_shape(a: LinearArgs, shape: Shape):
    if len(shape) not in (1, 2):
        raise ShapeError(
            "E307", f"`linear` needs a flat input, got {fmt_shape(shape)}",
            detail=f"incoming shape is {fmt_shape(shape)} ({prod(shape)} values)",
            hint=f"add `flatten` before it (it gives {prod(shape)} features), or a "
                 f"`global_avgpool` then `flatten` (it gives {shape[0]})",
            recovered=(a.out,))  # as if flattened
    # on a T x F sequence, per time step (nn.Linear acts on the last dimension)
    return (*shape[:-1], a.out), {"in_features": shape[-1], "out_features": a.out,
                                  "bias": a.bias}


def softmax_shape(a: NoArgs, shape: Shape):
    """Over dimension 1 of the batch (channels, features), but over the last one, each time
    step's features, on a T x F sequence (as linear and layernorm read a sequence)."""
    return shape, {"dim": 2 if len(shape) == 2 else 1}


def transpose_shape(a: NoArgs, shape: Shape):
    need_rank(shape, "transpose", 2)
    return permute_shape(PermuteArgs(dims=(1, 0)), shape)


def to_sequence_shape(a: NoArgs, shape: Shape):
    need_map(shape, "to_sequence")
    c, h, w = shape
    return (w, c * h), {}


def _recurrent_shape(op: str, gates: int):
    """A T x F sequence to T x hidden (x 2 if bidirectional); `gates` weight blocks."""
    def rule(a: RecurrentArgs, shape: Shape):
        need_rank(shape, op, 2)
        steps, features = shape
        directions = 2 if a.bidirectional else 1
        attrs = a.attrs(input_size=features, gates=gates, steps=steps, directions=directions)
        return (steps, a.hidden * directions), attrs
    return rule


def _axis(axis: str) -> str:
    return "height" if axis == "H" else "width"


def conv_transpose_shape(a: ConvTransposeArgs, shape: Shape):
    need_map(shape, "conv_transpose")
    c, h, w = shape
    k, s, p, op, d = pair(a.k), pair(a.s), pair(a.p), pair(a.output_padding), pair(a.d)
    if c % a.groups or a.out % a.groups:
        raise ShapeError(
            "E305", f"`conv_transpose` groups={a.groups} must divide input and output channels",
            detail=f"input channels {c}, output channels {a.out}, groups {a.groups}",
            formula=f"{c} % {a.groups} = {c % a.groups}, {a.out} % {a.groups} = "
                    f"{a.out % a.groups}",
            hint="pick groups that divide both channel counts")
    for i, axis in enumerate("HW"):
        if op[i] >= max(s[i], d[i]):  # PyTorch: smaller than either stride or dilation
            raise ShapeError(
                "E216", f"`conv_transpose` output_padding {op[i]} on the {_axis(axis)} is not "
                        "smaller than the stride or the dilation",
                detail=f"stride {s[i]}, dilation {d[i]}: PyTorch needs output_padding < "
                       f"max(stride, dilation) = {max(s[i], d[i])}",
                hint="output_padding picks one of the stride's possible sizes: use "
                     f"output_padding < {max(s[i], d[i])}")
    sizes = []
    for i, (axis, n) in enumerate(zip("HW", (h, w))):
        out = (n - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
        if out < 1:
            raise ShapeError(
                "E301", f"`conv_transpose` output {_axis(axis)} becomes {out}",
                detail=f"incoming {_axis(axis)} is {n}, padding {p[i]} takes off more than "
                       "the kernel adds",
                formula=f"{axis}_out = ({axis}-1)*s - 2p + d*(k-1) + output_padding + 1 = "
                        f"({n}-1)*{s[i]} - 2*{p[i]} + {d[i]}*({k[i]}-1) + {op[i]} + 1 = {out}",
                hint="pad less, or use a larger kernel or stride")
        sizes.append(out)
    attrs = {"in_channels": c, "out_channels": a.out, "kernel": k, "stride": s, "padding": p,
             "output_padding": op, "dilation": d, "groups": a.groups, "bias": a.bias,
             "in_size": (h, w)}
    return (a.out, *sizes), attrs


def upsample_shape(a: UpsampleArgs, shape: Shape):
    if a.align_corners is not None and a.mode not in ("bilinear", "bicubic"):
        raise ShapeError(
            "E216", f"`upsample` align_corners applies to 'bilinear' and 'bicubic', not "
                    f"'{a.mode}'",
            detail="PyTorch refuses align_corners with the nearest modes",
            hint="leave align_corners out, or use mode=\"bilinear\"")
    need_map(shape, "upsample")
    c, h, w = shape
    if a.like is not None:
        size, scale = like_size(a.like, "upsample"), None
    elif a.size is not None:
        size = pair(a.size)
        scale = None
    else:
        scale = (a.scale, a.scale) if isinstance(a.scale, float) else tuple(a.scale)
        size = (int(h * scale[0]), int(w * scale[1]))  # PyTorch: floor(size * scale)
        for axis, n, f, out in zip("HW", (h, w), scale, size):
            if out < 1:
                raise ShapeError(
                    "E301", f"`upsample` output {_axis(axis)} becomes {out}",
                    detail=f"incoming {_axis(axis)} is {n}, scale {f}",
                    formula=f"{axis}_out = floor({axis} * scale) = floor({n} * {f}) = {out}",
                    hint="use a larger scale, or give the output size")
    # named as the arguments: the functional form reads either (see _interpolate)
    attrs = {"scale": None if scale is None else _compact(scale),
             "size": None if a.size is None else _compact(size), "mode": a.mode,
             "align_corners": a.align_corners, "like": a.like is not None}
    return (c, *size), attrs


def like_size(like: Shape, op: str) -> Pair:
    """The height and width of the tensor a `like=@name` argument names."""
    if len(like) != 3:
        raise ShapeError("E306", f"`{op}` like= needs a C x H x W tensor, got "
                         f"{fmt_shape(like)}", hint="name a feature map, not flat features")
    return like[1], like[2]


def crop_shape(a: CropArgs, shape: Shape):
    need_map(shape, "crop")
    c, h, w = shape
    size = like_size(a.like, "crop") if a.like is not None else pair(a.size)
    for axis, n, want in zip("HW", (h, w), size):
        if want > n:
            raise ShapeError(
                "E313", f"`crop` to {fmt_shape(size)} is larger than its input",
                detail=f"incoming {_axis(axis)} is {n}, the crop's is {want}",
                hint="crop to at most the input's size, or crop a larger map")
    offsets = ((h - size[0]) // 2, (w - size[1]) // 2)
    return (c, *size), {"size": size, "offset": offsets, "like": a.like is not None}


def pad_widths(p) -> tuple[int, int, int, int]:
    """(left, right, top, bottom), F.pad's order, from any of pad's forms."""
    if isinstance(p, int):
        return (p, p, p, p)
    if len(p) == 4:
        return tuple(p)
    (top, bottom), (left, right) = p
    return (left, right, top, bottom)


def pad_shape(a: PadArgs, shape: Shape):
    need_map(shape, "pad")
    c, h, w = shape
    widths = pad_widths(a.p)
    if a.mode != "constant" and a.value != 0.0:
        raise ShapeError(
            "E216", f"`pad` value={a.value} applies to mode 'constant', not '{a.mode}'",
            detail=f"mode '{a.mode}' fills from the input itself; PyTorch refuses a value",
            hint="leave value out, or use mode=\"constant\"")
    limits = {"reflect": ("less than", lambda pad, n: pad < n),
              "circular": ("at most", lambda pad, n: pad <= n)}
    if a.mode in limits:
        words, fits = limits[a.mode]
        for axis, n, sides in zip("HW", (h, w), (widths[2:], widths[:2])):
            if not all(fits(pad, n) for pad in sides):
                raise ShapeError(
                    "E313", f"`pad` mode '{a.mode}' pads more than the input has",
                    detail=f"incoming {_axis(axis)} is {n}, padding {sides[0]} and {sides[1]}:"
                           f" PyTorch needs each {words} {n}",
                    hint="pad less, or use mode=\"replicate\" or \"constant\"")
    out = (c, h + widths[2] + widths[3], w + widths[0] + widths[1])
    return out, {"p": widths, "mode": a.mode, "value": a.value}


def pixel_shuffle_shape(a: ShuffleFactorArgs, shape: Shape):
    need_map(shape, "pixel_shuffle")
    c, h, w = shape
    if c % (a.r * a.r):
        raise ShapeError(
            "E305", f"`pixel_shuffle` needs channels divisible by r * r = {a.r * a.r}",
            detail=f"input channels {c}, r = {a.r}",
            formula=f"{c} % {a.r * a.r} = {c % (a.r * a.r)}",
            hint=f"give it a multiple of {a.r * a.r} channels (a conv to {a.r * a.r} * c)")
    return (c // (a.r * a.r), h * a.r, w * a.r), {"r": a.r}


def pixel_unshuffle_shape(a: ShuffleFactorArgs, shape: Shape):
    need_map(shape, "pixel_unshuffle")
    c, h, w = shape
    for axis, n in zip("HW", (h, w)):
        if n % a.r:
            raise ShapeError(
                "E314", f"`pixel_unshuffle` needs the {_axis(axis)} divisible by r = {a.r}",
                detail=f"incoming {_axis(axis)} is {n}",
                formula=f"{n} % {a.r} = {n % a.r}",
                hint=f"pad or crop the map to a multiple of {a.r}")
    return (c * a.r * a.r, h // a.r, w // a.r), {"r": a.r}


# ---------------------------------------------------------------- counts


def conv_params(attrs: dict, out: Shape) -> int:
    weights = attrs["out_channels"] * attrs["in_channels"] // attrs["groups"] * prod(
        attrs["kernel"])
    return weights + (attrs["out_channels"] if attrs["bias"] else 0)


def conv_macs(attrs: dict, out: Shape) -> int:
    return prod(out) * attrs["in_channels"] // attrs["groups"] * prod(attrs["kernel"])


def conv_transpose_macs(attrs: dict, out: Shape) -> int:
    """Per input value: each one is multiplied into out/groups x kh x kw outputs."""
    kh, kw = attrs["kernel"]
    h, w = attrs["in_size"]
    return attrs["in_channels"] * h * w * attrs["out_channels"] // attrs["groups"] * kh * kw


def linear_params(attrs: dict, out: Shape) -> int:
    return attrs["in_features"] * attrs["out_features"] + (attrs["out_features"]
                                                           if attrs["bias"] else 0)


def linear_macs(attrs: dict, out: Shape) -> int:
    return attrs["in_features"] * prod(out)  # in x out, times T on a sequence


def _recurrent_inputs(attrs: dict) -> tuple[int, int]:
    """(the first layer's input features, every later layer's)."""
    return attrs["input_size"], attrs["hidden"] * attrs["directions"]


def recurrent_params(attrs: dict, out: Shape) -> int:
    """torch's: per layer and direction gates * (hidden * (in + hidden) + 2 * hidden)."""
    hidden, first, later = attrs["hidden"], *_recurrent_inputs(attrs)
    bias = 2 * hidden if attrs["bias"] else 0
    per_direction = (hidden * (first + hidden) + bias
                     + (attrs["layers"] - 1) * (hidden * (later + hidden) + bias))
    return attrs["directions"] * attrs["gates"] * per_direction


def recurrent_macs(attrs: dict, out: Shape) -> int:
    """gates * hidden * (in + hidden) per layer, direction and time step."""
    hidden, first, later = attrs["hidden"], *_recurrent_inputs(attrs)
    per_step = hidden * (first + hidden) + (attrs["layers"] - 1) * hidden * (later + hidden)
    return attrs["steps"] * attrs["directions"] * attrs["gates"] * per_step


def affine_params(attrs: dict, out: Shape) -> int:
    """A per-channel scale and shift (groupnorm, instancenorm, layernorm)."""
    return 2 * attrs["features"] if attrs["affine"] else 0


def scale_params(attrs: dict, out: Shape) -> int:
    return attrs["shape"][0]


def _zero(attrs: dict, out: Shape) -> int:
    return 0


# ---------------------------------------------------------------- torch constructors
#
# Each op says which torch module implements it, as (class name, positional args, keyword
# args), with PyTorch's defaults left out. The runtime builder instantiates it and the source
# generator prints it, so the two backends cannot disagree. Class names are torch.nn's, or
# helpers of archspec/torch_helpers.py. Nothing here imports torch.

TorchCtor = tuple[str, tuple, dict]


class Default(NamedTuple):
    """A keyword argument equal to PyTorch's default: the runtime builder omits it, the
    source generator omits it unless another instance of the same class needs it."""

    value: object


def _compact(value):
    """(3, 3) -> 3 (and (3,) or (3, 3, 3) -> 3), as a person would write it."""
    if isinstance(value, tuple) and 1 <= len(value) <= 3 and len(set(value)) == 1:
        return _compact(value[0])
    return value


def _without_defaults(kwargs: dict, defaults: dict) -> dict:
    marked = {}
    for key, value in kwargs.items():
        value = _compact(value)
        marked[key] = Default(value) if value == defaults.get(key, object()) else value
    return marked


def conv_torch(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    """nn.Conv1d, 2d or 3d by the number of axes; PaddedConv2d for uneven 2-D padding."""
    pads = attrs["padding"]
    symmetric = all(before == after for before, after in pads)
    kwargs = _without_defaults(
        {"kernel_size": attrs["kernel"], "stride": attrs["stride"],
         "padding": tuple(before for before, _ in pads) if symmetric else 0,
         "dilation": attrs["dilation"], "groups": attrs["groups"], "bias": attrs["bias"]},
        {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True})
    args = (attrs["in_channels"], attrs["out_channels"])
    if symmetric:
        return f"Conv{len(pads)}d", args, kwargs
    (top, bottom), (left, right) = pads
    return "PaddedConv2d", args, {**kwargs, "pad": (left, right, top, bottom)}


def conv_transpose_torch(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    kwargs = _without_defaults(
        {"stride": attrs["stride"], "padding": attrs["padding"],
         "output_padding": attrs["output_padding"], "groups": attrs["groups"],
         "bias": attrs["bias"], "dilation": attrs["dilation"]},
        {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "bias": True,
         "dilation": 1})
    return ("ConvTranspose2d", (attrs["in_channels"], attrs["out_channels"],
                                _compact(attrs["kernel"])), kwargs)


def _interpolate_kwargs(attrs: dict) -> dict:
    return {"size": attrs["size"], "scale_factor": attrs["scale"], "mode": attrs["mode"],
            "align_corners": attrs["align_corners"]}


_INTERPOLATE_DEFAULTS = {"size": None, "scale_factor": None, "mode": "nearest",
                         "align_corners": None}


def upsample_torch(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    if attrs["like"]:  # the size of the tensor it is given with the input
        return "Interpolate", (), _without_defaults(
            {"mode": attrs["mode"], "align_corners": attrs["align_corners"]},
            _INTERPOLATE_DEFAULTS)
    return "Upsample", (), _without_defaults(_interpolate_kwargs(attrs), _INTERPOLATE_DEFAULTS)


def _pad_text(widths: tuple[int, int, int, int]):
    """(1, 1, 1, 1) -> 1, as a person writes nn.ReflectionPad2d(1)."""
    return widths[0] if len(set(widths)) == 1 else widths


PAD_CLASSES = {"constant": "ConstantPad2d", "reflect": "ReflectionPad2d",
               "replicate": "ReplicationPad2d", "circular": "CircularPad2d"}


def pad_torch(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    value = (attrs["value"],) if attrs["mode"] == "constant" else ()
    return PAD_CLASSES[attrs["mode"]], (_pad_text(attrs["p"]), *value), {}


def _pool_torch(name: str, options: tuple[str, ...], defaults: dict):
    """nn.MaxPool1d/2d/3d or nn.AvgPool1d/2d/3d by the number of axes."""
    def ctor(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
        kernel = _compact(attrs["kernel"])
        kwargs = _without_defaults({key: attrs[key] for key in options},
                                   {"stride": kernel, "padding": 0, **defaults})
        return f"{name}{len(attrs['kernel'])}d", (kernel,), kwargs
    return ctor


maxpool_torch = _pool_torch("MaxPool", ("stride", "padding", "dilation", "ceil_mode"),
                            {"dilation": 1, "ceil_mode": False})
avgpool_torch = _pool_torch("AvgPool", ("stride", "padding", "ceil_mode", "count_include_pad"),
                            {"ceil_mode": False, "count_include_pad": True})


def recurrent_torch(name: str):
    """archspec's Sequence{RNN,LSTM,GRU}: torch's layer, batch first, giving the output
    sequence only (torch_helpers.py)."""
    def ctor(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
        options = {"num_layers": attrs["layers"], "bias": attrs["bias"], "batch_first": True,
                   "dropout": attrs["dropout"], "bidirectional": attrs["bidirectional"]}
        if "nonlinearity" in attrs:
            options = {"nonlinearity": attrs["nonlinearity"], **options}
        kwargs = _without_defaults(options, {"num_layers": 1, "nonlinearity": "tanh",
                                             "bias": True, "dropout": 0.0,
                                             "bidirectional": False})
        return name, (attrs["input_size"], attrs["hidden"]), kwargs
    return ctor


def batchnorm_torch(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    kwargs = _without_defaults({"eps": attrs["eps"], "momentum": attrs["momentum"],
                                "affine": attrs["affine"]},
                               {"eps": 1e-5, "momentum": 0.1, "affine": True})
    return f"BatchNorm{attrs['dims']}d", (attrs["features"],), kwargs


def instancenorm_torch(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    kwargs = _without_defaults({"eps": attrs["eps"], "momentum": attrs["momentum"],
                                "affine": attrs["affine"],
                                "track_running_stats": attrs["track"]},
                               {"eps": 1e-5, "momentum": 0.1, "affine": False,
                                "track_running_stats": False})
    return "InstanceNorm2d", (attrs["features"],), kwargs


def layernorm_torch(name: str) -> Callable[[dict, Shape, bool], TorchCtor]:
    def ctor(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
        kwargs = _without_defaults({"eps": attrs["eps"], "elementwise_affine": attrs["affine"]},
                                   {"eps": 1e-5, "elementwise_affine": True})
        return name, (attrs["features"],), kwargs
    return ctor


def _parameter(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    raise AssertionError("`scale` is a parameter of its scope, not a module (lowering.py)")


def linear_torch(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
    kwargs = _without_defaults({"bias": attrs["bias"]}, {"bias": True})
    return "Linear", (attrs["in_features"], attrs["out_features"]), kwargs


def _fixed(name: str, *args, **kwargs) -> Callable[[dict, Shape, bool], TorchCtor]:
    """An op whose torch module takes no arguments from the attributes."""
    return lambda attrs, shape, fresh: (name, args, kwargs)


def _inplace(name: str) -> Callable[[dict, Shape, bool], TorchCtor]:
    """Activations run in place when their input is a fresh tensor nobody else reads."""
    return lambda attrs, shape, fresh: (name, (), {"inplace": True if fresh else Default(False)})


class Training(NamedTuple):
    """Stands for the module's `training` flag in a functional call (dropout)."""


# A stateless op as a function call in forward(): (function, positional args, keyword
# args), e.g. ("F.relu", (), {"inplace": True}); function names are `F.` (torch.nn.functional)
# or `torch.` ones, written as a compiled file imports them.
FunctionalCall = tuple[str, tuple, dict]


def _function(name: str, positional: tuple[str, ...] = (), defaults: dict | None = None,
              inplace: bool = False, **fixed) -> Callable[[dict, bool], FunctionalCall]:
    """The functional form of a stateless op: attributes by name, PyTorch's defaults left
    out, `inplace=True` where the op may overwrite a fresh input."""
    def call(attrs: dict, fresh: bool) -> FunctionalCall:
        rest = {k: v for k, v in attrs.items() if k not in positional}
        kwargs = {k: v for k, v in _without_defaults(rest, defaults or {}).items()
                  if not isinstance(v, Default)}
        if inplace and fresh:
            kwargs["inplace"] = True
        return name, tuple(_compact(attrs[k]) for k in positional), {**fixed, **kwargs}
    return call


def _interpolate(attrs: dict, fresh: bool) -> FunctionalCall:
    """upsample as F.interpolate, from the IR's attributes or the call's arguments (the
    translator's), which name the same values."""
    return _function("F.interpolate", (), _INTERPOLATE_DEFAULTS)(_interpolate_kwargs(attrs),
                                                                 fresh)


def _pad_function(attrs: dict, fresh: bool) -> FunctionalCall:
    """pad as F.pad(x, (left, right, top, bottom)), from any form of `p`."""
    widths = {"pad": pad_widths(attrs["p"]), "mode": attrs["mode"], "value": attrs["value"]}
    return _function("F.pad", ("pad",), {"mode": "constant", "value": 0.0})(widths, fresh)


def _from_attrs(name: str, positional: tuple[str, ...], defaults: dict):
    def ctor(attrs: dict, shape: Shape, fresh: bool) -> TorchCtor:
        rest = {k: v for k, v in attrs.items() if k not in positional}
        return (name, tuple(_compact(attrs[k]) for k in positional),
                _without_defaults(rest, defaults))
    return ctor


# Permute((0, 2, 1)) for `transpose`, Permute((0, 2, 3, 1)) around channels_last
_permute_torch = _from_attrs("Permute", ("dims",), {})


# ---------------------------------------------------------------- other operations
#
# With `summary --count all`, FLOPs are 2 x MACs plus these, per sample; docs/counting.md
# states each rule. Every op has one, even when it is zero, so nothing is zero by silence.


def _per_output(factor: int) -> Callable[[dict, Shape, Shape], int]:
    return lambda attrs, shape, out: factor * prod(out)


def _bias_adds(attrs: dict, shape: Shape, out: Shape) -> int:
    return prod(out) if attrs["bias"] else 0


def _window_ops(extra: int) -> Callable[[dict, Shape, Shape], int]:
    """Pooling: kh*kw - 1 comparisons (max) or kh*kw - 1 adds and a divide (average); the
    window's size on sequences and volumes alike."""
    return lambda attrs, shape, out: prod(out) * (prod(attrs["kernel"]) - 1 + extra)


def _recurrent_ops(update: int) -> Callable[[dict, Shape, Shape], int]:
    """Per time step, layer and direction: for each gate value the add of its input and
    hidden parts, its two biases and its activation; then `update` per hidden value."""
    def ops(attrs: dict, shape: Shape, out: Shape) -> int:
        per_gate = 2 + (2 if attrs["bias"] else 0)
        per_step = attrs["hidden"] * (attrs["gates"] * per_gate + update)
        return attrs["steps"] * attrs["layers"] * attrs["directions"] * per_step
    return ops


def _lrn_ops(attrs: dict, shape: Shape, out: Shape) -> int:
    return prod(out) * (2 * attrs["size"] + 3)


def _lrn_workspace(attrs: dict, shape: Shape) -> int:
    """torch pads the squares with size - 1 zero channels before averaging them over the
    window: `lrn(size=10**8)` has no parameters but a workspace of 10**8 channels."""
    return (2 * shape[0] + attrs["size"] - 1) * prod(shape[1:])


_UPSAMPLE_OPS = {"nearest": 0, "nearest-exact": 0, "bilinear": 7, "bicubic": 31}


def _upsample_ops(attrs: dict, shape: Shape, out: Shape) -> int:
    return _UPSAMPLE_OPS[attrs["mode"]] * prod(out)


def _whole_input(attrs: dict, shape: Shape, out: Shape) -> int:
    return prod(shape)


# ---------------------------------------------------------------- source forms
#
# How the source generator writes an op call whose arguments may be Python expressions of a
# block's parameters (`nn.Conv2d(in_channels, 4 * c, 1, stride=stride)`), and what it gives:
# its output channels and whether H x W stay, become known (`adaptive_avgpool(7)`), or are
# no longer known without the input size. `a` is the source generator's view of the call:
# a.value(field) (a number, or an expression it cannot know), a.channels, a.rank, a.fresh,
# a.keywords({torch keyword: (value, PyTorch's default)}) leaving defaults out, a.mul(...),
# a.refuse(reason). Both this and `torch` above describe the same module; tests build both.

KEEP = "keep"  # H x W unchanged
# torch_helpers.py classes that ops use (ops.py does not import torch to look)
# arguments that name another tensor (`like=@name`): the op's module takes it as a second input
TENSOR_ARGUMENTS = frozenset({"like"})
HELPER_CLASSES = frozenset({"PaddedConv2d", "LayerNorm2d", "StochasticDepth", "Permute",
                            "CenterCrop2d", "Interpolate", "ToSequence",
                            "SequenceRNN", "SequenceLSTM", "SequenceGRU"})
LOST = "lost"  # H x W depend on the input size


@dataclass
class SourceCall:
    callee: str  # e.g. "nn.Conv2d"
    args: tuple
    kwargs: dict
    channels: object = KEEP  # output channels (features), KEEP for unchanged
    spatial: object = KEEP  # KEEP, LOST or the new (H, W)


def conv_source(a) -> SourceCall:
    out = a.value("out") if "out" in a.fields else a.mul(a.channels, a.value("multiplier"))
    groups = a.channels if "multiplier" in a.fields else a.value("groups", 1)
    kwargs = a.keywords({"stride": (a.value("s", 1), 1),
                         "padding": (a.padding(a.value("p", 0)), 0),
                         "dilation": (a.value("d", 1), 1), "groups": (groups, 1),
                         "bias": (a.value("bias", True), True)})
    return SourceCall("nn.Conv2d", (a.channels, out, a.value("k", 1)), kwargs, out, LOST)


def conv_transpose_source(a) -> SourceCall:
    out = a.value("out")
    kwargs = a.keywords({"stride": (a.value("s"), 1), "padding": (a.value("p"), 0),
                         "output_padding": (a.value("output_padding"), 0),
                         "groups": (a.value("groups"), 1), "bias": (a.value("bias"), True),
                         "dilation": (a.value("d"), 1)})
    return SourceCall("nn.ConvTranspose2d", (a.channels, out, a.value("k")), kwargs, out, LOST)


def upsample_source(a) -> SourceCall:
    size = a.value("size")
    kwargs = a.keywords({"size": (size, None), "scale_factor": (a.value("scale"), None),
                         "mode": (a.value("mode"), "nearest"),
                         "align_corners": (a.value("align_corners"), None)})
    return SourceCall("nn.Upsample", (), kwargs, KEEP, LOST if size is None else a.pair(size))


def crop_source(a) -> SourceCall:
    size = a.value("size")
    return SourceCall("CenterCrop2d", (size,), {}, KEEP, a.pair(size))


def pad_source(a) -> SourceCall:
    mode, p = a.value("mode"), a.value("p")
    if not isinstance(mode, str) or not isinstance(p, int | tuple) and p.kind != "int":
        a.refuse("a `pad` whose mode or form of padding is known only at run time")
    widths = _pad_text(pad_widths(p)) if isinstance(p, tuple) else p
    value = a.value("value")
    value = (value if a.is_sym(value) else float(value),) if mode == "constant" else ()
    return SourceCall(f"nn.{PAD_CLASSES[mode]}", (widths, *value), {}, KEEP, LOST)


def _pixel_shuffle_op(name: str, doc: str, shape_rule, source) -> "OpSpec":
    """pixel_shuffle and pixel_unshuffle: the factor r, a copy of the values rearranged."""
    torch_name = "".join(part.capitalize() for part in name.split("_"))  # PixelShuffle
    return OpSpec(name, "reshape", ShuffleFactorArgs, shape_rule, ("r",), doc=doc,
                  label=attribute_label(name, "r"), receptive="none", source=source,
                  torch=_from_attrs(torch_name, ("r",), {}), other_ops=_per_output(0),
                  other_rule="0: a copy, no arithmetic", functional=_function(f"F.{name}", ("r",)))


def pixel_shuffle_source(a) -> SourceCall:
    r = a.value("r")
    return SourceCall("nn.PixelShuffle", (r,), {}, a.floordiv(a.channels, a.mul(r, r)), LOST)


def pixel_unshuffle_source(a) -> SourceCall:
    r = a.value("r")
    return SourceCall("nn.PixelUnshuffle", (r,), {}, a.mul(a.channels, r, r), LOST)


def batchnorm_source(a) -> SourceCall:
    kwargs = a.keywords({"eps": (a.value("eps"), 1e-5), "momentum": (a.value("momentum"), 0.1),
                         "affine": (a.value("affine"), True)})
    return SourceCall(f"nn.BatchNorm{BATCHNORM_DIMS[a.rank]}d", (a.channels,), kwargs)


def written_out(a) -> SourceCall:
    """Ops of sequences and volumes: translate.py writes networks with rank-2 or rank-4
    shapes out per network (its constructors track channels of maps and features only), so
    no parametric form is ever asked for."""
    raise AssertionError(f"`{a.op.name}` has no parametric source form (translate.py)")


def pool_source(name: str, extra: dict):
    def source(a) -> SourceCall:
        k = a.value("k")
        stride = a.value("s")
        options = {"stride": (stride, None if stride is None else k),
                   "padding": (a.value("p"), 0), "ceil_mode": (a.value("ceil_mode"), False)}
        options.update({key: (a.value(key), default) for key, default in extra.items()})
        return SourceCall(f"nn.{name}", (k,), a.keywords(options), KEEP, LOST)
    return source


def adaptive_source(name: str, size=None):
    def source(a) -> SourceCall:
        chosen = size if size is not None else a.value("size")
        return SourceCall(f"nn.{name}", (chosen,), {}, KEEP, a.pair(chosen))
    return source


def module_source(name: str, positional: tuple[str, ...] = (), inplace: bool = False,
                  defaults: dict | None = None, **fixed):
    """An op whose module keeps channels and size: arguments straight from the call.
    `name` is torch.nn's, or a helper's of torch_helpers.py (HELPER_CLASSES)."""
    callee = name if name in HELPER_CLASSES else f"nn.{name}"

    def source(a) -> SourceCall:
        kwargs = a.keywords({k: (a.value(k), d) for k, d in (defaults or {}).items()})
        if inplace and a.fresh:
            kwargs["inplace"] = True
        return SourceCall(callee, tuple(a.value(p) for p in positional), {**fixed, **kwargs})
    return source


def norm_source(name: str, keywords: dict[str, tuple[str, object]], groups: bool = False):
    """A normalisation over the channels: (groups,) channels, then keywords
    {torch keyword: (spec argument, PyTorch's default)}."""
    callee = name if name in HELPER_CLASSES else f"nn.{name}"

    def source(a) -> SourceCall:
        kwargs = a.keywords({k: (a.value(arg), d) for k, (arg, d) in keywords.items()})
        head = (a.value("groups"),) if groups else ()
        return SourceCall(callee, (*head, a.channels), kwargs)
    return source



def flatten_source(a) -> SourceCall:
    if a.rank == 1:
        return SourceCall("nn.Flatten", (), {})
    return SourceCall("nn.Flatten", (), {}, a.mul(a.channels, *a.size()), KEEP)


def linear_source(a) -> SourceCall:
    kwargs = a.keywords({"bias": (a.value("bias"), True)})
    return SourceCall("nn.Linear", (a.channels, a.value("out")), kwargs, a.value("out"))



# ---------------------------------------------------------------- labels and windows
#
# How a diagram names a layer, as a paper writes it (`conv 7×7, 64, /2`, `linear 120`), and
# how a layer widens the receptive field (`summary --rf`): "keep" (not at all), "window"
# (its kernel, stride and dilation), "adaptive" (the window its output size implies) or
# "flat" (after it there is no field to speak of).


def _stride_text(attrs: dict) -> str:
    stride = attrs.get("stride", (1,))
    if set(stride) == {1}:
        return ""
    return f", /{stride[0]}" if len(set(stride)) == 1 else ", /" + "×".join(map(str, stride))


def window_label(name: str, channels: bool = False):
    def label(attrs: dict) -> str:
        text = f"{name} " + "×".join(map(str, attrs.get("kernel", (1, 1))))
        if channels:
            text += f", {attrs['out_channels']}"
            if attrs.get("groups", 1) != 1:
                text += f", g{attrs['groups']}"
        return text + _stride_text(attrs)
    return label


def adaptive_label(name: str):
    def label(attrs: dict) -> str:
        h, w = pair(attrs.get("size", 1))
        return f"{name} → {h}×{w}"
    return label


def attribute_label(name: str, key: str):
    return lambda attrs: f"{name} {attrs[key]}"


def recurrent_label(name: str):
    """`lstm 256`, `lstm 256, 2 layers, bidirectional`."""
    def label(attrs: dict) -> str:
        text = f"{name} {attrs['hidden']}"
        if attrs["layers"] > 1:
            text += f", {attrs['layers']} layers"
        return text + (", bidirectional" if attrs["bidirectional"] else "")
    return label



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
    torch: Callable[[dict, Shape, bool], TorchCtor] = field(kw_only=True)
    # `summary --count all`: operations besides the weight MACs, per sample, and the rule
    other_ops: Callable[[dict, Shape, Shape], int] = field(kw_only=True)
    other_rule: str = field(kw_only=True)
    # how forward() calls a stateless op that is not a module of its own (None: always one)
    functional: Callable[[dict, bool], FunctionalCall] | None = field(default=None,
                                                                       kw_only=True)
    source: Callable[..., SourceCall] = field(kw_only=True)  # see "source forms"
    label: Callable[[dict], str] | None = field(default=None, kw_only=True)  # None: the name
    # "none": not tracked past the op (upsampling: a fraction of an input pixel apart)
    receptive: Literal["keep", "window", "adaptive", "flat", "none"] = field(default="keep",
                                                                               kw_only=True)
    internal: bool = field(default=False, kw_only=True)  # made by the expander, not callable
    # acts on each position's channel vector alone, so it may run inside channels_last
    pointwise: bool = field(default=False, kw_only=True)

    # values of one sample that torch's forward() holds besides the output (its temporaries),
    # from the attributes and the input shape; build()'s memory estimate counts them (E502)
    workspace: Callable[[dict, Shape], int] = field(default=_zero, kw_only=True)


def _activation(name: str, module: str, function: str, doc: str, ops: int, rule: str,
                inplace: bool = True) -> OpSpec:
    """An activation without arguments: a torch.nn module, its functional form, in place on
    a fresh tensor where torch allows it, `ops` operations per value."""
    return OpSpec(name, "activation", NoArgs, _any_preserving, doc=doc,
                  source=module_source(module, inplace=inplace),
                  torch=_inplace(module) if inplace else _fixed(module),
                  other_ops=_per_output(ops), other_rule=rule,
                  functional=_function(function, inplace=inplace), pointwise=True)


def _recurrent(name: str, title: str, args: type[Args], gates: int, update: int,
               rule: str) -> OpSpec:
    """rnn, gru, lstm: torch's nn.RNN/GRU/LSTM, batch first, giving the output sequence;
    `gates` weight blocks per layer and direction, `update` operations per hidden value."""
    return OpSpec(
        name, "recurrent", args, _recurrent_shape(name, gates), ("hidden", "layers"),
        recurrent_params, recurrent_macs,
        f"{title} over a T x F sequence, batch first, giving its output sequence "
        f"(T x hidden, x 2 if bidirectional; nn.{title})",
        {"hidden_size": "hidden", "num_layers": "layers"},
        label=recurrent_label(name), receptive="flat",
        source=written_out,
        torch=recurrent_torch(f"Sequence{title}"),
        other_ops=_recurrent_ops(update),
        other_rule=f"per time step, layer and direction: 4 per gate value of its {gates} "
                   f"gate{'s' if gates > 1 else ''} (the add of the input and hidden parts, "
                   f"two biases, the activation; 2 without bias){rule}")


def _conv_nd_op(name: str, args: type[Args], doc: str) -> OpSpec:
    """conv1d (rank 2) and conv3d (rank 4): conv's rules over one or three axes."""
    rank = int(name[4]) + 1
    return OpSpec(name, "conv", args, _conv_nd(name, rank), ("out", "k", "s", "p"),
                  conv_params, conv_macs, doc + "; input channels are inferred", _CONV_ALIASES,
                  label=window_label(name, channels=True), receptive="window",
                  source=written_out,
                  torch=conv_torch,
                  other_ops=_bias_adds,
                  other_rule="one add per output value for the bias, if any")


def _pool_nd(name: str) -> OpSpec:
    """maxpool1d, avgpool1d (rank 2) and maxpool3d, avgpool3d (rank 4)."""
    kind, rank = name[:3], int(name[7]) + 1
    title = f"{kind.title()}Pool{rank - 1}d"
    what = "a C x L sequence" if rank == 2 else "a C x D x H x W volume"
    window = "k" if rank == 2 else "kd x kh x kw"
    args = {("max", 2): MaxPool1dArgs, ("avg", 2): AvgPool1dArgs,
            ("max", 4): MaxPool3dArgs, ("avg", 4): AvgPool3dArgs}[kind, rank]
    rule = (_maxpool_rule if kind == "max" else _avgpool_rule)(name, rank)
    return OpSpec(name, "pool", args, rule, ("k", "s", "p"),
                  doc=f"{'max' if kind == 'max' else 'average'} pooling of {what} (nn.{title})",
                  aliases=_POOL_ALIASES, label=window_label(name), receptive="window",
                  source=written_out,
                  torch=maxpool_torch if kind == "max" else avgpool_torch,
                  other_ops=_window_ops(0 if kind == "max" else 1),
                  other_rule=f"{window} - 1 " + ("comparisons" if kind == "max" else
                                                 "adds and a divide") + " per output value")


# PyTorch's keyword names are accepted too (`kernel_size=3`), so code is easy to carry over
_POOL_ALIASES = {"kernel": "k", "kernel_size": "k", "stride": "s", "padding": "p",
                 "dilation": "d"}
_CONV_ALIASES = {**_POOL_ALIASES, "out_channels": "out"}

_OPS = [
    OpSpec("conv", "conv", ConvArgs, conv_shape, ("out", "k", "s", "p"), conv_params, conv_macs,
           "2-D convolution (nn.Conv2d); input channels are inferred", _CONV_ALIASES,
           label=window_label("conv", channels=True), receptive="window",
           source=conv_source,
           torch=conv_torch,
           other_ops=_bias_adds,
           other_rule="one add per output value for the bias, if any"),
    OpSpec("dwconv", "conv", DepthwiseArgs, dwconv_shape, ("k", "s", "p"), conv_params,
           conv_macs, "depthwise convolution: groups = input channels", _CONV_ALIASES,
           label=window_label("dwconv"), receptive="window",
           source=conv_source,
           torch=conv_torch,
           other_ops=_bias_adds,
           other_rule="one add per output value for the bias, if any"),
    OpSpec("pwconv", "conv", PointwiseArgs, pwconv_shape, ("out",), conv_params, conv_macs,
           "pointwise (1x1) convolution", _CONV_ALIASES,
           label=window_label("pwconv", channels=True), receptive="window",
           source=conv_source,
           torch=conv_torch,
           other_ops=_bias_adds,
           other_rule="one add per output value for the bias, if any"),
    OpSpec("conv_transpose", "conv", ConvTransposeArgs, conv_transpose_shape,
           ("out", "k", "s", "p"), conv_params, conv_transpose_macs,
           "transposed 2-D convolution (nn.ConvTranspose2d): upsamples by the stride",
           _CONV_ALIASES,
           label=lambda attrs: f"conv_transpose {attrs['kernel'][0]}×{attrs['kernel'][1]}, "
                               f"{attrs['out_channels']}, ×{_compact(attrs['stride'])}",
           receptive="none",
           source=conv_transpose_source,
           torch=conv_transpose_torch,
           other_ops=_bias_adds,
           other_rule="one add per output value for the bias, if any (MACs are counted per "
                      "input value: in x out/groups x kh x kw each)"),
    _conv_nd_op("conv1d", Conv1dArgs, "1-D convolution of a C x L sequence (nn.Conv1d)"),
    _conv_nd_op("conv3d", Conv3dArgs, "3-D convolution of a C x D x H x W volume (nn.Conv3d)"),
    OpSpec("batchnorm", "norm", BatchNormArgs, batchnorm_shape, (), affine_params,
           doc="batch normalisation (BatchNorm2d on maps, BatchNorm1d on features and C x L "
               "sequences, BatchNorm3d on volumes)",
           source=batchnorm_source,
           torch=batchnorm_torch,
           other_ops=_per_output(2),
           other_rule="2 per value: scale and shift (the inference form)"),
    OpSpec("lrn", "norm", LrnArgs, _map_preserving("lrn"), ("size",),
           doc="local response normalisation (AlexNet, GoogLeNet)",
           label=attribute_label("lrn", "size"),
           source=module_source("LocalResponseNorm", ("size",), defaults={"alpha": 1e-4, "beta": 0.75, "k": 1.0}),
           torch=_from_attrs("LocalResponseNorm", ("size",),
                             {"alpha": 1e-4, "beta": 0.75, "k": 1.0}),
           other_ops=_lrn_ops, workspace=_lrn_workspace,
           other_rule="2 x size + 3 per value: squares and sum over the window, k + alpha x sum, the power and the divide"),
    OpSpec("groupnorm", "norm", GroupNormArgs, groupnorm_shape, ("groups",), affine_params,
           doc="group normalisation over channel groups (nn.GroupNorm)",
           label=attribute_label("groupnorm", "groups"),
           source=norm_source("GroupNorm", {"eps": ("eps", 1e-5), "affine": ("affine", True)},
                              groups=True),
           torch=_from_attrs("GroupNorm", ("groups", "features"), {"eps": 1e-5, "affine": True}),
           other_ops=_per_output(2),
           other_rule="2 per value: scale and shift (statistics not counted)"),
    OpSpec("instancenorm", "norm", InstanceNormArgs, instancenorm_shape, (), affine_params,
           doc="instance normalisation of each channel of each sample (nn.InstanceNorm2d)",
           source=norm_source("InstanceNorm2d", {
               "eps": ("eps", 1e-5), "momentum": ("momentum", 0.1), "affine": ("affine", False),
               "track_running_stats": ("track", False)}),
           torch=instancenorm_torch,
           other_ops=_per_output(2),
           other_rule="2 per value: scale and shift (statistics not counted)"),
    OpSpec("layernorm", "norm", LayerNormArgs, layernorm_shape, (), affine_params,
           doc="layer normalisation of flat features, or of channels inside channels_last "
               "(nn.LayerNorm)",
           source=norm_source("LayerNorm", {"eps": ("eps", 1e-5),
                                            "elementwise_affine": ("affine", True)}),
           torch=layernorm_torch("LayerNorm"),
           other_ops=_per_output(2),
           other_rule="2 per value: scale and shift (statistics not counted)",
           pointwise=True),
    OpSpec("layernorm2d", "norm", LayerNormArgs, layernorm2d_shape, (), affine_params,
           doc="layer normalisation over the channels of a map (torchvision's LayerNorm2d)",
           source=norm_source("LayerNorm2d", {"eps": ("eps", 1e-5),
                                              "elementwise_affine": ("affine", True)}),
           torch=layernorm_torch("LayerNorm2d"),
           other_ops=_per_output(2),
           other_rule="2 per value: scale and shift (statistics not counted)"),
    _activation("relu", "ReLU", "F.relu", "max(x, 0)", 1,
                "1 per value (a comparison)"),
    _activation("relu6", "ReLU6", "F.relu6", "min(max(x, 0), 6)", 2,
                "2 per value (two comparisons)"),
    OpSpec("leaky_relu", "activation", LeakyReluArgs, _any_preserving, ("slope",),
           doc="x, or slope * x for x < 0",
           source=module_source("LeakyReLU", ("slope",)),
           torch=_from_attrs("LeakyReLU", ("slope",), {}),
           other_ops=_per_output(2),
           other_rule="2 per value (a comparison and a multiply)",
           functional=_function("F.leaky_relu", ("slope",)),
           pointwise=True),
    _activation("sigmoid", "Sigmoid", "torch.sigmoid", "1 / (1 + exp(-x))", 1,
                "1 per value (the function counted as one operation)", inplace=False),
    _activation("tanh", "Tanh", "torch.tanh", "hyperbolic tangent", 1,
                "1 per value (the function counted as one operation)", inplace=False),
    OpSpec("gelu", "activation", GeluArgs, _any_preserving, ("approximate",),
           doc="Gaussian error linear unit",
           source=module_source("GELU", defaults={"approximate": "none"}),
           torch=_from_attrs("GELU", (), {"approximate": "none"}),
           other_ops=_per_output(1),
           other_rule="1 per value (the function counted as one operation)",
           functional=_function("F.gelu", (), {"approximate": "none"}),
           pointwise=True),
    _activation("silu", "SiLU", "F.silu", "x * sigmoid(x) (swish)", 2,
                "2 per value (sigmoid and a multiply)"),
    _activation("hardswish", "Hardswish", "F.hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)", 4,
                "4 per value: add, clamp, multiply, divide"),
    _activation("hardsigmoid", "Hardsigmoid", "F.hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3's gates)", 3,
                "3 per value: add, clamp, divide"),
    _activation("mish", "Mish", "F.mish", "x * tanh(softplus(x))", 3,
                "3 per value: softplus, tanh, multiply (each counted as one)"),
    OpSpec("softmax", "activation", NoArgs, softmax_shape,
           doc="softmax over channels (maps, volumes), features (flat) or each time step's "
               "features (sequences)",
           source=module_source("Softmax", dim=1),  # maps and features only (translate.py)
           torch=_from_attrs("Softmax", (), {}),
           other_ops=_per_output(3),
           other_rule="3 per value: exponent, sum and divide",
           functional=_function("F.softmax")),
    OpSpec("maxpool", "pool", MaxPoolArgs, maxpool_shape, ("k", "s", "p"),
           doc="max pooling (nn.MaxPool2d)", aliases=_POOL_ALIASES,
           label=window_label("maxpool"), receptive="window",
           source=pool_source("MaxPool2d", {"d": 1}),
           torch=maxpool_torch,
           other_ops=_window_ops(0),
           other_rule="kh x kw - 1 comparisons per output value"),
    OpSpec("avgpool", "pool", AvgPoolArgs, avgpool_shape, ("k", "s", "p"),
           doc="average pooling (nn.AvgPool2d)", aliases=_POOL_ALIASES,
           label=window_label("avgpool"), receptive="window",
           source=pool_source("AvgPool2d", {"count_include_pad": True}),
           torch=avgpool_torch,
           other_ops=_window_ops(1),
           other_rule="kh x kw - 1 adds and a divide per output value"),
    _pool_nd("maxpool1d"), _pool_nd("avgpool1d"), _pool_nd("maxpool3d"), _pool_nd("avgpool3d"),
    OpSpec("global_avgpool", "pool", NoArgs, _global_shape("global_avgpool"),
           doc="average over all of H x W: C x 1 x 1",
           receptive="adaptive",
           source=adaptive_source("AdaptiveAvgPool2d", (1, 1)),
           torch=_fixed("AdaptiveAvgPool2d", (1, 1)),
           other_ops=_whole_input,
           other_rule="1 per input value (adds; the divides are negligible and not counted)",
           functional=_function("F.adaptive_avg_pool2d", output_size=1)),
    OpSpec("global_maxpool", "pool", NoArgs, _global_shape("global_maxpool"),
           doc="maximum over all of H x W: C x 1 x 1",
           receptive="adaptive",
           source=adaptive_source("AdaptiveMaxPool2d", (1, 1)),
           torch=_fixed("AdaptiveMaxPool2d", (1, 1)),
           other_ops=_whole_input,
           other_rule="1 per input value (comparisons)",
           functional=_function("F.adaptive_max_pool2d", output_size=1)),
    OpSpec("adaptive_avgpool", "pool", AdaptivePoolArgs, _adaptive_shape("adaptive_avgpool"),
           ("size",), doc="average pooling to a fixed output size",
           label=adaptive_label("adaptive_avgpool"), receptive="adaptive",
           source=adaptive_source("AdaptiveAvgPool2d"),
           torch=_from_attrs("AdaptiveAvgPool2d", ("size",), {}),
           other_ops=_whole_input,
           other_rule="1 per input value (adds; windows may overlap a little: not counted)"),
    OpSpec("adaptive_maxpool", "pool", AdaptivePoolArgs, _adaptive_shape("adaptive_maxpool"),
           ("size",), doc="max pooling to a fixed output size",
           label=adaptive_label("adaptive_maxpool"), receptive="adaptive",
           source=adaptive_source("AdaptiveMaxPool2d"),
           torch=_from_attrs("AdaptiveMaxPool2d", ("size",), {}),
           other_ops=_whole_input,
           other_rule="1 per input value (comparisons)"),
    OpSpec("dropout", "regularization", DropoutArgs, _any_preserving, ("p",),
           doc="zero each value with probability p while training",
           label=attribute_label("dropout", "p"),
           source=module_source("Dropout", ("p",)),
           torch=_from_attrs("Dropout", ("p",), {}),
           other_ops=_per_output(0),
           other_rule="0: the identity at inference",
           functional=_function("F.dropout", ("p",), training=Training()),
           pointwise=True),
    OpSpec("dropout2d", "regularization", DropoutArgs, _map_preserving("dropout2d"), ("p",),
           doc="zero whole channels with probability p while training",
           label=attribute_label("dropout2d", "p"),
           source=module_source("Dropout2d", ("p",)),
           torch=_from_attrs("Dropout2d", ("p",), {}),
           other_ops=_per_output(0),
           other_rule="0: the identity at inference",
           functional=_function("F.dropout2d", ("p",), training=Training())),
    OpSpec("alpha_dropout", "regularization", DropoutArgs, _any_preserving, ("p",),
           doc="dropout that keeps SELU's mean and variance",
           label=attribute_label("alpha_dropout", "p"),
           source=module_source("AlphaDropout", ("p",)),
           torch=_from_attrs("AlphaDropout", ("p",), {}),
           other_ops=_per_output(0),
           other_rule="0: the identity at inference",
           functional=_function("F.alpha_dropout", ("p",), training=Training()),
           pointwise=True),
    OpSpec("stochastic_depth", "regularization", StochasticDepthArgs, _any_preserving,
           ("p", "mode"),
           doc="drop the whole branch per sample with probability p while training, scaling "
               "by 1 / (1 - p); the identity at inference (torchvision's StochasticDepth)",
           label=attribute_label("stochastic_depth", "p"),
           source=module_source("StochasticDepth", ("p", "mode")),
           torch=_from_attrs("StochasticDepth", ("p", "mode"), {}),
           other_ops=_per_output(0),
           other_rule="0: the identity at inference"),
    OpSpec("scale", "scale", ScaleArgs, scale_shape, ("init",), scale_params,
           doc="a learnable scale per channel, a parameter of the enclosing module "
               "(ConvNeXt's layer_scale)",
           label=attribute_label("scale", "init"),
           source=module_source("Identity"),  # never written: translate.py refuses it
           torch=_parameter,
           other_ops=_per_output(1),
           other_rule="1 per value (a multiply)"),
    OpSpec("channel_shuffle", "reshape", ShuffleArgs, shuffle_shape, ("groups",),
           doc="interleave the channels of `groups` groups (ShuffleNet)",
           label=attribute_label("channel_shuffle", "groups"),
           source=module_source("ChannelShuffle", ("groups",)),
           torch=_from_attrs("ChannelShuffle", ("groups",), {}),
           other_ops=_per_output(0),
           other_rule="0: a copy, no arithmetic",
           functional=_function("F.channel_shuffle", ("groups",))),
    OpSpec("upsample", "reshape", UpsampleArgs, upsample_shape, ("scale",),
           doc="resize by a scale factor or to a size (nn.Upsample)",
           label=lambda attrs: f"upsample {attrs['mode']}",
           receptive="none",
           source=upsample_source,
           torch=upsample_torch,
           other_ops=_upsample_ops,
           other_rule="per output value: 'nearest' and 'nearest-exact' 0 (a copy), "
                      "'bilinear' 7 (4 neighbours: 4 multiplies, 3 adds), 'bicubic' 31 "
                      "(16 neighbours: 16 multiplies, 15 adds); weights not counted",
           functional=_interpolate),
    OpSpec("crop", "reshape", CropArgs, crop_shape, ("size",),
           doc="the centre of the map: rows from (H - h) // 2, columns from (W - w) // 2",
           label=lambda attrs: f"crop {fmt_shape(attrs['size'])}",
           source=crop_source,
           torch=lambda attrs, shape, fresh: (
               "CenterCrop2d", () if attrs["like"] else (_compact(attrs["size"]),), {}),
           other_ops=_per_output(0),
           other_rule="0: a view, no arithmetic"),
    OpSpec("pad", "reshape", PadArgs, pad_shape, ("p", "mode", "value"),
           doc="pad the map's sides (nn.ConstantPad2d, ReflectionPad2d, ReplicationPad2d, "
               "CircularPad2d)",
           label=lambda attrs: f"pad {attrs['mode']}",
           source=pad_source,
           torch=pad_torch,
           other_ops=_per_output(0),
           other_rule="0: a copy, no arithmetic",
           functional=_pad_function),
    _pixel_shuffle_op("pixel_shuffle", "C x H x W to C/r² x rH x rW (nn.PixelShuffle)",
                      pixel_shuffle_shape, pixel_shuffle_source),
    _pixel_shuffle_op("pixel_unshuffle", "C x H x W to r²C x H/r x W/r (nn.PixelUnshuffle)",
                      pixel_unshuffle_shape, pixel_unshuffle_source),
    OpSpec("permute", "reshape", PermuteArgs, permute_shape, ("dims",), internal=True,
           doc="reorders the dimensions; written by `channels_last`, not callable",
           source=module_source("Permute", ("dims",)),
           torch=_permute_torch,
           other_ops=_per_output(0),
           other_rule="0: a view, no arithmetic"),
    OpSpec("flatten", "reshape", NoArgs, flatten_shape, doc="C x H x W to C*H*W features",
           receptive="flat",
           source=flatten_source,
           torch=_fixed("Flatten"),
           other_ops=_per_output(0),
           other_rule="0: a view, no arithmetic",
           functional=_function("torch.flatten", start_dim=1)),
    OpSpec("transpose", "reshape", NoArgs, transpose_shape,
           doc="swaps the two dimensions of a sequence: C x L to L x C (T x F to F x T)",
           source=written_out,
           torch=_permute_torch,
           other_ops=_per_output(0),
           other_rule="0: a view, no arithmetic",
           functional=_function("torch.permute", ("dims",))),
    OpSpec("to_sequence", "reshape", NoArgs, to_sequence_shape,
           doc="a C x H x W map to a W x C*H sequence: each column is a time step, its C*H "
               "values (channel-major) the step's features",
           receptive="flat",
           source=written_out,
           torch=_fixed("ToSequence"),
           other_ops=_per_output(0),
           other_rule="0: a copy, no arithmetic"),
    OpSpec("linear", "linear", LinearArgs, linear_shape, ("out",), linear_params, linear_macs,
           "fully connected layer (nn.Linear); input features are inferred; on a T x F "
           "sequence, applied at each time step",
           {"out_features": "out"},
           label=attribute_label("linear", "out_features"), receptive="flat",
           source=linear_source,
           torch=linear_torch,
           other_ops=_bias_adds,
           other_rule="one add per output value for the bias, if any",
           pointwise=True),
    _recurrent("rnn", "RNN", RnnArgs, 1, 0, ""),
    _recurrent("gru", "GRU", RecurrentArgs, 3, 5,
               ", plus 5 per hidden value for the update (the reset gate times the hidden "
               "part, 1 - z, two multiplies, an add)"),
    _recurrent("lstm", "LSTM", RecurrentArgs, 4, 5,
               ", plus 5 per hidden value for the cell and the output (two multiplies and "
               "an add, tanh, a multiply)"),
    OpSpec("identity", "identity", NoArgs, _any_preserving, doc="passes its input through",
           source=module_source("Identity"),
           torch=_fixed("Identity"),
           other_ops=_per_output(0),
           other_rule="0: passes its input through",
           pointwise=True),
]

REGISTRY: dict[str, OpSpec] = {op.name: op for op in _OPS if not op.internal}


def _string_choices(annotation) -> set[str]:
    """The strings a field's type allows (`Literal["same", "valid"]`, inside unions)."""
    if get_origin(annotation) is Literal:
        return {a for a in get_args(annotation) if isinstance(a, str)}
    return set().union(*(_string_choices(a) for a in get_args(annotation)))


# Every string an op argument takes: `p=same` is then a forgotten pair of quotes.
STRING_CHOICES = frozenset().union(*(
    _string_choices(info.annotation) for op in _OPS for info in op.args.model_fields.values()))
PERMUTE = next(op for op in _OPS if op.name == "permute")  # what channels_last writes



# ---------------------------------------------------------------- other names
#
# What people write for an op or pattern that archspec spells differently: an unknown call
# (E201) proposes these before any spelling suggestion, so a hint never offers a function
# that does something else (`drop_path` is stochastic depth, not dropout).

SYNONYMS = {
    "drop_path": "stochastic_depth", "droppath": "stochastic_depth",
    "swish": "silu", "hard_swish": "hardswish", "h_swish": "hardswish",
    "hswish": "hardswish", "hard_sigmoid": "hardsigmoid", "h_sigmoid": "hardsigmoid",
    "hsigmoid": "hardsigmoid", "layer_norm": "layernorm", "group_norm": "groupnorm",
    "instance_norm": "instancenorm", "batch_norm": "batchnorm", "bn": "batchnorm",
    "batchnorm2d": "batchnorm", "layernorm2d_": "layernorm2d", "fc": "linear",
    "dense_layer": "linear", "conv2d": "conv", "depthwise": "dwconv", "pointwise": "pwconv",
    "max_pool": "maxpool", "avg_pool": "avgpool", "maxpool2d": "maxpool",
    "avgpool2d": "avgpool", "max_pool1d": "maxpool1d", "avg_pool1d": "avgpool1d",
    "max_pool3d": "maxpool3d", "avg_pool3d": "avgpool3d", "batchnorm1d": "batchnorm",
    "batchnorm3d": "batchnorm", "swapaxes": "transpose",
    "shuffle": "channel_shuffle", "layer_scale": "scale",
    "layerscale": "scale", "lrn2d": "lrn", "local_response_norm": "lrn",
    "convtranspose2d": "conv_transpose", "conv_transpose2d": "conv_transpose",
    "deconv": "conv_transpose", "upconv": "conv_transpose", "interpolate": "upsample",
    "resize": "upsample", "center_crop": "crop", "centercrop": "crop", "zeropad2d": "pad",
    "reflection_pad": "pad", "pixelshuffle": "pixel_shuffle",
    "pixelunshuffle": "pixel_unshuffle",
}
PATTERN_SYNONYMS = {
    "mul": "gate { ... } multiplies the input by what its body computes",
    "multiply": "gate { ... } multiplies the input by what its body computes",
    "se": "squeeze-excitation is a gate: gate { global_avgpool conv(c // 4, k=1) relu "
          "conv(c, k=1) sigmoid }",
    "squeeze_excitation": "squeeze-excitation is a gate: gate { global_avgpool "
                          "conv(c // 4, k=1) relu conv(c, k=1) sigmoid }",
    "chunk": "split { ... } gives each branch an equal share of the channels",
    "permute": "channels_last { ... } runs per-position layers with the channels last; "
               "`transpose` swaps the two dimensions of a sequence",
    "cat": "concat { ... } concatenates branches on channels",
    "residual": "add { ... } sums its branches (one branch: plus the input)",
}
# PyTorch layers with no archspec op: no spelling suggestion for these (`hardtanh` is not
# `tanh`)
NOT_OPS = frozenset({
    "hardtanh", "softplus", "elu", "selu", "celu", "prelu", "rrelu", "logsigmoid", "softsign",
    "tanhshrink", "threshold", "glu", "hardshrink", "softshrink", "softmin", "log_softmax",
    "embedding", "attention", "unfold", "fold",
})


def unknown_op_hint(name: str) -> str | None:
    """The hint for a call of an unknown name that means a known op or pattern, or a
    PyTorch layer archspec lacks; None when only a spelling suggestion can help."""
    key = name.lower()
    if key in SYNONYMS:
        return f"archspec calls it `{SYNONYMS[key]}`"
    if key in PATTERN_SYNONYMS:
        return PATTERN_SYNONYMS[key]
    if key in NOT_OPS:
        return (f"archspec has no `{name}` (PyTorch's layer of that name); "
                "see docs/language.md section 8 for the ops")
    return None
