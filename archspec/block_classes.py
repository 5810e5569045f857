"""The classes of built scopes that merge tensors, named after the spec's blocks
(`Bottleneck`, `Inception`), made on first use. A module of their own, so that pickle (any
protocol, torch.save's included) finds `archspec.block_classes.Bottleneck` again by name."""

from .torch_backend import ArchBlock, made_class


def __getattr__(name: str) -> type:
    return made_class(__name__, name, ArchBlock)
