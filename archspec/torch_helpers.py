"""Torch modules that torch.nn lacks, used by built networks and copied verbatim into
compiled source (so a compiled file needs nothing but torch). Keep each class
self-contained: the source generator extracts classes from this file by name."""

import torch
import torch.nn.functional as F
from torch import nn


class PaddedConv2d(nn.Conv2d):
    """Conv2d with explicit per-side zero padding (left, right, top, bottom): TensorFlow's
    'same' for even kernels or stride > 1, which nn.Conv2d's padding cannot express."""

    def __init__(self, *args, pad: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class DenseConcat(nn.ModuleDict):
    """DenseNet's dense concat: each layer sees the input and every earlier layer's output,
    concatenated on channels; the result concatenates all of them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W map (ConvNeXt's): the channels are
    moved last for the norm and back after it. Parameters as nn.LayerNorm(C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class StochasticDepth(nn.Module):
    """Drops its input while training, per sample ("row") or for the whole batch
    ("batch"), with probability p, and scales what survives by 1 / (1 - p); the identity at
    inference. The residual branch it ends then counts for the expected depth only."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        size = [1] * x.dim()  # one draw for the batch, or one per sample
        if self.mode == "row":
            size[0] = x.shape[0]
        mask = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * (mask / keep if keep > 0.0 else mask)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class Permute(nn.Module):
    """Reorders a tensor's dimensions (batch included), e.g. (0, 2, 3, 1) for channels last."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class CenterCrop2d(nn.Module):
    """The centre (h, w) of an N x C x H x W map, U-Net's crop before its concat: rows from
    (H - h) // 2 and columns from (W - w) // 2 (the odd pixel is dropped at the bottom and
    right). Refuses a map smaller than the crop."""

    def __init__(self, size: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else size and tuple(size)

    def forward(
        self, x: torch.Tensor, like: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Crops to `size`, or without one to the height and width of `like`."""
        (h, w), (height, width) = self.size or like.shape[-2:], x.shape[-2:]
        if h > height or w > width:
            raise ValueError(f"crop {h}x{w} is larger than the input {height}x{width}")
        top, left = (height - h) // 2, (width - w) // 2
        return x[..., top : top + h, left : left + w]

    def extra_repr(self) -> str:
        return f"size={self.size}"


class Interpolate(nn.Module):
    """Resizes a map to the height and width of another tensor, given with it, as
    torchvision's segmentation models do: F.interpolate(x, size=like.shape[-2:])."""

    def __init__(
        self, mode: str = "nearest", align_corners: bool | None = None
    ) -> None:
        super().__init__()
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, size=like.shape[-2:], mode=self.mode, align_corners=self.align_corners
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, align_corners={self.align_corners}"


class ToSequence(nn.Module):
    """An N x C x H x W map to an N x W x C*H sequence: each column a time step, its C*H
    values (channel-major) the step's features (CRNN's map-to-sequence)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2).flatten(2)


class SequenceRNN(nn.RNN):
    """nn.RNN (archspec builds it batch first) whose forward returns the output sequence
    only, not the final hidden state; parameters and state_dict are nn.RNN's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[0]


class SequenceLSTM(nn.LSTM):
    """nn.LSTM (batch first) whose forward returns the output sequence only, not the final
    hidden and cell states; parameters and state_dict are nn.LSTM's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[0]


class SequenceGRU(nn.GRU):
    """nn.GRU (batch first) whose forward returns the output sequence only, not the final
    hidden state; parameters and state_dict are nn.GRU's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[0]


def init_weights(
    model: nn.Module,
    conv: str = "default",
    linear: str = "default",
    bn: str = "default",
    zero_bn: tuple[str, ...] = (),
) -> None:
    """The spec's init(...) choices; 'default' keeps PyTorch's own initialisation."""
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and conv != "default":
            if conv.startswith("kaiming"):
                init = getattr(nn.init, conv + "_")
                init(module.weight, mode="fan_out", nonlinearity="relu")
            else:
                getattr(nn.init, conv + "_")(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear != "default":
            if linear == "normal":
                nn.init.normal_(module.weight, 0.0, 0.01)
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and bn == "constant":
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for path in zero_bn:
        nn.init.zeros_(model.get_submodule(path).weight)
