"""Every op's PyTorch module against a layer written by hand from PyTorch's documentation.

The other torch tests compare archspec's two backends with each other, or shapes and counts
with PyTorch; both backends read the op registry's constructors, so a wrong mapping (GELU's
`approximate` dropped, LeakyReLU's slope or LRN's alpha ignored, softmax over the wrong
dimension) would pass them. Here, for every op of the registry, with the defaults and with a
non-default value for each of its arguments, a one-layer network `l: op(...)` is built with
`archspec.build` and `model.get_submodule("l")` is compared with the torch layer the case
writes out literally (`nn.LeakyReLU(0.2)`, `nn.Softmax(dim=1)`, ...):

* the module's type and its constructor attributes (kernel_size, stride, padding, dilation,
  groups, bias, negative_slope, dim, approximate, alpha, beta, k, eps, momentum, affine, p,
  ceil_mode, count_include_pad, output_size, ...);
* after copying the hand-built layer's randomised state_dict into archspec's (strict): the
  outputs on a random batch, in train mode (then the state_dicts again: batchnorm's running
  statistics after one step) and in eval mode (batchnorm with non-trivial running statistics),
  both for the layer and for the whole one-layer network.

Convolutions with uneven padding ('same' with an even kernel or a stride that does not divide
the size, or `((t, b), (l, r))`) become archspec's PaddedConv2d: their outputs are compared
with F.pad followed by a hand-built unpadded nn.Conv2d, and the per-side 'same' padding is
worked out here from TensorFlow's rule. Likewise `layernorm2d` (archspec's LayerNorm2d) is
compared with nn.LayerNorm on the channels moved last and back, `stochastic_depth` with
torchvision's stochastic_depth written out here, and `scale`, which is no module but a
parameter of the enclosing one, with torch.full(shape, init) multiplying the input.

Only the public API (`archspec.build`) is used, so these tests hold across backend rewrites.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import center_crop

import archspec
from archspec.ops import REGISTRY, TENSOR_ARGUMENTS


@dataclass
class Padded:
    """What a PaddedConv2d must compute: F.pad(x, pad) then an unpadded conv."""

    pad: tuple[int, int, int, int]  # (left, right, top, bottom), F.pad's order
    conv: nn.Conv2d

    def __call__(self, x):
        return self.conv(F.pad(x, self.pad))

    @property
    def reference(self) -> nn.Module:
        return self.conv


class ChannelsLastNorm(nn.Module):
    """What LayerNorm2d (ConvNeXt's) must compute: nn.LayerNorm over the channels, with the
    channels moved last for it and back after it."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    @property
    def reference(self) -> nn.Module:
        return self.norm


class DropRows(nn.Module):
    """torchvision.ops.stochastic_depth as its documentation states it: while training, zero
    each sample ("row") or the whole batch ("batch") with probability p and divide what is
    kept by 1 - p; the identity in eval mode or with p = 0. The mask is drawn as torchvision
    draws it (bernoulli_ on an empty tensor of the mask's shape), so that with the same seed
    both draw the same mask."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        mask = torch.empty(size, dtype=x.dtype).bernoulli_(keep)
        return x * (mask / keep) if keep > 0.0 else x * mask


class Scale(nn.Module):
    """What `scale` must be: no module but a parameter of the enclosing module (the network
    here, named by the label), torch.full(shape, init), that multiplies the input. This
    module holds such a parameter."""

    def __init__(self, shape: tuple[int, ...], init: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full(shape, init))

    def forward(self, x):
        return self.weight * x


class TorchvisionCrop(nn.Module):
    """What `crop` must compute where the margins are even: torchvision's center_crop (which
    rounds an odd margin's half, so the cases here have even ones; tests/test_ops_torch.py
    checks odd margins against the documented (H - h) // 2)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x):
        assert (x.shape[-2] - self.size[0]) % 2 == 0 and (x.shape[-1] - self.size[1]) % 2 == 0
        return center_crop(x, list(self.size))


# Reference descriptions that stand for an archspec helper class: (its name, its torch base).
HELPERS = {Padded: ("PaddedConv2d", nn.Conv2d), ChannelsLastNorm: ("LayerNorm2d", nn.LayerNorm),
           DropRows: ("StochasticDepth", nn.Module), TorchvisionCrop: ("CenterCrop2d", nn.Module)}


@dataclass
class Case:
    op: str
    in_shape: tuple[int, ...]
    args: dict  # written as keywords, in this order
    expected: object  # () -> nn.Module | Padded, written from PyTorch's documentation
    call: str | None = None  # the call as written, when not `op(k=v, ...)` (positional, aliases)
    scale: float = 1.0  # input magnitude (LRN's effect is invisible on small inputs)
    tags: tuple = field(default=())

    @property
    def text(self) -> str:
        if self.call is not None:
            return self.call
        if not self.args:
            return self.op
        return f"{self.op}({', '.join(f'{k}={_fmt(v)}' for k, v in self.args.items())})"

    @property
    def id(self) -> str:
        return f"{self.op}:{self.text}:{'x'.join(map(str, self.in_shape))}"


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return repr(value)


def tf_same(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding for one axis: (before, after), the odd pixel after."""
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


M = (4, 9, 11)  # a feature map: 4 channels, 9x11 (odd, and unequal, sizes)
F7 = (7,)  # flat features

CASES = [
    # ------------------------------------------------------------------ conv
    Case("conv", M, {"out": 6, "k": 3}, lambda: nn.Conv2d(4, 6, 3)),
    Case("conv", M, {"out": 8, "k": 1}, lambda: nn.Conv2d(4, 8, 1)),
    Case("conv", M, {"out": 6, "k": (3, 5)}, lambda: nn.Conv2d(4, 6, (3, 5))),
    Case("conv", M, {"out": 6, "k": 3, "s": 2}, lambda: nn.Conv2d(4, 6, 3, stride=2)),
    Case("conv", M, {"out": 6, "k": 3, "s": (2, 3)},
         lambda: nn.Conv2d(4, 6, 3, stride=(2, 3))),
    Case("conv", M, {"out": 6, "k": 3, "p": 1}, lambda: nn.Conv2d(4, 6, 3, padding=1)),
    Case("conv", M, {"out": 6, "k": 3, "p": (1, 2)},
         lambda: nn.Conv2d(4, 6, 3, padding=(1, 2))),
    Case("conv", M, {"out": 6, "k": 3, "p": "valid"}, lambda: nn.Conv2d(4, 6, 3, padding=0)),
    Case("conv", M, {"out": 6, "k": 3, "p": "same"}, lambda: nn.Conv2d(4, 6, 3, padding=1)),
    Case("conv", M, {"out": 6, "k": 5, "p": "same", "d": 2},
         lambda: nn.Conv2d(4, 6, 5, padding=4, dilation=2)),
    # 'same' with an even kernel: 1 before, 2 after on both axes
    Case("conv", M, {"out": 6, "k": 4, "p": "same"},
         lambda: Padded((*tf_same(11, 4, 1), *tf_same(9, 4, 1)), nn.Conv2d(4, 6, 4))),
    # 'same' with stride 2 on 10x11: H pads (0, 1), W pads (1, 1)
    Case("conv", (4, 10, 11), {"out": 6, "k": 3, "s": 2, "p": "same"},
         lambda: Padded((*tf_same(11, 3, 2), *tf_same(10, 3, 2)),
                        nn.Conv2d(4, 6, 3, stride=2))),
    Case("conv", M, {"out": 6, "k": 3, "p": ((1, 2), (0, 3))},
         lambda: Padded((0, 3, 1, 2), nn.Conv2d(4, 6, 3))),
    Case("conv", M, {"out": 6, "k": 3, "d": 2}, lambda: nn.Conv2d(4, 6, 3, dilation=2)),
    Case("conv", M, {"out": 6, "k": 3, "d": (2, 3)},
         lambda: nn.Conv2d(4, 6, 3, dilation=(2, 3))),
    Case("conv", M, {"out": 6, "k": 3, "groups": 2}, lambda: nn.Conv2d(4, 6, 3, groups=2)),
    Case("conv", M, {"out": 6, "k": 3, "bias": False}, lambda: nn.Conv2d(4, 6, 3, bias=False)),
    Case("conv", M, {"out": 6, "k": 3, "s": 2, "p": 1, "d": 2, "groups": 2, "bias": False},
         lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, bias=False)),
    Case("conv", M, {"out": 6, "k": 3, "s": 2, "p": 1}, lambda: nn.Conv2d(4, 6, 3, 2, 1),
         call="conv(6, 3, 2, 1)"),
    Case("conv", M, {"out": 6, "k": 3, "s": 2, "p": 1, "d": 2},
         lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2),
         call="conv(out_channels=6, kernel=3, stride=2, padding=1, dilation=2)"),
    # ------------------------------------------------------------------ conv_transpose
    Case("conv_transpose", M, {"out": 6, "k": 3}, lambda: nn.ConvTranspose2d(4, 6, 3)),
    Case("conv_transpose", M, {"out": 6, "k": (2, 3)}, lambda: nn.ConvTranspose2d(4, 6, (2, 3))),
    Case("conv_transpose", M, {"out": 6, "k": 2, "s": 2},
         lambda: nn.ConvTranspose2d(4, 6, 2, stride=2)),
    Case("conv_transpose", M, {"out": 6, "k": 3, "s": (2, 3)},
         lambda: nn.ConvTranspose2d(4, 6, 3, stride=(2, 3))),
    Case("conv_transpose", M, {"out": 6, "k": 3, "p": 1},
         lambda: nn.ConvTranspose2d(4, 6, 3, padding=1)),
    Case("conv_transpose", M, {"out": 6, "k": 4, "s": 2, "p": (1, 2)},
         lambda: nn.ConvTranspose2d(4, 6, 4, stride=2, padding=(1, 2))),
    Case("conv_transpose", M, {"out": 6, "k": 3, "s": 2, "output_padding": 1},
         lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1)),
    Case("conv_transpose", M, {"out": 6, "k": 3, "s": (2, 3), "output_padding": (1, 2)},
         lambda: nn.ConvTranspose2d(4, 6, 3, stride=(2, 3), output_padding=(1, 2))),
    Case("conv_transpose", M, {"out": 6, "k": 3, "groups": 2},
         lambda: nn.ConvTranspose2d(4, 6, 3, groups=2)),
    Case("conv_transpose", M, {"out": 6, "k": 3, "bias": False},
         lambda: nn.ConvTranspose2d(4, 6, 3, bias=False)),
    Case("conv_transpose", M, {"out": 6, "k": 3, "d": 2},
         lambda: nn.ConvTranspose2d(4, 6, 3, dilation=2)),
    # output_padding below the dilation, with stride 1
    Case("conv_transpose", M, {"out": 6, "k": 3, "d": (2, 3), "output_padding": (1, 2)},
         lambda: nn.ConvTranspose2d(4, 6, 3, output_padding=(1, 2), dilation=(2, 3))),
    Case("conv_transpose", M, {"out": 6, "k": 4, "s": 2, "p": 1},
         lambda: nn.ConvTranspose2d(4, 6, 4, 2, 1), call="conv_transpose(6, 4, 2, 1)"),
    Case("conv_transpose", M, {"out": 6, "k": 3, "s": 2, "p": 1, "output_padding": 1},
         lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
         call="conv_transpose(out_channels=6, kernel=3, stride=2, padding=1, "
              "output_padding=1)"),
    # ------------------------------------------------------------------ dwconv
    Case("dwconv", M, {"k": 3}, lambda: nn.Conv2d(4, 4, 3, groups=4)),
    Case("dwconv", M, {"k": (3, 5)}, lambda: nn.Conv2d(4, 4, (3, 5), groups=4)),
    Case("dwconv", M, {"k": 3, "s": 2}, lambda: nn.Conv2d(4, 4, 3, stride=2, groups=4)),
    Case("dwconv", M, {"k": 3, "p": 1}, lambda: nn.Conv2d(4, 4, 3, padding=1, groups=4)),
    Case("dwconv", M, {"k": 4, "p": "same"},
         lambda: Padded((1, 2, 1, 2), nn.Conv2d(4, 4, 4, groups=4))),
    Case("dwconv", M, {"k": 3, "d": 2}, lambda: nn.Conv2d(4, 4, 3, dilation=2, groups=4)),
    Case("dwconv", M, {"k": 3, "multiplier": 2}, lambda: nn.Conv2d(4, 8, 3, groups=4)),
    Case("dwconv", M, {"k": 3, "bias": False},
         lambda: nn.Conv2d(4, 4, 3, groups=4, bias=False)),
    Case("dwconv", M, {"k": 3, "s": 2, "p": 1}, lambda: nn.Conv2d(4, 4, 3, 2, 1, groups=4),
         call="dwconv(3, 2, 1)"),
    # ------------------------------------------------------------------ pwconv
    Case("pwconv", M, {"out": 6}, lambda: nn.Conv2d(4, 6, 1)),
    Case("pwconv", M, {"out": 6, "s": 2}, lambda: nn.Conv2d(4, 6, 1, stride=2)),
    Case("pwconv", M, {"out": 6, "groups": 2}, lambda: nn.Conv2d(4, 6, 1, groups=2)),
    Case("pwconv", M, {"out": 6, "bias": False}, lambda: nn.Conv2d(4, 6, 1, bias=False)),
    # ------------------------------------------------------------------ maxpool
    Case("maxpool", M, {"k": 2}, lambda: nn.MaxPool2d(2)),
    Case("maxpool", M, {"k": (2, 3)}, lambda: nn.MaxPool2d((2, 3))),
    Case("maxpool", M, {"k": 3, "s": 2}, lambda: nn.MaxPool2d(3, stride=2)),
    Case("maxpool", M, {"k": 3, "s": 1, "p": 1}, lambda: nn.MaxPool2d(3, stride=1, padding=1)),
    Case("maxpool", M, {"k": 3, "p": (1, 0)}, lambda: nn.MaxPool2d(3, padding=(1, 0))),
    Case("maxpool", M, {"k": 3, "s": 1, "d": 2}, lambda: nn.MaxPool2d(3, stride=1, dilation=2)),
    # 9x11 with 2x2/2: 4x5 rounding down, 5x6 up
    Case("maxpool", M, {"k": 2, "ceil_mode": True}, lambda: nn.MaxPool2d(2, ceil_mode=True)),
    Case("maxpool", M, {"k": 3, "s": 2, "p": 1, "d": 2, "ceil_mode": True},
         lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    Case("maxpool", M, {"k": 3, "s": 2, "p": 1}, lambda: nn.MaxPool2d(3, 2, 1),
         call="maxpool(3, 2, 1)"),
    # ------------------------------------------------------------------ avgpool
    Case("avgpool", M, {"k": 2}, lambda: nn.AvgPool2d(2)),
    Case("avgpool", M, {"k": (2, 3)}, lambda: nn.AvgPool2d((2, 3))),
    Case("avgpool", M, {"k": 3, "s": 2}, lambda: nn.AvgPool2d(3, stride=2)),
    Case("avgpool", M, {"k": 3, "s": 2, "p": 1}, lambda: nn.AvgPool2d(3, stride=2, padding=1)),
    Case("avgpool", M, {"k": 2, "ceil_mode": True}, lambda: nn.AvgPool2d(2, ceil_mode=True)),
    Case("avgpool", M, {"k": 3, "s": 2, "p": 1, "count_include_pad": False},
         lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)),
    Case("avgpool", M, {"k": 3, "s": 2, "p": 1, "ceil_mode": True, "count_include_pad": False},
         lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False)),
    # ------------------------------------------------------------------ adaptive and global
    Case("adaptive_avgpool", M, {"size": 2}, lambda: nn.AdaptiveAvgPool2d(2)),
    Case("adaptive_avgpool", M, {"size": (2, 3)}, lambda: nn.AdaptiveAvgPool2d((2, 3))),
    Case("adaptive_maxpool", M, {"size": 2}, lambda: nn.AdaptiveMaxPool2d(2)),
    Case("adaptive_maxpool", M, {"size": (2, 3)}, lambda: nn.AdaptiveMaxPool2d((2, 3))),
    Case("global_avgpool", M, {}, lambda: nn.AdaptiveAvgPool2d(1)),
    Case("global_maxpool", M, {}, lambda: nn.AdaptiveMaxPool2d(1)),
    # ------------------------------------------------------------------ normalisation
    Case("batchnorm", M, {}, lambda: nn.BatchNorm2d(4)),
    Case("batchnorm", F7, {}, lambda: nn.BatchNorm1d(7)),
    Case("batchnorm", M, {"eps": 0.5}, lambda: nn.BatchNorm2d(4, eps=0.5)),
    Case("batchnorm", M, {"momentum": 0.7}, lambda: nn.BatchNorm2d(4, momentum=0.7)),
    Case("batchnorm", M, {"affine": False}, lambda: nn.BatchNorm2d(4, affine=False)),
    Case("batchnorm", F7, {"eps": 0.5, "momentum": 0.7, "affine": False},
         lambda: nn.BatchNorm1d(7, eps=0.5, momentum=0.7, affine=False)),
    Case("lrn", M, {"size": 3}, lambda: nn.LocalResponseNorm(3), scale=30.0),
    Case("lrn", M, {"size": 2}, lambda: nn.LocalResponseNorm(2), scale=30.0),
    Case("lrn", M, {"size": 3, "alpha": 0.5}, lambda: nn.LocalResponseNorm(3, alpha=0.5)),
    Case("lrn", M, {"size": 3, "beta": 0.3}, lambda: nn.LocalResponseNorm(3, beta=0.3),
         scale=30.0),
    Case("lrn", M, {"size": 3, "k": 2.0}, lambda: nn.LocalResponseNorm(3, k=2.0)),
    Case("lrn", M, {"size": 3, "alpha": 0.5, "beta": 0.3, "k": 2.0},
         lambda: nn.LocalResponseNorm(3, alpha=0.5, beta=0.3, k=2.0)),
    Case("lrn", M, {"size": 5, "alpha": 0.5}, lambda: nn.LocalResponseNorm(5, 0.5),
         call="lrn(5, alpha=0.5)"),
    Case("groupnorm", M, {"groups": 2}, lambda: nn.GroupNorm(2, 4)),
    Case("groupnorm", M, {"groups": 4, "eps": 0.5}, lambda: nn.GroupNorm(4, 4, eps=0.5)),
    Case("groupnorm", M, {"groups": 1, "affine": False},
         lambda: nn.GroupNorm(1, 4, affine=False)),
    Case("groupnorm", (6, 3, 5), {"groups": 3}, lambda: nn.GroupNorm(3, 6),
         call="groupnorm(3)"),
    Case("instancenorm", M, {}, lambda: nn.InstanceNorm2d(4)),
    Case("instancenorm", M, {"eps": 0.5}, lambda: nn.InstanceNorm2d(4, eps=0.5)),
    Case("instancenorm", M, {"affine": True}, lambda: nn.InstanceNorm2d(4, affine=True)),
    Case("instancenorm", M, {"track": True},
         lambda: nn.InstanceNorm2d(4, track_running_stats=True)),
    Case("instancenorm", M, {"momentum": 0.7, "track": True},
         lambda: nn.InstanceNorm2d(4, momentum=0.7, track_running_stats=True)),
    Case("instancenorm", M, {"eps": 0.5, "momentum": 0.0, "affine": True, "track": True},
         lambda: nn.InstanceNorm2d(4, eps=0.5, momentum=0.0, affine=True,
                                   track_running_stats=True)),
    Case("layernorm", F7, {}, lambda: nn.LayerNorm(7)),
    Case("layernorm", F7, {"eps": 0.5}, lambda: nn.LayerNorm(7, eps=0.5)),
    Case("layernorm", F7, {"affine": False}, lambda: nn.LayerNorm(7, elementwise_affine=False)),
    Case("layernorm2d", M, {}, lambda: ChannelsLastNorm(nn.LayerNorm(4))),
    Case("layernorm2d", M, {"eps": 0.5}, lambda: ChannelsLastNorm(nn.LayerNorm(4, eps=0.5))),
    Case("layernorm2d", M, {"affine": False},
         lambda: ChannelsLastNorm(nn.LayerNorm(4, elementwise_affine=False))),
    # ------------------------------------------------------------------ activations
    Case("relu", M, {}, lambda: nn.ReLU()),
    Case("relu6", M, {}, lambda: nn.ReLU6(), scale=10.0),
    Case("leaky_relu", M, {}, lambda: nn.LeakyReLU()),
    Case("leaky_relu", M, {"slope": 0.2}, lambda: nn.LeakyReLU(0.2)),
    Case("leaky_relu", F7, {"slope": 0.3}, lambda: nn.LeakyReLU(negative_slope=0.3),
         call="leaky_relu(0.3)"),
    Case("sigmoid", M, {}, lambda: nn.Sigmoid()),
    Case("tanh", M, {}, lambda: nn.Tanh()),
    Case("gelu", M, {}, lambda: nn.GELU()),
    Case("gelu", M, {"approximate": "tanh"}, lambda: nn.GELU(approximate="tanh")),
    Case("gelu", M, {"approximate": "none"}, lambda: nn.GELU(approximate="none"),
         call='gelu("none")'),
    Case("silu", M, {}, lambda: nn.SiLU()),
    Case("hardswish", M, {}, lambda: nn.Hardswish(), scale=4.0),  # past the kinks at -3, 3
    Case("hardswish", F7, {}, lambda: nn.Hardswish(), scale=4.0),
    Case("hardsigmoid", M, {}, lambda: nn.Hardsigmoid(), scale=4.0),
    Case("mish", M, {}, lambda: nn.Mish(), scale=3.0),
    Case("softmax", M, {}, lambda: nn.Softmax(dim=1)),  # over channels
    Case("softmax", F7, {}, lambda: nn.Softmax(dim=1)),  # over features
    # ------------------------------------------------------------------ the rest
    Case("dropout", M, {}, lambda: nn.Dropout()),
    Case("dropout", F7, {"p": 0.2}, lambda: nn.Dropout(p=0.2)),
    Case("dropout", M, {"p": 0.0}, lambda: nn.Dropout(0.0), call="dropout(0.0)"),
    Case("dropout2d", M, {}, lambda: nn.Dropout2d()),
    Case("dropout2d", M, {"p": 0.2}, lambda: nn.Dropout2d(0.2), call="dropout2d(0.2)"),
    Case("alpha_dropout", M, {}, lambda: nn.AlphaDropout()),
    Case("alpha_dropout", F7, {"p": 0.2}, lambda: nn.AlphaDropout(0.2)),
    # with the harness's seed, p=0.8 drops one of the two samples and keeps the other
    Case("stochastic_depth", M, {"p": 0.8}, lambda: DropRows(0.8)),
    Case("stochastic_depth", M, {"p": 0.5, "mode": "batch"}, lambda: DropRows(0.5, "batch")),
    Case("stochastic_depth", F7, {"p": 0.3, "mode": "row"}, lambda: DropRows(0.3),
         call='stochastic_depth(0.3, "row")'),
    Case("stochastic_depth", M, {"p": 0.0}, lambda: DropRows(0.0)),
    Case("stochastic_depth", M, {"p": 1.0}, lambda: DropRows(1.0)),
    Case("channel_shuffle", (6, 3, 5), {"groups": 2}, lambda: nn.ChannelShuffle(2)),
    Case("channel_shuffle", (6, 3, 5), {"groups": 3}, lambda: nn.ChannelShuffle(3),
         call="channel_shuffle(3)"),
    Case("scale", M, {}, lambda: Scale((4, 1, 1), 1.0)),
    Case("scale", M, {"init": 1e-6}, lambda: Scale((4, 1, 1), 1e-6)),
    Case("scale", F7, {"init": -0.5}, lambda: Scale((7,), -0.5), call="scale(-0.5)"),
    # ------------------------------------------------------------------ resizing
    Case("upsample", M, {"scale": 2.0}, lambda: nn.Upsample(scale_factor=2.0)),
    Case("upsample", M, {"size": 5}, lambda: nn.Upsample(size=5)),
    Case("upsample", M, {"scale": (1.5, 2.0), "mode": "bilinear"},
         lambda: nn.Upsample(scale_factor=(1.5, 2.0), mode="bilinear")),
    Case("upsample", M, {"size": (12, 7), "mode": "bicubic", "align_corners": True},
         lambda: nn.Upsample(size=(12, 7), mode="bicubic", align_corners=True)),
    Case("upsample", M, {"scale": 1.5, "mode": "bilinear", "align_corners": False},
         lambda: nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=False)),
    Case("upsample", M, {"scale": 2.0, "mode": "nearest-exact"},
         lambda: nn.Upsample(scale_factor=2.0, mode="nearest-exact")),
    Case("upsample", M, {"scale": 3.0}, lambda: nn.Upsample(scale_factor=3),
         call="upsample(3)"),
    Case("crop", M, {"size": 5}, lambda: TorchvisionCrop((5, 5))),
    Case("crop", M, {"size": (7, 3)}, lambda: TorchvisionCrop((7, 3))),
    Case("crop", M, {"size": (9, 11)}, lambda: TorchvisionCrop((9, 11)), call="crop((9, 11))"),
    Case("pad", M, {"p": 1}, lambda: nn.ConstantPad2d(1, 0.0)),
    Case("pad", M, {"p": (0, 1, 2, 3), "value": -1.5},
         lambda: nn.ConstantPad2d((0, 1, 2, 3), -1.5)),
    Case("pad", M, {"p": (1, 2, 3, 0), "mode": "reflect"},
         lambda: nn.ReflectionPad2d((1, 2, 3, 0))),
    Case("pad", M, {"p": ((1, 0), (2, 3)), "mode": "replicate"},
         lambda: nn.ReplicationPad2d((2, 3, 1, 0))),
    Case("pad", M, {"p": 2, "mode": "circular"}, lambda: nn.CircularPad2d(2)),
    Case("pad", M, {"p": 1, "mode": "reflect"}, lambda: nn.ReflectionPad2d(1),
         call='pad(1, "reflect")'),
    Case("pixel_shuffle", (8, 3, 5), {"r": 2}, lambda: nn.PixelShuffle(2)),
    Case("pixel_shuffle", (9, 2, 2), {"r": 3}, lambda: nn.PixelShuffle(3),
         call="pixel_shuffle(3)"),
    Case("pixel_unshuffle", (2, 6, 4), {"r": 2}, lambda: nn.PixelUnshuffle(2)),
    Case("pixel_unshuffle", M, {"r": 1}, lambda: nn.PixelUnshuffle(1), call="pixel_unshuffle(1)"),
    Case("flatten", M, {}, lambda: nn.Flatten()),
    Case("linear", F7, {"out": 5}, lambda: nn.Linear(7, 5)),
    Case("linear", F7, {"out": 3, "bias": False}, lambda: nn.Linear(7, 3, bias=False)),
    Case("linear", F7, {"out": 5}, lambda: nn.Linear(7, 5), call="linear(out_features=5)"),
    Case("identity", M, {}, lambda: nn.Identity()),
]

# The constructor attributes compared for each torch class (besides the class itself).
ATTRIBUTES = {
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                "groups", "padding_mode", "output_padding", "transposed"),
    nn.ConvTranspose2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                         "output_padding", "dilation", "groups", "padding_mode", "transposed"),
    nn.Upsample: ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"),
    TorchvisionCrop: ("size",),
    nn.ConstantPad2d: ("padding", "value"),
    nn.ReflectionPad2d: ("padding",),
    nn.ReplicationPad2d: ("padding",),
    nn.CircularPad2d: ("padding",),
    nn.PixelShuffle: ("upscale_factor",),
    nn.PixelUnshuffle: ("downscale_factor",),
    nn.MaxPool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode",
                   "return_indices"),
    nn.AvgPool2d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                   "divisor_override"),
    nn.AdaptiveAvgPool2d: ("output_size",),
    nn.AdaptiveMaxPool2d: ("output_size", "return_indices"),
    nn.BatchNorm2d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.BatchNorm1d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.LocalResponseNorm: ("size", "alpha", "beta", "k"),
    nn.GroupNorm: ("num_groups", "num_channels", "eps", "affine"),
    nn.InstanceNorm2d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.LayerNorm: ("normalized_shape", "eps", "elementwise_affine"),
    nn.LeakyReLU: ("negative_slope",),
    nn.ReLU6: ("min_val", "max_val"),
    nn.GELU: ("approximate",),
    nn.Softmax: ("dim",),
    nn.Dropout: ("p",),
    nn.Dropout2d: ("p",),
    nn.AlphaDropout: ("p",),
    DropRows: ("p", "mode"),
    nn.ChannelShuffle: ("groups",),
    nn.Flatten: ("start_dim", "end_dim"),
    nn.Linear: ("in_features", "out_features"),
    nn.ReLU: (),
    nn.Sigmoid: (),
    nn.Tanh: (),
    nn.SiLU: (),
    nn.Hardswish: (),
    nn.Hardsigmoid: (),
    nn.Mish: (),
    nn.Identity: (),
}

SPATIAL = {"kernel_size", "stride", "padding", "dilation", "output_size", "output_padding",
           "size"}


def _normalised(name: str, value):
    """3 and (3, 3) are the same kernel; PyTorch keeps whichever it was given."""
    if name in SPATIAL and isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if name in SPATIAL and isinstance(value, list):
        return tuple(value)
    return value


def _randomise(module: nn.Module) -> None:
    """Non-trivial weights and running statistics, so that copying them matters."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        for name, buf in module.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) * 2 + 0.25)
            elif name.endswith("num_batches_tracked"):
                buf.fill_(7)


def _build(tmp_path, case: Case) -> nn.Module:
    shape = ", ".join(map(str, case.in_shape))
    spec = tmp_path / "t.arch"
    spec.write_text(f"network t() {{\n  input [{shape}]\n  l: {case.text}\n}}\n")
    return archspec.build(str(spec))


def _run(module, x: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # dropout draws the same mask for both
    return module(x.clone())  # activations may run in place


def _assert_same_state(got: nn.Module, ref: nn.Module) -> None:
    a, b = got.state_dict(), ref.state_dict()
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_module_matches_hand_built_torch_layer(tmp_path, case):
    model = _build(tmp_path, case)
    expected = case.expected()
    if isinstance(expected, Scale):
        _check_scale(model, case, expected)
        return
    got = model.get_submodule("l")
    ref_module = getattr(expected, "reference", expected)
    attributes = ATTRIBUTES[type(ref_module)]
    if type(expected) in HELPERS:
        name, base = HELPERS[type(expected)]
        assert isinstance(got, base) and type(got).__name__ == name, type(got)
    else:
        assert type(got) is type(expected)
    if isinstance(expected, Padded):
        attributes = [a for a in attributes if a != "padding"]
        assert _normalised("padding", got.padding) == (0, 0)  # F.pad does all the padding
    for name in attributes:
        assert _normalised(name, getattr(got, name)) == _normalised(
            name, getattr(ref_module, name)), name
    if hasattr(ref_module, "bias") and not isinstance(ref_module, nn.BatchNorm1d | nn.BatchNorm2d):
        assert (got.bias is None) == (ref_module.bias is None), "bias"
    assert {n for n, _ in got.named_children()} == set()  # one layer, nothing hidden in it

    _randomise(ref_module)
    got.load_state_dict(ref_module.state_dict(), strict=True)
    x = torch.randn((2, *case.in_shape), generator=torch.Generator().manual_seed(2)) * case.scale

    for mode in ("train", "eval"):
        model.train(mode == "train")
        ref_module.train(mode == "train")
        want = _run(expected, x, seed=3)
        torch.testing.assert_close(_run(got, x, seed=3), want, rtol=1e-5, atol=1e-6,
                                   msg=lambda m, mode=mode: f"{mode} mode, the layer: {m}")
        _assert_same_state(got, ref_module)  # batchnorm: the running statistics after a step
        torch.testing.assert_close(_run(model, x, seed=3), _run(expected, x, seed=3),
                                   rtol=1e-5, atol=1e-6,
                                   msg=lambda m, mode=mode: f"{mode} mode, the network: {m}")


def _check_scale(model: nn.Module, case: Case, expected: Scale) -> None:
    """The label names a parameter of the network itself, as ConvNeXt's `layer_scale` is one
    of its block; its output is the parameter times the input, with broadcasting."""
    assert dict(model.named_children()) == {}
    assert [name for name, _ in model.named_parameters()] == ["l"]
    weight = model.get_parameter("l")
    assert weight.requires_grad and weight.dtype == torch.float32
    torch.testing.assert_close(weight, expected.weight, rtol=0, atol=0)
    _randomise(expected)
    with torch.no_grad():
        weight.copy_(expected.weight)
    x = torch.randn((2, *case.in_shape), generator=torch.Generator().manual_seed(2))
    for mode in (True, False):
        model.train(mode)
        torch.testing.assert_close(model(x), expected(x))


def test_every_op_and_every_argument_has_a_case():
    """A new op, or a new argument, needs a case here: with the defaults, and with a
    non-default value of each argument."""
    by_op: dict[str, list[Case]] = {}
    for case in CASES:
        assert case.op in REGISTRY, case.op
        by_op.setdefault(case.op, []).append(case)
    missing = sorted(set(REGISTRY) - set(by_op))
    assert not missing, f"ops without a case in tests/test_op_modules.py: {missing}"
    for name, op in REGISTRY.items():
        fields = op.args.model_fields
        required = {f for f, info in fields.items() if info.is_required()}
        one_of = set(op.args.one_of) - TENSOR_ARGUMENTS  # exactly one is given: each
        minimal = [{*required, choice} for choice in one_of] or [required]
        for given in minimal:
            assert any(set(c.args) == given and c.call is None for c in by_op[name]), (
                f"`{name}` has no case with only {sorted(given)} (the defaults)")
        for arg, info in fields.items():
            if arg in TENSOR_ARGUMENTS:
                continue  # a second tensor: tests/test_named_tensors.py
            assert any(arg in c.args and (info.is_required() or c.args[arg] != info.default)
                       for c in by_op[name]), f"`{name}`: no case with a non-default `{arg}`"
        for case in by_op[name]:
            assert set(case.args) <= set(fields), (name, case.args)
