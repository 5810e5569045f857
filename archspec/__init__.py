"""archspec: a declarative architecture-spec compiler for convolutional networks.

`load()` parses and statically checks a .arch file and returns the checked network (IR with
every shape) without importing torch; `build()` turns it into an nn.Module.
"""

from .check import check_file, load
from .diagnostics import ArchError, Diagnostic

__all__ = ["ArchError", "Diagnostic", "build", "check_file", "load"]


def build(spec, net: str | None = None, verify: bool = False, **params):
    """The nn.Module of a spec's network (imports torch; see archspec.torch_backend.build).
    `spec` is a path (str or os.PathLike) or a checked network from `load`."""
    import os

    from .torch_backend import build as build_torch

    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)

    return build_torch(spec, net, verify, **params)
__version__ = "0.1.0"
