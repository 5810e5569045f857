"""archspec: a declarative architecture-spec compiler for convolutional networks.

`load()` parses and statically checks a .arch file (`loads()` a spec's text) and returns the
checked network (IR with every shape) without importing torch; `build()` (`builds()`) turns
it into an nn.Module; `summarize`, `diff` and `draw` (notebook.py) are the CLI's summary, diff
and diagram, and methods of the network with `build`. This is the API layer: it joins the
front end and the backends, which know nothing of each other's callers.
"""

from __future__ import annotations

import os

from .check import InputShape, check_file, input_sizes, load, loads
from .diagnostics import ArchError, Diagnostic
from .ir import Network
from .notebook import Drawing, diff, draw, network_html, network_repr, summarize
from .version import __version__

__all__ = ["ArchError", "Diagnostic", "Drawing", "Network", "__version__", "build", "builds",
           "check_file", "diff", "draw", "load", "loads", "summarize"]


def build(spec: str | os.PathLike | Network, net: str | None = None, verify: bool = False,
          max_bytes: int | None = None, *, input_shape: InputShape | None = None, **params):
    """The nn.Module of a spec's network (imports torch). `spec` is a path or a checked
    network from `load`; `params` set the network's parameters and `input_shape` its input;
    `verify` runs it once on PyTorch's meta device and confirms every layer's shape. A
    network that needs more than `max_bytes` (default: the memory free now) is refused with
    E502 before torch allocates. builds() takes the spec's text."""
    if isinstance(spec, Network):
        if net is not None or input_shape is not None or params:
            raise TypeError("build() of a checked network takes no net, input_shape or "
                            "parameters: they were fixed when it was loaded; pass them to "
                            "load(), or give build() the path")
        return _module(spec, verify, max_bytes)
    return _module(load(spec, net, input_shape, **params), verify, max_bytes)


def builds(text: str, net: str | None = None, verify: bool = False,
           max_bytes: int | None = None, *, input_shape: InputShape | None = None,
           name: str = "<string>", **params):
    """build() for a spec given as text (loads() checks it: `name` is the file name its
    diagnostics show, and only a name that is a path lets the text import)."""
    return _module(loads(text, net, input_shape, name=name, **params), verify, max_bytes)


def _module(network: Network, verify: bool, max_bytes: int | None):
    """The checked network as an nn.Module, refused (E502) before torch allocates too much."""
    from .torch_backend import available_memory, build_module, refuse_if_too_large, verify_network

    refuse_if_too_large(network, available_memory() if max_bytes is None else max_bytes)
    if verify:
        verify_network(network)
    return build_module(network, input_sizes)


# A checked network in Python and Jupyter (archspec/notebook.py): ir.py knows no backend.
Network.__repr__ = network_repr
Network._repr_html_ = network_html
Network.summary = summarize
Network.draw = draw
Network.build = build
