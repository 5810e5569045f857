"""archspec: a declarative architecture-spec compiler for convolutional networks.

`load()` parses and statically checks a .arch file and returns the checked network (IR with
every shape) without importing torch; `build()` turns it into an nn.Module. This is the API
layer: it joins the front end and the backends, which know nothing of each other's callers.
"""

from __future__ import annotations

import os

from .check import check_file, load
from .diagnostics import ArchError, Diagnostic
from .ir import Network
from .version import __version__

__all__ = ["ArchError", "Diagnostic", "__version__", "build", "check_file", "load"]


def build(spec: str | os.PathLike | Network, net: str | None = None, verify: bool = False,
          max_bytes: int | None = None, **params):
    """The nn.Module of a spec's network (imports torch). `spec` is a path or a checked
    network from `load`; `params` set the network's parameters; `verify` runs it once on
    PyTorch's meta device and confirms every layer's shape. A network that needs more than
    `max_bytes` (default: the memory free now) is refused with E502 before torch allocates."""
    from .torch_backend import available_memory, build_module, refuse_if_too_large, verify_network

    network = spec if isinstance(spec, Network) else load(os.fspath(spec), net, **params)
    refuse_if_too_large(network, available_memory() if max_bytes is None else max_bytes)
    if verify:
        verify_network(network)
    return build_module(network)


def _network_svg(network: Network) -> str | None:
    """Jupyter shows a network as its diagram (None without Graphviz's `dot`)."""
    from .diagram import repr_svg  # graphviz only when drawing

    return repr_svg(network)


Network._repr_svg_ = _network_svg
