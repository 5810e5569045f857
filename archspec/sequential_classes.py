"""The nn.Sequential subclasses of built scopes that chain modules, named after the spec's
blocks (`Stage`, `Unit`); see block_classes.py."""

from torch import nn

from .torch_backend import made_class


def __getattr__(name: str) -> type:
    return made_class(__name__, name, nn.Sequential)
