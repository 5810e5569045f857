"""The networks of specs/, checked once per test process: several test modules parametrize
over them at collection, and checking the whole library takes seconds each time."""

from __future__ import annotations

import functools
from pathlib import Path

from archspec.check import check_file
from archspec.ir import Network

SPECS = Path(__file__).resolve().parent.parent / "specs"


@functools.cache
def library_networks() -> tuple[tuple[Path, Network], ...]:
    """Every network and variant of specs/, with its file, in file then definition order."""
    return tuple((spec, network) for spec in sorted(SPECS.glob("*.arch"))
                 for network in check_file(str(spec)).networks)
