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
