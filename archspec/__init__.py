"""archspec: a declarative architecture-spec compiler for convolutional networks.

`load()` parses and statically checks a .arch file and returns the checked network (IR with
every shape); nothing here imports torch.
"""

from .check import check_file, load
from .diagnostics import ArchError, Diagnostic

__all__ = ["ArchError", "Diagnostic", "check_file", "load"]
__version__ = "0.1.0"
